/**
 * The fleet simulator's I/O ledger: what "socket I/O is quiet" means, so that
 * virtual time advances only when the work due at the current instant is done
 * (tools/sim/fleet.ts, the discrete-event scheduler).
 *
 * Every message that some party in this process is owed is one entry; an
 * entry is settled when the message arrives, or when the connection it was
 * owed on closes. The simulator advances virtual time only when no entry is
 * outstanding (and the callbacks of the current event-loop turn have run).
 * What is owed, by whom:
 *
 *  | sent (seen on the device's socket)         | owed                                   | settled by                          |
 *  |---|---|---|
 *  | a TCP/TLS connect                          | the connect's outcome                  | onConnect or onClose                |
 *  | MQTT CONNECT / SUBSCRIBE / PINGREQ         | CONNACK / SUBACK / PINGRESP            | that packet, or the socket closing  |
 *  | MQTT PUBLISH with QoS 1                    | its PUBACK                             | that packet, or the socket closing  |
 *  | PUBLISH to `hb`, `chunk/req`, `status`     | serve taking it (serve in this process)| serve's trace `received`            |
 *  | (serve publishes to a device topic)        | the device receiving a PUBLISH         | an inbound PUBLISH, or the device's last MQTT session closing |
 *  | an HTTP request (its blank line)           | the whole response (Content-Length)    | its last body byte, or the socket closing |
 *  | a link drop (faults.ts)                    | the device hearing of it               | its onClose                         |
 *
 * Serve's publishes are owed only to a device with an MQTT session up
 * (CONNACK seen, socket open): the broker drops what it cannot deliver. The
 * accounting needs no clock and no timeout: it is the same on a fast and a
 * slow machine. A message that is owed and never comes (a broker that drops
 * it) would hold time still; after `stallMs` of real time with no entry
 * added or settled the ledger gives up on everything outstanding and counts a
 * stall — a run with stalls is not promised to repeat (the report shows them).
 */

export type Owed = "connect" | "connack" | "suback" | "puback" | "pingresp" | "serve" | "deliver" | "http" | "drop";

export const OWED_KINDS: readonly Owed[] = Object.freeze(["connect", "connack", "suback", "puback", "pingresp", "serve", "deliver", "http", "drop"]);

export class IoLedger {
  private count = 0;
  readonly byKind: Record<Owed, number> = { connect: 0, connack: 0, suback: 0, puback: 0, pingresp: 0, serve: 0, deliver: 0, http: 0, drop: 0 };
  /** Entries made over the run, and waits for quiet that had to wait. */
  entries = 0;
  waits = 0;
  /** Times the ledger gave up on owed messages (see the header). */
  stalls = 0;
  /** What was outstanding at each stall (the first few), for the report. */
  readonly stallDetail: string[] = [];
  private lastChange = 0;
  private wake: (() => void) | undefined;

  constructor(readonly stallMs = 30_000) {}

  get outstanding(): number {
    return this.count;
  }

  owe(kind: Owed, n = 1): void {
    if (n <= 0) return;
    this.count += n;
    this.byKind[kind] += n;
    this.entries += n;
    this.lastChange = performance.now();
  }

  /** Settle up to `n` entries of `kind` (fewer when fewer are owed: a message nobody waited for). */
  settle(kind: Owed, n = 1): void {
    const k = Math.min(n, this.byKind[kind]);
    if (k <= 0) return;
    this.byKind[kind] -= k;
    this.count -= k;
    this.lastChange = performance.now();
    if (this.count === 0 && this.wake) {
      const w = this.wake;
      this.wake = undefined;
      // After the callback that settled it has run (it may owe more before it returns).
      queueMicrotask(w);
    }
  }

  /**
   * Resolves once nothing is owed, checked after the current callbacks; or,
   * when nothing was added or settled for `stallMs` real ms, gives up on
   * everything owed (a stall) and resolves.
   */
  async quiet(): Promise<void> {
    if (this.count === 0) return;
    this.waits++;
    while (this.count > 0) {
      const idle = performance.now() - this.lastChange;
      if (idle >= this.stallMs) {
        this.stalls++;
        if (this.stallDetail.length < 10) this.stallDetail.push(OWED_KINDS.filter((k) => this.byKind[k] > 0).map((k) => `${k} ${this.byKind[k]}`).join(", "));
        for (const k of OWED_KINDS) this.byKind[k] = 0;
        this.count = 0;
        this.onStall?.();
        return;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.wake = undefined;
          resolve();
        }, Math.max(10, this.stallMs - idle));
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** Called after a stall (the taps drop their own counts). */
  onStall: (() => void) | undefined;
}

/**
 * MQTT packets in a byte stream (one direction of one connection): the type,
 * the flags and, for a PUBLISH, the topic. Buffers one packet at most.
 */
export class PacketTap {
  private buf = new Uint8Array(0);

  constructor(private readonly onPacket: (type: number, flags: number, topic: string | undefined) => void) {}

  push(data: Uint8Array): void {
    let b = data;
    if (this.buf.length > 0) {
      b = new Uint8Array(this.buf.length + data.length);
      b.set(this.buf);
      b.set(data, this.buf.length);
    }
    let at = 0;
    for (;;) {
      if (b.length - at < 2) break;
      let remaining = 0;
      let mult = 1;
      let i = at + 1;
      let complete = false;
      for (let n = 0; n < 4 && i < b.length; n++, i++) {
        remaining += (b[i] & 0x7f) * mult;
        mult *= 128;
        if ((b[i] & 0x80) === 0) {
          complete = true;
          i++;
          break;
        }
      }
      if (!complete || b.length - i < remaining) break;
      const type = b[at] >> 4;
      const flags = b[at] & 0x0f;
      let topic: string | undefined;
      if (type === 3 && remaining >= 2) {
        const len = (b[i] << 8) | b[i + 1];
        topic = String.fromCharCode(...b.subarray(i + 2, i + 2 + Math.min(len, remaining - 2)));
      }
      at = i + remaining;
      this.onPacket(type, flags, topic);
    }
    this.buf = at >= b.length ? new Uint8Array(0) : b.slice(at);
  }
}

/** HTTP/1.1 responses in a byte stream: calls `onResponse` after each complete one (Content-Length bodies). */
export class HttpResponseTap {
  private head = "";
  private body = -1;

  constructor(private readonly onResponse: () => void) {}

  push(data: Uint8Array): void {
    let i = 0;
    while (i < data.length) {
      if (this.body < 0) {
        // header bytes (ASCII) until the blank line
        const c = data[i++];
        this.head += String.fromCharCode(c);
        if (this.head.endsWith("\r\n\r\n")) {
          const m = /\r\ncontent-length:\s*(\d+)/i.exec(this.head);
          const status = /^HTTP\/1\.\d (\d{3})/.exec(this.head);
          const noBody = status !== null && (status[1] === "204" || status[1] === "304" || status[1].startsWith("1"));
          this.body = m && !noBody ? Number(m[1]) : 0;
          this.head = "";
          if (this.body === 0) {
            this.body = -1;
            this.onResponse();
          }
        }
      } else {
        const n = Math.min(this.body, data.length - i);
        this.body -= n;
        i += n;
        if (this.body === 0) {
          this.body = -1;
          this.onResponse();
        }
      }
    }
  }
}

/** Blank lines (the end of an HTTP request head: GET and HEAD carry no body) in a byte stream. */
export class HttpRequestTap {
  private tail = "";

  constructor(private readonly onRequest: () => void) {}

  push(data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) {
      this.tail = (this.tail + String.fromCharCode(data[i])).slice(-4);
      if (this.tail === "\r\n\r\n") {
        this.tail = "";
        this.onRequest();
      }
    }
  }
}
