/**
 * Interop: the operator dashboard in a real browser. `xs-ota serve` (its
 * embedded broker) runs a rollout of a release that crash-loops in its
 * trial while `xs-ota sim --no-serve` devices connect to it; headless
 * Debian Chromium (driven over the DevTools protocol on a pipe) opens
 * https://…/dashboard during the rollout (logging in with the operator
 * token, which becomes a cookie) and keeps it open while the canary rolls
 * back and the rollout halts; the test reads what the page shows from its
 * DOM: the waves, devices by state, failures by reason code, versions in the
 * field, each drawn by the page's script from the live feed and equal to
 * the JSON API. `DASHBOARD_SCREENSHOT=docs/dashboard.png npx vitest run
 * --project interop test/interop/dashboard.test.ts` remakes the screenshot. Without the token nothing opens: not the page, not
 * the API, not with a device's way in (the Range path stays open to devices).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as https from "node:https";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FleetView } from "../../tools/serve/plans";
import { Browser } from "../lib/cdp";
import { repoRoot } from "../lib/cli";
import { fleetView, operatorApi, planText, releaseFolder, startCli, stopProc, waitFor, type Proc, type ReleaseFolder } from "../lib/rollout-rig";

let work: string;
let rf: ReleaseFolder;
let serve: Proc;
let devices: Proc | undefined;
let browser: Browser | undefined;
let httpsPort = 0;
let mqttPort = 0;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "xs-ota-dashboard-"));
  rf = releaseFolder(work, { behaviour: "crash-loop" });
  serve = startCli(["serve", "--releases", rf.dir, "--host", "127.0.0.1", "--mqtt-port", "0", "--https-port", "0", "--trust", rf.pubPath]);
  await waitFor("serve ready", () => /^ready$/m.test(serve.out) || serve.child.exitCode !== null, 60_000, () => serve.out);
  mqttPort = Number(/mqtts broker listening on 127\.0\.0\.1:(\d+)/.exec(serve.out)?.[1]);
  httpsPort = Number(/range server listening on 127\.0\.0\.1:(\d+)/.exec(serve.out)?.[1]);
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await stopProc(devices);
  await stopProc(serve);
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Everything the page shows, read from its DOM (what the page's script drew). */
const READ_PAGE = `(() => {
  const q = (s) => [...document.querySelectorAll(s)];
  const text = (s) => document.querySelector(s)?.textContent;
  const chart = (id) => Object.fromEntries(q('[data-testid="' + id + '"] rect[data-key]').map((r) => [r.dataset.key, Number(r.dataset.count)]));
  return {
    marker: window.__sameDocument === true,
    live: text("#live"),
    status: text('[data-testid="rollout-status"]'),
    why: text('[data-testid="rollout-why"]'),
    waves: q('[data-testid="wave"]').map((r) => ({
      name: r.dataset.wave, open: r.dataset.open === "1",
      devices: Number(r.querySelector('[data-testid="wave-devices"]').textContent),
      failures: Number(r.querySelector('[data-testid="wave-failures"]').textContent),
      bar: Object.fromEntries([...r.querySelectorAll("rect[data-stage]")].map((x) => [x.dataset.stage, Number(x.dataset.count)])),
    })),
    versions: chart("versions-chart"), failures: chart("failures-chart"), states: chart("states-chart"),
    devices: q('[data-testid="device"]').map((r) => ({ id: r.dataset.device, stage: r.dataset.stage })),
  };
})()`;

interface Shown {
  marker: boolean;
  live: string;
  status?: string;
  why?: string;
  waves: { name: string; open: boolean; devices: number; failures: number; bar: { [stage: string]: number } }[];
  versions: { [v: string]: number };
  failures: { [k: string]: number };
  states: { [k: string]: number };
  devices: { id: string; stage: string }[];
}

function get(path: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    https
      .get({ host: "127.0.0.1", port: httpsPort, path, ca: readFileSync(join(rf.dir, "tls", "ca.pem")), headers }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
      .on("error", reject);
  });
}

describe("interop: the operator dashboard in headless Chromium", () => {
  it("opens only with the operator credential", async () => {
    expect(await get("/dashboard")).toBe(401);
    expect(await get("/api/v1/fleet")).toBe(401);
    expect(await get("/api/v1/fleet", { Authorization: "Bearer 00" })).toBe(401);
    expect(await get("/dashboard?token=nope")).toBe(401);
    expect((await operatorApi(rf, httpsPort, "/api/v1/rollouts", { method: "POST", body: { plan: "{}" }, token: "" })).status).toBe(401);
    // what a device may fetch stays open
    expect(await get("/streams/1_1_0_2-s1", { Range: "bytes=0-15" })).toBe(206);
    expect((await operatorApi(rf, httpsPort, "/api/v1/fleet")).status).toBe(200);
  });

  it("shows the waves, devices by state, failures by reason code and versions of a live rollout, as the API has them", async () => {
    const planPath = join(work, "plan.json");
    writeFileSync(planPath, planText([
      { name: "canary", upToPercent: 25, soakSec: 5, failureBudget: 2 },
      { name: "early", upToPercent: 60, soakSec: 5, failureBudget: 2 },
      { name: "rest", upToPercent: 100, soakSec: 0, failureBudget: 5 },
    ], 6));
    const start = startCli(["rollout", "start", "--plan", planPath, "--key", rf.keyPath, "--releases", rf.dir, "--server", `https://127.0.0.1:${httpsPort}`]);
    expect(await start.exited, start.out).toBe(0);
    // The page opens before the devices start (Chromium's start-up on a busy machine outlasted the canary), and the devices
    // run at real time: at x5 the canary rolled back within one of the page's 1 s updates.
    const token = readFileSync(join(rf.dir, "operator.token"), "utf8").trim();
    // The throwaway CA is not in Chromium's store; the token travels only to this loopback server.
    browser = new Browser(["--ignore-certificate-errors", `--user-data-dir=${join(work, "chromium-profile")}`]);
    await browser.open(`https://127.0.0.1:${httpsPort}/dashboard?token=${token}`);
    await waitFor("the page to draw the rollout", async () => (await browser!.evaluate<Shown>(READ_PAGE).catch(() => undefined))?.status === "running", 60_000, () => browser!.stderr);
    await browser.evaluate("window.__sameDocument = true");
    await waitFor("the page's live feed", async () => (await browser!.evaluate<Shown>(READ_PAGE)).live === "(live)", 30_000);
    devices = startCli([
      "sim", "--devices", "24", "--broker", `mqtts://127.0.0.1:${mqttPort}`, "--ca", join(rf.dir, "tls", "ca.pem"), "--no-serve",
      "--releases", rf.dir, "--trust", rf.pubPath, "--factory", rf.factoryPath, "--speed", "1", "--seed", "5", "--duration", "120", "--progress", "0",
    ]);
    // During the rollout, live on the same page: devices seen, the canary open, the later waves closed.
    let during: Shown | undefined;
    let last: Shown | undefined;
    await waitFor("the page to show devices of the running rollout", async () => {
      const shown = await browser!.evaluate<Shown>(READ_PAGE);
      if (shown.status === "running" && shown.devices.length > 0) during = shown;
      last = shown;
      return during !== undefined || shown.status !== "running";
    }, 90_000, () => serve.out);
    expect(during?.status, JSON.stringify(last)).toBe("running");
    expect(during!.marker).toBe(true);
    expect(during!.waves.map((w) => [w.name, w.open])).toEqual([["canary", true], ["early", false], ["rest", false]]);
    expect(during!.devices.length).toBeGreaterThan(0);

    // The canary rolls back and the rollout halts: the open page shows it without a reload, with the reason code of the failures.
    await waitFor("the rollout to halt", async () => (await fleetView(rf, httpsPort)).rollouts[0].status === "halted", 120_000, () => serve.out);
    await waitFor("every device seen", async () => (await fleetView(rf, httpsPort)).devices.length === 24, 30_000);
    await waitFor("the page to show the halt", async () => (await browser!.evaluate<Shown>(READ_PAGE)).status === "halted", 10_000);
    await new Promise((r) => setTimeout(r, 1500)); // one more live event: the page and the API below describe the same moment
    const page = await browser.evaluate<Shown>(READ_PAGE);
    const api: FleetView = await fleetView(rf, httpsPort);
    const r = api.rollouts[0];
    expect(page.marker).toBe(true); // the same document: updated live, not reloaded
    expect(page.status).toBe("halted");
    expect(page.why).toBe(`ROLLOUT_HALTED (730): ${r.why}`);
    expect(page.waves.map((w) => [w.name, w.open])).toEqual([["canary", true], ["early", false], ["rest", false]]);
    expect(page.waves.map((w) => w.devices)).toEqual(r.waves.map((w) => w.devices));
    expect(page.waves[0].failures).toBe(r.waves[0].failures);
    expect(page.waves[0].failures).toBeGreaterThan(2);
    expect(page.waves[0].bar["rolled-back"]).toBe(r.waves[0].stages["rolled-back"]);
    // Later waves were never offered the release: nothing in flight or done there.
    for (const w of page.waves.slice(1)) expect(Object.keys(w.bar).filter((k) => k !== "pending" && k !== "silent"), w.name).toEqual([]);
    expect(page.versions).toEqual(api.versions);
    expect(page.versions["1.0.0+1"]).toBe(24);
    const failures = Object.fromEntries(Object.entries(api.failures).map(([code, f]) => [`${code} ${f.name}`, f.count]));
    expect(page.failures).toEqual(failures);
    expect(Object.keys(failures).length).toBeGreaterThan(0);
    expect(page.states).toEqual(api.states);
    expect(Object.values(page.states).reduce((a, b) => a + b, 0)).toBe(24);
    expect(page.devices.length).toBe(24);
    expect(page.devices.filter((d) => d.stage === "rolled-back").length).toBe(r.waves[0].stages["rolled-back"]);
    const png = await browser.screenshot();
    expect(png.length).toBeGreaterThan(10_000);
    // docs/dashboard.png is made by DASHBOARD_SCREENSHOT=docs/dashboard.png (a plain run leaves the tree as it is).
    const screenshot = process.env.DASHBOARD_SCREENSHOT ? resolve(repoRoot, process.env.DASHBOARD_SCREENSHOT) : join(work, "dashboard.png");
    writeFileSync(screenshot, png);
    console.log(`dashboard: ${page.status} (${page.why}); versions ${JSON.stringify(page.versions)}; failures ${JSON.stringify(page.failures)}; states ${JSON.stringify(page.states)}; screenshot ${screenshot}`);
    expect(existsSync(screenshot)).toBe(true);
  });
});
