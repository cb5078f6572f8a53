/**
 * PEM keys for the host tools (node:crypto reads and writes the encodings):
 * private keys as PKCS#8 ("PRIVATE KEY", what `xs-ota keygen`, imgtool and
 * `openssl genpkey` write) or SEC1 ("EC PRIVATE KEY", what `openssl ecparam
 * -genkey` writes, possibly after an "EC PARAMETERS" block); public keys as
 * SubjectPublicKeyInfo ("PUBLIC KEY").
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { signerFromSecret, type SigningKey } from "./signer";

export class KeyError extends Error {
  constructor(message: string) {
    super(message);
  }
}
// Not `this.name = …`: that throws where built-ins are frozen (Moddable); see src/errors.ts.
Object.defineProperty(KeyError.prototype, "name", { value: "KeyError", writable: true, configurable: true });

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g;

function blocks(text: string): { label: string; pem: string }[] {
  return [...text.matchAll(BLOCK)].map((m) => ({ label: m[1], pem: m[0] }));
}

function fromB64url(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s, "base64url"));
}

function ecPoint(key: KeyObject, where: string): { x: string; y: string; d?: string } {
  if (key.asymmetricKeyType !== "ec") throw new KeyError(`${where}: not an EC key (${key.asymmetricKeyType})`);
  const jwk = key.export({ format: "jwk" });
  if (jwk.crv !== "P-256") throw new KeyError(`${where}: curve ${jwk.crv ?? "unknown"}, need P-256 (prime256v1)`);
  return { x: jwk.x!, y: jwk.y!, d: jwk.d };
}

/**
 * The signing key in a private-key PEM (PKCS#8 or SEC1).
 * @throws KeyError for no private key, an encrypted key, another curve or type.
 */
export function parsePrivateKeyPem(text: string, where = "key"): SigningKey {
  const b = blocks(text).find((x) => x.label === "PRIVATE KEY" || x.label === "EC PRIVATE KEY");
  if (!b) {
    if (blocks(text).some((x) => x.label === "ENCRYPTED PRIVATE KEY") || /Proc-Type: 4,ENCRYPTED/.test(text)) {
      throw new KeyError(`${where}: encrypted private keys are not supported; decrypt it with openssl first`);
    }
    throw new KeyError(`${where}: no PEM private key (PRIVATE KEY or EC PRIVATE KEY)`);
  }
  if (/Proc-Type: 4,ENCRYPTED/.test(b.pem)) throw new KeyError(`${where}: encrypted private keys are not supported; decrypt it with openssl first`);
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: b.pem, format: "pem" });
  } catch (e) {
    throw new KeyError(`${where}: unreadable private key (${(e as Error).message})`);
  }
  const { d } = ecPoint(key, where);
  const secret = fromB64url(d!);
  const padded = new Uint8Array(32);
  padded.set(secret, 32 - secret.length);
  return signerFromSecret(padded);
}

/**
 * The SEC1 uncompressed public point (65 bytes) of a PEM public key, or of the
 * public half of a PEM private key.
 * @throws KeyError when there is no P-256 key.
 */
export function parsePublicKeyPem(text: string, where = "key"): Uint8Array {
  const pub = blocks(text).find((x) => x.label === "PUBLIC KEY");
  if (!pub) {
    if (!blocks(text).some((x) => /PRIVATE KEY$/.test(x.label))) throw new KeyError(`${where}: no PEM key (PUBLIC KEY, PRIVATE KEY or EC PRIVATE KEY)`);
    return parsePrivateKeyPem(text, where).publicKey;
  }
  let key: KeyObject;
  try {
    key = createPublicKey({ key: pub.pem, format: "pem" });
  } catch (e) {
    throw new KeyError(`${where}: unreadable public key (${(e as Error).message})`);
  }
  const { x, y } = ecPoint(key, where);
  const out = new Uint8Array(65);
  out[0] = 4;
  const xb = fromB64url(x);
  const yb = fromB64url(y);
  out.set(xb, 33 - xb.length);
  out.set(yb, 65 - yb.length);
  return out;
}

export function readSigningKey(path: string): SigningKey {
  return parsePrivateKeyPem(readFileSync(path, "utf8"), path);
}

export function readPublicKey(path: string): Uint8Array {
  return parsePublicKeyPem(readFileSync(path, "utf8"), path);
}

/** A new P-256 key pair: PKCS#8 private PEM and SPKI public PEM. */
export function generateKeyPem(): { privatePem: string; publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  return {
    privatePem: privateKey.export({ format: "pem", type: "pkcs8" }) as string,
    publicPem: publicKey.export({ format: "pem", type: "spki" }) as string,
  };
}

/** SPKI PEM of a SEC1 uncompressed point. */
export function publicPemOf(point: Uint8Array): string {
  const key = createPublicKey({
    key: { kty: "EC", crv: "P-256", x: Buffer.from(point.subarray(1, 33)).toString("base64url"), y: Buffer.from(point.subarray(33, 65)).toString("base64url") },
    format: "jwk",
  });
  return key.export({ format: "pem", type: "spki" }) as string;
}
