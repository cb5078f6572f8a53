/**
 * The key an encrypted release is decrypted with: the device's own P-256 key
 * (issue 16A's device identity, in protected storage: the identity space's
 * record 0 = `[1][32-byte scalar]`, src/store/identity.ts). A release is then
 * encrypted for one device's public key (the one its CSR carries, AT+CSR).
 * The key is read when a download opens and zeroed by the sink after the
 * unwrap; it never reaches the journal, the audit log, a report or the console.
 */
import type { RecordSpace } from "../store/records";

const KEY_RECORD = 0;
const RECORD_VERSION = 1;

/** A reader of the device key (a fresh copy per call), or undefined when none is provisioned. */
export function identityDecryptionKey(space: RecordSpace | undefined): () => Uint8Array | undefined {
  return () => {
    const v = space?.get(KEY_RECORD);
    if (!v || v.length !== 33 || v[0] !== RECORD_VERSION) return undefined;
    const k = new Uint8Array(32);
    k.set(v.subarray(1));
    return k;
  };
}
