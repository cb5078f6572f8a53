/**
 * The device's connection to the cloud: an MqttClient kept up by the
 * reconnect policy. Every failed attempt or lost connection schedules the
 * next attempt after `backoff.next()`; an accepted CONNACK resets the
 * backoff and (re)subscribes. A stalled connection is found by the client's
 * keepalive supervision (no bytes for 1.5 × keepalive → MQTT_TIMEOUT), which
 * lands here like any other loss and is retried.
 *
 * Bounds: at most one connection and one pending reconnect timer; attempts
 * without a success are bounded by `maxAttempts` when given (0 = keep
 * trying forever, the right choice for a device whose only job is to stay
 * reachable), each delay by the backoff's ceiling.
 */
import type { TimerId } from "../../hal/types";
import { Reason } from "../errors";
import { Backoff } from "./backoff";
import type { Subscription } from "./mqtt-codec";
import { MqttClient, type AckCallback, type MqttClientOptions, type MqttMessage } from "./mqtt";

export interface MqttLinkOptions extends MqttClientOptions {
  readonly backoff: Backoff;
  /** Subscribed after every CONNACK without a stored session. */
  readonly subscriptions: readonly Subscription[];
  /** Give up after this many consecutive failed attempts (0 = never; default 0). */
  readonly maxAttempts?: number;
}

export interface MqttLinkHandlers {
  /** Connected and subscribed (`refused` lists filters the broker refused with 0x80). */
  onUp?(refused: readonly string[]): void;
  /** The connection went down; `retryInMs` is -1 when the link gave up. */
  onDown?(reason: number, retryInMs: number, detail?: number | string): void;
  onMessage?(message: MqttMessage): void;
}

export class MqttLink {
  readonly client: MqttClient;
  private readonly backoff: Backoff;
  private readonly subs: readonly Subscription[];
  private readonly maxAttempts: number;
  private readonly h: MqttLinkHandlers;
  private readonly clock: MqttClientOptions["clock"];
  private retry: TimerId | undefined;
  private running = false;
  private _up = false;

  constructor(options: MqttLinkOptions, handlers: MqttLinkHandlers = {}) {
    if (!(options.backoff instanceof Backoff)) throw new TypeError("MqttLink: options.backoff must be a Backoff");
    if (!Array.isArray(options.subscriptions)) throw new TypeError("MqttLink: options.subscriptions must be an array");
    const max = options.maxAttempts ?? 0;
    if (!Number.isInteger(max) || max < 0) throw new RangeError("MqttLink: maxAttempts must be an integer >= 0");
    this.backoff = options.backoff;
    this.subs = options.subscriptions;
    this.maxAttempts = max;
    this.h = handlers;
    this.clock = options.clock;
    this.client = new MqttClient(options, {
      onConnect: () => this.onConnect(),
      onMessage: (m) => this.h.onMessage?.(m),
      onClose: (reason, detail) => this.onClose(reason, detail),
    });
  }

  /** Connected and subscribed. */
  get up(): boolean {
    return this._up;
  }

  /** Start connecting (now). Idempotent. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.client.connect();
  }

  /** Disconnect and stop retrying. Idempotent. */
  stop(): void {
    this.running = false;
    this._up = false;
    if (this.retry !== undefined) this.clock.clearTimer(this.retry);
    this.retry = undefined;
    this.client.disconnect();
  }

  /** See MqttClient.publish. */
  publish(topic: string, payload: Uint8Array, qos: 0 | 1 = 0, retain = false, onAck?: AckCallback): number {
    return this.client.publish(topic, payload, qos, retain, onAck);
  }

  private onConnect(): void {
    this.backoff.reset();
    if (this.subs.length === 0) {
      this._up = true;
      this.h.onUp?.([]);
      return;
    }
    this.client.subscribe(this.subs, (code, granted) => {
      if (code !== Reason.OK && code !== Reason.MQTT_SUBSCRIBE_REFUSED) return; // the link went down meanwhile
      const refused: string[] = [];
      for (let i = 0; i < granted.length; i++) if (granted[i] === 0x80) refused.push(this.subs[i].topic);
      this._up = true;
      this.h.onUp?.(refused);
    });
  }

  private onClose(reason: number, detail?: number | string): void {
    this._up = false;
    if (!this.running) return;
    if (this.maxAttempts > 0 && this.backoff.attempts >= this.maxAttempts) {
      this.running = false;
      this.h.onDown?.(reason, -1, detail);
      return;
    }
    const delay = this.backoff.next();
    this.retry = this.clock.setTimer(() => {
      this.retry = undefined;
      if (this.running && this.client.state === "idle") this.client.connect();
    }, delay);
    this.h.onDown?.(reason, delay, detail);
  }
}
