/**
 * `xs-ota sim`: virtual devices in real time, each with its AT console on a
 * local TCP port and, on request, a pseudo-terminal.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { SerialBridge } from "../../hal/node/serial-bridge";
import { openSerialPty, type SerialPty } from "../../hal/node/serial-pty";
import { serveSerialTcp, type SerialTcpServer } from "../../hal/node/serial-tcp";
import { CliError, intOption, parse, usageError, type Command } from "./command";
import { RealtimeFleet, type MapName } from "../sim/fleet";
import { simFactory, simFirmware } from "../sim/firmware";
import type { Settings } from "../../src/store/settings";

const usage = `usage: xs-ota sim [options]

Run virtual devices (the MCUboot model, the strict mocks, the firmware) in
real time. Each device's serial AT console is served on 127.0.0.1:<port+k>
(raw TCP: nc, telnet in raw mode, a terminal program's TCP mode) and, with
--console-pty, on a pseudo-terminal made by socat (minicom -D <path>).
The console starts in transparent mode, as on USR devices: send +++, wait
for "a", send "a" within 3 s, and the device answers "+ok".

options:
  --devices N          number of devices (1..256, default 1)
  --console-port P     TCP port of device 0's console (default 7000; 0 = any free port)
  --console-pty        also make a PTY per device; prints its path
  --pty-dir DIR        where the PTY links go (default <tmp>/xs-ota-sim)
  --map small|device   flash map: small (4 KiB sectors, fast) or device (STM32H743, 128 KiB sectors); default small
  --command-mode       start the consoles in command mode instead of transparent mode
  --duration S         stop after S seconds (default: run until interrupted)
`;

export const command: Command = {
  summary: "run virtual devices in real time with their AT consoles on TCP ports and PTYs",
  usage,
  async run(argv) {
    const { values, positionals } = parse(argv, {
      devices: { type: "string" },
      "console-port": { type: "string" },
      "console-pty": { type: "boolean" },
      "pty-dir": { type: "string" },
      map: { type: "string" },
      "command-mode": { type: "boolean" },
      duration: { type: "string" },
    });
    if (positionals.length > 0) throw usageError(`unexpected argument ${positionals[0]}`);
    const count = intOption(values.devices, "devices", 1);
    if (count < 1 || count > 256) throw usageError("--devices must be 1..256");
    const basePort = intOption(values["console-port"], "console-port", 7000);
    if (basePort < 0 || basePort + count - 1 > 65535) throw usageError("--console-port out of range");
    const map = (values.map ?? "small") as MapName;
    if (map !== "small" && map !== "device") throw usageError("--map must be small or device");
    const duration = values.duration === undefined ? undefined : intOption(values.duration, "duration");

    const fleet: RealtimeFleet = new RealtimeFleet({
      devices: count,
      map,
      firmware: simFirmware({
        factory: (device): Settings => simFactory(fleet.devices.indexOf(device)),
        console: { startMode: values["command-mode"] ? "command" : "data" },
      }),
    });
    const servers: SerialTcpServer[] = [];
    const ptys: SerialPty[] = [];
    const ptyDir = values["pty-dir"] ?? path.join(os.tmpdir(), "xs-ota-sim");
    const shutdown = async () => {
      fleet.stop();
      for (const p of ptys) p.close();
      await Promise.all(servers.map((s) => s.close()));
    };
    try {
      for (let k = 0; k < count; k++) {
        const bridge = new SerialBridge(fleet.devices[k].serial);
        const server = await serveSerialTcp(bridge, basePort === 0 ? 0 : basePort + k).catch((e: Error) => {
          throw new CliError(`device ${k}: cannot listen on 127.0.0.1:${basePort + k}: ${e.message}`);
        });
        servers.push(server);
        let line = `device ${k} (${simFactory(k).deviceId}): console tcp 127.0.0.1:${server.port}`;
        if (values["console-pty"]) {
          fs.mkdirSync(ptyDir, { recursive: true });
          const pty = await openSerialPty(bridge, path.join(ptyDir, `console-${k}`)).catch((e: Error) => {
            throw new CliError(`device ${k}: ${e.message}`);
          });
          ptys.push(pty);
          line += `, pty ${pty.device} (link ${pty.link})`;
        }
        process.stdout.write(line + "\n");
      }
    } catch (e) {
      await shutdown();
      throw e;
    }
    fleet.start();
    process.stdout.write(`${count} device(s) running in real time; Ctrl-C stops\n`);
    await new Promise<void>((resolve) => {
      const stop = () => resolve();
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
      if (duration !== undefined) setTimeout(stop, duration * 1000);
    });
    await shutdown();
    for (const f of fleet.failures) process.stderr.write(`device ${f.device} stopped: ${String((f.error as Error)?.stack ?? f.error)}\n`);
    return fleet.failures.length > 0 ? 1 : 0;
  },
};
