/**
 * The state several `xs-ota serve` instances share: JSON records under a key,
 * kept in the broker as retained messages on `xs-ota/serve/v1/state/<key>`
 * (QoS 1). Every instance subscribes to `xs-ota/serve/v1/state/#` without a
 * shared-subscription prefix, so each one receives every record (the
 * retained ones at subscribe time, after a restart too) and holds a replica;
 * it decides from the replica and writes back by publishing retained.
 *
 * Two instances may write one key at the same moment (a device's heartbeat
 * reaches one instance while its status report reaches the other), so a
 * record is never overwritten blindly: each key has a merge function that is
 * commutative, associative and idempotent (every field is "the latest by its
 * own timestamp" or a latch), and an instance that receives a record lacking
 * something it knows publishes the merge. The replicas converge whatever the
 * order of delivery, and counts derived from the records (not incremented by
 * events) count a QoS 1 redelivery once.
 *
 * With the embedded broker there is one instance: the replica is the state,
 * and it is written to a snapshot file so that a restart resumes it.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";

export const STATE_TOPIC_PREFIX = "xs-ota/serve/v1/state/";
/** What every serve instance subscribes to (no $share: each instance needs every record). */
export const STATE_FILTER = `${STATE_TOPIC_PREFIX}#`;
/** A record's encoded size is bounded by the MQTT client's outbound packet limit (16 KiB). */
export const MAX_RECORD_BYTES = 12 * 1024;

export type Merge = (key: string, local: unknown, remote: unknown) => unknown;

export interface SharedStateOptions {
  /** Merge two versions of the record under `key` (see above). */
  readonly merge: Merge;
  /** Publish a record retained (QoS 1); absent with the embedded broker. */
  readonly publish?: (topic: string, payload: Uint8Array) => void;
  /** Snapshot file (embedded broker): loaded at start, rewritten at most every `snapshotMs`. */
  readonly snapshotPath?: string;
  readonly snapshotMs?: number;
  /** Called after a record changed (locally or from another instance). */
  readonly onChange?: (key: string) => void;
}

export class SharedState {
  private readonly values = new Map<string, unknown>();
  /** JSON last published per key: an echo of an older write is not answered with a republish. */
  private readonly published = new Map<string, string>();
  private snapshotTimer: NodeJS.Timeout | undefined;
  /** Records received from the broker. */
  received = 0;
  /** Records published (local writes and merges). */
  writes = 0;
  /** Bumped at every change of any record (views computed from the records cache on it). */
  version = 0;

  constructor(private readonly o: SharedStateOptions) {
    if (o.snapshotPath && existsSync(o.snapshotPath)) {
      const snap = JSON.parse(readFileSync(o.snapshotPath, "utf8")) as { [key: string]: unknown };
      for (const [k, v] of Object.entries(snap)) this.values.set(k, v);
    }
  }

  get<T>(key: string): T | undefined {
    return this.values.get(key) as T | undefined;
  }

  /** Every [key, record] whose key starts with `prefix`. */
  entries<T>(prefix: string): [string, T][] {
    const out: [string, T][] = [];
    for (const [k, v] of this.values) if (k.startsWith(prefix)) out.push([k, v as T]);
    return out;
  }

  get size(): number {
    return this.values.size;
  }

  /** Write `value` (merged with what the replica holds) and publish it when it changed anything. */
  put(key: string, value: unknown): unknown {
    const old = this.values.get(key);
    const merged = old === undefined ? value : this.o.merge(key, old, value);
    const json = JSON.stringify(merged);
    if (old !== undefined && JSON.stringify(old) === json) return merged;
    this.values.set(key, merged);
    this.version++;
    this.send(key, json);
    this.o.onChange?.(key);
    return merged;
  }

  /** A record from the broker (retained at subscribe time, or another instance's write). */
  receive(topic: string, payload: Uint8Array): void {
    if (!topic.startsWith(STATE_TOPIC_PREFIX) || payload.length === 0) return;
    const key = topic.slice(STATE_TOPIC_PREFIX.length);
    let remote: unknown;
    try {
      remote = JSON.parse(new TextDecoder().decode(payload));
    } catch {
      return; // not ours to interpret
    }
    this.received++;
    const remoteJson = JSON.stringify(remote);
    const old = this.values.get(key);
    const merged = old === undefined ? remote : this.o.merge(key, old, remote);
    const json = JSON.stringify(merged);
    if (old === undefined || JSON.stringify(old) !== json) {
      this.values.set(key, merged);
      this.version++;
      this.o.onChange?.(key);
      this.scheduleSnapshot();
    }
    // The broker's copy lacks something this replica knows: publish the merge (unless that is what we last sent).
    if (json !== remoteJson && this.published.get(key) !== json) this.send(key, json);
  }

  private send(key: string, json: string): void {
    this.scheduleSnapshot();
    if (!this.o.publish) return;
    if (json.length > MAX_RECORD_BYTES) throw new RangeError(`state record ${key} is ${json.length} bytes (at most ${MAX_RECORD_BYTES})`);
    this.published.set(key, json);
    this.writes++;
    this.o.publish(STATE_TOPIC_PREFIX + key, new TextEncoder().encode(json));
  }

  private scheduleSnapshot(): void {
    if (!this.o.snapshotPath || this.snapshotTimer) return;
    this.snapshotTimer = setTimeout(() => this.flush(), this.o.snapshotMs ?? 500);
    this.snapshotTimer.unref();
  }

  /** Write the snapshot now (atomically: a temporary file renamed over the old one). */
  flush(): void {
    if (this.snapshotTimer) clearTimeout(this.snapshotTimer);
    this.snapshotTimer = undefined;
    if (!this.o.snapshotPath) return;
    const tmp = `${this.o.snapshotPath}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(Object.fromEntries(this.values)));
    renameSync(tmp, this.o.snapshotPath);
  }
}
