/**
 * The fleet simulator's fault plan (`--faults powercut=0.2,linkdrop=0.2`) and
 * the per-device network wrapper that counts bytes and drops links.
 *
 * A share of the devices, drawn with the run's seed, is hit by each kind of
 * fault; the faults are armed when the device starts downloading (so they
 * land inside the update):
 *  - powercut: `rail.armCut(n, mode)` at the n-th mutating flash operation
 *    from there (n uniform in 1..cutWindow, clean or torn at random);
 *  - linkdrop: 1..3 drops of every connection the device has, each when the
 *    bytes it received since the download started pass a random threshold
 *    (uniform up to 1.2 × the payload); the agent sees SOCKET_CLOSED.
 */
import type { Network, Socket, SocketHandlers, SocketOptions } from "../../hal/types";
import { Prng } from "../../hal/mock/prng";
import { Reason } from "../../src/errors";
import { HttpRequestTap, HttpResponseTap, PacketTap, type IoLedger, type Owed } from "./ledger";

export interface FaultPlan {
  /** Share of devices hit by a power cut, 0..1. */
  readonly powercut: number;
  /** Share of devices whose links are dropped, 0..1. */
  readonly linkdrop: number;
}

export const NO_FAULTS: FaultPlan = Object.freeze({ powercut: 0, linkdrop: 0 });

/**
 * Parse `powercut=0.2,linkdrop=0.1` (shares 0..1; either may be left out; "" or "none" = no faults).
 * @throws RangeError naming the bad part.
 */
export function parseFaultPlan(text: string): FaultPlan {
  const plan = { powercut: 0, linkdrop: 0 };
  if (text.trim() === "" || text.trim() === "none") return plan;
  for (const part of text.split(",")) {
    const m = /^\s*(powercut|linkdrop)\s*=\s*(\d+(?:\.\d+)?)\s*$/.exec(part);
    if (!m) throw new RangeError(`fault plan: "${part}" is not powercut=<share> or linkdrop=<share>`);
    const share = Number(m[2]);
    if (!(share >= 0 && share <= 1)) throw new RangeError(`fault plan: ${m[1]} share must be 0..1, got ${m[2]}`);
    plan[m[1] as keyof FaultPlan] = share;
  }
  return plan;
}

/** Which devices each fault hits: round(share × N) devices per kind, drawn independently with the seed. */
export function chooseVictims(plan: FaultPlan, devices: number, seed: number): { powercut: Set<number>; linkdrop: Set<number> } {
  const prng = new Prng(seed * 2654435761 + 17);
  const draw = (share: number) => {
    const order = Array.from({ length: devices }, (_, i) => i);
    for (let i = order.length - 1; i > 0; i--) {
      const j = prng.below(i + 1);
      [order[i], order[j]] = [order[j], order[i]];
    }
    return new Set(order.slice(0, Math.round(share * devices)));
  };
  return { powercut: draw(plan.powercut), linkdrop: draw(plan.linkdrop) };
}

/** The I/O accounting a FleetNetwork takes part in (tools/sim/ledger.ts). */
export interface FleetIo {
  readonly ledger: IoLedger;
  /** Connections to this port speak MQTT; any other is HTTP (the Range download path). */
  readonly mqttPort: number;
  /** serve runs in this process: the device's messages to it are owed until its trace says it took them. */
  readonly serveHere: boolean;
}

/** Device → cloud topics serve takes (and traces). */
const SERVED = /\/(hb|chunk\/req|status)$/;

type SocketOwed = "connect" | "connack" | "suback" | "puback" | "pingresp" | "http";

interface Entry {
  socket: Socket;
  handlers: SocketHandlers;
  closed: boolean;
  /** CONNACK seen on it: an MQTT session is up. */
  session: boolean;
  owed: Record<SocketOwed, number>;
}

/**
 * One device's view of the shared host network: counts the bytes it sends
 * and receives, and can drop every open connection (the peer sees the TCP
 * connection end; the device sees onClose(SOCKET_CLOSED), as when a cellular
 * link dies). With a FleetIo it also keeps the ledger of what the device is
 * owed on its connections (tools/sim/ledger.ts).
 */
export class FleetNetwork implements Network {
  bytesSent = 0;
  bytesReceived = 0;
  connections = 0;
  drops = 0;
  /** Drop every connection when bytesReceived passes each of these (ascending; consumed). */
  dropAt: number[] = [];
  private readonly open = new Set<Entry>();
  /** MQTT sessions up. */
  private sessions = 0;
  /** Messages serve published to this device, not yet received. */
  private deliveries = 0;
  /** Messages this device sent serve, not yet taken by it. */
  private toServe = 0;

  constructor(
    private readonly inner: Network,
    private readonly io?: FleetIo,
  ) {}

  private owe(e: Entry, kind: SocketOwed): void {
    e.owed[kind]++;
    this.io?.ledger.owe(kind);
  }

  private settle(e: Entry, kind: SocketOwed): void {
    if (e.owed[kind] === 0) return;
    e.owed[kind]--;
    this.io?.ledger.settle(kind);
  }

  /** The connection is gone: nothing more comes on it. */
  private release(e: Entry): void {
    for (const k of Object.keys(e.owed) as SocketOwed[]) {
      this.io?.ledger.settle(k as Owed, e.owed[k]);
      e.owed[k] = 0;
    }
    if (e.session) {
      e.session = false;
      this.sessions--;
      if (this.sessions === 0) {
        this.io?.ledger.settle("deliver", this.deliveries);
        this.deliveries = 0;
      }
    }
  }

  /** serve published to this device: owed when a session is up (else the broker drops it). */
  servePublished(): void {
    if (!this.io || this.sessions === 0) return;
    this.deliveries++;
    this.io.ledger.owe("deliver");
  }

  /** serve took a message this device sent. */
  serveTook(): void {
    if (this.toServe === 0) return;
    this.toServe--;
    this.io?.ledger.settle("serve");
  }

  /** The ledger gave up (a stall): forget what this device was owed. */
  forgetOwed(): void {
    this.deliveries = 0;
    this.toServe = 0;
    for (const e of this.open) for (const k of Object.keys(e.owed) as SocketOwed[]) e.owed[k] = 0;
  }

  connect(options: SocketOptions, handlers: SocketHandlers): Socket {
    const e: Entry = { socket: undefined as unknown as Socket, handlers, closed: false, session: false, owed: { connect: 0, connack: 0, suback: 0, puback: 0, pingresp: 0, http: 0 } };
    this.connections++;
    const io = this.io;
    let out: { push(d: Uint8Array): void } | undefined;
    let into: { push(d: Uint8Array): void } | undefined;
    if (io) {
      this.owe(e, "connect");
      if (options.port === io.mqttPort) {
        out = new PacketTap((type, flags, topic) => {
          if (type === 1) this.owe(e, "connack");
          else if (type === 8) this.owe(e, "suback");
          else if (type === 12) this.owe(e, "pingresp");
          else if (type === 3) {
            if (((flags >> 1) & 3) === 1) this.owe(e, "puback");
            if (io.serveHere && topic !== undefined && SERVED.test(topic)) {
              this.toServe++;
              io.ledger.owe("serve");
            }
          }
        });
        into = new PacketTap((type) => {
          if (type === 2) {
            this.settle(e, "connack");
            if (!e.session && !e.closed) {
              e.session = true;
              this.sessions++;
            }
          } else if (type === 9) this.settle(e, "suback");
          else if (type === 13) this.settle(e, "pingresp");
          else if (type === 4) this.settle(e, "puback");
          else if (type === 3 && this.deliveries > 0) {
            this.deliveries--;
            io.ledger.settle("deliver");
          }
        });
      } else {
        out = new HttpRequestTap(() => this.owe(e, "http"));
        into = new HttpResponseTap(() => this.settle(e, "http"));
      }
    }
    e.socket = this.inner.connect(options, {
      onConnect: () => {
        this.settle(e, "connect");
        if (!e.closed) handlers.onConnect?.();
      },
      onData: (d) => {
        if (e.closed) return;
        this.bytesReceived += d.length;
        into?.push(d);
        handlers.onData?.(d);
        if (this.dropAt.length > 0 && this.bytesReceived >= this.dropAt[0]) {
          this.dropAt.shift();
          this.drop();
        }
      },
      onClose: (r) => {
        if (e.closed) return;
        e.closed = true;
        this.open.delete(e);
        this.release(e);
        handlers.onClose?.(r);
      },
    });
    this.open.add(e);
    const net = this;
    return {
      write(data: Uint8Array): void {
        net.bytesSent += data.length;
        out?.push(data);
        e.socket.write(data);
      },
      close(): void {
        e.closed = true;
        net.open.delete(e);
        net.release(e);
        e.socket.close();
      },
    };
  }

  /** Drop every open connection now; the device hears of it from the event loop, as from a real socket. */
  drop(): void {
    if (this.open.size === 0) return;
    this.drops++;
    for (const e of [...this.open]) {
      e.closed = true;
      this.open.delete(e);
      this.release(e);
      e.socket.close();
      this.io?.ledger.owe("drop");
      setImmediate(() => {
        this.io?.ledger.settle("drop");
        e.handlers.onClose?.(Reason.SOCKET_CLOSED);
      });
    }
  }
}
