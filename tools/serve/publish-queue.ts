/**
 * serve's side of its link to an existing broker: back-pressure instead of a
 * fixed window that drops. The MQTT client keeps at most `window` QoS 1
 * publishes awaiting PUBACK; beyond that, publishes wait here in order and go
 * out as PUBACKs free the window (and after a reconnect, when the client
 * resends its window). Only when this queue itself is full (a broker that
 * accepts nothing for a long time) is a publish dropped, and the caller is
 * told so (`publish` returns false) — for an offer, serve frees the place
 * it took.
 */
import { OtaError, Reason } from "../../src/errors";

export interface QueuedLink {
  /** As MqttClient.publish: throws OtaError MQTT_INFLIGHT_FULL when the window is full. */
  publish(topic: string, payload: Uint8Array, qos: 0 | 1, retain: boolean, onAck?: (code: number) => void): number;
}

interface Waiting {
  readonly topic: string;
  readonly payload: Uint8Array;
  readonly retain: boolean;
  readonly onDone?: (ok: boolean) => void;
}

export class PublishQueue {
  private readonly waiting: Waiting[] = [];
  private head = 0;
  /** Publishes that waited for the window. */
  queued = 0;
  /** Publishes dropped because the queue was full. */
  dropped = 0;
  /** Largest queue length seen. */
  peak = 0;

  constructor(
    private readonly link: QueuedLink,
    private readonly limit = 100_000,
  ) {}

  get length(): number {
    return this.waiting.length - this.head;
  }

  /**
   * Publish at QoS 1 (retained or not), now or when the window has room.
   * `onDone(ok)` is called once it is acknowledged (true) or dropped (false).
   * @returns false when dropped at once (queue full); true when sent or queued.
   * @throws OtaError for anything but a full window (e.g. MQTT_TOO_LARGE).
   */
  publish(topic: string, payload: Uint8Array, retain = false, onDone?: (ok: boolean) => void): boolean {
    if (this.length === 0 && this.trySend({ topic, payload, retain, onDone })) return true;
    if (this.length >= this.limit) {
      this.dropped++;
      onDone?.(false);
      return false;
    }
    this.waiting.push({ topic, payload, retain, onDone });
    this.queued++;
    this.peak = Math.max(this.peak, this.length);
    return true;
  }

  /** Send what fits in the window now (called on every PUBACK and after a reconnect). */
  drain(): void {
    while (this.length > 0 && this.trySend(this.waiting[this.head])) {
      this.head++;
      if (this.head > 1024 && this.head * 2 > this.waiting.length) {
        this.waiting.splice(0, this.head);
        this.head = 0;
      }
    }
  }

  private trySend(w: Waiting): boolean {
    try {
      this.link.publish(w.topic, w.payload, 1, w.retain, (code) => {
        w.onDone?.(code === Reason.OK);
        this.drain();
      });
      return true;
    } catch (e) {
      if (e instanceof OtaError && e.code === Reason.MQTT_INFLIGHT_FULL) return false;
      throw e;
    }
  }
}
