/**
 * `xs-ota watch`: a read-only operator monitor. Connects to the broker with
 * the operator credential, subscribes to serve's operator topic, and shows a
 * table of the fleet (state, progress bars, last reason) that redraws.
 */
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { randomBytes } from "node:crypto";
import { NodeClock } from "../../hal/node/clock";
import { NodeNetwork } from "../../hal/node/socket";
import { Reason, reasonName } from "../../src/errors";
import { Backoff, seededRandom } from "../../src/protocol/backoff";
import { MqttLink } from "../../src/protocol/link";
import { OPERATOR_CLIENT_PREFIX, OPERATOR_TOPIC, OPERATOR_USERNAME, type OperatorEvent } from "../serve/server";
import { FleetTable, progressCell } from "../watch/table";
import { CliError, intOption, io, parse, readInput, usageError, type Command } from "./command";

const usage = `usage: xs-ota watch --releases DIR [options]
       xs-ota watch --server mqtts://HOST:PORT --ca CA.pem --token-file FILE [options]

Watch the fleet, read-only: xs-ota serve publishes every heartbeat, status
report and download's progress on the operator topic (${OPERATOR_TOPIC});
watch reads it with the operator credential and draws a table of every
device (version, state, a progress bar with bytes, last reason, last report)
that redraws as events arrive. On a terminal the table redraws in place;
otherwise (a pipe, a log) each event is one line and the table is printed
at the end. Devices cannot read the operator topic, and the operator
credential can read nothing else and publish nothing.

The credential: MQTT username ${OPERATOR_USERNAME}, a client id starting
${OPERATOR_CLIENT_PREFIX}, and the password in DIR/operator.token, which serve
writes (mode 0600) at its first start. With --broker (an existing broker),
give the broker an ACL that lets that user read ${OPERATOR_TOPIC} only.

  --releases DIR       serve's release folder: CA DIR/tls/ca.pem, token DIR/operator.token,
                       server mqtts://127.0.0.1:8883 unless given below
  --server URL         mqtts://host:port (or mqtt:// with --insecure-plaintext)
  --ca FILE            CA the broker's certificate chains to
  --token-file FILE    the operator password
  --duration S         stop after S seconds and print the table (default: until Ctrl-C)
  --lines              one line per event even on a terminal (no redrawing)
  --insecure-plaintext connect without TLS (lab use, as serve --insecure-plaintext)

example: xs-ota watch --releases rel`;

export const command: Command = {
  summary: "read-only operator monitor: the fleet's state, progress and last reason, live",
  usage,
  json: true,
  async run(argv) {
    const { values, positionals } = parse(argv, {
      releases: { type: "string" },
      server: { type: "string" },
      ca: { type: "string" },
      "token-file": { type: "string" },
      duration: { type: "string" },
      lines: { type: "boolean" },
      "insecure-plaintext": { type: "boolean" },
    });
    if (positionals.length) throw usageError(`unexpected argument "${positionals[0]}"`);
    const dir = values.releases === undefined ? undefined : resolve(values.releases);
    if (dir !== undefined && !existsSync(dir)) throw new CliError(`--releases ${values.releases}: no such directory`);
    const caPath = values.ca ?? (dir && !values["insecure-plaintext"] ? join(dir, "tls", "ca.pem") : undefined);
    const tokenPath = values["token-file"] ?? (dir ? join(dir, "operator.token") : undefined);
    if (!tokenPath) throw usageError("--token-file FILE (or --releases DIR) is required");
    const url = values.server ?? (dir ? "mqtts://127.0.0.1:8883" : undefined);
    if (!url) throw usageError("--server mqtts://host:port (or --releases DIR) is required");
    const m = /^(mqtts?):\/\/([A-Za-z0-9.-]+):(\d{1,5})$/.exec(url);
    if (!m || +m[3] < 1 || +m[3] > 65535) throw usageError(`--server must be mqtts://host:port, got "${url}"`);
    const useTls = m[1] === "mqtts";
    if (!useTls && !values["insecure-plaintext"]) throw usageError("--server mqtt:// (plaintext) needs --insecure-plaintext");
    if (useTls && !caPath) throw usageError("--ca CA.pem is required with mqtts://");
    const ca = caPath ? Buffer.from(readInput(caPath, "--ca")).toString("utf8") : undefined;
    const token = Buffer.from(readInput(tokenPath, "--token-file")).toString("utf8").trim();
    if (!token) throw new CliError(`--token-file ${tokenPath} is empty`);
    const durationS = values.duration === undefined ? undefined : intOption(values.duration, "duration");

    const table = new FleetTable();
    const redraw = process.stdout.isTTY === true && !values.lines && !io.json && !io.quiet;
    let dirty = false;
    const clock = new NodeClock();
    let failure: string | undefined;
    let connected = false;
    let finish: () => void = () => {};
    const done = new Promise<void>((r) => (finish = r));
    const link = new MqttLink(
      {
        net: new NodeNetwork(),
        clock,
        server: { host: m[2], port: +m[3], tls: useTls, ...(ca ? { ca } : {}) },
        clientId: `${OPERATOR_CLIENT_PREFIX}${randomBytes(4).toString("hex")}`,
        username: OPERATOR_USERNAME,
        password: new TextEncoder().encode(token),
        keepAliveSec: 30,
        maxPacket: 64 * 1024,
        backoff: new Backoff({ initialMs: 500, maxMs: 10_000, random: seededRandom(randomBytes(4).readUInt32LE(0)) }),
        subscriptions: [{ topic: OPERATOR_TOPIC, qos: 0 }],
      },
      {
        onUp: (refused) => {
          if (refused.length) {
            failure = `the broker refused the operator topic subscription (${refused.join(", ")}): the credential may read it only on a serve that publishes it`;
            finish();
            return;
          }
          connected = true;
          if (!redraw) io.say(`watching ${OPERATOR_TOPIC} on ${url} (read-only)`);
          dirty = true;
        },
        onDown: (reason, retry, detail) => {
          if (reason === Reason.MQTT_REFUSED) {
            failure = `${url} refused the operator credential (CONNACK ${detail ?? "?"}): check --token-file${dir ? ` (serve writes ${tokenPath})` : ""}`;
            finish();
          } else if (!connected) {
            failure = `cannot connect to ${url}: ${reasonName(reason)}${detail !== undefined ? ` (${detail})` : ""}; is serve running there?`;
            finish();
          } else if (!redraw) io.warn(`link down (${reasonName(reason)}), retrying in ${retry} ms`);
        },
        onMessage: (msg) => {
          if (msg.topic !== OPERATOR_TOPIC) return;
          let e: OperatorEvent;
          try {
            e = JSON.parse(Buffer.from(msg.payload).toString("utf8")) as OperatorEvent;
            if (typeof e.deviceId !== "string") return;
          } catch {
            return;
          }
          const r = table.apply(e);
          if (redraw) dirty = true;
          else if (!io.quiet) {
            const what = e.source === "report" ? `report ${e.event}` : e.source === "chunk" ? "chunk" : `heartbeat`;
            io.say(`${e.time} ${r.deviceId} ${r.version} ${r.state} ${progressCell(r)} ${what}${e.reason ? ` ${e.reasonName}` : ""}`.replace(/\s+/g, " "));
          }
        },
      },
    );
    const draw = () => {
      if (!dirty) return;
      dirty = false;
      process.stdout.write("\x1b[H\x1b[2J" + table.render().join("\n") + "\n");
    };
    const timer = redraw ? setInterval(draw, 250) : undefined;
    const stop = () => finish();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    const deadline = durationS === undefined ? undefined : setTimeout(stop, durationS * 1000);
    link.start();
    await done;
    if (deadline) clearTimeout(deadline);
    if (timer) clearInterval(timer);
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
    link.stop();
    clock.clearAll();
    if (failure) throw new CliError(failure);
    if (redraw) draw();
    else io.say(table.render().join("\n"));
    io.result({ events: table.events, devices: [...table.rows.values()] });
    return 0;
  },
};
