/** `xs-ota revoke`: a signed revocation record (minimum version and security counter, blocked image hashes). */
import { statSync, writeFileSync } from "node:fs";
import { sha256 } from "@noble/hashes/sha2.js";
import { OtaError } from "../../src/errors";
import { formatVersion, parseVersion, type ImageVersion } from "../../src/image/format";
import { MAX_BLOCKED } from "../../src/update/revocation";
import { fromHex, toHex } from "../../src/util/bytes";
import { KeyError, readSigningKey } from "../keys/pem";
import { ReleaseError, scanImageFile } from "../release/build";
import { makeRevocation, RevokeError } from "../release/revoke";
import { CliError, intOption, parse, usageError, type Command } from "./command";

const usage = `usage: xs-ota revoke --key KEY.pem --hardware-id ID --sequence N -o OUT.revocation [options]

Write a signed revocation record for one device class. A device that holds it
refuses every offer of a revoked release (reason REVOKED), and if its running
image is revoked, reports it and asks for a replacement. A device takes a
record only with a greater sequence than the one it holds, so each new record
needs a new, greater --sequence; a newer record replaces the older one
entirely (to lift a revocation, publish a newer record without it). Put the
file in xs-ota serve's release directory to publish it.
  -k, --key FILE              P-256 private key, PEM (a key the devices trust for manifests)
      --hardware-id ID        device class, e.g. usr-n520
      --sequence N            1..4294967295, strictly greater than the last record's
      --min-version V         images below major.minor.revision+build are revoked (default 0.0.0+0)
      --min-security-counter N  images with a lower security counter are revoked (default 0)
      --block IMAGE_OR_SHA256 revoke one image: an MCUboot image file (its complete image is
                              hashed, header through TLVs) or its SHA-256 as 64 hex digits;
                              repeatable, at most ${MAX_BLOCKED}
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
      "min-version": { type: "string" },
      "min-security-counter": { type: "string" },
      block: { type: "string", multiple: true },
      "issued-at": { type: "string" },
      note: { type: "string" },
      output: { type: "string", short: "o" },
    });
    if (positionals.length) throw usageError(`unexpected argument "${positionals[0]}"`);
    for (const req of ["key", "hardware-id", "sequence", "output"] as const) {
      if (!values[req]) throw usageError(`--${req} is required`);
    }
    const sequence = intOption(values.sequence, "sequence");
    if (sequence < 1 || sequence > 0xffffffff) throw usageError("--sequence must be 1..4294967295");
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
      if (e instanceof KeyError) throw new CliError(e.message);
      throw e;
    }
    try {
      const blocked = blocks.map(blockedHashOf);
      const r = makeRevocation({
        key,
        hardwareId: values["hardware-id"]!,
        sequence,
        issuedAt,
        minVersion,
        minSecurityCounter,
        blocked,
        note: values.note,
      });
      writeFileSync(values.output!, r.envelope);
      const rec = r.record;
      process.stdout.write(
        `wrote ${values.output}: ${rec.hardwareId} sequence ${rec.sequence}, min version ${formatVersion(rec.minVersion)}, ` +
          `min security counter ${rec.minSecurityCounter}, ${rec.blocked.length} blocked image(s), revocation id ${toHex(r.id)}\n`,
      );
    } catch (e) {
      if (e instanceof RevokeError) throw new CliError(e.message);
      throw e;
    }
    return 0;
  },
};
