/**
 * `xs-ota verify`: check an image and/or a signed manifest against trusted
 * public keys with the device's own code (src/image, src/update): exit 0 when
 * valid, 1 with the reason when not.
 */
import { existsSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { sha256 } from "@noble/hashes/sha2.js";
import { OtaError, Reason, reasonName, type ReasonCode } from "../../src/errors";
import { createKeyring, type Keyring } from "../../src/crypto/keyring";
import { softwareDigest } from "../../src/crypto/sha256";
import { formatVersion } from "../../src/image/format";
import { imageSignatureChecker } from "../../src/image/signature";
import { verifyImage } from "../../src/image/verify";
import { checkImageAgainstManifest, parseSignedManifest } from "../../src/update/manifest";
import { scanImage } from "../../src/image/verify";
import type { AcceptedManifest } from "../../src/update/types";
import { toHex } from "../../src/util/bytes";
import { BytesFlash } from "../image/bytes-flash";
import { isImage } from "../image/describe";
import { KeyError, readPublicKey } from "../keys/pem";
import { isEnvelope } from "../release/describe";
import { checkRelease } from "../release/check";
import { CliError, checkWritable, io, parse, readImageInput, readInput, usageError, writeOutput, type Command } from "./command";
import { softwareCipher } from "../../src/crypto/cipher";
import { IMAGE_F_ENCRYPTED, keyLengthOfFlags } from "../../src/image/enc";
import { readDecryptionKey } from "../image/enc-keys";
import { openEncryptedImage } from "../image/slot-tlvs";

const usage = `usage: xs-ota verify --key KEY_OR_PUB.pem [--key ...] FILE [--manifest M.manifest] [--base BASE]

Verify FILE as the device will: an MCUboot image (its SHA256 TLV, KEYHASH of a
trusted key, ECDSA signature) or a signed release manifest (trusted key id,
signature, strict decoding). With --manifest, the image must also be the one
the manifest names (length, whole-image SHA-256, version, security counter).
A manifest's release is checked as \`xs-ota release\` checks it before signing
when its payload is found next to it (the file named by its stream): the
payload's SHA-256, a delta's patch header against the image (and, with
--base, the patch applied to BASE), and the device's policy checks.
An image FILE ending in .hex is read as Intel HEX (as imgtool writes it).

Two hashes are printed, each for what it is:
  SHA256 TLV          MCUboot's hash over header, body and protected TLVs
                      (what the signature signs; imgtool prints it too)
  whole-image SHA-256 over the complete image, header through TLV area:
                      what a release manifest binds and revoke --block takes
  -k, --key FILE       trusted key: PEM public key or private key (repeatable)
  -m, --manifest FILE  signed manifest the image must match
      --decrypt-key FILE an encrypted image (sign --encrypt, imgtool --encrypt):
                       the recipient's P-256 private key (PEM); the key is
                       unwrapped and the decrypted image checked as MCUboot
                       would (hash over the plaintext), then the image that
                       lands in the slot (flag cleared, its own signature)
      --decrypted OUT  with --decrypt-key: write the image that lands in the slot
                       (or, for an image without slot TLVs, imgtool's --clear form)
      --base FILE      a delta release's base image (the patch is applied to it)
      --json           one object on stdout; the text on stderr
Exit status: 0 valid, 1 invalid (the reason is printed), 2 usage error.

example: xs-ota verify --key pub.pem app.signed.bin --manifest app.manifest`;

class Invalid extends Error {
  constructor(readonly reason: ReasonCode, message: string) {
    // The reason's name is printed once, in front: not again inside the message.
    const name = reasonName(reason);
    super(message.split(`${name}: `).join("").split(` (${name})`).join(""));
  }
}

function manifestOf(path: string, keyring: Keyring): AcceptedManifest {
  const r = parseSignedManifest(readInput(path, "manifest"), keyring, softwareDigest);
  if (!r.ok) throw new Invalid(r.reason, `${path}: ${r.message}`);
  return r.accepted;
}

/** The payload next to a manifest (its stream's file), when there. */
function payloadNextTo(path: string, a: AcceptedManifest): string | undefined {
  const stream = a.manifest.fetch.stream;
  if (stream === undefined || stream.includes("/")) return undefined;
  const p = join(dirname(path), stream);
  return existsSync(p) && statSync(p).isFile() ? p : undefined;
}

/** Check the release a manifest describes, as `xs-ota release` does before signing. */
function checkManifestRelease(path: string, a: AcceptedManifest, image: Uint8Array | undefined, basePath: string | undefined, facts: string[]): void {
  const payloadPath = payloadNextTo(path, a);
  if (!payloadPath) {
    facts.push(`payload not checked: no file "${a.manifest.fetch.stream ?? "(no stream)"}" next to ${path}`);
    return;
  }
  let base: Uint8Array | undefined;
  let baseInfo;
  if (basePath) {
    const b = readImageInput(basePath, "--base").bytes;
    try {
      baseInfo = scanImage(new BytesFlash(b), { digest: softwareDigest });
    } catch (e) {
      throw new CliError(`--base ${basePath}: not a valid MCUboot image (${e instanceof OtaError ? e.message : String(e)})`);
    }
    base = b.subarray(0, baseInfo.totalLength);
  }
  const problem = checkRelease({
    manifest: a.manifest,
    payload: readInput(payloadPath, "payload"),
    image,
    base,
    baseVersion: baseInfo?.header.version,
    baseSecurityCounter: baseInfo ? (baseInfo.securityCounter ?? 0) : undefined,
  });
  if (problem) throw new Invalid(problem.reason, `${path}: every device would refuse this release: ${problem.message}`);
  facts.push(`payload ${payloadPath} checked (${a.manifest.payload.kind}${a.manifest.payload.kind === "delta" ? (base ? ", applied to --base" : ", header only: give --base to apply it") : ""})`);
}

export const command: Command = {
  summary: "verify an image or signed manifest against public keys (exit 0 valid, 1 invalid)",
  usage,
  json: true,
  async run(argv) {
    const { values, positionals } = parse(argv, {
      key: { type: "string", short: "k", multiple: true },
      manifest: { type: "string", short: "m" },
      base: { type: "string" },
      "decrypt-key": { type: "string" },
      decrypted: { type: "string" },
      force: { type: "boolean" },
    });
    if (positionals.length !== 1) throw usageError("expected one FILE");
    if (!values.key?.length) throw usageError("--key is required");
    let keyring: Keyring;
    try {
      keyring = createKeyring(values.key.map((k) => (readInput(k, "--key"), readPublicKey(k))), softwareDigest);
    } catch (e) {
      if (e instanceof KeyError || e instanceof OtaError) throw new CliError(`--key ${e.message}`);
      throw e;
    }
    const file = positionals[0];
    const bytes = readImageInput(file, "FILE").bytes;
    const out: string[] = [];
    const result: { [k: string]: unknown } = { file };
    try {
      if (isEnvelope(bytes)) {
        if (values.manifest) throw usageError("FILE is a manifest; --manifest goes with an image");
        const a = manifestOf(file, keyring);
        out.push(`valid: manifest ${formatVersion(a.manifest.version)} for ${a.manifest.hardwareId}, release id ${toHex(a.releaseId)}, key id ${toHex(a.keyId)}`);
        Object.assign(result, { kind: "manifest", version: formatVersion(a.manifest.version), hardwareId: a.manifest.hardwareId, releaseId: toHex(a.releaseId), keyId: toHex(a.keyId) });
        checkManifestRelease(file, a, undefined, values.base, out);
      } else if (isImage(bytes)) {
        if (values.base && !values.manifest) throw usageError("--base goes with --manifest");
        let image = bytes;
        if (bytes.length >= 32 && bytes[16] & IMAGE_F_ENCRYPTED) image = decryptForVerify(file, bytes, values["decrypt-key"], values.decrypted, values.force, keyring, out, result);
        else if (values["decrypt-key"] || values.decrypted) throw usageError("--decrypt-key and --decrypted go with an encrypted image");
        const slot = new BytesFlash(image);
        const r = verifyImage(slot, { digest: softwareDigest, checkSignature: imageSignatureChecker(keyring) });
        if (!r.ok) throw new Invalid(truncated(r.reason, bytes), `${file}: ${truncatedMessage(r.reason, bytes) ?? r.message}`);
        const whole = sha256(image.subarray(0, r.info.totalLength));
        out.push(
          `valid: image ${formatVersion(r.info.header.version)}, security counter ${r.info.securityCounter ?? "none"}, ${r.info.totalLength} bytes, ` +
            `SHA256 TLV ${toHex(r.info.hash)}, whole-image SHA-256 ${toHex(whole)}`,
        );
        Object.assign(result, {
          kind: "image",
          version: formatVersion(r.info.header.version),
          securityCounter: r.info.securityCounter ?? null,
          length: r.info.totalLength,
          sha256Tlv: toHex(r.info.hash),
          wholeImageSha256: toHex(whole),
        });
        if (values.manifest) {
          const a = manifestOf(values.manifest, keyring);
          const m = checkImageAgainstManifest(slot, r.info, a.manifest, softwareDigest);
          if (m !== Reason.OK) throw new Invalid(m, `${file} is not the image ${values.manifest} names`);
          checkManifestRelease(values.manifest, a, image.subarray(0, r.info.totalLength), values.base, out);
          out.push(`valid: matches manifest ${values.manifest} (release id ${toHex(a.releaseId)})`);
          result.manifest = { file: values.manifest, releaseId: toHex(a.releaseId) };
        }
      } else {
        throw new Invalid(Reason.IMAGE_BAD_MAGIC, `${file} is neither an MCUboot image nor a signed manifest`);
      }
    } catch (e) {
      if (e instanceof Invalid) {
        const line = `invalid: ${reasonName(e.reason)} (reason ${e.reason}): ${e.message}`;
        if (io.json) io.warn(line);
        else process.stdout.write(line + "\n");
        io.result({ ...result, valid: false, reason: reasonName(e.reason), reasonCode: e.reason, message: e.message });
        return 1;
      }
      throw e;
    }
    io.say(out.join("\n"));
    io.result({ ...result, valid: true, notes: out });
    return 0;
  },
};

/**
 * An encrypted image: unwrap its key with --decrypt-key, check the decrypted
 * image as MCUboot would (imgtool's --clear form: flag set, hash over the
 * plaintext), and return the image that lands in the slot for the usual checks.
 */
function decryptForVerify(
  file: string,
  bytes: Uint8Array,
  keyPath: string | undefined,
  outPath: string | undefined,
  force: boolean | undefined,
  keyring: Keyring,
  facts: string[],
  result: { [k: string]: unknown },
): Uint8Array {
  if (!keyPath) throw new Invalid(Reason.ENC_NO_KEY, `${file} is encrypted (AES-${keyLengthOfFlags(bytes[16]) * 8}): give --decrypt-key to check it`);
  let secret: Uint8Array;
  try {
    secret = readDecryptionKey(keyPath);
  } catch (e) {
    if (e instanceof KeyError) throw new CliError(`--decrypt-key ${e.message}`);
    throw e;
  }
  if (outPath) checkWritable(outPath, force);
  try {
    const { layout, clearImage, slotImage, info } = openEncryptedImage(softwareCipher, secret, bytes, keyring);
    facts.push(`decrypted: ENC_EC256 unwrapped (AES-${layout.keyLength * 8}, HMAC ok); the plaintext matches the SHA256 TLV ${toHex(info.hash)} and its signature`);
    result.encrypted = { keyLength: layout.keyLength * 8, sha256Tlv: toHex(info.hash), slotTlvs: slotImage !== undefined };
    if (outPath) writeOutput(outPath, slotImage ?? clearImage, true);
    if (!slotImage) {
      throw new Invalid(Reason.ENC_NO_SLOT_TLVS, `${file}: no slot TLVs (as imgtool writes it): direct-xip MCUboot would not boot it from a slot${outPath ? `; wrote imgtool's --clear form to ${outPath}` : ""}; xs-ota sign --add-slot-tlvs adds them`);
    }
    facts.push(`the image that lands in the slot (flag cleared, slot TLVs)${outPath ? ` written to ${outPath}` : ""}:`);
    return slotImage;
  } catch (e) {
    if (e instanceof OtaError) throw new Invalid(e.code, `${file}: ${e.message}`);
    throw e;
  }
}

/** A file that ends before the image its header describes is truncated, not "too large for the slot". */
function truncated(reason: ReasonCode, bytes: Uint8Array): ReasonCode {
  return truncatedMessage(reason, bytes) ? Reason.IMAGE_TRUNCATED : reason;
}

function truncatedMessage(reason: ReasonCode, bytes: Uint8Array): string | undefined {
  if (reason !== Reason.IMAGE_TOO_LARGE && reason !== Reason.IMAGE_TRUNCATED) return undefined;
  if (bytes.length < 32) return `the file is ${bytes.length} bytes, shorter than an image header`;
  const v = new DataView(bytes.buffer, bytes.byteOffset, 32);
  const bodyEnd = v.getUint16(8, true) + v.getUint32(12, true) + v.getUint16(10, true);
  return `the file is truncated: ${bytes.length} bytes, the header describes an image of at least ${bodyEnd + 4} bytes`;
}
