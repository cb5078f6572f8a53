/** `xs-ota serve`: the update server (embedded MQTT broker or an existing one, plus HTTPS Range). */
import { resolve, join } from "node:path";
import { existsSync, statSync } from "node:fs";
import { createKeyring, type Keyring } from "../../src/crypto/keyring";
import { softwareDigest } from "../../src/crypto/sha256";
import { KeyError, readPublicKey, readSigningKey } from "../keys/pem";
import type { SigningKey } from "../keys/signer";
import { formatInventory, inventory } from "../serve/inventory";
import { startServe } from "../serve/server";
import { DEFAULT_LINK_RATE } from "../serve/offers";
import { CliError, intOption, io, parse, readInput, usageError, type Command } from "./command";

const usage = `usage: xs-ota serve --releases DIR [options]

Serve the signed releases in DIR (the *.manifest envelopes written by
xs-ota release, each payload next to it) to devices: answer heartbeats with
the heartbeat interval, trusted time and, when a newer release fits the
device, a signed offer; answer chunk requests over MQTT and Range requests
over HTTPS at /streams/<stream>; log status reports. Ctrl-C prints a summary.

Revocation: the *.revocation records in DIR (written by xs-ota revoke; the
greatest sequence per hardware id wins) are sent to every device whose
heartbeat holds an older one (or none); no release a record revokes is ever
offered, and a device reporting its running image revoked (state "revoked")
is offered the newest allowed release as a replacement, older ones included.

Key sets: the *.keyset files in DIR (written by xs-ota keyset make; the
greatest epoch.sequence wins) are sent to every device whose heartbeat holds
an older one (or none), before any revocation record or offer; a release
signed by a key the newest key set retires is never offered.

TLS is on by default: unless --tls-cert/--tls-key are given, a throwaway CA
and a server certificate for 127.0.0.1 and localhost are written to DIR/tls/
(ca.pem, server.pem, server-key.pem) and reused on the next start; devices
and xs-ota watch trust DIR/tls/ca.pem. Operators watch the fleet read-only
with xs-ota watch --releases DIR (the operator credential is DIR/operator.token,
written at the first start, mode 0600).

At start serve lists every release and revocation record it loaded and
every file it skipped or will fail on (a manifest that does not decode or,
with --trust, does not verify; a payload missing or not the one its manifest
names), then "ready". A port in use, or any other start-up failure, is one
line and exit 1.

  --releases DIR           release directory (required)
  --trust PUB.pem          serve only releases signed by this key (repeatable); without it
                           signatures are left to the devices
  --time-key KEY.pem       a key of the time role (xs-ota keyset): every heartbeat ack carries
                           serve's time signed with it; devices decide expiry by signed time only
  --quiet                  print only warnings and errors
  --mqtt-port N            embedded broker port (default 8883; 0 = any free port)
  --https-port N           HTTPS Range server port (default 8443; 0 = any free port)
  --host ADDR              address to listen on (default 0.0.0.0)
  --tls-cert FILE          server certificate (PEM) instead of the throwaway one
  --tls-key FILE           its private key (PEM)
  --ca FILE                CA to announce to devices; with --broker, the CA the broker's certificate must chain to
  --client-ca FILE         the fleet CA (xs-ota ca init): the embedded broker requires each device's certificate
                           from it and binds the MQTT client id to the certificate's CN (mutual TLS)
  --broker-cert FILE       with --broker: serve's own client certificate (PEM), for a broker that requires one
  --broker-key FILE        its P-256 private key (PEM)
  --broker URL             use an existing broker (mqtts://host:port) instead of the embedded one;
                           serve joins the shared subscription group xs-ota-serve
  --insecure-plaintext     listen (or connect to --broker mqtt://) WITHOUT TLS; for lab use only
  --heartbeat-interval S   heartbeat interval told to devices, seconds (default 60)
  --reports FILE           JSON-lines log of device status reports (default DIR/reports.jsonl)
  --max-in-flight K        at most K devices in an update at once (default 0 = no bound): a device
                           holds a place from its offer (or offer-accepted / download-started report)
                           until a final report (committed, rolled-back, failed, aborted,
                           offer-refused) or --in-flight-timeout of silence; others get no offer meanwhile.
                           With --broker, K is the fleet's over every serve instance (shared records)
  --in-flight-timeout S    seconds of silence after which an updating device loses its place (default 600)
  --link-rate B            bytes per second serve assumes a device downloads at (default 20000), to
                           choose among deltas for the same base: the one with the least estimated
                           install time, payload / B + image length × the device's announced
                           instructions per byte of its codec / (its MHz × 10^6); a device that
                           announces no codecs (an older agent) gets stored/deflate/range only

Rollouts: xs-ota rollout start --plan PLAN.json (see xs-ota rollout --help)
gives a release waves (a canary first), a soak time and a failure budget per
wave, a target and a start window; a wave whose failures exceed its budget
halts the rollout and nothing more of that release is offered. Plans and
their progress are shared state: retained messages on the broker with
--broker (every instance reads them; a restart resumes), DIR/rollout-state.json
with the embedded broker. With --trust, a plan must be signed by one of
those keys. The operator dashboard is https://HOST:HTTPS-PORT/dashboard
(open it once with ?token=<DIR/operator.token>); its JSON API is /api/v1/fleet.

A release a device reported a final outcome for is not offered to it again,
except after a retryable reason (ROLLED_BACK, DOWNLOAD_STALLED,
DOWNLOAD_DEADLINE, ABORTED, SOCKET_CLOSED: the device would accept it again).
This is kept in memory and rebuilt from the reports log at start.

example: xs-ota serve --releases rel --mqtt-port 8883 --https-port 8443`;

export const command: Command = {
  summary: "update server: MQTT broker (TLS), offers, chunk and HTTPS Range downloads, reports",
  usage,
  async run(argv) {
    const { values } = parse(
      argv,
      {
        releases: { type: "string" },
        trust: { type: "string", multiple: true },
        "time-key": { type: "string" },
        "mqtt-port": { type: "string" },
        "https-port": { type: "string" },
        host: { type: "string" },
        "tls-cert": { type: "string" },
        "tls-key": { type: "string" },
        ca: { type: "string" },
        "client-ca": { type: "string" },
        "broker-cert": { type: "string" },
        "broker-key": { type: "string" },
        broker: { type: "string" },
        "insecure-plaintext": { type: "boolean" },
        "heartbeat-interval": { type: "string" },
        reports: { type: "string" },
        "max-in-flight": { type: "string" },
        "in-flight-timeout": { type: "string" },
        "link-rate": { type: "string" },
      },
      false,
    );
    if (!values.releases) throw usageError("--releases DIR is required");
    const dir = resolve(values.releases);
    if (!existsSync(dir)) throw new CliError(`--releases ${values.releases}: no such directory`);
    if (!statSync(dir).isDirectory()) throw new CliError(`--releases ${values.releases} is not a directory`);
    let keyring: Keyring | undefined;
    if (values.trust?.length) {
      try {
        keyring = createKeyring(values.trust.map((k) => (readInput(k, "--trust"), readPublicKey(k))), softwareDigest);
      } catch (e) {
        if (e instanceof KeyError) throw new CliError(`--trust ${e.message}`);
        throw e;
      }
    }
    let timeKey: SigningKey | undefined;
    if (values["time-key"] !== undefined) {
      readInput(values["time-key"], "--time-key");
      try {
        timeKey = readSigningKey(values["time-key"]);
      } catch (e) {
        if (e instanceof KeyError) throw new CliError(`--time-key ${e.message}`);
        throw e;
      }
    }
    const mqttPort = intOption(values["mqtt-port"], "mqtt-port", 8883);
    const httpsPort = intOption(values["https-port"], "https-port", 8443);
    for (const [n, p] of [["mqtt-port", mqttPort], ["https-port", httpsPort]] as const) if (p < 0 || p > 65535) throw usageError(`--${n} must be 0..65535`);
    const interval = intOption(values["heartbeat-interval"], "heartbeat-interval", 60);
    if (interval < 10 || interval > 86400) throw usageError("--heartbeat-interval must be 10..86400 seconds");
    const maxInFlight = intOption(values["max-in-flight"], "max-in-flight", 0);
    if (maxInFlight > 1_000_000) throw usageError("--max-in-flight must be 0..1000000");
    const inFlightTimeout = intOption(values["in-flight-timeout"], "in-flight-timeout", 600);
    if (inFlightTimeout < 1 || inFlightTimeout > 7 * 86400) throw usageError("--in-flight-timeout must be 1..604800 seconds");
    const linkRate = intOption(values["link-rate"], "link-rate", DEFAULT_LINK_RATE);
    if (linkRate < 1 || linkRate > 1_000_000_000) throw usageError("--link-rate must be 1..1000000000 bytes per second");
    if (values.broker !== undefined && !/^mqtts?:\/\/[A-Za-z0-9.-]+:\d{1,5}$/.test(values.broker)) throw usageError(`--broker must be mqtts://host:port, got "${values.broker}"`);
    if (values.broker?.startsWith("mqtt://") && !values["insecure-plaintext"]) throw usageError("--broker mqtt:// (plaintext) needs --insecure-plaintext");
    if ((values["broker-cert"] === undefined) !== (values["broker-key"] === undefined)) throw usageError("--broker-cert and --broker-key go together");
    if (values["broker-cert"] !== undefined && values.broker === undefined) throw usageError("--broker-cert goes with --broker");
    for (const f of ["tls-cert", "tls-key", "ca", "client-ca", "broker-cert", "broker-key"] as const) if (values[f] !== undefined) readInput(values[f]!, `--${f}`);
    if (values["tls-cert"] !== undefined && values["tls-key"] === undefined) throw usageError("--tls-cert needs --tls-key");
    if (values["tls-key"] !== undefined && values["tls-cert"] === undefined) throw usageError("--tls-key needs --tls-cert");
    const inv = inventory(dir, keyring);
    for (const line of formatInventory(values.releases, inv, keyring !== undefined)) (line.startsWith("WARNING") ? io.warn(line) : io.say(line));
    const handle = await startServe({
      releasesDir: dir,
      keyring,
      host: values.host ?? "0.0.0.0",
      mqttPort,
      httpsPort,
      tlsCert: values["tls-cert"],
      tlsKey: values["tls-key"],
      ca: values.ca,
      clientCa: values["client-ca"],
      brokerCert: values["broker-cert"],
      brokerKey: values["broker-key"],
      broker: values.broker,
      insecurePlaintext: values["insecure-plaintext"] === true,
      heartbeatIntervalSec: interval,
      reportsPath: values.reports ?? join(dir, "reports.jsonl"),
      maxInFlight,
      inFlightTimeoutSec: inFlightTimeout,
      linkRate,
      planKeys: values.trust?.map((k) => readPublicKey(k)) ?? [],
      ...(timeKey ? { timeKey } : {}),
      log: (line) => (/^(WARNING|skipping)/.test(line) ? io.warn(line) : io.say(line)),
    });
    io.say("ready");
    await new Promise<void>((done) => {
      const stop = () => {
        process.off("SIGINT", stop);
        process.off("SIGTERM", stop);
        io.say(`\n${handle.summary()}`);
        void handle.close().then(done);
      };
      process.on("SIGINT", stop);
      process.on("SIGTERM", stop);
    });
    return 0;
  },
};
