/** `xs-ota release`: a signed release manifest for a full image or a delta, with the payload placed next to it. */
import { toHex } from "../../src/util/bytes";
import { formatVersion } from "../../src/image/format";
import { KeyError, readPublicKey, readSigningKey } from "../keys/pem";
import { makeRelease, ReleaseError } from "../release/build";
import { CliError, intOption, io, parse, usageError, type Command } from "./command";
import { copyFileSync, existsSync, readFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { reasonName } from "../../src/errors";
import type { SigningKey } from "../keys/signer";
import { checkBatchKey } from "../release/keyset";
import { readKeySet } from "./keyset";

/**
 * `--keyset`: refuse a batch key the key set does not let sign this release (the
 * reason a device would give).
 * @returns what places the key set next to the manifest (called once it is written)
 * @throws CliError
 */
function certifiedBy(path: string, key: SigningKey, hardwareId: string, issuedAt: number, out: string, force: boolean): () => void {
  const { bytes, keySet } = readKeySet(path);
  const why = checkBatchKey(keySet, key.keyId, hardwareId, issuedAt);
  if (why !== 0) throw new CliError(`--key is not certified by ${path} for ${hardwareId} at ${issuedAt}: a device holding key set ${keySet.epoch}.${keySet.sequence} would refuse it (${reasonName(why)})`);
  const copy = join(dirname(out), basename(path));
  if (existsSync(copy)) {
    const there = new Uint8Array(readFileSync(copy));
    if (there.length === bytes.length && there.every((b, i) => b === bytes[i])) return () => {};
    if (!force) throw new CliError(`${copy} exists with other content (--force to replace it)`);
  }
  return () => copyFileSync(path, copy);
}

const usage = `usage: xs-ota release --key KEY.pem --hardware-id ID --image IMAGE --slot 0|1 -o OUT.manifest [options]

Write a signed release manifest (the envelope a device is offered) for the
image IMAGE, and place the payload next to OUT (copied unless already there);
the manifest's stream id is the payload's file name in that directory.
  -k, --key FILE          P-256 private key, PEM (signs the manifest): a batch key of the
                          devices' key set, or (devices without one) a key of their keyring
      --keyset FILE       the key set that certifies --key (xs-ota keyset make): the key must
                          be in it with the manifest role, for --hardware-id, valid at
                          --issued-at, or nothing is signed (the reason a device would give);
                          the key set is copied next to OUT so xs-ota serve publishes it
      --hardware-id ID    device class this release is for, e.g. usr-n520
      --image FILE        the target MCUboot image (as signed by xs-ota sign, unpadded)
      --slot 0|1          the slot the image is built for (direct-xip)
      --kind full|delta   default full
      --payload FILE      the download: the patch for a delta (default: IMAGE for full)
      --base FILE         delta only: the base image the patch applies to
      --encrypt PUB.pem   delta only: encrypt the patch for this device key (MCUboot's ENC_EC256
                          scheme, AES-256); a full release is encrypted when --payload is the
                          image xs-ota sign --encrypt wrote (--image: its --slot-image)
      --compression NAME  optional: payload.compression is read from the payload (a delta's
                          patch header: stored, deflate, range or lz; a full image: none);
                          a NAME that contradicts it is refused (exit 1)
      --stream ID         stream id (default: the payload's file name)
      --url URL           HTTPS (or http) URL of the payload, for Range downloads
      --issued-at T       unix seconds (default now)
      --expires T         +30d / +12h / +90m / +3600s from issue, unix seconds, or an ISO date (default +30d)
      --max-download N    download budget in bytes (default twice the payload)
      --slot-size N       bytes an image may occupy in the device's slot (slot less trailer);
                          checked as the device checks it (MANIFEST_TOO_BIG_FOR_SLOT)
      --note TEXT         release notes (non-critical; devices skip them)
  -o, --output FILE       the signed manifest to write
      --force             overwrite OUT (and a different payload copy) if it exists

Before signing, the release is checked as a device would check it: the
payload is parsed (a delta's patch header must name the --base image and
the --image by their whole-image SHA-256, and the patch is applied to the
base with the device's own patcher), and the device's policy checks run
(expiry, slot, budget: a --max-download below the payload is refused). A
release every device would refuse is not signed (exit 1).

example: xs-ota release -k key.pem --hardware-id usr-n520 --image app-1.3.0.bin --slot 1 -o rel/app-1.3.0.manifest`;

/** "+30d", "12h", unix seconds, or an ISO date → unix seconds. */
export function parseExpiry(value: string, issuedAt: number): number {
  const rel = /^\+?(\d+)([smhd])$/.exec(value);
  if (rel) return issuedAt + Number(rel[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[rel[2] as "s" | "m" | "h" | "d"];
  if (/^\d+$/.test(value)) return Number(value);
  const t = Date.parse(value);
  if (Number.isNaN(t)) throw usageError(`--expires "${value}" is not +Nd/+Nh/+Nm/+Ns, unix seconds or an ISO date`);
  return Math.floor(t / 1000);
}

export const command: Command = {
  summary: "make a signed release manifest for a full image or a delta",
  usage,
  json: true,
  async run(argv) {
    const { values, positionals } = parse(argv, {
      key: { type: "string", short: "k" },
      "hardware-id": { type: "string" },
      image: { type: "string" },
      slot: { type: "string" },
      kind: { type: "string" },
      payload: { type: "string" },
      base: { type: "string" },
      compression: { type: "string" },
      stream: { type: "string" },
      url: { type: "string" },
      "issued-at": { type: "string" },
      expires: { type: "string" },
      "max-download": { type: "string" },
      note: { type: "string" },
      "slot-size": { type: "string" },
      keyset: { type: "string" },
      encrypt: { type: "string" },
      force: { type: "boolean" },
      output: { type: "string", short: "o" },
    });
    if (positionals.length) throw usageError(`unexpected argument "${positionals[0]}"`);
    for (const req of ["key", "hardware-id", "image", "slot", "output"] as const) {
      if (!values[req]) throw usageError(`--${req} is required`);
    }
    const slot = intOption(values.slot, "slot");
    if (slot !== 0 && slot !== 1) throw usageError("--slot must be 0 or 1");
    const kind = values.kind ?? "full";
    if (kind !== "full" && kind !== "delta") throw usageError("--kind must be full or delta");
    const issuedAt = values["issued-at"] === undefined ? Math.floor(Date.now() / 1000) : intOption(values["issued-at"], "issued-at");
    const expiresAt = parseExpiry(values.expires ?? "+30d", issuedAt);
    let key;
    try {
      key = readSigningKey(values.key!);
    } catch (e) {
      if (e instanceof KeyError) throw new CliError(`--key ${e.message}`);
      if ((e as NodeJS.ErrnoException).code === "ENOENT") throw new CliError(`--key ${values.key}: no such file`);
      throw e;
    }
    const placeKeySet = values.keyset === undefined ? undefined : certifiedBy(values.keyset, key, values["hardware-id"]!, issuedAt, values.output!, values.force === true);
    try {
      const r = makeRelease({
        key,
        hardwareId: values["hardware-id"]!,
        imagePath: values.image!,
        slot,
        kind,
        payloadPath: values.payload,
        basePath: values.base,
        compression: values.compression,
        stream: values.stream,
        url: values.url,
        issuedAt,
        expiresAt,
        maxDownload: values["max-download"] === undefined ? undefined : intOption(values["max-download"], "max-download"),
        note: values.note,
        slotSize: values["slot-size"] === undefined ? undefined : intOption(values["slot-size"], "slot-size"),
        force: values.force === true,
        out: values.output!,
        ...(values.encrypt ? { encryptFor: readRecipient(values.encrypt) } : {}),
      });
      const m = r.accepted.manifest;
      placeKeySet?.();
      io.say(
        `wrote ${r.envelopePath}: ${m.hardwareId} ${formatVersion(m.version)} ${m.payload.kind} (${m.payload.length} bytes), ` +
          `payload ${r.payloadPath}, release id ${toHex(r.accepted.releaseId)}`,
      );
      io.result({
        file: r.envelopePath,
        payload: r.payloadPath,
        releaseId: toHex(r.accepted.releaseId),
        keyId: toHex(r.accepted.keyId),
        hardwareId: m.hardwareId,
        version: formatVersion(m.version),
        securityCounter: m.securityCounter,
        slot: m.slot,
        kind: m.payload.kind,
        payloadLength: m.payload.length,
        imageLength: m.image.length,
        wholeImageSha256: toHex(m.image.sha256),
        ...(m.payload.baseSha256 ? { baseWholeImageSha256: toHex(m.payload.baseSha256) } : {}),
        issuedAt: m.issuedAt,
        expiresAt: m.expiresAt,
        maxDownload: m.maxDownload,
      });
    } catch (e) {
      if (e instanceof ReleaseError) throw new CliError(e.message);
      throw e;
    }
    return 0;
  },
};

function readRecipient(path: string): Uint8Array {
  try {
    return readPublicKey(path);
  } catch (e) {
    if (e instanceof KeyError) throw new CliError(`--encrypt ${e.message}`);
    if ((e as NodeJS.ErrnoException).code === "ENOENT") throw new CliError(`--encrypt ${path}: no such file`);
    throw e;
  }
}
