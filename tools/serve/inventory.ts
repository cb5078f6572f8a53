/**
 * What `xs-ota serve` will serve, listed at start: every release (version,
 * hardware id, slot, kind, payload) and revocation record it loaded, and
 * every file it skipped or will fail on, with the reason, so an operator
 * never has to guess why a folder "serves nothing".
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { sha256 } from "@noble/hashes/sha2.js";
import type { Keyring } from "../../src/crypto/keyring";
import { formatVersion } from "../../src/image/format";
import { equalBytes } from "../../src/util/bytes";
import { reasonName } from "../../src/errors";
import { checkRelease } from "../release/check";
import { readReleaseDir } from "../release/read";
import { readRevocations } from "./revocations";

export interface Inventory {
  /** One line per release served. */
  readonly releases: string[];
  /** One line per revocation record published. */
  readonly revocations: string[];
  /** Files left out, or served but broken, with the reason. */
  readonly problems: { readonly path: string; readonly reason: string }[];
  /** Files that are none of the above (payloads, tls/, the reports log, the token and the rollout state excluded). */
  readonly ignored: string[];
}

/** List a release directory as serve reads it (with `keyring`: as a device authenticates it). */
export function inventory(dir: string, keyring?: Keyring, nowSec = Math.floor(Date.now() / 1000)): Inventory {
  const problems: { path: string; reason: string }[] = [];
  const used = new Set<string>();
  const releases: string[] = [];
  for (const e of readReleaseDir(dir, { keyring, onError: (path, err) => (used.add(path), problems.push({ path, reason: `skipped: ${err.message}` })) })) {
    used.add(e.path);
    const m = e.manifest;
    let payload: string;
    if (e.payloadPath) {
      used.add(e.payloadPath);
      const bytes = new Uint8Array(readFileSync(e.payloadPath));
      if (bytes.length !== m.payload.length || !equalBytes(sha256(bytes), m.payload.sha256)) {
        problems.push({ path: e.payloadPath, reason: `served but every device will refuse it: not the payload ${e.path} names (length or SHA-256)` });
        payload = `${e.payloadPath} (MISMATCH)`;
      } else {
        payload = `${m.payload.length} bytes`;
        // What xs-ota release checks before signing (a release signed otherwise, or by an older xs-ota).
        const p = checkRelease({ manifest: m, payload: bytes });
        if (p) problems.push({ path: e.path, reason: `served but every device will refuse it: ${reasonName(p.reason)}: ${p.message}` });
      }
    } else if (m.fetch.stream !== undefined) {
      problems.push({ path: e.path, reason: `offered but not downloadable over MQTT: no payload file "${m.fetch.stream}" next to it${m.fetch.url ? ` (devices may use ${m.fetch.url})` : ""}` });
      payload = "payload MISSING";
    } else payload = `by URL ${m.fetch.url}`;
    if (m.expiresAt <= nowSec) problems.push({ path: e.path, reason: `expired at ${new Date(m.expiresAt * 1000).toISOString()}: devices refuse it (MANIFEST_EXPIRED); release it again` });
    const kind = m.payload.kind === "delta" ? `delta (${m.payload.compression})` : m.payload.kind;
    releases.push(`${e.path}: ${m.hardwareId} ${formatVersion(m.version)} ${kind} for slot ${m.slot}, ${payload}, expires ${new Date(m.expiresAt * 1000).toISOString()}`);
  }
  const revocations: string[] = [];
  for (const r of readRevocations(dir, { onError: (path, err) => (used.add(path), problems.push({ path, reason: `skipped: ${err.message}` })) })) {
    used.add(r.path);
    revocations.push(`${r.path}: ${r.record.hardwareId} sequence ${r.record.sequence}, min version ${formatVersion(r.record.minVersion)}, ${r.record.blocked.length} blocked image(s)`);
  }
  const ignored: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (used.has(path) || name === "tls" || name === "reports.jsonl" || name === "operator.token" || name === "rollout-state.json" || name.startsWith(".")) continue;
    if (!statSync(path).isFile()) continue;
    ignored.push(path);
  }
  return { releases, revocations, problems, ignored };
}

/** The inventory as the lines serve prints at start. */
export function formatInventory(dir: string, inv: Inventory, signaturesChecked: boolean): string[] {
  const lines: string[] = [];
  lines.push(`releases in ${dir}: ${inv.releases.length}${signaturesChecked ? " (signatures checked with --trust)" : " (signatures not checked: devices check them; give --trust PUB.pem to check here)"}`);
  for (const r of inv.releases) lines.push(`  ${r}`);
  if (inv.revocations.length) lines.push(`revocation records: ${inv.revocations.length}`);
  for (const r of inv.revocations) lines.push(`  ${r}`);
  for (const p of inv.problems) lines.push(`WARNING ${p.path}: ${p.reason}`);
  if (inv.ignored.length) lines.push(`not a release, payload or revocation (ignored): ${inv.ignored.join(", ")}`);
  if (inv.releases.length === 0) lines.push(`WARNING no release to offer: devices will heartbeat and get no offer (write one with xs-ota release -o ${dir}/NAME.manifest)`);
  return lines;
}
