/** `xs-ota inspect`: a human-readable dump of an image, a signed manifest or a patch (detected by magic). */
import { readFileSync } from "node:fs";
import { inspectPatch, isPatch } from "../delta/inspect";
import { describeImage, isImage } from "../image/describe";
import { describeEnvelope, describeManifestBytes, isBareManifest, isEnvelope } from "../release/describe";
import { describeRevocationBytes, describeRevocationEnvelope, isBareRevocation, isRevocationEnvelope } from "../release/revoke";
import { CliError, parse, usageError, type Command } from "./command";

const usage = `usage: xs-ota inspect FILE

Print what FILE holds, detected by its magic: an MCUboot image (header, TLVs,
hash check, trailer), a signed release manifest (every field, key id, release
id; the signature is checked by \`xs-ota verify\`), an xs-ota delta patch
(header, block table), or a signed revocation record (sequence, minimum
version and counter, blocked image hashes; written by \`xs-ota revoke\`).

example: xs-ota inspect app.signed.bin`;

export const command: Command = {
  summary: "dump an image, a signed manifest, a patch or a revocation record in readable form",
  usage,
  async run(argv) {
    const { positionals } = parse(argv, {});
    if (positionals.length !== 1) throw usageError("expected one FILE");
    const bytes = new Uint8Array(readFileSync(positionals[0]));
    let text: string;
    if (isImage(bytes)) text = describeImage(bytes);
    else if (isEnvelope(bytes)) text = describeEnvelope(bytes);
    else if (isBareManifest(bytes)) {
      const lines = ["release manifest, unsigned (no envelope)"];
      describeManifestBytes(bytes, lines);
      text = lines.join("\n");
    } else if (isPatch(bytes)) text = inspectPatch(bytes);
    else if (isRevocationEnvelope(bytes)) text = describeRevocationEnvelope(bytes);
    else if (isBareRevocation(bytes)) {
      const lines = ["revocation record, unsigned (no envelope)"];
      describeRevocationBytes(bytes, lines);
      text = lines.join("\n");
    } else throw new CliError(`${positionals[0]}: not an MCUboot image, a release manifest, an xs-ota patch or a revocation record`);
    process.stdout.write(text + "\n");
    return 0;
  },
};
