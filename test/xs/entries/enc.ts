/**
 * XS entry for encrypted images (test/xs/enc.test.ts): the Cipher conformance
 * suite, the cost of AES-CTR, and (below) decrypting MCUboot-encrypted images
 * inside the real XS engine.
 */
import { softwareCipher } from "../../../src/crypto/cipher";
import { cipherConformance } from "../../conformance/cipher";
import { runSuites } from "../../lib/spec";
import { serve, task } from "../runtime";

task("cipher-conformance", () => runSuites([cipherConformance({ name: "softwareCipher in XS", make: () => softwareCipher })]));

/** 64 KiB of AES-256-CTR in 1 KiB calls at running offsets (the agent's decrypt step). */
task("aes-ctr-64k", () => {
  const key = Uint8Array.from({ length: 32 }, (_, i) => i * 3 + 1);
  const iv = new Uint8Array(16);
  const data = new Uint8Array(1024).fill(0x5a);
  let x = 0;
  for (let off = 0; off < 65536; off += 1024) {
    const out = softwareCipher.aesCtr(key, iv, off, data);
    x ^= out[off & 1023];
  }
  return x;
});

serve();
