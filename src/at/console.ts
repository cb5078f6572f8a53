/**
 * The serial AT console: the HAL Serial, the byte parser (./parser.ts), the
 * command table (./commands.ts) and the settings, audit log and update
 * control it acts on. Installs itself as the Serial's receive handler.
 *
 * Bounds: the parser's buffers are fixed; a reply is at most
 * MAX_REPLY bytes (16 log lines or the help listing), written in
 * chunks of at most 1024 bytes (the Serial HAL's limit); one timer at a time.
 */
import type { Clock, Serial } from "../../hal/types";
import { isOtaError, Reason } from "../errors";
import type { AuditLog } from "../store/audit";
import type { DeviceIdentity } from "../store/identity";
import type { SettingsManager } from "../store/settings";
import { findCommand, helpLines, UNLOCK_LOCKOUT_MS, type CommandContext, type FirmwareInfo, type UpdateControl } from "./commands";
import { AtParser, type ParserMode, type ParserOptions } from "./parser";
import { fail, okValue, parseCommandLine, renderReply, type Reply } from "./syntax";

export interface ConsoleDeps {
  readonly serial: Serial;
  readonly clock: Clock;
  /** Restart the device (System.reboot); called from a timer after the AT+Z reply is sent. */
  readonly reboot: () => void;
  readonly settings: SettingsManager;
  readonly audit: AuditLog;
  readonly update?: UpdateControl;
  readonly firmware: FirmwareInfo;
  /** The device identity store (AT+CSR, AT+CERT). */
  readonly identity?: DeviceIdentity;
}

export interface ConsoleOptions {
  readonly parser?: Partial<ParserOptions>;
  /** Start in command mode instead of transparent mode (USR devices start transparent). */
  readonly startMode?: ParserMode;
  /** Delay between the AT+Z reply and the restart, ms (lets the UART drain). */
  readonly restartDelayMs?: number;
  /** Transparent-mode data bytes go here (the application); dropped when absent. */
  readonly onData?: (byte: number) => void;
}

/** Largest reply, bytes. */
export const MAX_REPLY = 4096;
const SERIAL_CHUNK = 1024;

function latin1(s: string): Uint8Array {
  const n = Math.min(s.length, MAX_REPLY);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = s.charCodeAt(i) & 0xff;
  return out;
}

export class Console implements CommandContext {
  readonly parser: AtParser;
  readonly settings: SettingsManager;
  readonly audit: AuditLog;
  update: UpdateControl | undefined;
  readonly firmware: FirmwareInfo;
  readonly identity: DeviceIdentity | undefined;
  readonly unlockGate = { blockedUntil: 0 };
  /** Replies sent, by outcome, for tests. */
  readonly stats = { ok: 0, errors: 0 };
  private timer: number | undefined;
  private timerDue: number | undefined;
  private leaveAfterReply = false;
  private restartTimer: number | undefined;
  private readonly restartDelayMs: number;

  constructor(private readonly deps: ConsoleDeps, options: ConsoleOptions = {}) {
    this.settings = deps.settings;
    this.audit = deps.audit;
    this.update = deps.update;
    this.firmware = deps.firmware;
    this.identity = deps.identity;
    this.restartDelayMs = options.restartDelayMs ?? 100;
    // A boot during an unlock lock-out (the saved gate says so) starts a full
    // lock-out window: resets never shorten it.
    if (deps.settings.gate.lockedOut) this.unlockGate.blockedUntil = deps.clock.now() + UNLOCK_LOCKOUT_MS;
    const onData = options.onData;
    this.parser = new AtParser(
      {
        send: (bytes) => deps.serial.write(bytes),
        line: (text, overflow) => this.onLine(text, overflow),
        data: (byte) => onData?.(byte),
      },
      options.parser,
      options.startMode ?? "data",
    );
    deps.serial.onReceive((data) => this.receive(data));
  }

  /** Attach (or replace) the update agent's control after construction. */
  attachUpdate(update: UpdateControl | undefined): void {
    this.update = update;
  }

  get echo(): boolean {
    return this.parser.echo;
  }

  set echo(on: boolean) {
    this.parser.echo = on;
  }

  now(): number {
    return this.deps.clock.now();
  }

  leaveCommandMode(): void {
    this.leaveAfterReply = true;
  }

  restart(): void {
    if (this.restartTimer !== undefined) return;
    this.restartTimer = this.deps.clock.setTimer(() => this.deps.reboot(), this.restartDelayMs);
  }

  /** Bytes from the serial port. */
  receive(data: Uint8Array): void {
    const now = this.deps.clock.now();
    for (let i = 0; i < data.length; i++) this.parser.feed(data[i], now);
    this.armTimer();
  }

  /**
   * Run one command line and return its reply (without sending it).
   * Exceptions other than OtaError (a power cut, a reset) propagate.
   */
  execute(text: string, overflow = false): Reply {
    if (overflow) return fail(-1);
    const line = parseCommandLine(text);
    if (!line) return fail(-1);
    const cmd = findCommand(line.name);
    if (!cmd) return fail(-2);
    if (cmd.ops.indexOf(line.op) < 0) return fail(-3);
    if (line.op === "test") return okValue(cmd.grammar ? `${cmd.grammar} ${cmd.help}` : cmd.help);
    if (cmd.name === "H") return { ok: true, lines: helpLines() };
    // The lock, from the table: before the arguments are looked at.
    if (this.settings.saved.locked && cmd.lockedOps.indexOf(line.op) >= 0) return fail(-5, Reason.AT_LOCKED);
    return cmd.run(this, line.op, line.args);
  }

  private onLine(text: string, overflow: boolean): void {
    let reply: Reply;
    try {
      reply = this.execute(text, overflow);
    } catch (e) {
      // A flash or store failure while saving: not permitted now, with its reason.
      if (!isOtaError(e)) throw e;
      reply = fail(-5, e.code);
    }
    if (reply.ok) this.stats.ok++;
    else this.stats.errors++;
    this.send(renderReply(reply));
    if (this.leaveAfterReply) {
      this.leaveAfterReply = false;
      this.parser.enterData(this.deps.clock.now());
    }
  }

  private send(text: string): void {
    const bytes = latin1(text);
    for (let o = 0; o < bytes.length; o += SERIAL_CHUNK) this.deps.serial.write(bytes.subarray(o, Math.min(o + SERIAL_CHUNK, bytes.length)));
  }

  private armTimer(): void {
    const due = this.parser.nextDeadline();
    if (due === this.timerDue) return;
    if (this.timer !== undefined) this.deps.clock.clearTimer(this.timer);
    this.timer = undefined;
    this.timerDue = due;
    if (due === undefined) return;
    this.timer = this.deps.clock.setTimer(() => {
      this.timer = undefined;
      this.timerDue = undefined;
      this.parser.tick(this.deps.clock.now());
      this.armTimer();
    }, Math.max(0, due - this.deps.clock.now()));
  }
}
