/**
 * The serial console's byte-level engine, fed one byte at a time with the
 * time it arrived. Two modes, as on USR devices:
 *
 * - transparent (data): bytes go to the application (`sink.data`), except the
 *   escape sequence. Escape: at least `guardMs` of silence, then `+++` with
 *   at most `interCharMs` between the pluses, then `burstGapMs` of silence; the
 *   device answers `a`; the operator must send `a` within `confirmMs`; the
 *   device answers `+ok` and enters command mode. Anything else on the way
 *   (a late plus, a byte inside the burst gap such as the `a` of `+++a` sent
 *   as one burst, a wrong confirmation, a timeout) turns the held pluses back
 *   into data, in order.
 * - command: a line editor. CR or LF ends a line (CRLF gives one line: the
 *   empty one is ignored); BS (0x08) and DEL (0x7F) delete; other control
 *   bytes are ignored; a line longer than `maxLine` is reported as overflowed
 *   (the caller answers "bad format"). Echo, when on, repeats typed bytes,
 *   with `*` for everything after a masked prefix (`AT+LOCK=`: passwords).
 *
 * Lifecycle: `feed(byte, now)` for every received byte; `tick(now)` when the
 * time of `nextDeadline()` has come (the console arms a timer for it). Never
 * throws for any input byte; every buffer is fixed at construction.
 */

/** Timing and size limits. */
export interface ParserOptions {
  /** Silence required before `+++`, ms. USR default: larger than the serial packing interval. */
  readonly guardMs: number;
  /** Most time between two pluses of `+++`, ms. */
  readonly interCharMs: number;
  /** Silence required after `+++` before the device answers `a`, ms: makes `+++a` in one burst data. */
  readonly burstGapMs: number;
  /** Time the operator has to send the confirming `a`, ms. */
  readonly confirmMs: number;
  /** Longest command line, bytes. */
  readonly maxLine: number;
  /** Upper-case line prefixes after which echo shows `*`. */
  readonly maskedPrefixes: readonly string[];
}

export const DEFAULT_PARSER_OPTIONS: ParserOptions = Object.freeze({
  guardMs: 200,
  interCharMs: 300,
  burstGapMs: 20,
  confirmMs: 3000,
  maxLine: 256,
  maskedPrefixes: Object.freeze(["AT+LOCK=", "AT+UNLOCK="]),
});

/** Where the parser's output goes. Callbacks must not call back into the parser. */
export interface ParserSink {
  /** Bytes for the operator: echo, the `a` and `+ok` of the escape handshake. */
  send(bytes: Uint8Array): void;
  /** A complete command line (Latin-1 text); `overflow` when it was longer than maxLine (text truncated). */
  line(text: string, overflow: boolean): void;
  /** A transparent-mode data byte for the application. */
  data(byte: number): void;
}

export type ParserMode = "data" | "command";

const PLUS = 0x2b;
const CR = 0x0d;
const LF = 0x0a;
const BS = 0x08;
const DEL = 0x7f;
const CONFIRM = 0x61; // 'a'
const ECHO_ERASE = Uint8Array.from([BS, 0x20, BS]);
const HANDSHAKE_A = Uint8Array.from([CONFIRM]);
const HANDSHAKE_OK = Uint8Array.from([0x2b, 0x6f, 0x6b]); // "+ok"
const STAR = 0x2a;

const enum State {
  Data,
  Plus,
  Quiet,
  WaitA,
  Command,
}

export class AtParser {
  readonly options: ParserOptions;
  /** Echo typed bytes in command mode (AT+E). */
  echo = true;
  private state: State;
  private lastRx = -Infinity;
  private plusCount = 0;
  private plusTime = 0;
  private deadline = 0;
  private readonly buf: Uint8Array;
  private len = 0;
  private overflow = false;
  private readonly masks: Uint8Array[];
  /** Statistics for tests: lines delivered, data bytes passed through. */
  readonly stats = { lines: 0, dataBytes: 0, escapes: 0 };

  /**
   * @throws RangeError for options out of range (maxLine 8..4096, times >= 0).
   */
  constructor(private readonly sink: ParserSink, options: Partial<ParserOptions> = {}, startMode: ParserMode = "data") {
    const o = { ...DEFAULT_PARSER_OPTIONS, ...options };
    for (const k of ["guardMs", "interCharMs", "burstGapMs", "confirmMs"] as const) {
      if (!(Number.isInteger(o[k]) && o[k] >= 0)) throw new RangeError(`${k} must be a non-negative integer`);
    }
    if (!(Number.isInteger(o.maxLine) && o.maxLine >= 8 && o.maxLine <= 4096)) throw new RangeError("maxLine must be 8..4096");
    this.options = Object.freeze(o);
    this.buf = new Uint8Array(o.maxLine);
    this.masks = o.maskedPrefixes.map((p) => Uint8Array.from(p.split("").map((c) => c.charCodeAt(0) & 0x7f)));
    this.state = startMode === "command" ? State.Command : State.Data;
  }

  get mode(): ParserMode {
    return this.state === State.Command ? "command" : "data";
  }

  /** Bytes held right now (line buffer plus held pluses): never more than maxLine + 3. */
  get heldBytes(): number {
    return this.len + (this.state === State.Plus || this.state === State.Quiet || this.state === State.WaitA ? this.plusCount : 0);
  }

  /** Leave command mode (AT+ENTM); the next escape needs a fresh guard time. */
  enterData(now: number): void {
    this.state = State.Data;
    this.len = 0;
    this.overflow = false;
    this.lastRx = now;
  }

  /** Enter command mode directly (a target that starts in command mode). */
  enterCommand(): void {
    this.state = State.Command;
    this.len = 0;
    this.overflow = false;
  }

  /** When `tick` must next be called, or undefined. */
  nextDeadline(): number | undefined {
    switch (this.state) {
      case State.Plus:
        return this.plusTime + this.options.interCharMs + 1;
      case State.Quiet:
        return this.deadline;
      case State.WaitA:
        return this.deadline + 1;
      default:
        return undefined;
    }
  }

  /** Apply the timeouts due at `now`. */
  tick(now: number): void {
    // At most two transitions (Quiet → WaitA → Data): bounded.
    for (let i = 0; i < 2; i++) {
      if (this.state === State.Plus && now - this.plusTime > this.options.interCharMs) {
        this.releasePluses();
      } else if (this.state === State.Quiet && now >= this.deadline) {
        this.sink.send(HANDSHAKE_A);
        this.state = State.WaitA;
        this.deadline = this.deadline + this.options.confirmMs;
      } else if (this.state === State.WaitA && now > this.deadline) {
        this.releasePluses();
      } else return;
    }
  }

  /** Process one received byte (0..255) that arrived at `now` (ms, non-decreasing). */
  feed(byte: number, now: number): void {
    byte &= 0xff;
    this.tick(now);
    const gap = now - this.lastRx;
    this.lastRx = now;
    switch (this.state) {
      case State.Data:
        this.dataByte(byte, gap, now);
        return;
      case State.Plus:
        if (byte === PLUS && now - this.plusTime <= this.options.interCharMs) {
          this.plusCount++;
          this.plusTime = now;
          if (this.plusCount === 3) {
            this.state = State.Quiet;
            this.deadline = now + this.options.burstGapMs;
          }
          return;
        }
        this.releasePluses();
        this.dataByte(byte, gap, now);
        return;
      case State.Quiet:
        // A byte inside the burst gap: `+++` was data (`+++a` sent as one burst).
        this.releasePluses();
        this.dataByte(byte, gap, now);
        return;
      case State.WaitA:
        if (byte === CONFIRM) {
          this.sink.send(HANDSHAKE_OK);
          this.plusCount = 0;
          this.stats.escapes++;
          this.enterCommand();
          return;
        }
        this.releasePluses();
        this.dataByte(byte, gap, now);
        return;
      case State.Command:
        this.commandByte(byte);
        return;
    }
  }

  private dataByte(byte: number, gap: number, now: number): void {
    if (byte === PLUS && gap >= this.options.guardMs) {
      this.state = State.Plus;
      this.plusCount = 1;
      this.plusTime = now;
      return;
    }
    this.stats.dataBytes++;
    this.sink.data(byte);
  }

  private releasePluses(): void {
    const n = this.plusCount;
    this.plusCount = 0;
    this.state = State.Data;
    for (let i = 0; i < n; i++) {
      this.stats.dataBytes++;
      this.sink.data(PLUS);
    }
  }

  private commandByte(byte: number): void {
    if (byte === CR || byte === LF) {
      if (this.len === 0 && !this.overflow) return;
      let text = "";
      for (let i = 0; i < this.len; i++) text += String.fromCharCode(this.buf[i]);
      const overflow = this.overflow;
      this.len = 0;
      this.overflow = false;
      this.stats.lines++;
      this.sink.line(text, overflow);
      return;
    }
    if (byte === BS || byte === DEL) {
      if (this.overflow) return;
      if (this.len > 0) {
        this.len--;
        if (this.echo) this.sink.send(ECHO_ERASE);
      }
      return;
    }
    if (byte < 0x20) return;
    if (this.len >= this.buf.length) {
      this.overflow = true;
      return;
    }
    this.buf[this.len++] = byte;
    if (this.echo) this.sink.send(Uint8Array.of(this.masked() ? STAR : byte));
  }

  /** True when the byte just added follows a masked prefix. */
  private masked(): boolean {
    for (const m of this.masks) {
      if (this.len <= m.length) continue;
      let match = true;
      for (let i = 0; i < m.length && match; i++) {
        let c = this.buf[i];
        if (c >= 0x61 && c <= 0x7a) c -= 0x20;
        match = c === m[i];
      }
      if (match) return true;
    }
    return false;
  }
}
