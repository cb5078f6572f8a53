/**
 * `xs-ota sim`: the fleet simulator (tools/sim/fleet.ts) — N virtual devices
 * running the console and the real agent over real TLS sockets on one
 * virtual clock, updated by `xs-ota serve` (embedded, or --broker mode), with
 * a seeded fault plan and a report; each device's AT console on a TCP port
 * and, on request, a pseudo-terminal.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { SerialBridge } from "../../hal/node/serial-bridge";
import { openSerialPty, type SerialPty } from "../../hal/node/serial-pty";
import { serveSerialTcp, type SerialTcpServer } from "../../hal/node/serial-tcp";
import { readPublicKey } from "../keys/pem";
import { parseFaultPlan } from "../sim/faults";
import { flashMapOf, SimFleet, type CloudSpec, type MapName, type ReleaseSpec } from "../sim/fleet";
import { bootMagic } from "../../src/image/trailer";
import { DEFAULT_LINK_RATE } from "../../src/update/codec";
import { formatReport } from "../sim/report";
import { CliError, describeError, intOption, io, parse, usageError, type Command } from "./command";

const usage = `usage: xs-ota sim [options]

Run N virtual devices (the MCUboot model, the strict mocks, the firmware: AT
console + update agent) over real TLS sockets on one virtual clock, updated by
xs-ota serve in this process. The clock is a discrete-event scheduler: it runs
the next timer only when nothing is owed on any socket (tools/sim/ledger.ts),
so the same seed gives the same outcome per device on a fast or a busy
machine; --speed only caps virtual time per real time.
Prints a summary table (and writes --report as JSON): completion time, bytes,
retries, every rollback and refusal, the outcome of every device, and the
number of bricked devices.
Exit status 1 when any device is bricked, the simulator hit a bug, a release
was given and some device does not run it at the end, or (with --until-done)
not every device finished by --timeout.

devices:
  --devices N            number of devices, ids sim-0000… (1..1000, default 1)
  --map small|device     flash map: small (8 KiB sectors, 64 KiB slots; default) or device (STM32H743)
  --speed X              at most X virtual seconds per real second (default: no cap; 1 when consoles are served)
  --seed S               seed for the fault plan, the devices' jitter and power-cut tearing (default 1)

releases (default: none — a factory image only; the devices heartbeat and idle):
  --demo-releases        sign factory 1.0.0+1 and release 1.1.0+2 with a generated key the devices trust
  --delta                with --demo-releases: also publish a delta from the factory image (serve prefers it)
  --image-kib K          demo image body size, KiB (default 16)
  --https                with --demo-releases: the release also carries a URL on serve's HTTPS Range server
                         and the devices prefer it (big images through Range requests)
  --releases DIR         serve the releases in DIR instead; needs --trust and --factory
  --trust PUB.pem        a public key the devices trust (repeatable)
  --factory IMAGE        the signed, confirmed image programmed into slot 0 of every device
  --hardware ID          the devices' hardware id (default usr-n520)

cloud (default: embedded serve, TLS with a throwaway CA, on free loopback ports):
  --broker URL           mqtts://host:port: serve runs in --broker mode against it; devices connect to it
  --ca CA.pem            the CA the broker's certificate chains to (with --broker)
  --no-serve             with --broker: start no serve here (another one answers, or none)
  --max-in-flight K      serve --max-in-flight: at most K devices in an update at once (default 0 = no bound)
  --heartbeat-interval S heartbeat interval serve tells the devices, virtual seconds (default 60)
  --link-rate B          serve --link-rate: the download rate (bytes/s, default 20000) serve assumes when it
                         chooses among deltas for one base by the devices' announced decode cost

faults:
  --faults PLAN          e.g. powercut=0.2,linkdrop=0.2: the share of devices (drawn with --seed) hit by a
                         power cut at a random mutating flash operation of their update (clean or torn)
                         and by 1..3 link drops at random received bytes during it
  --cut-window N         cuts land at mutating flash operation 1..N after the download starts (default 24;
                         a full update of the default 16 KiB image on the small map takes 27: see
                         updateFlashOps in the report)

run and report:
  --until-done           stop when every device committed or reported a final failure
  --timeout S            stop after S real seconds (with --until-done: fail if not done)
  --report OUT.json      write the report as JSON
  --all-rows             list every device in the summary (default: those not simply committed)
  --verbose              print serve's log
  --keep                 keep the work directory (keys, releases, reports)
  --mtls                 mutual TLS: a fleet CA in the work directory, serve requires device
                         certificates from it, each device provisioned through its own CSR and ca sign
  --progress S           a progress line every S real seconds (default 5; 0 = none): devices per
                         state, download progress, bytes received, new-image bytes written
  --json                 the report as one JSON object on stdout; the text goes to stderr
  --quiet                print only the end's warnings (and, with --json, the report)

consoles (as on USR devices: send +++, wait for "a", send "a" within 3 s, the device answers "+ok"):
  --console-port P       serve device k's AT console on 127.0.0.1:P+k (0 = any free ports)
  --console-pty          also make a PTY per device (socat); prints its path
  --pty-dir DIR          where the PTY links go (default <tmp>/xs-ota-sim)
  --command-mode         start the consoles in command mode instead of transparent mode
  --duration S           the same as --timeout S

examples:
  xs-ota sim --devices 200 --demo-releases --max-in-flight 25 --faults powercut=0.2,linkdrop=0.2 \\
             --speed 50 --until-done --timeout 600 --report fleet.json
  xs-ota sim --devices 1 --console-port 7000 --console-pty
`;

export const command: Command = {
  summary: "fleet simulator: N virtual devices updated by xs-ota serve, with faults and a report; AT consoles on TCP/PTY",
  usage,
  json: true,
  async run(argv) {
    const { values, positionals } = parse(argv, {
      devices: { type: "string" },
      map: { type: "string" },
      speed: { type: "string" },
      seed: { type: "string" },
      "demo-releases": { type: "boolean" },
      delta: { type: "boolean" },
      "image-kib": { type: "string" },
      https: { type: "boolean" },
      releases: { type: "string" },
      trust: { type: "string", multiple: true },
      factory: { type: "string" },
      hardware: { type: "string" },
      broker: { type: "string" },
      ca: { type: "string" },
      "no-serve": { type: "boolean" },
      "max-in-flight": { type: "string" },
      "heartbeat-interval": { type: "string" },
      "link-rate": { type: "string" },
      faults: { type: "string" },
      "cut-window": { type: "string" },
      "until-done": { type: "boolean" },
      timeout: { type: "string" },
      duration: { type: "string" },
      report: { type: "string" },
      "all-rows": { type: "boolean" },
      verbose: { type: "boolean" },
      keep: { type: "boolean" },
      mtls: { type: "boolean" },
      progress: { type: "string" },
      "console-port": { type: "string" },
      "console-pty": { type: "boolean" },
      "pty-dir": { type: "string" },
      "command-mode": { type: "boolean" },
    });
    if (positionals.length > 0) throw usageError(`unexpected argument ${positionals[0]}`);
    const count = intOption(values.devices, "devices", 1);
    if (count < 1 || count > 1000) throw usageError("--devices must be 1..1000");
    const map = (values.map ?? "small") as MapName;
    if (map !== "small" && map !== "device") throw usageError("--map must be small or device");
    const consoles = values["console-port"] !== undefined || values["console-pty"] === true;
    const basePort = values["console-port"] === undefined ? undefined : intOption(values["console-port"], "console-port");
    if (basePort !== undefined && (basePort < 0 || basePort + count - 1 > 65535)) throw usageError("--console-port out of range");
    const speed = values.speed === undefined ? (consoles ? 1 : undefined) : Number(values.speed);
    if (speed !== undefined && !(speed > 0 && speed <= 100_000)) throw usageError("--speed must be a number > 0 and <= 100000");
    const seed = intOption(values.seed, "seed", 1);
    const maxInFlight = intOption(values["max-in-flight"], "max-in-flight", 0);
    const heartbeat = intOption(values["heartbeat-interval"], "heartbeat-interval", 60);
    if (heartbeat < 10 || heartbeat > 86400) throw usageError("--heartbeat-interval must be 10..86400 seconds");
    const linkRate = intOption(values["link-rate"], "link-rate", DEFAULT_LINK_RATE);
    if (linkRate < 1 || linkRate > 1_000_000_000) throw usageError("--link-rate must be 1..1000000000 bytes per second");
    const cutWindow = intOption(values["cut-window"], "cut-window", 24);
    if (cutWindow < 1 || cutWindow > 100_000) throw usageError("--cut-window must be 1..100000");
    const timeoutRaw = values.timeout ?? values.duration;
    const timeoutS = timeoutRaw === undefined ? undefined : intOption(timeoutRaw, "timeout");
    let faults;
    try {
      faults = parseFaultPlan(values.faults ?? "");
    } catch (e) {
      throw usageError((e as Error).message);
    }

    let releases: ReleaseSpec = { kind: "none" };
    if (values["demo-releases"] && values.releases) throw usageError("--demo-releases and --releases exclude each other");
    if (values.delta && !values["demo-releases"]) throw usageError("--delta goes with --demo-releases");
    if (values.https && !values["demo-releases"]) throw usageError("--https goes with --demo-releases");
    if (values["demo-releases"]) {
      const kib = intOption(values["image-kib"], "image-kib", 16);
      if (kib < 1 || kib > 700) throw usageError("--image-kib must be 1..700");
      releases = { kind: "demo", delta: values.delta === true, imageBytes: kib * 1024, https: values.https === true };
    } else if (values.releases) {
      if (!values.trust?.length || !values.factory) throw usageError("--releases DIR needs --trust PUB.pem and --factory IMAGE");
      try {
        releases = { kind: "dir", dir: path.resolve(values.releases), trust: values.trust.map((p) => readPublicKey(p)), factory: new Uint8Array(fs.readFileSync(values.factory)) };
      } catch (e) {
        throw new CliError(describeError(e));
      }
      checkFactory(values.factory, releases.factory, map);
    }
    let cloud: CloudSpec = { mode: "embedded" };
    if (values.broker !== undefined) {
      if (!values.ca) throw usageError("--broker needs --ca CA.pem (the CA its certificate chains to)");
      cloud = { mode: values["no-serve"] ? "none" : "broker", url: values.broker, caPath: path.resolve(values.ca) };
    } else if (values["no-serve"]) throw usageError("--no-serve goes with --broker");
    if (values["until-done"] && cloud.mode === "none") throw usageError("--until-done needs serve's reports: drop --no-serve");
    if (values["until-done"] && releases.kind === "none") throw usageError("--until-done needs releases (--demo-releases or --releases)");

    let fleet: SimFleet;
    try {
      fleet = await SimFleet.create({
        devices: count,
        map,
        seed,
        speed,
        cloud,
        releases,
        heartbeatIntervalSec: heartbeat,
        maxInFlight,
        linkRate,
        faults,
        cutWindow,
        hardwareId: values.hardware,
        console: { startMode: values["command-mode"] ? "command" : "data" },
        serveLog: values.verbose ? (line) => io.say(`serve: ${line}`) : undefined,
        keep: values.keep,
        mutualTls: values.mtls === true,
      });
    } catch (e) {
      const why = describeError(e);
      const hint = /does not fit|exceeds the slot/.test(why) ? ` (the ${map} map's slots are ${map === "small" ? "64 KiB; --map device has larger ones" : "those of the STM32H743 map"})` : "";
      throw new CliError(`cannot start the fleet: ${why}${hint}`);
    }

    const servers: SerialTcpServer[] = [];
    const ptys: SerialPty[] = [];
    const ptyDir = values["pty-dir"] ?? path.join(os.tmpdir(), "xs-ota-sim");
    const shutdown = async () => {
      for (const p of ptys) p.close();
      await Promise.all(servers.map((s) => s.close()));
      await fleet.close();
    };
    try {
      if (consoles) {
        for (let k = 0; k < count; k++) {
          const bridge = new SerialBridge(fleet.devices[k].serial);
          let line = `device ${k} (${fleet.tracked[k].id}): console`;
          if (basePort !== undefined) {
            const server = await serveSerialTcp(bridge, basePort === 0 ? 0 : basePort + k).catch((e: Error) => {
              throw new CliError(`device ${k}: cannot listen on 127.0.0.1:${basePort + k}: ${e.message}`);
            });
            servers.push(server);
            line += ` tcp 127.0.0.1:${server.port}`;
          }
          if (values["console-pty"]) {
            fs.mkdirSync(ptyDir, { recursive: true });
            const pty = await openSerialPty(bridge, path.join(ptyDir, `console-${k}`)).catch((e: Error) => {
              throw new CliError(`device ${k}: ${e.message}`);
            });
            ptys.push(pty);
            line += `${basePort !== undefined ? "," : ""} pty ${pty.device} (link ${pty.link})`;
          }
          io.say(line);
        }
      }
    } catch (e) {
      await shutdown();
      throw e;
    }

    const s = fleet.server;
    io.say(`devices connect to mqtts://${s.host}:${s.port}${fleet.serve ? (cloud.mode === "embedded" ? " (embedded serve)" : " (serve --broker)") : " (no serve here)"}; release ${fleet.target ? `${fleet.target.version} (${fleet.target.kind}, payload ${fleet.target.payloadBytes.toLocaleString("en-US")} B)` : "none"}`);
    fleet.start();
    io.say(`${count} device(s) running on one virtual clock (${speed === undefined ? "no pacing cap" : `at most ×${speed}`}); ${values["until-done"] ? "until every device is done" : "Ctrl-C stops"}`);
    const progressS = values.progress === undefined ? 5 : intOption(values.progress, "progress");
    let lastProgress = performance.now();
    fleet.onTick(() => {
      if (progressS === 0 || performance.now() - lastProgress < progressS * 1000) return;
      lastProgress = performance.now();
      io.say(progressLine(fleet, count));
    });
    const why = await fleet.run({
      untilDone: values["until-done"] === true,
      timeoutS,
      stop: new Promise<void>((resolve) => {
        process.once("SIGINT", () => resolve());
        process.once("SIGTERM", () => resolve());
      }),
    });
    const report = fleet.report();
    await shutdown();
    io.say(`\n${formatReport(report, { allRows: values["all-rows"] })}`);
    if (values.report) fs.writeFileSync(values.report, JSON.stringify(report, null, 2) + "\n");
    if (values.keep) io.say(`kept: ${fleet.work}`);
    io.result(report);
    const offTarget = report.target !== null && report.notOnTarget.length > 0;
    const failed = report.bricked > 0 || report.simulatorErrors.length > 0 || offTarget || (values["until-done"] === true && why !== "done");
    if (report.bricked > 0) process.stderr.write(`${report.bricked} device(s) BRICKED\n`);
    if (offTarget) process.stderr.write(`${report.notOnTarget.length} device(s) did not end on the target ${report.target!.version} (rollbacks ${report.rollbacks.total}, refusals ${Object.values(report.refusals).reduce((a, b) => a + b, 0)})\n`);
    if (values["until-done"] && why !== "done") process.stderr.write(`not every device finished (${why}): ${report.completion.done}/${count} done\n`);
    return failed ? 1 : 0;
  },
};

/** One progress line: devices per agent state, the download's progress, bytes received so far, new-image bytes written by the devices downloading now. */
export function progressLine(fleet: SimFleet, count: number): string {
  const r = fleet.report();
  const states = new Map<string, number>();
  let percent = 0;
  let downloading = 0;
  let installed = 0;
  for (const t of fleet.tracked) {
    const st = t.agent && t.device.running ? t.agent.state : t.device.bricked ? "bricked" : "off";
    states.set(st, (states.get(st) ?? 0) + 1);
    if (st === "downloading" && t.agent) {
      downloading++;
      const s = t.agent.status();
      percent += s.progress;
      installed += s.installed?.bytes ?? 0;
    }
  }
  const payload = fleet.target?.payloadBytes;
  const order = ["downloading", "verifying", "installing", "staged", "trial", "committed", "idle", "checking", "rolled-back", "failed", "boot", "off", "bricked"];
  const shown = [...states].sort((a, b) => order.indexOf(a[0]) - order.indexOf(b[0])).map(([k, v]) => `${k} ${v}${k === "downloading" && downloading ? ` (${Math.round(percent / downloading)}%)` : ""}`);
  return (
    `[${r.completion.realSeconds.toFixed(0)} s real, ${r.completion.virtualSeconds.toFixed(0)} s virtual] ${shown.join(", ")}; ` +
    `committed ${r.outcomes.committed}, done ${r.completion.done}/${count}; received ${r.bytes.devicesReceived.toLocaleString("en-US")} B` +
    (downloading ? `, installing ${installed.toLocaleString("en-US")} B of new image in the downloading devices' slots` : "") +
    (payload ? ` (payload ${payload.toLocaleString("en-US")} B a device)` : "") +
    `, in flight ${r.serve?.inFlight ?? "?"}`
  );
}

/**
 * A factory image MCUboot (direct-xip with revert) keeps: the whole slot, with
 * the trailer's boot magic where this map's write alignment puts it. Without
 * it boot_select_or_erase erases the slot and every device is bricked.
 * @throws CliError naming the fix.
 */
function checkFactory(file: string, image: Uint8Array, mapName: MapName): void {
  const map = flashMapOf(mapName);
  const slot = map.slots[0].size;
  const align = map.geometry.writeAlign;
  const fix = `sign it with --pad --confirm --slot-size 0x${slot.toString(16)} --align ${align} (the ${mapName} map's slot and write size)`;
  if (image.length > slot) throw new CliError(`--factory ${file}: ${image.length} bytes do not fit slot 0 (${slot} bytes)`);
  const tail = image.subarray(image.length - 16);
  const magic = bootMagic(Math.max(8, align));
  if (image.length !== slot || !magic.every((b, i) => tail[i] === b)) {
    throw new CliError(`--factory ${file}: no boot magic at the end of slot 0 for this map, so MCUboot would erase it at the first boot (every device bricked); ${fix}`);
  }
}
