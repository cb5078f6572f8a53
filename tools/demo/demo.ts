/**
 * `npm start` / `xs-ota demo`: the whole product on one machine, with no
 * external service. It makes a signing key, signs a factory image and three
 * releases, starts `xs-ota serve` (embedded MQTT broker, throwaway CA, TLS),
 * and runs one virtual USR-N520 (targets/sim: the MCUboot model, the strict
 * mocks, the real agent) connected to it over real TLS sockets. Then:
 *
 *   1. a full update        1.0.0 (slot 0) → 1.1.0 (slot 1)   must commit
 *   2. a delta update       1.1.0 (slot 1) → 1.2.0 (slot 0)   must commit
 *   3. a bad release        1.3.0 (slot 1) whose firmware never reaches the
 *                           cloud: its trial must fail and be rolled back
 *
 * Every outcome is judged from what the server received (its report log),
 * and from the device's flash. Exit 0 only if all three ended as expected.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { VirtualClock } from "../../hal/mock/clock";
import { formatVersion } from "../../src/image/format";
import { stm32h743FlashMap } from "../../targets/sim/flashmap";
import { generateKeyPem, parsePrivateKeyPem } from "../keys/pem";
import { makePatch } from "../delta/index";
import { startServe } from "../serve/server";
import { initCa } from "../ca/ca";
import { buildImage, release } from "./firmware";
import { driveClock, FINAL_EVENTS, publishRelease, readReports, rigDevice } from "./rig";
import type { SimRelease } from "../../targets/sim/cloud";
import { toHex } from "../../src/util/bytes";

export interface DemoOptions {
  /** Virtual time per real time (the device's clock runs this much faster). */
  readonly speed: number;
  /** Real seconds each step may take. */
  readonly stepTimeoutS: number;
  /** Keep the working directory (key, releases, reports) instead of deleting it. */
  readonly keep: boolean;
  readonly out: (line: string) => void;
}

interface Step {
  readonly title: string;
  readonly release: SimRelease;
  readonly expect: "committed" | "rolled-back";
  readonly version: string;
}

const DEVICE = "usr-n520-demo";

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function runDemo(o: DemoOptions): Promise<boolean> {
  const say = o.out;
  const work = mkdtempSync(join(tmpdir(), "xs-ota-demo-"));
  const releasesDir = join(work, "releases");
  mkdirSync(releasesDir);
  const reportsPath = join(work, "reports.jsonl");
  const t0 = Date.now();
  const stamp = () => `[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s]`;

  say("xs-ota demo: a virtual USR-N520 updated by xs-ota serve over MQTT/TLS, all on this machine");
  say(`work directory: ${work}`);

  // Keys and images, as a release engineer makes them (xs-ota keygen / sign / diff / release).
  const { privatePem, publicPem } = generateKeyPem();
  writeFileSync(join(work, "release-key.pem"), privatePem);
  writeFileSync(join(work, "release-key.pub.pem"), publicPem);
  const key = parsePrivateKeyPem(privatePem);
  const map = stm32h743FlashMap;
  const size = 192 * 1024;
  const factory = buildImage(map, key, "1.0.0+1", 0, { confirm: true, size });
  const v110 = buildImage(map, key, "1.1.0+2", 1, { size, securityCounter: 2 });
  const v120 = buildImage(map, key, "1.2.0+3", 0, { size, securityCounter: 2 });
  const v130 = buildImage(map, key, "1.3.0+4", 1, { size, securityCounter: 3, behaviour: "no-cloud" });
  const now = Math.floor(Date.now() / 1000);
  const dates = { issuedAt: now - 60, expiresAt: now + 86400 };
  const diff = (a: Uint8Array, b: Uint8Array) => makePatch(a, b).bytes;
  const steps: Step[] = [
    { title: "full update 1.0.0 → 1.1.0", release: release(key, v110, { ...dates }), expect: "committed", version: "1.1.0+2" },
    { title: "delta update 1.1.0 → 1.2.0", release: release(key, v120, { ...dates, base: v110, diff }), expect: "committed", version: "1.2.0+3" },
    { title: "bad release 1.3.0 (never reaches the cloud)", release: release(key, v130, { ...dates }), expect: "rolled-back", version: "1.2.0+3" },
  ];

  // Device identity (mutual TLS): a fleet CA; the device gets its key and certificate through CSR -> ca sign below.
  const fleetCa = join(work, "fleet-ca");
  initCa(fleetCa, "xs-ota demo fleet CA", 30);
  const serve = await startServe({
    releasesDir,
    clientCa: join(fleetCa, "ca.pem"),
    host: "127.0.0.1",
    mqttPort: 0,
    httpsPort: 0,
    insecurePlaintext: false,
    heartbeatIntervalSec: 10,
    reportsPath,
    // The device's own lines tell each step; serve's reports of them arrive a little later, so only its offers and final reports are shown.
    log: (line) => {
      if (/^report .*: (offer-accepted|download-started|download-done|verified|installing|trial-started)\b/.test(line)) return;
      say(`${stamp()} server: ${line}`);
    },
  });
  const ca = readFileSync(serve.caPath!, "utf8");
  say(`${stamp()} server: MQTT over TLS on 127.0.0.1:${serve.mqttPort}, HTTPS on :${serve.httpsPort}, CA ${serve.caPath}`);

  // The device: the real agent on the simulated MCUboot device, over real TLS sockets.
  const clock = new VirtualClock();
  let pendingReboot: string | undefined;
  let currentPayload = 0;
  let currentImage = 0;
  const rig = rigDevice({
    deviceId: DEVICE,
    map,
    clock,
    key,
    factory,
    server: { host: "127.0.0.1", port: serve.mqttPort!, ca },
    fleetCa,
    log: (line) => {
      if (!/ -\S+-> |refused|failed|rebooting|stuck/.test(line)) return;
      const text = `${stamp()} device: ${line.replace(/^\[agent [^\]]+\] /, "")}`;
      // The agent logs "rebooting into …" inside the handler whose transition it logs after: print them in the order they happen.
      if (/rebooting/.test(line)) {
        pendingReboot = text;
        return;
      }
      // At "downloaded" every byte of the new image is in the inactive slot (its header unit held in RAM until the trial).
      if (/ -downloaded-> /.test(line) && currentPayload) {
        const n = currentImage.toLocaleString("en-US");
        say(`${stamp()} device: downloading ${bar(100)} 100% (${currentPayload.toLocaleString("en-US")} of ${currentPayload.toLocaleString("en-US")} bytes); installing ${bar(100)} ${n} of ${n} bytes of the new image in the inactive slot`);
      }
      say(text);
      if (pendingReboot) say(pendingReboot);
      pendingReboot = undefined;
    },
  });
  const device = rig.device;
  say(`${stamp()} device: factory image 1.0.0+1 programmed into slot 0; identity: a P-256 key made on the device, its CSR signed by the fleet CA (CN=${DEVICE}), which the broker requires; powering on`);

  const stopClock = driveClock(clock, o.speed);
  const results: { step: Step; ok: boolean; detail: string; seconds: number }[] = [];
  try {
    device.run(0);
    let lastProgress = -1;
    for (const step of steps) {
      say(`${stamp()} ── step: ${step.title}`);
      const started = Date.now();
      publishRelease(releasesDir, step.release);
      currentPayload = step.release.payload.length;
      currentImage = step.release.manifest.image.length;
      const id = toHex(step.release.releaseId);
      let outcome: { event: string; reason: number; reasonName: string } | undefined;
      while (!outcome && Date.now() - started < o.stepTimeoutS * 1000) {
        await sleep(100);
        outcome = readReports(reportsPath).find((r) => r.release === id && FINAL_EVENTS.includes(r.event));
        const s = rig.agent()?.status();
        if (s && s.state === "downloading" && (lastProgress < 0 || s.progress >= lastProgress + 10)) {
          lastProgress = s.progress;
          const total = step.release.payload.length;
          const bytes = Math.floor((total * s.progress) / 100);
          const inst = s.installed ? `; installing ${bar(Math.floor((100 * s.installed.bytes) / Math.max(1, s.installed.of)))} ${s.installed.bytes.toLocaleString("en-US")} of ${s.installed.of.toLocaleString("en-US")} bytes of the new image in the inactive slot` : "";
          say(`${stamp()} device: downloading ${bar(s.progress)} ${String(s.progress).padStart(3)}% (${bytes.toLocaleString("en-US")} of ${total.toLocaleString("en-US")} bytes)${inst}`);
        }
        if (s && s.state !== "downloading") lastProgress = -1;
      }
      // let the device settle (a rollback report comes from the old firmware after its reboot)
      await sleep(300);
      const running = device.lastBoot?.info ? formatVersion(device.lastBoot.info.header.version) : "none";
      const ok = outcome?.event === step.expect && running === step.version && !device.bricked;
      const detail = outcome
        ? `${outcome.event}${outcome.reason ? ` (${outcome.reasonName})` : ""}; running ${running} in slot ${device.runningSlot}`
        : `no outcome within ${o.stepTimeoutS} s; running ${running}`;
      results.push({ step, ok, detail, seconds: (Date.now() - started) / 1000 });
      say(`${stamp()} ${ok ? "ok" : "UNEXPECTED"}: ${step.title}: ${detail}`);
      if (!ok) break;
    }
  } finally {
    stopClock();
    await serve.close();
    if (!o.keep) rmSync(work, { recursive: true, force: true });
  }

  say("");
  say("summary");
  say("| step | expected | outcome | real time |");
  say("|---|---|---|---:|");
  for (const r of results) say(`| ${r.step.title} | ${r.step.expect} | ${r.ok ? "✔ " : "✘ "}${r.detail} | ${r.seconds.toFixed(1)} s |`);
  const all = results.length === steps.length && results.every((r) => r.ok);
  say(`protected security counter: ${device.counter.read()}; boots: ${device.boots.length}; ${all ? "all three ended as expected" : "NOT all steps ended as expected"}`);
  if (o.keep) say(`kept: ${work}`);
  return all;
}

/** A 20-cell progress bar. */
function bar(percent: number): string {
  const n = Math.max(0, Math.min(20, Math.round(percent / 5)));
  return `[${"#".repeat(n)}${"-".repeat(20 - n)}]`;
}
