/** `xs-ota revoke`: a signed revocation record (minimum version and security counter, blocked image hashes). */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { sha256 } from "@noble/hashes/sha2.js";
import { OtaError } from "../../src/errors";
import { formatVersion, parseVersion, type ImageVersion } from "../../src/image/format";
import { MAX_BLOCKED } from "../../src/update/revocation";
import { fromHex, toHex } from "../../src/util/bytes";
import { KeyError, readSigningKey } from "../keys/pem";
import { ReleaseError, scanImageFile } from "../release/build";
import { makeRevocation, RevokeError } from "../release/revoke";
import { softwareDigest } from "../../src/crypto/sha256";
import { scanImage } from "../../src/image/verify";
import { BytesFlash } from "../image/bytes-flash";
import { isImage } from "../image/describe";
import { readReleaseDir } from "../release/read";
import { checkWritable, CliError, intOption, io, parse, usageError, writeOutput, type Command } from "./command";

const usage = `usage: xs-ota revoke --key KEY.pem --hardware-id ID --sequence N -o OUT.revocation [options]

Write a signed revocation record for one device class. A device that holds it
refuses every offer of a revoked release (reason REVOKED), and if its running
image is revoked, reports it and asks for a replacement. A device takes a
record only with a greater sequence than the one it holds, so each new record
needs a new, greater --sequence; a newer record replaces the older one
entirely (to lift a revocation, publish a newer record without it). Put the
file in xs-ota serve's release directory to publish it.
  -k, --key FILE              P-256 private key, PEM (a key of the revocation role in the devices'
                              key set; devices without a key set: a key of their keyring)
      --hardware-id ID        device class, e.g. usr-n520
      --sequence N            1..4294967295, greater than the last record's by at most 65536
                              (devices refuse a bigger step: SEQUENCE_JUMP)
      --epoch N               the sequence epoch (default 0): after the root opens epoch N with a key
                              set (xs-ota keyset make --epoch N), records of epoch N start again at 1
      --min-version V         images below major.minor.revision+build are revoked (default 0.0.0+0)
      --min-security-counter N  images with a lower security counter are revoked (default 0)
      --block IMAGE_OR_SHA256 revoke one image: an MCUboot image file (its complete image is
                              hashed, header through TLVs) or its whole-image SHA-256 as 64
                              hex digits (what \`xs-ota verify\` and \`inspect\` print as
                              "whole-image SHA-256"; NOT the SHA256 TLV, MCUboot's hash);
                              repeatable, at most ${MAX_BLOCKED}
      --images DIR            the folder of released images (a release folder): every --block
                              must then name an image there (a manifest's image or an image
                              file), or it is refused; a SHA256 TLV given by mistake is named
      --force                 overwrite OUT if it exists
      --issued-at T           unix seconds (default now)
      --note TEXT             why (non-critical; devices skip it, inspect shows it)
  -o, --output FILE           the signed record to write (name it *.revocation for xs-ota serve)

example: xs-ota revoke -k key.pem --hardware-id usr-n520 --sequence 3 --block rel/app-1.3.0-s1.bin --min-version 1.2.0 -o rel/usr-n520-3.revocation`;

/**
 * A \`--block\` argument: 64 hex digits (unless a file has that name), or an
 * MCUboot image file whose complete image (header through TLV area, as
 * \`xs-ota release\` binds it; padding and trailer excluded) is hashed.
 * @throws CliError when it is neither.
 */
export function blockedHashOf(arg: string): Uint8Array {
  let isFile = false;
  try {
    isFile = statSync(arg).isFile();
  } catch {
    isFile = false;
  }
  if (!isFile) {
    if (/^[0-9a-fA-F]{64}$/.test(arg)) return fromHex(arg.toLowerCase())!;
    throw new CliError(`--block ${arg}: neither 64 hex digits nor an image file`);
  }
  try {
    const { bytes, info } = scanImageFile(arg);
    return sha256(bytes.subarray(0, info.totalLength));
  } catch (e) {
    if (e instanceof ReleaseError) throw new CliError(`--block ${e.message}`);
    throw e;
  }
}

/** The whole-image SHA-256 of every image a folder names (manifests and image files), and their SHA256 TLVs. */
function knownImages(dir: string): { whole: Set<string>; tlv: Map<string, { path: string; whole: string }> } {
  let names: string[];
  try {
    if (!statSync(dir).isDirectory()) throw new CliError(`--images ${dir} is not a directory`);
    names = readdirSync(dir).sort();
  } catch (e) {
    if (e instanceof CliError) throw e;
    throw new CliError(`--images ${dir}: no such directory`);
  }
  const whole = new Set<string>();
  const tlv = new Map<string, { path: string; whole: string }>();
  for (const e of readReleaseDir(dir)) whole.add(toHex(e.manifest.image.sha256));
  for (const name of names) {
    const path = join(dir, name);
    if (!statSync(path).isFile()) continue;
    const bytes = new Uint8Array(readFileSync(path));
    if (!isImage(bytes)) continue;
    try {
      const info = scanImage(new BytesFlash(bytes), { digest: softwareDigest });
      const w = toHex(sha256(bytes.subarray(0, info.totalLength)));
      whole.add(w);
      tlv.set(toHex(info.hash), { path, whole: w });
    } catch {
      // not a complete image: it names nothing
    }
  }
  return { whole, tlv };
}

function version(value: string | undefined): ImageVersion {
  if (value === undefined) return { major: 0, minor: 0, revision: 0, build: 0 };
  try {
    return parseVersion(value);
  } catch (e) {
    if (e instanceof OtaError) throw usageError(`--min-version: ${e.message}`);
    throw e;
  }
}

export const command: Command = {
  summary: "make a signed revocation record (minimum version/counter, blocked images)",
  usage,
  async run(argv) {
    const { values, positionals } = parse(argv, {
      key: { type: "string", short: "k" },
      "hardware-id": { type: "string" },
      sequence: { type: "string" },
      epoch: { type: "string" },
      "min-version": { type: "string" },
      "min-security-counter": { type: "string" },
      block: { type: "string", multiple: true },
      "issued-at": { type: "string" },
      note: { type: "string" },
      images: { type: "string" },
      force: { type: "boolean" },
      output: { type: "string", short: "o" },
    });
    if (positionals.length) throw usageError(`unexpected argument "${positionals[0]}"`);
    for (const req of ["key", "hardware-id", "sequence", "output"] as const) {
      if (!values[req]) throw usageError(`--${req} is required`);
    }
    const sequence = intOption(values.sequence, "sequence");
    if (sequence < 1 || sequence > 0xffffffff) throw usageError("--sequence must be 1..4294967295");
    const epoch = intOption(values.epoch, "epoch", 0);
    if (epoch > 0xffffffff) throw usageError("--epoch must be 0..4294967295");
    const minSecurityCounter = intOption(values["min-security-counter"], "min-security-counter", 0);
    if (minSecurityCounter > 0xffffffff) throw usageError("--min-security-counter must be 0..4294967295");
    const issuedAt = values["issued-at"] === undefined ? Math.floor(Date.now() / 1000) : intOption(values["issued-at"], "issued-at");
    if (issuedAt > 0xffffffff) throw usageError("--issued-at must fit 32 bits");
    const minVersion = version(values["min-version"]);
    const blocks = values.block ?? [];
    if (blocks.length > MAX_BLOCKED) throw usageError(`at most ${MAX_BLOCKED} --block entries`);
    let key;
    try {
      key = readSigningKey(values.key!);
    } catch (e) {
      if (e instanceof KeyError) throw new CliError(`--key ${e.message}`);
      if ((e as NodeJS.ErrnoException).code === "ENOENT") throw new CliError(`--key ${values.key}: no such file`);
      throw e;
    }
    checkWritable(values.output!, values.force);
    try {
      const blocked = blocks.map(blockedHashOf);
      if (values.images !== undefined) {
        const known = knownImages(values.images);
        blocked.forEach((h, i) => {
          const hex = toHex(h);
          if (known.whole.has(hex)) return;
          const tlv = known.tlv.get(hex);
          if (tlv) throw new CliError(`--block ${blocks[i]}: that is the SHA256 TLV (MCUboot's hash) of ${tlv.path}; its whole-image SHA-256, which revoke takes, is ${tlv.whole}`);
          throw new CliError(`--block ${blocks[i]}: no image in ${values.images} has this whole-image SHA-256 (${known.whole.size} known); a revocation of it would revoke nothing`);
        });
      }
      const r = makeRevocation({
        key,
        hardwareId: values["hardware-id"]!,
        sequence,
        epoch,
        issuedAt,
        minVersion,
        minSecurityCounter,
        blocked,
        note: values.note,
      });
      writeOutput(values.output!, r.envelope, true);
      const rec = r.record;
      io.say(
        `wrote ${values.output}: ${rec.hardwareId} sequence ${rec.sequence}, min version ${formatVersion(rec.minVersion)}, ` +
          `min security counter ${rec.minSecurityCounter}, ${rec.blocked.length} blocked image(s) (by whole-image SHA-256), revocation id ${toHex(r.id)}`,
      );
    } catch (e) {
      if (e instanceof RevokeError) throw new CliError(e.message);
      throw e;
    }
    return 0;
  },
};
