/**
 * An encrypted MCUboot image laid out as `imgtool sign --encrypt KEY
 * --encrypt-keylen 128|256` writes it (scripts/imgtool/image.py `create`),
 * built with node:crypto alone, independent of xs-ota's encoder
 * (tools/image/encode.ts, encrypt.ts): header with IMAGE_F_ENCRYPTED_AES*,
 * body zero-padded to 16, SEC_CNT protected TLV, SHA256 / KEYHASH / ECDSASIG
 * over the header as written and the plaintext, ENC_EC256 (ECIES-P256:
 * ECDH, HKDF-SHA-256 "MCUBoot_ECIES_v1", AES-CTR key wrap, HMAC-SHA-256 tag),
 * the body AES-CTR encrypted with a zero counter block. No slot TLVs.
 */
import { createCipheriv, createECDH, createHash, createHmac, createPrivateKey, createPublicKey, hkdfSync, randomBytes, sign } from "node:crypto";

export interface ImgtoolEncOptions {
  body: Uint8Array;
  version: { major: number; minor: number; revision: number; build: number };
  securityCounter: number;
  /** PEM private key that signs (ECDSA P-256). */
  signPem: string;
  /** The recipient's public point, uncompressed (65 bytes). */
  recipient: Uint8Array;
  keyBits: 128 | 256;
  headerSize?: number;
  /** imgtool --rom-fixed: sets IMAGE_F_ROM_FIXED and the load address. */
  romFixed?: number;
}

function tlv(type: number, value: Buffer): Buffer {
  const h = Buffer.alloc(4);
  h.writeUInt16LE(type, 0);
  h.writeUInt16LE(value.length, 2);
  return Buffer.concat([h, value]);
}

function tlvInfo(magic: number, entries: Buffer[]): Buffer {
  const body = Buffer.concat(entries);
  const h = Buffer.alloc(4);
  h.writeUInt16LE(magic, 0);
  h.writeUInt16LE(body.length + 4, 2);
  return Buffer.concat([h, body]);
}

const ctr = (key: Buffer, data: Buffer) => createCipheriv(`aes-${key.length * 8}-ctr`, key, Buffer.alloc(16)).update(data);

/** The encrypted image and, for checks, the image key it used. */
export function imgtoolEncrypt(o: ImgtoolEncOptions): { image: Buffer; imageKey: Buffer } {
  const hdrSize = o.headerSize ?? 0x200;
  const n = o.keyBits / 8;
  const padded = Buffer.alloc(Math.ceil((hdrSize + o.body.length) / 16) * 16 - hdrSize);
  Buffer.from(o.body).copy(padded);
  const prot = tlvInfo(0x6908, [tlv(0x50, Buffer.from(Uint32Array.of(o.securityCounter).buffer))]);
  const header = Buffer.alloc(hdrSize);
  header.writeUInt32LE(0x96f3b83d, 0);
  header.writeUInt32LE(o.romFixed ?? 0, 4);
  header.writeUInt16LE(hdrSize, 8);
  header.writeUInt16LE(prot.length, 10);
  header.writeUInt32LE(padded.length, 12);
  header.writeUInt32LE((o.romFixed !== undefined ? 0x100 : 0) | (n === 16 ? 0x04 : 0x08), 16);
  header.writeUInt8(o.version.major, 20);
  header.writeUInt8(o.version.minor, 21);
  header.writeUInt16LE(o.version.revision, 22);
  header.writeUInt32LE(o.version.build, 24);
  const hashed = Buffer.concat([header, padded, prot]);
  const digest = createHash("sha256").update(hashed).digest();
  const signKey = createPrivateKey(o.signPem);
  const spki = createPublicKey(signKey).export({ format: "der", type: "spki" });
  const sig = sign("sha256", hashed, signKey); // DER, as imgtool writes ECDSASIG
  // ECIES-P256 key wrap
  const eph = createECDH("prime256v1");
  eph.generateKeys();
  const shared = eph.computeSecret(Buffer.from(o.recipient));
  const derived = Buffer.from(hkdfSync("sha256", shared, Buffer.alloc(0), "MCUBoot_ECIES_v1", n + 32));
  const imageKey = randomBytes(n);
  const wrapped = ctr(derived.subarray(0, n), imageKey);
  const mac = createHmac("sha256", derived.subarray(n)).update(wrapped).digest();
  const enc = Buffer.concat([eph.getPublicKey(), mac, wrapped]);
  const tlvs = tlvInfo(0x6907, [tlv(0x10, digest), tlv(0x01, createHash("sha256").update(spki).digest()), tlv(0x22, sig), tlv(0x32, enc)]);
  return { image: Buffer.concat([header, ctr(imageKey, padded), prot, tlvs]), imageKey };
}
