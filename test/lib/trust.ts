/**
 * Key roles in the simulated world (issue 16B): a root key the devices'
 * firmware trusts, batch keys the root certifies in a key set, a time key
 * whose statements the cloud attaches to every ack. Portable: the XS lane
 * runs it too.
 */
import { KeyRole } from "../../src/crypto/keyring";
import type { AgentConfig } from "../../src/agent/config";
import type { SigningKey } from "../../tools/keys/signer";
import { makeKeySet, signTimeStatement } from "../../tools/release/keyset";
import { HARDWARE, testKey } from "./sim-fixtures";
import type { World } from "./sim-world";

export const ROOT = testKey(201);
export const TIME_KEY = testKey(202);
/** Two batch keys: the fleet's first, and the one that replaces it. */
export const BATCH_1 = testKey(203);
export const BATCH_2 = testKey(204);

const T0 = 1_790_000_000;
const WINDOW = { notBefore: T0 - 365 * 86400, notAfter: T0 + 10 * 365 * 86400 };

/** What the devices' firmware fixes: the root key. */
export const TRUSTED_DEVICE: Partial<AgentConfig> = Object.freeze({ rootKeys: [ROOT.publicKey] });

/**
 * A key set signed by ROOT: each batch key may sign manifests and revocation
 * records for HARDWARE, TIME_KEY may sign time; `retired` keys are named as such.
 */
export function fleetKeySet(o: { sequence?: number; epoch?: number; batch?: readonly SigningKey[]; retired?: readonly SigningKey[]; issuedAt?: number } = {}): Uint8Array {
  const keys = [
    ...(o.batch ?? [BATCH_1]).map((k) => ({ publicKey: k.publicKey, roles: KeyRole.MANIFEST | KeyRole.REVOCATION, scope: { ...WINDOW, hardwareId: HARDWARE } })),
    { publicKey: TIME_KEY.publicKey, roles: KeyRole.TIME, scope: WINDOW },
  ];
  return makeKeySet(
    { sequence: o.sequence ?? 1, epoch: o.epoch ?? 0, issuedAt: o.issuedAt ?? T0, keys, retired: (o.retired ?? []).map((k) => k.keyId) },
    ROOT,
  ).envelope;
}

/** The cloud signs the time of every ack with TIME_KEY (one signature per distinct second). */
export function signedTime(w: World): void {
  let last: { time: number; env: Uint8Array } | undefined;
  w.cloud.timeStatement = (time) => {
    if (last?.time !== time) last = { time, env: signTimeStatement(time, TIME_KEY) };
    return last.env;
  };
}

/** Publish the first key set and sign time: a world whose devices (added with TRUSTED_DEVICE) take signed time. */
export function trustWorld(w: World, keySet: Uint8Array = fleetKeySet()): void {
  w.cloud.setKeySet(keySet);
  signedTime(w);
}
