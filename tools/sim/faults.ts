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

/**
 * One device's view of the shared host network: counts the bytes it sends
 * and receives, and can drop every open connection (the peer sees the TCP
 * connection end; the device sees onClose(SOCKET_CLOSED), as when a cellular
 * link dies).
 */
export class FleetNetwork implements Network {
  bytesSent = 0;
  bytesReceived = 0;
  connections = 0;
  drops = 0;
  /** Drop every connection when bytesReceived passes each of these (ascending; consumed). */
  dropAt: number[] = [];
  private readonly open = new Set<{ socket: Socket; handlers: SocketHandlers; closed: boolean }>();

  constructor(private readonly inner: Network) {}

  connect(options: SocketOptions, handlers: SocketHandlers): Socket {
    const entry = { socket: undefined as unknown as Socket, handlers, closed: false };
    this.connections++;
    entry.socket = this.inner.connect(options, {
      onConnect: () => handlers.onConnect?.(),
      onData: (d) => {
        if (entry.closed) return;
        this.bytesReceived += d.length;
        handlers.onData?.(d);
        if (this.dropAt.length > 0 && this.bytesReceived >= this.dropAt[0]) {
          this.dropAt.shift();
          this.drop();
        }
      },
      onClose: (r) => {
        if (entry.closed) return;
        entry.closed = true;
        this.open.delete(entry);
        handlers.onClose?.(r);
      },
    });
    this.open.add(entry);
    const net = this;
    return {
      write(data: Uint8Array): void {
        net.bytesSent += data.length;
        entry.socket.write(data);
      },
      close(): void {
        entry.closed = true;
        net.open.delete(entry);
        entry.socket.close();
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
      e.socket.close();
      setImmediate(() => e.handlers.onClose?.(Reason.SOCKET_CLOSED));
    }
  }
}
