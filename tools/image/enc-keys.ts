/**
 * Decryption keys for the host tools: the P-256 private scalar of a PEM
 * (PKCS#8 or SEC1), for `xs-ota verify --decrypt-key` and the by-hand checks
 * against imgtool. The device never sees a PEM: AT+ENCKEY takes the scalar.
 */
import { readFileSync } from "node:fs";
import { createPrivateKey } from "node:crypto";
import { KeyError, parsePrivateKeyPem } from "../keys/pem";

/**
 * The 32-byte private scalar in a private-key PEM.
 * @throws KeyError for no private key, another curve, an encrypted PEM.
 */
export function readDecryptionKey(path: string): Uint8Array {
  const text = readFileSync(path, "utf8");
  parsePrivateKeyPem(text, path); // the same checks and messages as a signing key
  const block = /-----BEGIN (EC )?PRIVATE KEY-----[\s\S]*?-----END (EC )?PRIVATE KEY-----/.exec(text);
  if (!block) throw new KeyError(`${path}: no PEM private key`);
  const jwk = createPrivateKey({ key: block[0], format: "pem" }).export({ format: "jwk" });
  const d = Buffer.from(jwk.d!, "base64url");
  const out = new Uint8Array(32);
  out.set(d, 32 - d.length);
  return out;
}
