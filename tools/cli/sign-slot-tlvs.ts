/**
 * `xs-ota sign --add-slot-tlvs`: an image imgtool encrypted (`imgtool sign
 * --encrypt`) made installable by the agent. It is decrypted with the
 * recipient's key and checked as MCUboot checks it; then the XSOTA_SLOT_TLVS
 * vendor TLV (the TLV area of the image with the encrypted flag cleared,
 * signed by --key) is appended to its TLVs, which stay byte for byte.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { softwareCipher } from "../../src/crypto/cipher";
import { formatVersion } from "../../src/image/format";
import { toHex } from "../../src/util/bytes";
import { readDecryptionKey } from "../image/enc-keys";
import { SignError } from "../image/sign";
import { addSlotTlvs } from "../image/slot-tlvs";
import { KeyError, readSigningKey } from "../keys/pem";
import { CliError, checkWritable, io, parse, readInput, usageError, writeOutput } from "./command";

function readKey<T>(option: string, path: string, read: (p: string) => T): T {
  try {
    return read(path);
  } catch (e) {
    if (e instanceof KeyError) throw new CliError(`${option} ${e.message}`);
    if ((e as NodeJS.ErrnoException).code === "ENOENT") throw new CliError(`${option} ${path}: no such file`);
    throw e;
  }
}

export async function runAddSlotTlvs(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    "add-slot-tlvs": { type: "boolean" },
    key: { type: "string", short: "k" },
    "decrypt-key": { type: "string" },
    "slot-image": { type: "string" },
    force: { type: "boolean" },
  });
  if (positionals.length !== 2) throw usageError("expected IN (an image imgtool encrypted) and OUT");
  if (!values.key) throw usageError("--add-slot-tlvs needs --key: the key that signed IN (it signs the slot TLVs)");
  if (!values["decrypt-key"]) throw usageError("--add-slot-tlvs needs --decrypt-key: the private key IN is encrypted for");
  const [input, output] = positionals;
  const signer = readKey("--key", values.key, readSigningKey);
  const secret = readKey("--decrypt-key", values["decrypt-key"], readDecryptionKey);
  checkWritable(output, values.force);
  if (values["slot-image"] !== undefined) checkWritable(values["slot-image"], values.force);
  const bytes = readInput(input, "IN");
  let r;
  try {
    r = addSlotTlvs(softwareCipher, secret, bytes, signer);
  } catch (e) {
    if (e instanceof SignError) throw new CliError(`IN ${input}: ${e.message}`);
    throw e;
  } finally {
    secret.fill(0);
  }
  writeOutput(output, r.image, true);
  if (values["slot-image"] !== undefined) writeOutput(values["slot-image"], r.slotImage, true);
  const slotWhole = toHex(sha256(r.slotImage));
  io.say(
    `wrote ${output}: ${input} (decrypted and checked: SHA256 TLV over the plaintext ${toHex(r.info.hash)}, signed by key id ${toHex(signer.keyId)}) ` +
      `plus XSOTA_SLOT_TLVS, ${r.image.length} bytes` +
      `\n  slot image: ${r.slotImage.length} bytes, whole-image SHA-256 ${slotWhole} (what lands in the slot; what a manifest binds)` +
      (values["slot-image"] !== undefined ? `, written to ${values["slot-image"]}` : ""),
  );
  io.result({
    file: output,
    version: formatVersion(r.info.header.version),
    length: r.image.length,
    keyId: toHex(signer.keyId),
    sha256Tlv: toHex(r.info.hash),
    wholeImageSha256: toHex(sha256(r.image)),
    slotImageLength: r.slotImage.length,
    slotImageSha256: slotWhole,
  });
  return 0;
}
