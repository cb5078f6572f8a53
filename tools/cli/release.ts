/** `xs-ota release`: a signed release manifest for a full image or a delta, with the payload placed next to it. */
import { toHex } from "../../src/util/bytes";
import { formatVersion } from "../../src/image/format";
import { KeyError, readSigningKey } from "../keys/pem";
import { makeRelease, ReleaseError } from "../release/build";
import { CliError, intOption, parse, usageError, type Command } from "./command";

const usage = `usage: xs-ota release --key KEY.pem --hardware-id ID --image IMAGE --slot 0|1 -o OUT.manifest [options]

Write a signed release manifest (the envelope a device is offered) for the
image IMAGE, and place the payload next to OUT (copied unless already there);
the manifest's stream id is the payload's file name in that directory.
  -k, --key FILE          P-256 private key, PEM (signs the manifest)
      --hardware-id ID    device class this release is for, e.g. usr-n520
      --image FILE        the target MCUboot image (as signed by xs-ota sign, unpadded)
      --slot 0|1          the slot the image is built for (direct-xip)
      --kind full|delta   default full
      --payload FILE      the download: the patch for a delta (default: IMAGE for full)
      --base FILE         delta only: the base image the patch applies to
      --compression NAME  payload compression label (default none)
      --stream ID         stream id (default: the payload's file name)
      --url URL           HTTPS (or http) URL of the payload, for Range downloads
      --issued-at T       unix seconds (default now)
      --expires T         +30d / +12h / +90m / +3600s from issue, unix seconds, or an ISO date (default +30d)
      --max-download N    download budget in bytes (default twice the payload)
      --note TEXT         release notes (non-critical; devices skip them)
  -o, --output FILE       the signed manifest to write

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
      if (e instanceof KeyError) throw new CliError(e.message);
      throw e;
    }
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
        out: values.output!,
      });
      const m = r.accepted.manifest;
      process.stdout.write(
        `wrote ${r.envelopePath}: ${m.hardwareId} ${formatVersion(m.version)} ${m.payload.kind} (${m.payload.length} bytes), ` +
          `payload ${r.payloadPath}, release id ${toHex(r.accepted.releaseId)}\n`,
      );
    } catch (e) {
      if (e instanceof ReleaseError) throw new CliError(e.message);
      throw e;
    }
    return 0;
  },
};
