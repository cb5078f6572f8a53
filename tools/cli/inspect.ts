/** `xs-ota inspect`: a human-readable dump of an image, a signed manifest or a patch (detected by magic). */
import { inspectPatch, isPatch } from "../delta/inspect";
import { DEFECT, describeImage, isImage } from "../image/describe";
import { describeEnvelope, describeManifestBytes, isBareManifest, isEnvelope } from "../release/describe";
import { describeRevocationBytes, describeRevocationEnvelope, isBareRevocation, isRevocationEnvelope } from "../release/revoke";
import { describeKeySetEnvelope, isKeySetEnvelope } from "../release/keyset";
import { CliError, io, parse, readImageInput, usageError, type Command } from "./command";

const usage = `usage: xs-ota inspect FILE

Print what FILE holds, detected by its magic: an MCUboot image (header, TLVs,
hash check, trailer), a signed release manifest (every field, key id, release
id; the signature is checked by \`xs-ota verify\`), an xs-ota delta patch
(header, block table), or a signed revocation record (sequence, minimum
version and counter, blocked image hashes; written by \`xs-ota revoke\`).
An image FILE ending in .hex is read as Intel HEX.

  --json    one object on stdout ({file, kind, ok, defects, lines}); the text on stderr
  --quiet   print nothing; the exit status says it all
Exit status: 0 when the file is sound, 1 when it has a defect (a hash
MISMATCH, a MALFORMED or TRUNCATED patch or image, a record a device REFUSES).

example: xs-ota inspect app.signed.bin`;

export const command: Command = {
  summary: "dump an image, a signed manifest, a patch or a revocation record in readable form",
  usage,
  json: true,
  async run(argv) {
    const { positionals } = parse(argv, {});
    if (positionals.length !== 1) throw usageError("expected one FILE");
    const file = positionals[0];
    const bytes = readImageInput(file, "FILE").bytes;
    let text: string;
    let kind: string;
    if (isImage(bytes)) (text = describeImage(bytes)), (kind = "image");
    else if (isEnvelope(bytes)) (text = describeEnvelope(bytes)), (kind = "manifest");
    else if (isBareManifest(bytes)) {
      kind = "manifest";
      const lines = ["release manifest, unsigned (no envelope)"];
      describeManifestBytes(bytes, lines);
      text = lines.join("\n");
    } else if (isPatch(bytes)) (text = inspectPatch(bytes)), (kind = "patch");
    else if (isRevocationEnvelope(bytes)) (text = describeRevocationEnvelope(bytes)), (kind = "revocation");
    else if (isBareRevocation(bytes)) {
      kind = "revocation";
      const lines = ["revocation record, unsigned (no envelope)"];
      describeRevocationBytes(bytes, lines);
      text = lines.join("\n");
    } else if (isKeySetEnvelope(bytes)) (text = describeKeySetEnvelope(bytes)), (kind = "keyset");
    else throw new CliError(`${file}: not an MCUboot image, a release manifest, an xs-ota patch, a revocation record or a key set`);
    const lines = text.split("\n");
    const defects = lines.filter((l) => DEFECT.test(l)).map((l) => l.trim());
    io.say(text);
    io.result({ file, kind, ok: defects.length === 0, defects, lines });
    if (defects.length && !io.json) io.warn(`xs-ota inspect: ${file}: ${defects[0]}`);
    return defects.length ? 1 : 0;
  },
};
