/**
 * A simulated serial port on a real pseudo-terminal, so that any serial
 * terminal program (minicom, picocom, screen, a Python pyserial script)
 * can open it. Node has no PTY API, so `socat` makes the PTY and relays it to
 * its stdio, which is bridged here: `socat PTY,link=<path>,raw,echo=0 STDIO`.
 * The link path is stable; the /dev/pts/N behind it is printed by socat.
 * socat is restarted if it exits (at most MAX_RESTARTS times).
 */
import { spawn, type ChildProcess } from "node:child_process";
import type { SerialBridge } from "./serial-bridge";

export const MAX_RESTARTS = 5;
const START_TIMEOUT_MS = 5000;

export interface SerialPty {
  /** The stable symlink. */
  readonly link: string;
  /** The /dev/pts/N device. */
  readonly device: string;
  close(): void;
}

/**
 * Create the PTY and bridge it. Fails (rejects) when socat is missing or
 * does not report its PTY within 5 s.
 */
export function openSerialPty(bridge: SerialBridge, link: string): Promise<SerialPty> {
  let child: ChildProcess | undefined;
  let closed = false;
  let restarts = 0;
  let detach: (() => void) | undefined;

  const start = (): Promise<string> =>
    new Promise((resolve, reject) => {
      const c = spawn("socat", ["-d", "-d", `PTY,link=${link},raw,echo=0`, "STDIO"], { stdio: ["pipe", "pipe", "pipe"] });
      child = c;
      let stderr = "";
      let settled = false;
      const timer = setTimeout(() => {
        if (!settled) {
          settled = true;
          c.kill();
          reject(new Error(`socat did not report a PTY within ${START_TIMEOUT_MS} ms: ${stderr.trim()}`));
        }
      }, START_TIMEOUT_MS);
      c.on("error", (e) => {
        if (!settled) {
          settled = true;
          clearTimeout(timer);
          reject(new Error(`cannot run socat (install it: apt-get install socat): ${e.message}`));
        }
      });
      c.stderr!.on("data", (d: Buffer) => {
        if (settled) return;
        stderr += d.toString();
        const m = /PTY is (\S+)/.exec(stderr);
        if (m && /starting data transfer loop/.test(stderr)) {
          settled = true;
          clearTimeout(timer);
          resolve(m[1]);
        }
      });
      c.stdout!.on("data", (d: Buffer) => bridge.send(new Uint8Array(d.buffer, d.byteOffset, d.byteLength).slice()));
      c.stdin!.on("error", () => {});
      detach?.();
      detach = bridge.attach((data) => {
        if (c.stdin && !c.stdin.destroyed) c.stdin.write(data);
      });
      c.on("exit", () => {
        if (closed || !settled || restarts >= MAX_RESTARTS) return;
        restarts++;
        start().catch(() => {});
      });
    });

  return start().then((device) =>
    Object.freeze({
      link,
      device,
      close() {
        closed = true;
        detach?.();
        child?.kill();
      },
    }),
  );
}
