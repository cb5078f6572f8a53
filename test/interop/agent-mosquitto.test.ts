/**
 * Interop: the real agent on a virtual device, over real TLS sockets, updated
 * through a real mosquitto broker by `xs-ota serve --broker` — a full update
 * and a delta update — with its heartbeats seen by `mosquitto_sub`.
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VirtualClock } from "../../hal/mock/clock";
import { formatVersion } from "../../src/image/format";
import { stm32h743FlashMap } from "../../targets/sim/flashmap";
import { makePatch } from "../../tools/delta/index";
import { buildImage, release, testKey } from "../../tools/demo/firmware";
import { driveClock, FINAL_EVENTS, publishRelease, readReports, rigDevice, type RigDevice } from "../../tools/demo/rig";
import { startServe, type ServeHandle } from "../../tools/serve/server";
import { HOST, Mosquitto, until } from "../lib/mosquitto";
import { toHex } from "../../src/util/bytes";

const broker = new Mosquitto();
let serve: ServeHandle;
let work: string;
let rig: RigDevice;
let stopClock = () => {};
const key = testKey();
const map = stm32h743FlashMap;
const size = 160 * 1024;
const factory = buildImage(map, key, "1.0.0+1", 0, { confirm: true, size });
const v110 = buildImage(map, key, "1.1.0+2", 1, { size });
const v120 = buildImage(map, key, "1.2.0+3", 0, { size });
const now = Math.floor(Date.now() / 1000);
const dates = { issuedAt: now - 60, expiresAt: now + 86400 };

beforeAll(async () => {
  await broker.start();
  work = mkdtempSync(join(tmpdir(), "xs-ota-agent-interop-"));
  mkdirSync(join(work, "releases"));
  serve = await startServe({
    releasesDir: join(work, "releases"),
    host: HOST,
    mqttPort: 0,
    httpsPort: 0,
    broker: `mqtts://${HOST}:${broker.port}`,
    ca: broker.tls.ca,
    insecurePlaintext: false,
    heartbeatIntervalSec: 10,
    reportsPath: join(work, "reports.jsonl"),
    log: () => {},
  });
  const clock = new VirtualClock();
  rig = rigDevice({ deviceId: "n520-interop", map, clock, key, factory, server: { host: HOST, port: broker.port, ca: broker.ca } });
  stopClock = driveClock(clock, 20);
  rig.device.run(0);
}, 60_000);

afterAll(async () => {
  stopClock();
  await serve?.close();
  await broker.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

async function updateTo(r: ReturnType<typeof release>, version: string): Promise<void> {
  publishRelease(join(work, "releases"), r);
  const id = toHex(r.releaseId);
  await until(`the outcome of ${version}`, () => readReports(join(work, "reports.jsonl")).some((x) => x.release === id && FINAL_EVENTS.includes(x.event)), 120_000);
  const outcome = readReports(join(work, "reports.jsonl")).find((x) => x.release === id && FINAL_EVENTS.includes(x.event))!;
  expect(outcome.event, JSON.stringify(outcome)).toBe("committed");
  await until("the device settles", () => rig.device.running, 10_000);
  expect(formatVersion(rig.device.lastBoot!.info!.header.version)).toBe(version);
}

describe("agent through mosquitto (TLS) and xs-ota serve --broker", () => {
  it("heartbeats are visible to mosquitto_sub", async () => {
    const sub = broker.subscribe("xs-ota/v1/n520-interop/hb");
    await until("two heartbeats on mosquitto_sub", () => sub.lines().length >= 2, 60_000);
    const [topic, json] = sub.lines()[0].split(" ");
    expect(topic).toBe("xs-ota/v1/n520-interop/hb");
    expect(JSON.parse(json)).toMatchObject({ hardwareId: "usr-n520", version: "1.0.0+1", slot: 0 });
  }, 90_000);

  it("full update 1.0.0 → 1.1.0", () => updateTo(release(key, v110, dates), "1.1.0+2"), 150_000);

  it("delta update 1.1.0 → 1.2.0", async () => {
    const r = release(key, v120, { ...dates, base: v110, diff: (a, b) => makePatch(a, b).bytes });
    expect(r.payload.length).toBeLessThan(size / 10);
    await updateTo(r, "1.2.0+3");
  }, 150_000);
});
