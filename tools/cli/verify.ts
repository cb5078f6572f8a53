/**
 * `xs-ota verify`: check an image and/or a signed manifest against trusted
 * public keys with the device's own code (src/image, src/update): exit 0 when
 * valid, 1 with the reason when not.
 */
import { readFileSync } from "node:fs";
import { OtaError, Reason, reasonName, type ReasonCode } from "../../src/errors";
import { createKeyring, type Keyring } from "../../src/crypto/keyring";
import { softwareDigest } from "../../src/crypto/sha256";
import { formatVersion } from "../../src/image/format";
import { imageSignatureChecker } from "../../src/image/signature";
import { verifyImage } from "../../src/image/verify";
import { checkImageAgainstManifest, parseSignedManifest } from "../../src/update/manifest";
import type { AcceptedManifest } from "../../src/update/types";
import { toHex } from "../../src/util/bytes";
import { BytesFlash } from "../image/bytes-flash";
import { isImage } from "../image/describe";
import { KeyError, readPublicKey } from "../keys/pem";
import { isEnvelope } from "../release/describe";
import { CliError, parse, usageError, type Command } from "./command";

const usage = `usage: xs-ota verify --key KEY_OR_PUB.pem [--key ...] FILE [--manifest M.manifest]

Verify FILE as the device will: an MCUboot image (hash, KEYHASH of a trusted
key, ECDSA signature) or a signed release manifest (trusted key id, signature,
strict decoding). With --manifest, the image must also be the one the manifest
names (length, SHA-256, version, security counter).
  -k, --key FILE       trusted key: PEM public key or private key (repeatable)
  -m, --manifest FILE  signed manifest the image must match
Exit status: 0 valid, 1 invalid (the reason is printed), 2 usage error.

example: xs-ota verify --key pub.pem app.signed.bin --manifest app.manifest`;

class Invalid extends Error {
  constructor(readonly reason: ReasonCode, message: string) {
    super(message);
  }
}

function manifestOf(path: string, keyring: Keyring): AcceptedManifest {
  const r = parseSignedManifest(new Uint8Array(readFileSync(path)), keyring, softwareDigest);
  if (!r.ok) throw new Invalid(r.reason, `${path}: ${r.message}`);
  return r.accepted;
}

export const command: Command = {
  summary: "verify an image or signed manifest against public keys (exit 0 valid, 1 invalid)",
  usage,
  async run(argv) {
    const { values, positionals } = parse(argv, {
      key: { type: "string", short: "k", multiple: true },
      manifest: { type: "string", short: "m" },
    });
    if (positionals.length !== 1) throw usageError("expected one FILE");
    if (!values.key?.length) throw usageError("--key is required");
    let keyring: Keyring;
    try {
      keyring = createKeyring(values.key.map(readPublicKey), softwareDigest);
    } catch (e) {
      if (e instanceof KeyError || e instanceof OtaError) throw new CliError(e.message);
      throw e;
    }
    const file = positionals[0];
    const bytes = new Uint8Array(readFileSync(file));
    const out: string[] = [];
    try {
      if (isEnvelope(bytes)) {
        if (values.manifest) throw usageError("FILE is a manifest; --manifest goes with an image");
        const a = manifestOf(file, keyring);
        out.push(`valid: manifest ${formatVersion(a.manifest.version)} for ${a.manifest.hardwareId}, release id ${toHex(a.releaseId)}, key id ${toHex(a.keyId)}`);
      } else if (isImage(bytes)) {
        const slot = new BytesFlash(bytes);
        const r = verifyImage(slot, { digest: softwareDigest, checkSignature: imageSignatureChecker(keyring) });
        if (!r.ok) throw new Invalid(r.reason, `${file}: ${r.message}`);
        out.push(`valid: image ${formatVersion(r.info.header.version)}, security counter ${r.info.securityCounter ?? "none"}, ${r.info.totalLength} bytes, hash ${toHex(r.info.hash)}`);
        if (values.manifest) {
          const a = manifestOf(values.manifest, keyring);
          const m = checkImageAgainstManifest(slot, r.info, a.manifest, softwareDigest);
          if (m !== Reason.OK) throw new Invalid(m, `${file} is not the image ${values.manifest} names`);
          out.push(`valid: matches manifest ${values.manifest} (release id ${toHex(a.releaseId)})`);
        }
      } else {
        throw new Invalid(Reason.IMAGE_BAD_MAGIC, `${file} is neither an MCUboot image nor a signed manifest`);
      }
    } catch (e) {
      if (e instanceof Invalid) {
        process.stdout.write(`invalid: ${reasonName(e.reason)} (reason ${e.reason}): ${e.message}\n`);
        return 1;
      }
      throw e;
    }
    process.stdout.write(out.join("\n") + "\n");
    return 0;
  },
};
