/**
 * The AT console's portable suites: the command table row by row (exact reply
 * bytes), the lock, echo and masking, `+++` timing on the virtual clock, and
 * a seeded random-input run. Registered with vitest by test/unit/at.test.ts
 * and run inside XS by test/xs/at.test.ts (this file is the XS entry).
 */
import { p256 } from "../../../src/crypto/p256";
import { VirtualClock } from "../../../hal/mock/clock";
import { NorFlash } from "../../../hal/mock/flash";
import { Prng } from "../../../hal/mock/prng";
import { PowerRail } from "../../../hal/mock/rail";
import { SerialPipe } from "../../../hal/mock/serial";
import { Reason } from "../../../src/errors";
import { COMMANDS, type UpdateControl } from "../../../src/at/commands";
import { Console } from "../../../src/at/console";
import { AuditLog } from "../../../src/store/audit";
import { keyId } from "../../../src/store/keyid";
import { openStorage } from "../../../src/store/layout";
import { DeviceIdentity } from "../../../src/store/identity";
import { TestOnlySeededRandom } from "../../../hal/mock/random";
import { defaultSettings, encodeSettings, hashPassword, SettingsManager } from "../../../src/store/settings";
import { toHex } from "../../../src/util/bytes";
import { pemLines } from "../../../src/util/base64";
import { assert, runSuites, suite, type Suite } from "../../lib/spec";
import { serve, task } from "../runtime";

const KiB = 1024;

/** A fake agent: its answers are set by the test. */
export class FakeUpdate implements UpdateControl {
  current = { state: "IDLE", progress: 0, lastReason: 0 };
  checkResult: number = Reason.OK;
  abortResult: number = Reason.OK;
  checks = 0;
  aborts = 0;
  state() {
    return this.current;
  }
  checkNow(): number {
    this.checks++;
    return this.checkResult;
  }
  abort(): number {
    this.aborts++;
    return this.abortResult;
  }
  bounds(): readonly (readonly [string, number])[] {
    return [
      ["watchdog", 8000],
      ["download", 90000],
    ];
  }
}

export interface Rig {
  clock: VirtualClock;
  rail: PowerRail;
  chip: NorFlash;
  serial: SerialPipe;
  settings: SettingsManager;
  audit: AuditLog;
  update: FakeUpdate;
  console: Console;
  reboots: number;
  data: number[];
  /** Send a line with CR, let 1 ms pass, return what the device wrote. */
  at(line: string): string;
  /** Send bytes, let `ms` pass, return what the device wrote. */
  type(bytes: string, ms?: number): string;
}

export const FACTORY = () => defaultSettings("sim-0001");

/** A console on the simulator's small storage (8 x 4 KiB), echo off, in command mode unless `mode` says. */
export function makeRig(options: { mode?: "data" | "command"; chip?: NorFlash; echo?: boolean } = {}): Rig {
  const clock = new VirtualClock(1_000_000);
  const chip = options.chip ?? new NorFlash({ size: 64 * KiB, blockLength: 8 * KiB, writeAlign: 32 }, new PowerRail({ seed: 5 }));
  const serial = new SerialPipe(clock);
  const storage = openStorage(chip);
  const settings = new SettingsManager(storage.settings, FACTORY());
  const audit = new AuditLog(storage.audit);
  const update = new FakeUpdate();
  const rig = {} as Rig;
  rig.data = [];
  rig.reboots = 0;
  const console = new Console(
    {
      serial,
      clock,
      reboot: () => rig.reboots++,
      settings,
      audit,
      update,
      firmware: { version: "1.2.3+4", build: "test" },
      identity: new DeviceIdentity(storage.identity, new TestOnlySeededRandom(7)),
    },
    { startMode: options.mode ?? "command", onData: (b) => rig.data.push(b) },
  );
  console.echo = options.echo ?? false;
  Object.assign(rig, {
    clock,
    rail: chip.rail,
    chip,
    serial,
    settings,
    audit,
    update,
    console,
    at(line: string): string {
      serial.send(line + "\r");
      clock.advance(1);
      return serial.drainText();
    },
    type(bytes: string, ms = 1): string {
      serial.send(bytes);
      clock.advance(ms);
      return serial.drainText();
    },
  });
  return rig;
}

/** A fixed test key (secret key 0x11…11). */
export function testKey(fill = 0x11): Uint8Array {
  return p256.getPublicKey(new Uint8Array(32).fill(fill), false);
}

const ok = (v?: string) => (v === undefined ? "\r\n+OK\r\n" : `\r\n+OK=${v}\r\n`);
const err = (n: number, reason?: number) => (reason === undefined ? `\r\n+ERR=${n}\r\n` : `\r\n+ERR=${n},${reason}\r\n`);
const PENDING = ok("pending; AT+S saves");
const FP = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";

/** A row: command line, expected reply bytes (or a function of the rig), and an optional check. */
export type Row = [string, string | ((r: Rig) => string)];

/** Every command: set, query, range (=?), bad parameter, wrong operator; plus unknown and malformed lines. Run in order. */
export function commandRows(): Row[] {
  const key = testKey();
  const keyHex = toHex(key);
  const id = toHex(keyId(key));
  const badPoint = "04" + "00".repeat(64);
  return [
    // bare AT and syntax
    ["AT", ok()],
    ["at", ok()],
    ["AT?", err(-1)],
    ["ATX", err(-1)],
    ["AT+", err(-1)],
    ["hello", err(-1)],
    ["AT+VER!", err(-1)],
    ["AT+VER?x", err(-1)],
    ["AT+ABCDEFGHIJKLMNOPQ", err(-1)],
    ["AT+NOPE", err(-2)],
    ["AT+NOPE?", err(-2)],
    ["AT+NOPE=?", err(-2)],
    ["AT+NOPE=1", err(-2)],
    // H
    ["AT+H=?", ok("list the commands")],
    ["AT+H?", err(-3)],
    ["AT+H=1", err(-3)],
    // E
    ["AT+E?", ok("OFF")],
    ["AT+E", ok("OFF")],
    ["AT+E=?", ok("<ON|OFF> echo typed characters (immediate, not saved)")],
    ["AT+E=MAYBE", err(-4)],
    ["AT+E=off", ok()],
    // ENTM (exercised for real in the timing suite)
    ["AT+ENTM=?", ok("leave command mode (back to transparent mode)")],
    ["AT+ENTM?", err(-3)],
    ["AT+ENTM=1", err(-3)],
    // VER
    ["AT+VER", ok("1.2.3+4,test")],
    ["AT+ver?", ok("1.2.3+4,test")],
    ["AT+VER=?", ok("firmware version and build")],
    ["AT+VER=1", err(-3)],
    // DEVID
    ["AT+DEVID?", ok("sim-0001")],
    ["AT+DEVID=?", ok("<1..32 of A-Z a-z 0-9 . _ -> device id")],
    ["AT+DEVID=dev-42", PENDING],
    ["AT+DEVID", ok("dev-42")],
    ["AT+DEVID=bad id!", err(-4)],
    ["AT+DEVID=", err(-4)],
    ["AT+DEVID=" + "x".repeat(33), err(-4)],
    ["AT+DEVID=a,b", err(-4)],
    // OTASVR
    ["AT+OTASVR?", ok("127.0.0.1,8883")],
    ["AT+OTASVR=?", ok("<host>,<1..65535> update server (MQTT broker) host and port")],
    ["AT+OTASVR=ota.example.com,1883", PENDING],
    ["AT+otasvr", ok("ota.example.com,1883")],
    ["AT+OTASVR=host", err(-4)],
    ["AT+OTASVR=host,0", err(-4)],
    ["AT+OTASVR=host,65536", err(-4)],
    ["AT+OTASVR=host,+80", err(-4)],
    ["AT+OTASVR=bad_host,1", err(-4)],
    // OTATLS
    ["AT+OTATLS?", ok("ON,NONE")],
    ["AT+OTATLS=?", ok("<ON|OFF>[,<CA SHA-256: 64 hex>|NONE] TLS to the server and the pinned CA certificate fingerprint")],
    ["AT+OTATLS=ON," + FP, PENDING],
    ["AT+OTATLS?", ok("ON," + FP.toLowerCase())],
    ["AT+OTATLS=OFF", PENDING],
    ["AT+OTATLS", ok("OFF," + FP.toLowerCase())],
    ["AT+OTATLS=on,none", PENDING],
    ["AT+OTATLS?", ok("ON,NONE")],
    ["AT+OTATLS=YES", err(-4)],
    ["AT+OTATLS=ON,12", err(-4)],
    ["AT+OTATLS=ON,NONE,1", err(-4)],
    // HEARTEN
    ["AT+HEARTEN?", ok("ON")],
    ["AT+HEARTEN=?", ok("<ON|OFF> heartbeat on or off")],
    ["AT+HEARTEN=OFF", PENDING],
    ["AT+HEARTEN", ok("OFF")],
    ["AT+HEARTEN=2", err(-4)],
    ["AT+HEARTEN=ON", PENDING],
    // HEARTTM
    ["AT+HEARTTM?", ok("60")],
    ["AT+HEARTTM=?", ok("<10..86400> heartbeat interval, seconds")],
    ["AT+HEARTTM=30", PENDING],
    ["AT+HEARTTM", ok("30")],
    ["AT+HEARTTM=9", err(-4)],
    ["AT+HEARTTM=86401", err(-4)],
    ["AT+HEARTTM=abc", err(-4)],
    ["AT+HEARTTM=", err(-4)],
    // KEYADD / KEYLIST / KEYDEL
    ["AT+KEYLIST", ok("NONE")],
    ["AT+KEYADD=?", ok("<P-256 public key: 130 hex, uncompressed 04...> trust a release-signing key; replies its key id")],
    ["AT+KEYADD=" + keyHex, ok(`${id} pending; AT+S saves`)],
    ["AT+KEYADD=" + keyHex.toUpperCase(), ok(`${id} pending; AT+S saves`)],
    ["AT+KEYLIST?", ok(id)],
    ["AT+KEYLIST=?", ok("ids (SHA-256 of the key's DER) of the trusted keys")],
    ["AT+KEYLIST=1", err(-3)],
    ["AT+KEYADD?", err(-3)],
    ["AT+KEYADD", err(-3)],
    ["AT+KEYADD=zz", err(-4)],
    ["AT+KEYADD=" + badPoint, err(-4)],
    ["AT+KEYDEL=?", ok("<key id: 8..64 hex, a unique prefix> stop trusting a key")],
    ["AT+KEYDEL?", err(-3)],
    ["AT+KEYDEL", err(-3)],
    ["AT+KEYDEL=abc", err(-4)],
    [`AT+KEYDEL=${id[0] === "0" ? "1" : "0"}${id.slice(1, 8)}`, err(-4)],
    ["AT+KEYDEL=" + id.slice(0, 8), PENDING],
    ["AT+KEYLIST", ok("NONE")],
    ["AT+KEYADD=" + keyHex, ok(`${id} pending; AT+S saves`)],
    // LOCK / UNLOCK (the locked behaviour has its own suite)
    ["AT+LOCK?", ok("UNLOCKED")],
    ["AT+LOCK=?", ok("<password: 8..32 printable, no spaces> provisioning lock: set the password and lock (saved at once)")],
    ["AT+LOCK=abcdefg", err(-4)],
    ["AT+LOCK=ab", err(-4)],
    ["AT+LOCK=has space", err(-4)],
    ["AT+UNLOCK=?", ok("<password> lift the provisioning lock (saved at once)")],
    ["AT+UNLOCK?", err(-3)],
    ["AT+UNLOCK", err(-3)],
    ["AT+UNLOCK=abcd", ok("UNLOCKED")],
    ["AT+LOCK", ok("UNLOCKED")],
    // OTABOUNDS
    ["AT+OTABOUNDS", ok("watchdog=8000,download=90000")],
    ["AT+OTABOUNDS?", ok("watchdog=8000,download=90000")],
    ["AT+OTABOUNDS=?", ok("supervision bounds: watchdog, deadlines (ms), hash slice (bytes)")],
    ["AT+OTABOUNDS=1", err(-3)],
    // OTASTATE / OTACHECK / OTAABORT
    ["AT+OTASTATE", ok("IDLE,0,0")],
    ["AT+OTASTATE?", ok("IDLE,0,0")],
    ["AT+OTASTATE=?", ok("update state, progress %, last reason code")],
    ["AT+OTASTATE=1", err(-3)],
    ["AT+OTACHECK", ok()],
    ["AT+OTACHECK=?", ok("ask the server for an update now")],
    ["AT+OTACHECK?", err(-3)],
    ["AT+OTACHECK=1", err(-3)],
    ["AT+OTAABORT", ok()],
    ["AT+OTAABORT=?", ok("abort the update in progress")],
    ["AT+OTAABORT?", err(-3)],
    ["AT+OTAABORT=1", err(-3)],
    // MINVOLT
    ["AT+MINVOLT?", ok("0")],
    ["AT+MINVOLT=?", ok("<0..65535> minimum supply voltage for an install, mV (0: no check)")],
    ["AT+MINVOLT=3300", PENDING],
    ["AT+MINVOLT", ok("3300")],
    ["AT+MINVOLT=65536", err(-4)],
    ["AT+MINVOLT=-1", err(-4)],
    // OTAWIN
    ["AT+OTAWIN?", ok("ALWAYS")],
    ["AT+OTAWIN=?", ok("<ALWAYS>|<HH:MM>,<HH:MM> maintenance window for installs (device time; may cross midnight)")],
    ["AT+OTAWIN=02:00,04:30", PENDING],
    ["AT+OTAWIN", ok("02:00,04:30")],
    ["AT+OTAWIN=23:00,01:00", PENDING],
    ["AT+OTAWIN?", ok("23:00,01:00")],
    ["AT+OTAWIN=24:00,01:00", err(-4)],
    ["AT+OTAWIN=02:00,02:00", err(-4)],
    ["AT+OTAWIN=2:00,04:00", err(-4)],
    ["AT+OTAWIN=02:00", err(-4)],
    ["AT+OTAWIN=always", PENDING],
    ["AT+OTAWIN?", ok("ALWAYS")],
    // LOG before any entry
    ["AT+LOG?", ok("0,0,63")],
    ["AT+LOG=?", ok("<from index>[,<1..16>] audit log: count,first,capacity; =from,n lists entries")],
    ["AT+LOG=0", ok("0")],
    ["AT+LOG=0,17", err(-4)],
    ["AT+LOG=0,0", err(-4)],
    ["AT+LOG=x", err(-4)],
    ["AT+LOG=0,1,2", err(-4)],
    ["AT+LOG", ok("0,0,63")],
    // CSR, CERT (the device identity; the whole flow is in test/xs/entries/identity.ts)
    ["AT+CSR=?", ok("[NEW] print the device's certificate signing request (PEM); =NEW makes a new device key")],
    ["AT+CSR?", err(-3)],
    ["AT+CSR=OLD", err(-4)],
    ["AT+CERT?", ok("NONE")],
    ["AT+CERT", ok("NONE")],
    ["AT+CERT=?", ok("BEGIN|<base64 line>|END install the device certificate from the fleet CA: BEGIN, the PEM body lines, END")],
    ["AT+CERT=QUJD", err(-5, 656)],
    ["AT+CSR", () => {
      // The key is made by this very line from the rig's seeded generator (seed 7): the same seed on a blank chip makes the same key.
      const blank = new NorFlash({ size: 64 * KiB, blockLength: 8 * KiB, writeAlign: 32 }, new PowerRail({ seed: 5 }));
      const probe = new DeviceIdentity(openStorage(blank).identity, new TestOnlySeededRandom(7));
      probe.ensureKey();
      return `\r\n${pemLines("CERTIFICATE REQUEST", probe.csr("sim-0001")).join("\r\n")}\r\n+OK=sim-0001\r\n`;
    }],
    ["AT+CERT=BEGIN", ok("0")],
    ["AT+CERT=not*base64", err(-4)],
    ["AT+CERT=END", err(-5, 652)],
    // S
    ["AT+S=?", ok("save the pending settings (active after AT+Z)")],
    ["AT+S?", err(-3)],
    ["AT+S=1", err(-3)],
    ["AT+S", ok("saved; AT+Z applies")],
    ["AT+S", ok("unchanged")],
    ["AT+LOG?", ok("2,0,63")],
    ["AT+LOG=0,2", (r) => {
      const t = r.audit.read(0, 1)[0].uptimeMs;
      return `\r\n+LOG=0,${t},0,2,0.0.0+0,0.0.0+0,0\r\n+LOG=1,${t},0,7,0.0.0+0,0.0.0+0,0\r\n+OK=2\r\n`;
    }],
    ["AT+LOG=1,16", (r) => `\r\n+LOG=1,${r.audit.read(1, 1)[0].uptimeMs},0,7,0.0.0+0,0.0.0+0,0\r\n+OK=1\r\n`],
    ["AT+LOG=5", ok("0")],
    // RELD
    ["AT+RELD=?", ok("factory defaults (saved; active after AT+Z); refused while locked")],
    ["AT+RELD?", err(-3)],
    ["AT+RELD=1", err(-3)],
    ["AT+HEARTTM=45", PENDING],
    ["AT+RELD", ok("defaults saved; AT+Z applies")],
    ["AT+HEARTTM?", ok("60")],
    ["AT+DEVID?", ok("sim-0001")],
    // Z
    ["AT+Z=?", ok("restart (unsaved changes are dropped)")],
    ["AT+Z?", err(-3)],
    ["AT+Z=1", err(-3)],
    ["AT+HEARTTM=45", PENDING],
    ["AT+Z", ok("restarting; unsaved changes dropped")],
  ];
}

function show(s: string): string {
  return JSON.stringify(s);
}

export function tableSuite(): Suite {
  return suite("AT command table: every command, exact reply bytes", (it) => {
    it("every row answers exactly", () => {
      const r = makeRig();
      for (const [line, expected] of commandRows()) {
        const want = typeof expected === "function" ? expected(r) : expected;
        const got = r.at(line);
        assert.equal(show(got), show(want), line);
      }
      // AT+Z restarts after the reply, from a timer.
      assert.equal(r.reboots, 0, "reboot waits for the reply to drain");
      r.clock.advance(150);
      assert.equal(r.reboots, 1, "reboot after AT+Z");
    });
    it("every command of the table appears in the rows with every operator it refuses and accepts", () => {
      const rows = commandRows().map(([l]) => l.toUpperCase());
      for (const c of COMMANDS) {
        if (c.name === "") continue;
        const base = `AT+${c.name}`;
        for (const op of ["exec", "query", "test", "set"] as const) {
          // Own tests: the AT+H listing below, AT+ENTM in the timing suite.
          if ((c.name === "H" || c.name === "ENTM") && op === "exec") continue;
          const seen = rows.some((l) =>
            op === "exec" ? l === base : op === "query" ? l === base + "?" : op === "test" ? l === base + "=?" : l.startsWith(base + "=") && l !== base + "=?",
          );
          assert.ok(seen, `${base} ${op} has a row`);
        }
      }
    });
    it("AT+H lists one line per command and ends with +OK", () => {
      const r = makeRig();
      const got = r.at("AT+H");
      assert.ok(got.startsWith("\r\nAT+H  list the commands\r\nAT+E=<ON|OFF>  echo typed characters (immediate, not saved)\r\n"), show(got.slice(0, 120)));
      assert.ok(got.endsWith("\r\nAT+RELD  factory defaults (saved; active after AT+Z); refused while locked\r\n+OK\r\n"), show(got.slice(-120)));
      assert.equal(got.split("\r\n").filter((l) => l.startsWith("AT+")).length, COMMANDS.length - 1);
    });
    it("an over-long line is a bad format, and the next line works", () => {
      const r = makeRig();
      assert.equal(show(r.at("AT+" + "A".repeat(300))), show(err(-1)));
      assert.equal(show(r.at("AT")), show(ok()));
    });
    it("the agent's refusals carry their reason code", () => {
      const r = makeRig();
      r.update.checkResult = Reason.BUSY;
      r.update.abortResult = Reason.ABORTED;
      r.update.current = { state: "DOWNLOADING", progress: 42, lastReason: Reason.DOWNLOAD_STALLED };
      assert.equal(show(r.at("AT+OTACHECK")), show(err(-5, 307)));
      assert.equal(show(r.at("AT+OTAABORT")), show(err(-5, 311)));
      assert.equal(show(r.at("AT+OTASTATE")), show(ok("DOWNLOADING,42,300")));
      r.console.attachUpdate(undefined);
      assert.equal(show(r.at("AT+OTASTATE")), show(ok("NONE,0,0")));
      assert.equal(show(r.at("AT+OTABOUNDS?")), show(ok("NONE")));
      assert.equal(show(r.at("AT+OTACHECK")), show(err(-5, 354)));
    });
    it("settings edits are pending until AT+S, saved until AT+Z, and the active set is the boot's", () => {
      const r = makeRig();
      r.at("AT+HEARTTM=30");
      assert.equal(r.settings.pending.heartbeatIntervalS, 30);
      assert.equal(r.settings.saved.heartbeatIntervalS, 60);
      assert.equal(r.settings.active.heartbeatIntervalS, 60);
      r.at("AT+S");
      assert.equal(r.settings.saved.heartbeatIntervalS, 30);
      assert.equal(r.settings.active.heartbeatIntervalS, 60, "active changes only on restart");
      const again = makeRig({ chip: r.chip });
      assert.equal(again.settings.active.heartbeatIntervalS, 30, "after a restart");
    });
  });
}

export function lockSuite(): Suite {
  return suite("AT console: provisioning lock", (it) => {
    it("refuses key provisioning and factory reset once locked; unlocking needs the password", () => {
      const r = makeRig();
      const key = toHex(testKey());
      const rows: [string, string][] = [
        ["AT+HEARTTM=30", PENDING],
        ["AT+LOCK=s3cret!!", ok("LOCKED")],
        ["AT+LOCK?", ok("LOCKED")],
        ["AT+KEYADD=" + key, err(-5, 357)],
        ["AT+KEYDEL=00000000", err(-5, 357)],
        ["AT+RELD", err(-5, 357)],
        ["AT+DEVID=other", err(-5, 357)],
        ["AT+OTATLS=OFF", err(-5, 357)],
        ["AT+LOCK=another1", err(-5, 357)],
        ["AT+HEARTTM=45", err(-5, 357)],
        ["AT+S", err(-5, 357)],
        ["AT+HEARTTM?", ok("30")],
        ["AT+KEYLIST", ok("NONE")],
        ["AT+UNLOCK=wrong-1", err(-5, 355)],
        ["AT+UNLOCK=wrong-2", err(-5, 355)],
        ["AT+UNLOCK=wrong-3", err(-5, 355)],
        ["AT+UNLOCK=s3cret!!", err(-5, 356)],
      ];
      for (const [line, want] of rows) assert.equal(show(r.at(line)), show(want), line);
      // The lock was saved at once (no AT+S): a restart still finds it locked.
      const rebooted = makeRig({ chip: r.chip });
      assert.ok(rebooted.settings.active.locked, "locked after restart");
      assert.equal(rebooted.settings.active.heartbeatIntervalS, 60, "the pending edit was not saved with the lock");
      r.clock.advance(30_000);
      assert.equal(show(r.at("AT+UNLOCK=s3cret!!")), show(ok("UNLOCKED")));
      assert.equal(show(r.at("AT+KEYADD=" + key)), show(ok(`${toHex(keyId(testKey()))} pending; AT+S saves`)));
      // The password never reaches flash in clear.
      const cells = Array.from(r.chip.cells, (c) => String.fromCharCode(c)).join("");
      assert.ok(cells.indexOf("s3cret!!") < 0, "password stored in clear");
      // Audit: LOCKED, 3 x UNLOCK_REFUSED, UNLOCKED.
      const events = r.audit.read(0, 16).map((e) => `${e.event}/${e.reason}`);
      assert.equal(events.join(" "), "4/0 6/355 6/355 6/355 5/0");
    });
  });
}

/**
 * A valid argument for every command with a set operator (the lock suites run
 * each line; a command missing here fails "every set operator has a sample").
 */
export function sampleArgs(): { [name: string]: string } {
  const key = testKey();
  return {
    E: "ON",
    DEVID: "dev-9",
    OTASVR: "ota.example.com,1883",
    OTATLS: "ON," + FP,
    HEARTEN: "OFF",
    HEARTTM: "30",
    KEYADD: toHex(testKey(0x22)),
    KEYDEL: toHex(keyId(key)).slice(0, 8),
    LOCK: "another-pw",
    UNLOCK: "wrong-pw",
    MINVOLT: "3300",
    OTAWIN: "02:00,04:00",
    LOG: "0,2",
    CSR: "NEW",
    CERT: "BEGIN",
  };
}

function lineFor(name: string, op: "exec" | "query" | "set", samples: { [name: string]: string }): string {
  return op === "exec" ? `AT+${name}` : op === "query" ? `AT+${name}?` : `AT+${name}=${samples[name]}`;
}

/** A rig with one trusted key saved, a pending edit, then locked with PASSWORD. */
const PASSWORD = "s3cret-pw";
function lockedRig(chip?: NorFlash): Rig {
  const r = makeRig(chip ? { chip } : {});
  if (chip) return r;
  r.at("AT+KEYADD=" + toHex(testKey()));
  r.at("AT+S");
  r.at("AT+MINVOLT=1200"); // pending, not saved: AT+S while locked must not save it
  assert.equal(show(r.at("AT+LOCK=" + PASSWORD)), show(ok("LOCKED")));
  return r;
}

export function lockTableSuite(): Suite {
  return suite("AT console: the lock is a property of the command table", (it) => {
    it("every set operator has a sample argument, and the samples are valid when unlocked", () => {
      const samples = sampleArgs();
      for (const c of COMMANDS) if (c.ops.indexOf("set") >= 0) assert.ok(samples[c.name] !== undefined, `AT+${c.name}= has a sample`);
      // Unlocked, each sample passes the argument check (no -4): the refusals below are the lock's.
      for (const c of COMMANDS) {
        if (c.ops.indexOf("set") < 0 || c.name === "UNLOCK") continue;
        const r = makeRig();
        r.at("AT+KEYADD=" + toHex(testKey()));
        const got = r.at(lineFor(c.name, "set", samples));
        assert.ok(got.indexOf("+ERR") < 0, `AT+${c.name}=${samples[c.name]} unlocked: ${show(got)}`);
      }
    });
    it("while locked, every locked operator of every command answers +ERR=-5,357 and changes nothing", () => {
      const samples = sampleArgs();
      const r = lockedRig();
      const cells = r.chip.cells.slice();
      const ops = r.rail.operations;
      const pending = toHex(encodeSettings(r.settings.pending));
      let refused = 0;
      for (const c of COMMANDS) {
        for (const op of c.lockedOps) {
          assert.ok(c.ops.indexOf(op) >= 0, `AT+${c.name} locks an operator it has (${op})`);
          assert.ok(op !== "test" && op !== "query", `AT+${c.name}: test and query stay open`);
          const line = lineFor(c.name, op as "exec" | "set", samples);
          assert.equal(show(r.at(line)), show(err(-5, 357)), line);
          refused++;
        }
      }
      assert.equal(refused, 18, "locked operators (update the docs when this changes)");
      r.clock.advance(1000);
      assert.equal(r.rail.operations, ops, "no flash operation");
      assert.equal(toHex(r.chip.cells), toHex(cells), "flash unchanged");
      assert.equal(toHex(encodeSettings(r.settings.pending)), pending, "pending set unchanged");
      assert.equal(r.reboots, 0, "no restart");
      assert.equal(r.update.checks + r.update.aborts, 0, "no update action");
      assert.ok(r.settings.saved.locked);
    });
    it("while locked, the open operators change nothing either (a mutating command declared open fails here)", () => {
      const samples = sampleArgs();
      const r = lockedRig();
      const cells = r.chip.cells.slice();
      const pending = toHex(encodeSettings(r.settings.pending));
      const open: string[] = [];
      for (const c of COMMANDS) {
        for (const op of ["exec", "query", "set"] as const) {
          if (c.ops.indexOf(op) < 0 || c.lockedOps.indexOf(op) >= 0) continue;
          // AT+UNLOCK= counts the attempt in flash (its own suite); AT+ENTM leaves command mode (timing suite).
          if (c.name === "UNLOCK" || c.name === "ENTM") continue;
          const line = c.name === "" ? "AT" : lineFor(c.name, op, samples);
          const got = r.at(line);
          assert.ok(got.indexOf("+ERR=-5") < 0, `${line} is open: ${show(got)}`);
          open.push(line.replace(/=.*/, "="));
        }
      }
      r.clock.advance(1000);
      assert.equal(toHex(r.chip.cells), toHex(cells), "flash unchanged");
      assert.equal(toHex(encodeSettings(r.settings.pending)), pending, "pending set unchanged");
      assert.equal(r.reboots + r.update.checks + r.update.aborts, 0, "no restart or update action");
      assert.equal(
        open.join(" "),
        "AT AT+H AT+E AT+E? AT+E= AT+VER AT+VER? AT+DEVID AT+DEVID? AT+OTASVR AT+OTASVR? AT+OTATLS AT+OTATLS? AT+HEARTEN AT+HEARTEN? " +
          "AT+HEARTTM AT+HEARTTM? AT+KEYLIST AT+KEYLIST? AT+LOCK AT+LOCK? AT+OTASTATE AT+OTASTATE? AT+OTABOUNDS AT+OTABOUNDS? " +
          "AT+MINVOLT AT+MINVOLT? AT+OTAWIN AT+OTAWIN? AT+LOG AT+LOG? AT+LOG= AT+CERT AT+CERT?",
      );
    });
    it("a few refusals byte for byte, and the same lines work after AT+UNLOCK", () => {
      const r = lockedRig();
      const lines = ["AT+OTASVR=evil.example.com,1883", "AT+OTATLS=OFF", "AT+HEARTEN=OFF", "AT+OTAWIN=02:00,04:00", "AT+MINVOLT=0", "AT+OTAABORT", "AT+OTACHECK", "AT+S", "AT+RELD", "AT+Z"];
      for (const l of lines) assert.equal(show(r.at(l)), show("\r\n+ERR=-5,357\r\n"), l);
      // Permission comes before the arguments: a bad argument is refused by the lock too (no oracle).
      assert.equal(show(r.at("AT+OTASVR=bad_host,0")), show("\r\n+ERR=-5,357\r\n"));
      assert.equal(show(r.at("AT+UNLOCK=" + PASSWORD)), show(ok("UNLOCKED")));
      assert.equal(show(r.at(lines[0])), show(PENDING));
      assert.equal(show(r.at("AT+S")), show(ok("saved; AT+Z applies")));
      assert.equal(r.settings.saved.serverHost, "evil.example.com");
      assert.equal(r.settings.saved.minSupplyMv, 1200, "the edit pending before the lock is saved only now");
      assert.equal(show(r.at("AT+RELD")), show(ok("defaults saved; AT+Z applies")));
      assert.equal(show(r.at("AT+Z")), show(ok("restarting")));
    });
    it("passwords need 8 characters; one set by older firmware (4..7) still unlocks", () => {
      const r = makeRig();
      assert.equal(show(r.at("AT+LOCK=1234567")), show(err(-4)));
      assert.equal(show(r.at("AT+LOCK?")), show(ok("UNLOCKED")));
      // A lock saved by a firmware whose minimum was 4.
      const salt = new Uint8Array(16).fill(7);
      r.settings.saveNow({ locked: true, password: { salt, hash: hashPassword("ab12", salt) } });
      assert.equal(show(r.at("AT+UNLOCK=ab1")), show(err(-4)));
      assert.equal(show(r.at("AT+UNLOCK=ab12")), show(ok("UNLOCKED")));
    });
    it("the unlock attempt counter and the lock-out survive resets", () => {
      const r = lockedRig();
      assert.equal(show(r.at("AT+UNLOCK=wrong-one")), show(err(-5, 355)));
      assert.equal(show(r.at("AT+UNLOCK=wrong-two")), show(err(-5, 355)));
      // Reset: a new console over the same flash (and a fresh uptime clock). The two failures are remembered.
      const b = lockedRig(r.chip);
      assert.equal(b.settings.gate.failures, 2);
      assert.equal(show(b.at("AT+UNLOCK=wrong-three")), show(err(-5, 355)));
      assert.equal(show(b.at("AT+UNLOCK=" + PASSWORD)), show(err(-5, 356)));
      // Reset during the lock-out: still locked out, for a full window from boot.
      b.clock.advance(20_000);
      const c = lockedRig(b.chip);
      assert.ok(c.settings.gate.lockedOut);
      assert.equal(show(c.at("AT+UNLOCK=" + PASSWORD)), show(err(-5, 356)));
      c.clock.advance(29_990);
      assert.equal(show(c.at("AT+UNLOCK=" + PASSWORD)), show(err(-5, 356)));
      // Another reset, many wrong guesses: none is even tried (no audit entry, no flash write).
      const d = lockedRig(c.chip);
      const cells = d.chip.cells.slice();
      for (let i = 0; i < 20; i++) assert.equal(show(d.at("AT+UNLOCK=guess-" + i)), show(err(-5, 356)));
      assert.equal(toHex(d.chip.cells), toHex(cells), "refused attempts write nothing");
      d.clock.advance(30_000);
      assert.equal(show(d.at("AT+UNLOCK=" + PASSWORD)), show(ok("UNLOCKED")));
      const e = lockedRig(d.chip);
      assert.ok(!e.settings.saved.locked);
      assert.equal(e.settings.gate.failures, 0);
      assert.ok(!e.settings.gate.lockedOut);
      const events = e.audit.read(0, 32).map((x) => `${x.event}/${x.reason}`);
      assert.equal(events.filter((x) => x === "6/355").length, 3, events.join(" "));
      assert.equal(events[events.length - 1], "5/0");
    });
    it("each attempt is counted in flash before the password is checked (a power cut cannot give a free guess)", () => {
      const r = lockedRig();
      // Cut the power at the first flash operation after the attempt's counter write:
      // the right password with the cut during the check never unlocks for free.
      assert.equal(show(r.at("AT+UNLOCK=wrong-one")), show(err(-5, 355)));
      const after = new SettingsManager(openStorage(r.chip).settings, FACTORY());
      assert.equal(after.gate.failures, 1, "counted in flash");
      assert.ok(after.saved.locked);
    });
  });
}

export function echoSuite(): Suite {
  return suite("AT console: echo, editing, masking", (it) => {
    it("echoes typed bytes, erases on backspace, and ends with the reply", () => {
      const r = makeRig({ echo: true });
      assert.equal(show(r.type("AT+VEX\bR\r")), show("AT+VEX\b \bR" + ok("1.2.3+4,test")));
      assert.equal(show(r.type("AT+VER\x7f\x7f\x7fVER\n")), show("AT+VER\b \b\b \b\b \bVER" + ok("1.2.3+4,test")));
    });
    it("CR LF gives one reply; control bytes are ignored; LF alone ends a line", () => {
      const r = makeRig();
      assert.equal(show(r.type("AT\r\n")), show(ok()));
      assert.equal(show(r.type("A\x01T\x1b\n")), show(ok()));
    });
    it("masks passwords after AT+LOCK= and AT+UNLOCK=, case-insensitively", () => {
      const r = makeRig({ echo: true });
      assert.equal(show(r.type("at+lock=pass1234\r")), show("at+lock=********" + ok("LOCKED")));
      assert.equal(show(r.type("AT+UNLOCK=pass1234\r")), show("AT+UNLOCK=********" + ok("UNLOCKED")));
    });
    it("AT+E=OFF stops the echo at once", () => {
      const r = makeRig({ echo: true });
      assert.equal(show(r.type("AT+E=OFF\r")), show("AT+E=OFF" + ok()));
      assert.equal(show(r.type("AT+E?\r")), show(ok("OFF")));
    });
  });
}

/** Wait with nothing sent. */
function idle(r: Rig, ms: number): string {
  r.clock.advance(ms);
  return r.serial.drainText();
}

function text(bytes: number[]): string {
  return String.fromCharCode(...bytes);
}

export function timingSuite(): Suite {
  return suite("AT console: +++ escape timing on the virtual clock", (it) => {
    it("guard, +++, 'a' from the device, 'a' within 3 s, +ok: command mode", () => {
      const r = makeRig({ mode: "data" });
      idle(r, 1000);
      assert.equal(show(r.type("+++", 1)), show(""), "no answer inside the burst gap");
      // The bytes arrived at T; T+19 is still inside the 20 ms gap, the 'a' comes at T+20.
      assert.equal(show(idle(r, 18)), show(""), "still inside the 20 ms gap");
      assert.equal(show(idle(r, 1)), show("a"));
      assert.equal(show(r.type("a", 500)), show("+ok"));
      assert.equal(show(r.at("AT")), show(ok()));
      assert.equal(r.data.length, 0, "nothing leaked to the application");
    });
    it("+++a sent as one burst is data", () => {
      const r = makeRig({ mode: "data" });
      idle(r, 1000);
      assert.equal(show(r.type("+++a", 5000)), show(""));
      assert.equal(text(r.data), "+++a");
      assert.equal(show(r.type("AT\r", 10)), show(""), "still transparent");
    });
    it("a byte inside the burst gap makes +++ data", () => {
      const r = makeRig({ mode: "data" });
      idle(r, 1000);
      r.type("+++", 10);
      assert.equal(show(r.type("x", 5000)), show(""));
      assert.equal(text(r.data), "+++x");
    });
    it("without the guard time before it, +++ is data", () => {
      const r = makeRig({ mode: "data" });
      idle(r, 1000);
      r.type("x", 199);
      assert.equal(show(r.type("+++", 4000)), show(""));
      assert.equal(text(r.data), "x+++");
    });
    it("exactly the guard time is enough", () => {
      const r = makeRig({ mode: "data" });
      idle(r, 1000);
      r.type("x", 200);
      assert.equal(show(r.type("+++", 20)), show("a"));
    });
    it("pluses more than 300 ms apart are data", () => {
      const r = makeRig({ mode: "data" });
      idle(r, 1000);
      r.type("+", 301);
      r.type("+", 1);
      assert.equal(show(r.type("+", 4000)), show(""));
      assert.equal(text(r.data), "+++");
    });
    it("pluses typed 300 ms apart by hand still escape", () => {
      const r = makeRig({ mode: "data" });
      idle(r, 1000);
      r.type("+", 300);
      r.type("+", 300);
      assert.equal(show(r.type("+", 20)), show("a"));
      assert.equal(show(r.type("a")), show("+ok"));
    });
    it("the confirming 'a' must come within 3 s of the device's 'a' (boundary)", () => {
      const inTime = makeRig({ mode: "data" });
      idle(inTime, 1000);
      assert.equal(show(inTime.type("+++", 20)), show("a"));
      idle(inTime, 3000);
      assert.equal(show(inTime.type("a")), show("+ok"), "3000 ms after the 'a'");
      const late = makeRig({ mode: "data" });
      idle(late, 1000);
      late.type("+++", 20);
      idle(late, 3001);
      assert.equal(show(late.type("a")), show(""), "3001 ms: too late");
      assert.equal(text(late.data), "+++a");
    });
    it("anything but 'a' after the device's 'a' is data", () => {
      const r = makeRig({ mode: "data" });
      idle(r, 1000);
      r.type("+++", 20);
      assert.equal(show(r.type("b")), show(""));
      assert.equal(text(r.data), "+++b");
    });
    it("AT+ENTM returns to transparent mode; the escape works again after a guard", () => {
      const r = makeRig();
      assert.equal(show(r.at("AT+ENTM")), show(ok()));
      assert.equal(show(r.type("AT\r", 10)), show(""));
      assert.equal(text(r.data), "AT\r");
      idle(r, 200);
      assert.equal(show(r.type("+++", 20)), show("a"));
      assert.equal(show(r.type("a")), show("+ok"));
      assert.equal(show(r.at("AT+VER")), show(ok("1.2.3+4,test")));
    });
    it("data passes through in order, pluses included", () => {
      const r = makeRig({ mode: "data" });
      r.type("a+b++c", 1000);
      r.type("++", 1000);
      assert.equal(text(r.data), "a+b++c++");
    });
  });
}

/** A random line: mutations of real commands, random names, random bytes. Never a command that writes settings or restarts. */
function randomLine(prng: Prng): Uint8Array {
  const kind = prng.below(4);
  let s: string;
  if (kind === 0) {
    const bytes = new Uint8Array(prng.below(300));
    prng.fill(bytes);
    return bytes;
  }
  const names = COMMANDS.map((c) => c.name).filter((n) => ["S", "Z", "RELD", "LOCK", "UNLOCK"].indexOf(n) < 0);
  const alphabet = "ATat+=?,:0123456789ABCDEFabcdefONFX.-_ \x08\x7f";
  if (kind === 1) {
    s = "AT+" + names[prng.below(names.length)];
    const ops = ["", "?", "=?", "="];
    s += ops[prng.below(4)];
    const n = prng.below(140);
    for (let i = 0; i < n; i++) s += alphabet[prng.below(alphabet.length)];
  } else {
    const n = prng.below(40);
    s = prng.below(2) ? "AT+" : "";
    for (let i = 0; i < n; i++) s += alphabet[prng.below(alphabet.length)];
  }
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** True when a line would run a command that writes flash or restarts (the generator must not make one). */
function mutating(line: Uint8Array): boolean {
  let s = "";
  for (const b of line) {
    if (b === 8 || b === 0x7f) s = s.slice(0, -1);
    else if (b >= 0x20) s += String.fromCharCode(b);
  }
  const m = /^AT\+([A-Za-z0-9]+)/i.exec(s);
  return m !== null && ["S", "Z", "RELD", "LOCK", "UNLOCK"].indexOf(m[1].toUpperCase()) >= 0;
}

/** Feed `lines` random lines (and raw bytes, with random time gaps) into a console; checks the bounds as it goes. */
export function randomRun(lines: number, seed: number): { lines: number; bytes: number; replies: number; escapes: number; maxHeld: number } {
  const r = makeRig({ mode: "command", echo: true });
  r.at("AT+LOCK=pw-12345"); // locked: the most restrictive state
  const flashBefore = r.chip.cells.slice();
  const opsBefore = r.rail.operations;
  const savedBefore = encodeSettings(r.settings.saved);
  const prng = new Prng(seed);
  let bytes = 0;
  let maxHeld = 0;
  const limit = r.console.parser.options.maxLine + 3;
  for (let i = 0; i < lines; i++) {
    let line = randomLine(prng);
    while (mutating(line)) line = randomLine(prng);
    for (let o = 0; o < line.length; ) {
      // Random chunking and random gaps (0..400 ms) so the escape and its timeouts happen too.
      const n = 1 + prng.below(8);
      const chunk = line.subarray(o, o + n);
      for (const b of chunk) {
        r.console.parser.feed(b, r.clock.now());
        if (r.console.parser.heldBytes > maxHeld) maxHeld = r.console.parser.heldBytes;
      }
      o += n;
      r.clock.advance(prng.below(8) === 0 ? prng.below(400) : 0);
      if (r.console.parser.heldBytes > limit) throw new Error(`parser holds ${r.console.parser.heldBytes} bytes`);
    }
    bytes += line.length;
    const end = prng.below(3);
    r.console.parser.feed(end === 0 ? 13 : end === 1 ? 10 : 0x41, r.clock.now());
    if (prng.below(50) === 0) {
      // Leave command mode and come back with the escape now and then, so the
      // escape path runs whatever the random lines did (they may have left it too).
      r.console.receive(Uint8Array.from("\rAT+ENTM\r", (c) => c.charCodeAt(0)));
      r.clock.advance(250);
      r.console.receive(Uint8Array.from([0x2b, 0x2b, 0x2b]));
      r.clock.advance(25);
      r.console.receive(Uint8Array.from([0x61]));
      r.console.receive(Uint8Array.from([0x0d]));
    }
    r.serial.drain();
    if (r.data.length > 0) r.data.length = 0;
  }
  if (r.rail.operations !== opsBefore) throw new Error(`random input performed ${r.rail.operations - opsBefore} flash operations`);
  const after = r.chip.cells;
  for (let i = 0; i < after.length; i++) if (after[i] !== flashBefore[i]) throw new Error(`flash changed at ${i}`);
  const savedAfter = encodeSettings(r.settings.saved);
  if (toHex(savedAfter) !== toHex(savedBefore)) throw new Error("saved settings changed");
  if (r.clock.pending > 2) throw new Error(`${r.clock.pending} timers pending`);
  return { lines, bytes, replies: r.console.stats.ok + r.console.stats.errors, escapes: r.console.parser.stats.escapes, maxHeld };
}

export function randomSuite(lines: number): Suite {
  return suite("AT console: seeded random input", (it) => {
    it(`${lines} random lines and raw bytes: no throw, bounded buffers, settings and flash untouched`, () => {
      const s = randomRun(lines, 0x5eed);
      assert.ok(s.replies > lines / 4, `replies ${s.replies}`);
      assert.ok(s.escapes > 0, "the escape happened");
      assert.ok(s.maxHeld <= 256 + 3, `held ${s.maxHeld}`);
    });
  });
}

export function allSuites(randomLines: number): Suite[] {
  return [tableSuite(), lockSuite(), lockTableSuite(), echoSuite(), timingSuite(), randomSuite(randomLines)];
}

task("at-table", () => runSuites([tableSuite(), lockSuite(), lockTableSuite(), echoSuite()]));
task("at-timing", () => runSuites([timingSuite()]));
task("at-random", () => runSuites([randomSuite(5000)]));
task("at-parse-cost", () => {
  // XS cost of the hot path: 1000 lines through parser and table (no flash writes).
  const r = makeRig();
  for (let i = 0; i < 1000; i++) r.console.receive(Uint8Array.from("AT+HEARTTM?\r".split("").map((c) => c.charCodeAt(0))));
  return { replies: r.console.stats.ok };
});
task("at-password-cost", () => {
  // XS cost of one AT+UNLOCK check (PBKDF2-HMAC-SHA256, PASSWORD_ITERATIONS).
  const salt = new Uint8Array(16).fill(1);
  return toHex(hashPassword("s3cret!", salt)).length;
});
serve();
