/** `xs-ota sign`: a firmware binary → a signed MCUboot image, as imgtool's `sign` makes it. */
import { OtaError } from "../../src/errors";
import { formatVersion, parseVersion } from "../../src/image/format";
import { toHex } from "../../src/util/bytes";
import { sha256 } from "@noble/hashes/sha2.js";
import { softwareDigest } from "../../src/crypto/sha256";
import { scanImage } from "../../src/image/verify";
import { BytesFlash } from "../image/bytes-flash";
import { autoSecurityCounter, signImageParts, SignError } from "../image/sign";
import { KeyError, readPublicKey, readSigningKey } from "../keys/pem";
import { randomBytes } from "node:crypto";
import { softwareCipher } from "../../src/crypto/cipher";
import { encodeIntelHex, isHexPath } from "../image/ihex";
import { CliError, checkWritable, intOption, io, parse, readImageInput, usageError, writeOutput, type Command } from "./command";

const usage = `usage: xs-ota sign [--key KEY.pem] --version V [options] IN OUT
       xs-ota sign --add-slot-tlvs --key KEY.pem --decrypt-key DEV.pem [--slot-image FILE] IN OUT

Make an MCUboot image from a firmware binary, laid out as imgtool's \`sign\`
writes it: header, body, protected TLVs (SEC_CNT), TLVs (SHA256, KEYHASH, ECDSASIG).
Options mean what imgtool's do:
  -k, --key FILE               P-256 private key, PEM (PKCS#8 or SEC1); unsigned without it
  -v, --version V              major.minor.revision+build, e.g. 1.2.3+4
  -s, --security-counter N     SEC_CNT protected TLV (N, or "auto" = major<<24|minor<<16|revision)
  -H, --header-size N          header size (default 0x200)
      --pad-header             prepend the header; without it IN must start with
                               header-size zero bytes, which the header replaces
  -S, --slot-size N            slot size: image + trailer must fit
      --pad                    pad to the slot size and write the trailer's boot magic
      --confirm                also set image_ok (implies --pad)
      --align N                flash write alignment: 1, 2, 4, 8, 16 or 32 (default 1)
      --max-align N            trailer alignment (default max(8, align))
  -M, --max-sectors N          swap status sectors reserved in the trailer (default 128)
      --overwrite-only         trailer without the swap status area
  -L, --load-addr ADDR         RAM-load address (sets IMAGE_F_RAM_LOAD)
      --rom-fixed ADDR         flash address the image is linked for (sets IMAGE_F_ROM_FIXED)
  -R, --erased-val 0xff|0      erased flash value for padding (default 0xff)
  -E, --encrypt FILE           encrypt for this P-256 public key (PEM; a private key's public
                               half is used): imgtool's ENC_EC256 (ECIES-P256, HKDF-SHA256,
                               AES-CTR, HMAC-SHA256), plus the slot TLVs direct-xip boots
      --encrypt-keylen 128|256 AES key length (default 128, as imgtool)
      --slot-image FILE        with --encrypt: also write the image as it lands in the slot
                               (flag cleared, plaintext: keep it with the firmware; xs-ota
                               release --image takes it, the encrypted OUT is the --payload)
      --add-slot-tlvs          IN is an image imgtool encrypted (imgtool sign --encrypt): decrypt it
                               with --decrypt-key (the recipient's private key, PEM), check it as
                               MCUboot does (hash over the plaintext, --key's signature), and write
                               OUT = IN (its TLVs byte for byte) plus the slot TLVs the agent needs,
                               signed by --key (without them it refuses IN: ENC_NO_SLOT_TLVS)
  -x, --hex-addr ADDR          address of the image in a .hex OUT (default: IN's .hex address)
      --force                  overwrite OUT if it exists
      --json                   one object on stdout (file, version, lengths, hashes); text on stderr
Numbers are decimal or 0x hex. IN and OUT ending in .hex are Intel HEX, as
with imgtool: a .hex IN's lowest address is the firmware's (the header goes
below it with --pad-header); a padded .hex OUT holds the image and the trailer
records only. Refused (exit 1): an empty IN, or an IN that is already signed.

example: xs-ota sign -k key.pem -v 1.2.3+4 -s 7 -H 0x200 --pad-header -S 0xc0000 --align 32 app.bin app.signed.bin`;

export const command: Command = {
  summary: "sign a firmware binary into an MCUboot image (imgtool-compatible)",
  usage,
  json: true,
  async run(argv) {
    if (argv.includes("--add-slot-tlvs")) return (await import("./sign-slot-tlvs")).runAddSlotTlvs(argv);
    const { values, positionals } = parse(argv, {
      key: { type: "string", short: "k" },
      version: { type: "string", short: "v" },
      "security-counter": { type: "string", short: "s" },
      "header-size": { type: "string", short: "H" },
      "pad-header": { type: "boolean" },
      "slot-size": { type: "string", short: "S" },
      pad: { type: "boolean" },
      confirm: { type: "boolean" },
      align: { type: "string" },
      "max-align": { type: "string" },
      "max-sectors": { type: "string", short: "M" },
      "overwrite-only": { type: "boolean" },
      "load-addr": { type: "string", short: "L" },
      "rom-fixed": { type: "string" },
      "erased-val": { type: "string", short: "R" },
      "hex-addr": { type: "string", short: "x" },
      encrypt: { type: "string", short: "E" },
      "encrypt-keylen": { type: "string" },
      "slot-image": { type: "string" },
      force: { type: "boolean" },
    });
    if (positionals.length !== 2) throw usageError("expected IN and OUT");
    const [input, output] = positionals;
    if (!values.version) throw usageError("--version is required");
    const opt = (name: string) => (values[name as keyof typeof values] === undefined ? undefined : intOption(values[name as keyof typeof values] as string, name));
    let version;
    try {
      version = parseVersion(values.version);
    } catch (e) {
      throw usageError((e as OtaError).message);
    }
    const sc = values["security-counter"];
    const securityCounter = sc === undefined ? undefined : sc === "auto" ? autoSecurityCounter(version) : intOption(sc, "security-counter");
    let signer;
    try {
      signer = values.key ? readSigningKey(values.key) : undefined;
    } catch (e) {
      if (e instanceof KeyError) throw new CliError(`--key ${e.message}`);
      if ((e as NodeJS.ErrnoException).code === "ENOENT") throw new CliError(`--key ${values.key}: no such file`);
      throw e;
    }
    let encrypt;
    const keylen = values["encrypt-keylen"] ?? "128";
    if (keylen !== "128" && keylen !== "256") throw usageError("--encrypt-keylen must be 128 or 256");
    if (values["encrypt-keylen"] !== undefined && !values.encrypt) throw usageError("--encrypt-keylen goes with --encrypt");
    if (values.encrypt) {
      let recipient;
      try {
        recipient = readPublicKey(values.encrypt);
      } catch (e) {
        if (e instanceof KeyError) throw new CliError(`--encrypt ${e.message}`);
        if ((e as NodeJS.ErrnoException).code === "ENOENT") throw new CliError(`--encrypt ${values.encrypt}: no such file`);
        throw e;
      }
      encrypt = { recipient, keyLength: keylen === "256" ? (32 as const) : (16 as const), random: (n: number) => new Uint8Array(randomBytes(n)), cipher: softwareCipher };
    }
    const hexOut = isHexPath(output);
    checkWritable(output, values.force);
    if (values["slot-image"] !== undefined) {
      if (!values.encrypt) throw usageError("--slot-image goes with --encrypt");
      checkWritable(values["slot-image"], values.force);
    }
    const read = readImageInput(input, "IN");
    let hexAddr = values["hex-addr"] === undefined ? undefined : intOption(values["hex-addr"], "hex-addr");
    if (hexOut && hexAddr === undefined) {
      if (read.baseAddress === undefined) throw usageError("a .hex OUT needs an address: give --hex-addr or a .hex IN");
      hexAddr = read.baseAddress - (values["pad-header"] ? opt("header-size") ?? 0x200 : 0);
      if (hexAddr < 0) throw usageError(`the .hex IN starts at 0x${read.baseAddress.toString(16)}, below the header size; give --hex-addr`);
    }
    let image: Uint8Array;
    let slotImage: Uint8Array | undefined;
    try {
      ({ image, slotImage } = signImageParts({
        input: read.bytes,
        version,
        securityCounter,
        headerSize: opt("header-size"),
        padHeader: values["pad-header"],
        signer,
        slotSize: opt("slot-size"),
        pad: values.pad,
        confirm: values.confirm,
        align: opt("align"),
        maxAlign: opt("max-align"),
        maxSectors: opt("max-sectors"),
        overwriteOnly: values["overwrite-only"],
        loadAddr: opt("load-addr"),
        romFixed: opt("rom-fixed"),
        eraseValue: opt("erased-val"),
        encrypt,
      }));
    } catch (e) {
      if (e instanceof SignError) throw e.cause_ === "input" ? new CliError(`IN ${input}: ${e.message}`) : usageError(e.message);
      throw e;
    }
    // an encrypted image's hash covers the plaintext: describe it by the image that lands in the slot
    const info = scanImage(new BytesFlash(slotImage ?? image), { digest: softwareDigest });
    const totalLength = slotImage ? image.length : info.totalLength;
    if (hexOut) {
      // As imgtool writes a padded .hex: the image, then only the trailer bytes that are set.
      const erased = opt("erased-val") ?? 0xff;
      let tail = image.length;
      if (image.length > totalLength) {
        tail = totalLength;
        while (tail < image.length && image[tail] === erased) tail++;
      }
      const segments = [{ address: hexAddr!, bytes: image.subarray(0, totalLength) }];
      if (tail < image.length) segments.push({ address: hexAddr! + tail, bytes: image.subarray(tail) });
      writeOutput(output, encodeIntelHex(segments), true);
    } else writeOutput(output, image, true);
    if (slotImage && values["slot-image"] !== undefined) writeOutput(values["slot-image"], slotImage, true);
    const whole = sha256(image.subarray(0, totalLength));
    const slotWhole = slotImage ? sha256(slotImage) : undefined;
    io.say(
      `wrote ${output}: ${formatVersion(version)}, ${image.length} bytes` +
        (securityCounter !== undefined ? `, security counter ${securityCounter}` : "") +
        (signer ? `, key id ${toHex(signer.keyId)}` : ", unsigned") +
        (hexOut ? `, Intel HEX at 0x${hexAddr!.toString(16)}` : "") +
        (encrypt ? `, encrypted AES-${encrypt.keyLength * 8} for ${values.encrypt}` : "") +
        (slotImage
          ? `\n  SHA256 TLV ${toHex(info.hash)} (MCUboot's hash of the slot image, over the plaintext)\n  file SHA-256 ${toHex(whole)} (the encrypted payload)\n  slot image: ${slotImage.length} bytes, whole-image SHA-256 ${toHex(slotWhole!)} (what lands in the slot; what a manifest binds)`
          : `\n  SHA256 TLV ${toHex(info.hash)} (MCUboot's hash)\n  whole-image SHA-256 ${toHex(whole)} (what a manifest binds and revoke --block takes)`),
    );
    io.result({
      file: output,
      version: formatVersion(version),
      length: image.length,
      imageLength: totalLength,
      securityCounter: securityCounter ?? null,
      keyId: signer ? toHex(signer.keyId) : null,
      sha256Tlv: toHex(info.hash),
      wholeImageSha256: toHex(whole),
      ...(slotImage ? { encrypted: { keyLength: encrypt!.keyLength * 8, slotImageLength: slotImage.length, slotImageSha256: toHex(slotWhole!) } } : {}),
      ...(hexOut ? { hexAddress: hexAddr } : {}),
    });
    return 0;
  },
};
