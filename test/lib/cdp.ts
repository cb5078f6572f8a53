/**
 * Headless Chromium driven over the Chrome DevTools Protocol on a pipe
 * (`--remote-debugging-pipe`: commands on the browser's fd 3, answers and
 * events on its fd 4, each message JSON ended by a NUL byte), so a test
 * needs neither a WebSocket client nor an npm package. One page; evaluate
 * expressions in it and take screenshots while it stays open (live updates).
 */
import { spawn, type ChildProcess } from "node:child_process";
import type { Readable, Writable } from "node:stream";

export class Browser {
  private readonly child: ChildProcess;
  private readonly input: Writable;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>();
  private buffer = "";
  stderr = "";
  private session: string | undefined;

  constructor(args: string[] = []) {
    this.child = spawn(
      "chromium",
      ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--hide-scrollbars", "--remote-debugging-pipe", ...args],
      { stdio: ["ignore", "ignore", "pipe", "pipe", "pipe"] },
    );
    this.child.on("error", (e) => this.failAll(new Error(`chromium cannot start (apt-get install chromium; .ci/run installs it): ${e.message}`)));
    this.child.on("exit", (code) => this.failAll(new Error(`chromium exited (${code}): ${this.stderr.slice(-2000)}`)));
    this.child.stderr!.on("data", (d) => (this.stderr = (this.stderr + d).slice(-20000)));
    this.input = this.child.stdio[3] as Writable;
    (this.child.stdio[4] as Readable).on("data", (d: Buffer) => {
      this.buffer += d.toString("utf8");
      let i: number;
      while ((i = this.buffer.indexOf("\0")) >= 0) {
        const msg = JSON.parse(this.buffer.slice(0, i));
        this.buffer = this.buffer.slice(i + 1);
        const p = msg.id !== undefined ? this.pending.get(msg.id) : undefined;
        if (!p) continue;
        this.pending.delete(msg.id);
        if (msg.error) p.reject(new Error(`CDP: ${msg.error.message}`));
        else p.resolve(msg.result);
      }
    });
  }

  private failAll(e: Error): void {
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  /** Send one CDP command (to the page's session once one is open). */
  send(method: string, params: object = {}, toBrowser = false): Promise<any> {
    const id = this.nextId++;
    const msg = { id, method, params, ...(this.session && !toBrowser ? { sessionId: this.session } : {}) };
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.input.write(JSON.stringify(msg) + "\0");
    });
  }

  /** Open `url` in a new page of `width`×`height` and attach to it. */
  async open(url: string, width = 1280, height = 1400): Promise<void> {
    const { targetId } = await this.send("Target.createTarget", { url: "about:blank" }, true);
    const { sessionId } = await this.send("Target.attachToTarget", { targetId, flatten: true }, true);
    this.session = sessionId;
    await this.send("Emulation.setDeviceMetricsOverride", { width, height, deviceScaleFactor: 1, mobile: false });
    await this.send("Page.enable");
    await this.send("Page.navigate", { url });
  }

  /** The value of a JavaScript expression in the page (JSON-serialisable). */
  async evaluate<T>(expression: string): Promise<T> {
    const r = await this.send("Runtime.evaluate", { expression, returnByValue: true, awaitPromise: true });
    if (r.exceptionDetails) throw new Error(`page: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`);
    return r.result.value as T;
  }

  /** A PNG of the whole page. */
  async screenshot(): Promise<Buffer> {
    const { data } = await this.send("Page.captureScreenshot", { format: "png", captureBeyondViewport: true });
    return Buffer.from(data, "base64");
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((r) => this.child.once("exit", r));
    this.send("Browser.close", {}, true).catch(() => {});
    const t = setTimeout(() => this.child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(t);
  }
}
