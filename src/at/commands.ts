/**
 * The AT command table: one frozen entry per command, with the operators it
 * accepts, its argument grammar, its help line and its handler. The console
 * (./console.ts) checks the operator against `ops` before a handler runs
 * (`+ERR=-3`); handlers check arguments (`+ERR=-4`) and permissions (`+ERR=-5`).
 *
 * Settings commands edit the pending set (reply `+OK=pending; AT+S saves`);
 * `AT+S` saves it (`+OK=saved; AT+Z applies`); the running firmware keeps its
 * active set until `AT+Z` restarts it. The lock and its password take effect
 * and are saved at once.
 *
 * The lock is a property of the table: every entry declares `lockedOps`, the
 * operators it refuses while the console is locked (`+ERR=-5,357`, checked by
 * the console before the arguments). Everything that changes where the
 * device connects, what it trusts, when it updates, what it stores, or
 * restarts it is locked; only read-only queries (and AT+UNLOCK) stay open.
 */
import { Reason } from "../errors";
import { formatVersion } from "../image/format";
import { AuditEvent, type AuditLog } from "../store/audit";
import { isP256Point, keyId } from "../store/keyid";
import {
  checkPassword,
  CA_FINGERPRINT_LENGTH,
  CLEAR_GATE,
  hashPassword,
  HEARTBEAT_MAX_S,
  HEARTBEAT_MIN_S,
  isDeviceId,
  isHost,
  makeSalt,
  MAX_TRUSTED_KEYS,
  PASSWORD_MAX,
  PASSWORD_MIN,
  PASSWORD_UNLOCK_MIN,
  type Settings,
  type SettingsManager,
} from "../store/settings";
import { fromHex, toHex } from "../util/bytes";
import type { DeviceIdentity } from "../store/identity";
import { IDENTITY_COMMANDS } from "./identity";
import { fail, OK, okValue, splitArgs, type Operator, type Reply } from "./syntax";

/** What an update agent tells and does for the console. The agent implements it. */
export interface UpdateState {
  /** The agent's state name, upper case (IDLE, DOWNLOADING, …). */
  readonly state: string;
  /** Progress of the current step, 0..100. */
  readonly progress: number;
  /** Reason code of the last failure or refusal, 0 when none. */
  readonly lastReason: number;
}

export interface UpdateControl {
  state(): UpdateState;
  /** Ask the cloud for an offer now. Returns Reason.OK or why not (BUSY, NOT_IN_WINDOW, …). */
  checkNow(): number;
  /** Abort the update in progress. Returns Reason.OK or why not. */
  abort(): number;
  /** The agent's supervision bounds, as `name=value` pairs (AT+OTABOUNDS). */
  bounds?(): readonly (readonly [string, number])[];
}

/** What an agent offers that UpdateControl needs (the shape of src/agent's Agent). */
export interface AgentLike {
  status(): { readonly state: string; readonly progress: number; readonly lastReason: number };
  checkNow(): number;
  abort(): number;
  bounds?(): readonly (readonly [string, number])[];
}

/** Adapt an agent to the console's UpdateControl (state names upper case). */
export function updateControlOf(agent: AgentLike): UpdateControl {
  return Object.freeze({
    state(): UpdateState {
      const s = agent.status();
      return { state: s.state.toUpperCase(), progress: s.progress, lastReason: s.lastReason };
    },
    checkNow: () => agent.checkNow(),
    abort: () => agent.abort(),
    ...(agent.bounds ? { bounds: () => agent.bounds!() } : {}),
  });
}

export interface FirmwareInfo {
  /** e.g. "1.2.3+4" */
  readonly version: string;
  /** Build identification, e.g. a date or commit; [A-Za-z0-9._-]. */
  readonly build: string;
}

/** What handlers may use. Implemented by the Console. */
export interface CommandContext {
  readonly settings: SettingsManager;
  readonly audit: AuditLog;
  readonly update: UpdateControl | undefined;
  readonly firmware: FirmwareInfo;
  /** Echo of typed bytes (AT+E). */
  echo: boolean;
  /** Uptime, ms. */
  now(): number;
  /** Return to transparent mode after this reply (AT+ENTM). */
  leaveCommandMode(): void;
  /** Restart the device shortly after this reply (AT+Z). */
  restart(): void;
  /**
   * The end of the current unlock lock-out (uptime, ms). The attempt counter
   * itself is in the settings record (`settings.gate`), so it survives resets;
   * a boot in a lock-out starts a full lock-out window.
   */
  readonly unlockGate: { blockedUntil: number };
  /** The device identity (AT+CSR, AT+CERT); absent: those commands answer -5. */
  readonly identity?: DeviceIdentity;
}

export interface CommandSpec {
  /** Upper case; "" is the bare `AT`. */
  readonly name: string;
  readonly ops: readonly Operator[];
  /** The argument grammar shown by `=?` (empty for none). */
  readonly grammar: string;
  readonly help: string;
  /**
   * The operators refused while the console is locked (`+ERR=-5,357`): every
   * one that changes settings, trust, updates or storage. Empty: open (a
   * read-only command). Required, so a new command cannot forget it.
   */
  readonly lockedOps: readonly Operator[];
  readonly run: (ctx: CommandContext, op: Operator, args: string) => Reply;
}

export const PENDING = "pending; AT+S saves";
export const SAVED = "saved; AT+Z applies";
/** Unlock attempts before a lockout, and its length. */
export const UNLOCK_ATTEMPTS = 3;
export const UNLOCK_LOCKOUT_MS = 30_000;
/** Audit entries per `AT+LOG=` by default, and at most. */
export const LOG_DEFAULT = 8;
export const LOG_MAX = 16;

const PARAM_OPS: readonly Operator[] = Object.freeze(["exec", "query", "test", "set"]);
const ACTION_OPS: readonly Operator[] = Object.freeze(["exec", "test"]);
const READ_OPS: readonly Operator[] = Object.freeze(["exec", "query", "test"]);
const SET_ONLY_OPS: readonly Operator[] = Object.freeze(["test", "set"]);
/** Lock rules: open, the set operator only (a parameter's value stays readable), the action itself. */
const OPEN: readonly Operator[] = Object.freeze([]);
const LOCK_SET: readonly Operator[] = Object.freeze(["set"]);
const LOCK_EXEC: readonly Operator[] = Object.freeze(["exec"]);

function onOff(s: string): boolean | undefined {
  const u = s.toUpperCase();
  return u === "ON" ? true : u === "OFF" ? false : undefined;
}

function showOnOff(b: boolean): string {
  return b ? "ON" : "OFF";
}

/** A decimal integer in [min, max] without sign or leading junk. */
function intArg(s: string, min: number, max: number): number | undefined {
  if (!/^[0-9]{1,10}$/.test(s)) return undefined;
  const n = parseInt(s, 10);
  return n >= min && n <= max ? n : undefined;
}

function timeArg(s: string): number | undefined {
  const m = /^([0-9]{2}):([0-9]{2})$/.exec(s);
  if (!m) return undefined;
  const h = parseInt(m[1], 10);
  const min = parseInt(m[2], 10);
  return h < 24 && min < 60 ? h * 60 + min : undefined;
}

function showTime(minutes: number): string {
  const h = Math.floor(minutes / 60);
  const m = minutes % 60;
  return `${h < 10 ? "0" : ""}${h}:${m < 10 ? "0" : ""}${m}`;
}

function isPassword(s: string, min = PASSWORD_MIN): boolean {
  return s.length >= min && s.length <= PASSWORD_MAX && /^[\x21-\x7e]+$/.test(s);
}

/** Edit the pending set; a value the settings refuse is a bad parameter. */
function edit(ctx: CommandContext, patch: Partial<Settings>): Reply {
  try {
    ctx.settings.edit(patch);
  } catch (e) {
    if (e instanceof RangeError || e instanceof TypeError) return fail(-4);
    throw e;
  }
  return okValue(PENDING);
}

/**
 * A settings parameter: exec and query show the pending value, set parses
 * and edits the pending set. Setting is locked (it is a settings change).
 */
function param(
  name: string,
  grammar: string,
  help: string,
  show: (s: Settings, ctx: CommandContext) => string,
  parse: (args: string[], ctx: CommandContext) => Partial<Settings> | undefined,
): CommandSpec {
  return Object.freeze({
    name,
    ops: PARAM_OPS,
    grammar,
    help,
    lockedOps: LOCK_SET,
    run(ctx: CommandContext, op: Operator, args: string): Reply {
      if (op !== "set") return okValue(show(ctx.settings.pending, ctx));
      const patch = parse(splitArgs(args), ctx);
      if (!patch) return fail(-4);
      return edit(ctx, patch);
    },
  });
}

function idOf(point: Uint8Array): string {
  return toHex(keyId(point));
}

function auditNow(ctx: CommandContext, event: number, reason: number = Reason.OK): void {
  ctx.audit.append({ uptimeMs: Math.floor(ctx.now()), unixS: 0, event, reason });
}

const table: CommandSpec[] = [
  {
    name: "",
    ops: Object.freeze(["exec"]) as readonly Operator[],
    grammar: "",
    help: "attention: +OK",
    lockedOps: OPEN,
    run: () => OK,
  },
  {
    name: "H",
    ops: ACTION_OPS,
    grammar: "",
    help: "list the commands",
    lockedOps: OPEN,
    run: () => OK, // filled by the console, which knows the table
  },
  {
    name: "E",
    ops: PARAM_OPS,
    grammar: "<ON|OFF>",
    help: "echo typed characters (immediate, not saved)",
    lockedOps: OPEN,
    run(ctx, op, args) {
      if (op !== "set") return okValue(showOnOff(ctx.echo));
      const v = onOff(args);
      if (v === undefined) return fail(-4);
      ctx.echo = v;
      return OK;
    },
  },
  {
    name: "ENTM",
    ops: ACTION_OPS,
    grammar: "",
    help: "leave command mode (back to transparent mode)",
    lockedOps: OPEN,
    run(ctx) {
      ctx.leaveCommandMode();
      return OK;
    },
  },
  {
    name: "VER",
    ops: READ_OPS,
    grammar: "",
    help: "firmware version and build",
    lockedOps: OPEN,
    run: (ctx) => okValue(`${ctx.firmware.version},${ctx.firmware.build}`),
  },
  param(
    "DEVID",
    "<1..32 of A-Z a-z 0-9 . _ ->",
    "device id",
    (s) => s.deviceId,
    (a) => (a.length === 1 && isDeviceId(a[0]) ? { deviceId: a[0] } : undefined),
  ),
  param(
    "OTASVR",
    "<host>,<1..65535>",
    "update server (MQTT broker) host and port",
    (s) => `${s.serverHost},${s.serverPort}`,
    (a) => {
      const port = a.length === 2 ? intArg(a[1], 1, 65535) : undefined;
      return port !== undefined && isHost(a[0]) ? { serverHost: a[0], serverPort: port } : undefined;
    },
  ),
  param(
    "OTATLS",
    "<ON|OFF>[,<CA SHA-256: 64 hex>|NONE]",
    "TLS to the server and the pinned CA certificate fingerprint",
    (s) => `${showOnOff(s.tls)},${s.caFingerprint ? toHex(s.caFingerprint) : "NONE"}`,
    (a) => {
      const tls = a.length >= 1 && a.length <= 2 ? onOff(a[0]) : undefined;
      if (tls === undefined) return undefined;
      if (a.length === 1) return { tls };
      if (a[1].toUpperCase() === "NONE") return { tls, caFingerprint: undefined };
      const fp = a[1].length === 2 * CA_FINGERPRINT_LENGTH ? fromHex(a[1]) : undefined;
      return fp ? { tls, caFingerprint: fp } : undefined;
    },
  ),
  param(
    "HEARTEN",
    "<ON|OFF>",
    "heartbeat on or off",
    (s) => showOnOff(s.heartbeatEnabled),
    (a) => {
      const v = a.length === 1 ? onOff(a[0]) : undefined;
      return v === undefined ? undefined : { heartbeatEnabled: v };
    },
  ),
  param(
    "HEARTTM",
    `<${HEARTBEAT_MIN_S}..${HEARTBEAT_MAX_S}>`,
    "heartbeat interval, seconds",
    (s) => String(s.heartbeatIntervalS),
    (a) => {
      const v = a.length === 1 ? intArg(a[0], HEARTBEAT_MIN_S, HEARTBEAT_MAX_S) : undefined;
      return v === undefined ? undefined : { heartbeatIntervalS: v };
    },
  ),
  {
    name: "KEYADD",
    ops: SET_ONLY_OPS,
    grammar: "<P-256 public key: 130 hex, uncompressed 04...>",
    help: "trust a release-signing key; replies its key id",
    lockedOps: LOCK_SET,
    run(ctx, _op, args) {
      const point = args.length === 130 ? fromHex(args) : undefined;
      if (!point || !isP256Point(point)) return fail(-4);
      const id = idOf(point);
      const keys = ctx.settings.pending.trustedKeys;
      if (keys.some((k) => idOf(k) === id)) return okValue(`${id} ${PENDING}`);
      if (keys.length >= MAX_TRUSTED_KEYS) return fail(-5, Reason.STORE_FULL);
      const r = edit(ctx, { trustedKeys: [...keys, point] });
      return r.ok ? okValue(`${id} ${PENDING}`) : r;
    },
  },
  {
    name: "KEYLIST",
    ops: READ_OPS,
    grammar: "",
    help: "ids (SHA-256 of the key's DER) of the trusted keys",
    lockedOps: OPEN,
    run(ctx) {
      const keys = ctx.settings.pending.trustedKeys;
      return okValue(keys.length === 0 ? "NONE" : keys.map(idOf).join(","));
    },
  },
  {
    name: "KEYDEL",
    ops: SET_ONLY_OPS,
    grammar: "<key id: 8..64 hex, a unique prefix>",
    help: "stop trusting a key",
    lockedOps: LOCK_SET,
    run(ctx, _op, args) {
      if (!/^[0-9a-fA-F]{8,64}$/.test(args)) return fail(-4);
      const prefix = args.toLowerCase();
      const keys = ctx.settings.pending.trustedKeys;
      const matches = keys.filter((k) => idOf(k).startsWith(prefix));
      if (matches.length !== 1) return fail(-4);
      return edit(ctx, { trustedKeys: keys.filter((k) => k !== matches[0]) });
    },
  },
  {
    name: "LOCK",
    ops: PARAM_OPS,
    grammar: `<password: ${PASSWORD_MIN}..${PASSWORD_MAX} printable, no spaces>`,
    help: "provisioning lock: set the password and lock (saved at once)",
    lockedOps: LOCK_SET,
    run(ctx, op, args) {
      if (op !== "set") return okValue(ctx.settings.saved.locked ? "LOCKED" : "UNLOCKED");
      if (!isPassword(args)) return fail(-4);
      const salt = makeSalt(ctx.settings.saved.deviceId, ctx.now(), ctx.audit.count);
      ctx.settings.saveNow({ locked: true, password: { salt, hash: hashPassword(args, salt) } }, CLEAR_GATE);
      auditNow(ctx, AuditEvent.LOCKED);
      return okValue("LOCKED");
    },
  },
  {
    name: "UNLOCK",
    ops: SET_ONLY_OPS,
    grammar: "<password>",
    help: "lift the provisioning lock (saved at once)",
    lockedOps: OPEN,
    run(ctx, _op, args) {
      if (!isPassword(args, PASSWORD_UNLOCK_MIN)) return fail(-4);
      const m = ctx.settings;
      const saved = m.saved;
      if (!saved.locked || !saved.password) return okValue("UNLOCKED");
      const now = ctx.now();
      if (now < ctx.unlockGate.blockedUntil) return fail(-5, Reason.AT_RATE_LIMITED);
      // Count the attempt in flash before the password is checked: a reset or
      // power cut during the check cannot give a free guess. A lock-out whose
      // window has passed starts a fresh count.
      const before = m.gate;
      const failures = (before.lockedOut ? 0 : before.failures) + 1;
      const lockedOut = failures >= UNLOCK_ATTEMPTS;
      m.saveGate({ failures, lockedOut });
      if (!checkPassword(args, saved.password)) {
        if (lockedOut) ctx.unlockGate.blockedUntil = now + UNLOCK_LOCKOUT_MS;
        auditNow(ctx, AuditEvent.UNLOCK_REFUSED, Reason.AT_BAD_PASSWORD);
        return fail(-5, Reason.AT_BAD_PASSWORD);
      }
      m.saveNow({ locked: false }, CLEAR_GATE);
      ctx.unlockGate.blockedUntil = 0;
      auditNow(ctx, AuditEvent.UNLOCKED);
      return okValue("UNLOCKED");
    },
  },
  {
    name: "OTASTATE",
    ops: READ_OPS,
    grammar: "",
    help: "update state, progress %, last reason code",
    lockedOps: OPEN,
    run(ctx) {
      if (!ctx.update) return okValue("NONE,0,0");
      const s = ctx.update.state();
      return okValue(`${s.state},${s.progress},${s.lastReason}`);
    },
  },
  {
    name: "OTABOUNDS",
    ops: READ_OPS,
    grammar: "",
    help: "supervision bounds: watchdog, deadlines (ms), hash slice (bytes)",
    lockedOps: OPEN,
    run(ctx) {
      const b = ctx.update?.bounds?.();
      if (!b) return okValue("NONE");
      return okValue(b.map(([k, v]) => `${k}=${v}`).join(","));
    },
  },
  {
    name: "OTACHECK",
    ops: ACTION_OPS,
    grammar: "",
    help: "ask the server for an update now",
    lockedOps: LOCK_EXEC,
    run(ctx) {
      if (!ctx.update) return fail(-5, Reason.AT_NOT_PERMITTED);
      const r = ctx.update.checkNow();
      return r === Reason.OK ? OK : fail(-5, r);
    },
  },
  {
    name: "OTAABORT",
    ops: ACTION_OPS,
    grammar: "",
    help: "abort the update in progress",
    lockedOps: LOCK_EXEC,
    run(ctx) {
      if (!ctx.update) return fail(-5, Reason.AT_NOT_PERMITTED);
      const r = ctx.update.abort();
      return r === Reason.OK ? OK : fail(-5, r);
    },
  },
  param(
    "MINVOLT",
    "<0..65535>",
    "minimum supply voltage for an install, mV (0: no check)",
    (s) => String(s.minSupplyMv),
    (a) => {
      const v = a.length === 1 ? intArg(a[0], 0, 65535) : undefined;
      return v === undefined ? undefined : { minSupplyMv: v };
    },
  ),
  param(
    "OTAWIN",
    "<ALWAYS>|<HH:MM>,<HH:MM>",
    "maintenance window for installs (device time; may cross midnight)",
    (s) => (s.window.always ? "ALWAYS" : `${showTime(s.window.startMin)},${showTime(s.window.endMin)}`),
    (a) => {
      if (a.length === 1 && a[0].toUpperCase() === "ALWAYS") return { window: { always: true, startMin: 0, endMin: 0 } };
      if (a.length !== 2) return undefined;
      const start = timeArg(a[0]);
      const end = timeArg(a[1]);
      if (start === undefined || end === undefined || start === end) return undefined;
      return { window: { always: false, startMin: start, endMin: end } };
    },
  ),
  {
    name: "LOG",
    ops: PARAM_OPS,
    grammar: `<from index>[,<1..${LOG_MAX}>]`,
    help: "audit log: count,first,capacity; =from,n lists entries",
    lockedOps: OPEN,
    run(ctx, op, args) {
      const log = ctx.audit;
      if (op !== "set") return okValue(`${log.count},${log.first},${log.capacity}`);
      const a = splitArgs(args);
      if (a.length > 2) return fail(-4);
      const from = intArg(a[0], 0, 0xffffffff);
      const n = a.length === 2 ? intArg(a[1], 1, LOG_MAX) : LOG_DEFAULT;
      if (from === undefined || n === undefined) return fail(-4);
      const lines = log
        .read(from, n)
        .map((e) => `+LOG=${e.seq},${e.uptimeMs},${e.unixS},${e.event},${formatVersion(e.from)},${formatVersion(e.to)},${e.reason}`);
      return okValue(String(lines.length), lines);
    },
  },
  ...IDENTITY_COMMANDS,
  {
    name: "S",
    ops: ACTION_OPS,
    grammar: "",
    help: "save the pending settings (active after AT+Z)",
    lockedOps: LOCK_EXEC,
    run(ctx) {
      const m = ctx.settings;
      if (!m.dirty) return okValue("unchanged");
      const before = m.saved.trustedKeys.map(idOf);
      const after = m.pending.trustedKeys.map(idOf);
      m.save();
      auditNow(ctx, AuditEvent.SETTINGS_SAVED);
      for (const id of after) if (before.indexOf(id) < 0) auditNow(ctx, AuditEvent.KEY_ADDED);
      for (const id of before) if (after.indexOf(id) < 0) auditNow(ctx, AuditEvent.KEY_REMOVED);
      return okValue(SAVED);
    },
  },
  {
    name: "Z",
    ops: ACTION_OPS,
    grammar: "",
    help: "restart (unsaved changes are dropped)",
    lockedOps: LOCK_EXEC,
    run(ctx) {
      const dropped = ctx.settings.dirty;
      auditNow(ctx, AuditEvent.RESTART);
      ctx.restart();
      return okValue(dropped ? "restarting; unsaved changes dropped" : "restarting");
    },
  },
  {
    name: "RELD",
    ops: ACTION_OPS,
    grammar: "",
    help: "factory defaults (saved; active after AT+Z); refused while locked",
    lockedOps: LOCK_EXEC,
    run(ctx) {
      ctx.settings.factoryReset();
      auditNow(ctx, AuditEvent.FACTORY_RESET);
      return okValue(SAVED.replace("saved", "defaults saved"));
    },
  },
];

/** The command table, frozen, in help order. */
export const COMMANDS: readonly CommandSpec[] = Object.freeze(table.map((c) => Object.freeze(c)));

const byName: { [name: string]: CommandSpec } = {};
for (const c of COMMANDS) byName[c.name] = c;
Object.freeze(byName);

/** The entry for an upper-case name, or undefined. */
export function findCommand(name: string): CommandSpec | undefined {
  return Object.prototype.hasOwnProperty.call(byName, name) ? byName[name] : undefined;
}

/** The AT+H listing: one line per command. */
export function helpLines(): string[] {
  const lines: string[] = [];
  for (const c of COMMANDS) {
    if (c.name === "") continue;
    lines.push(`AT+${c.name}${c.grammar ? "=" + c.grammar : ""}  ${c.help}`);
  }
  return lines;
}
