/**
 * `xs-ota sign`'s engine: a firmware binary → an MCUboot image laid out as
 * imgtool's `sign` writes it (mcu-tools/mcuboot scripts/imgtool/image.py):
 *
 * - the input either starts with `headerSize` zero bytes that the header
 *   replaces (imgtool's default), or the header is prepended (`padHeader`);
 * - protected TLV area (0x6908) holding SEC_CNT when a security counter is given;
 * - TLV area (0x6907): SHA256, then KEYHASH and ECDSASIG when a key is given;
 * - header flags: RAM_LOAD when a load address is given, ROM_FIXED with `romFixed`
 *   (whose address goes in the load-address field);
 * - with a slot size, image + trailer must fit; `pad` fills to the slot size
 *   with the erase value and writes the boot magic at the end; `confirm`
 *   (implies pad) also sets image_ok.
 *
 * Portable (no Node API) so test entries can sign inside XS.
 */
import { IMAGE_HEADER_SIZE, IMAGE_MAGIC, type ImageVersion } from "../../src/image/format";
import { bootMagic, BOOT_FLAG_SET } from "../../src/image/trailer";
import { encodeImage, type EncodeOptions, type ImageSigner } from "./encode";
import { encryptImage, type EncryptParams } from "./encrypt";

export const IMAGE_F_RAM_LOAD = 0x20;
export const IMAGE_F_ROM_FIXED = 0x100;
/** imgtool's default number of sectors for the swap status area. */
export const DEFAULT_MAX_SECTORS = 128;
export const VALID_ALIGNS = Object.freeze([1, 2, 4, 8, 16, 32]);

export class SignError extends Error {
  /** `input`: the input's content is refused (exit 1); otherwise an option is wrong (exit 2). */
  constructor(message: string, readonly cause_: "option" | "input" = "option") {
    super(message);
  }
}
// Not `this.name = …`: that throws where built-ins are frozen (Moddable); see src/errors.ts.
Object.defineProperty(SignError.prototype, "name", { value: "SignError", writable: true, configurable: true });

export interface SignOptions {
  /** The firmware binary. */
  input: Uint8Array;
  version: ImageVersion;
  /** SEC_CNT value; omitted when undefined (imgtool without --security-counter). */
  securityCounter?: number;
  /** imgtool -H; default 0x200. */
  headerSize?: number;
  /** Prepend the header instead of overwriting zeroed header space (imgtool --pad-header). */
  padHeader?: boolean;
  /** Unsigned (SHA256 TLV only) when absent. */
  signer?: ImageSigner;
  /** imgtool -S; 0 = no size check. */
  slotSize?: number;
  pad?: boolean;
  confirm?: boolean;
  /** Flash write alignment (imgtool --align): 1, 2, 4, 8, 16 or 32. */
  align?: number;
  /** imgtool --max-align; default max(8, align). */
  maxAlign?: number;
  /** imgtool -M (swap status area sectors); default 128. */
  maxSectors?: number;
  /** imgtool --overwrite-only: trailer without the swap status area. */
  overwriteOnly?: boolean;
  /** imgtool -L: RAM load address (sets IMAGE_F_RAM_LOAD). */
  loadAddr?: number;
  /** imgtool --rom-fixed: the flash address the image is linked for (sets IMAGE_F_ROM_FIXED). */
  romFixed?: number;
  eraseValue?: number;
  /** imgtool --encrypt / --encrypt-keylen: an encrypted image (plus xs-ota's slot TLVs). */
  encrypt?: EncryptParams;
}

export interface SignedParts {
  readonly image: Uint8Array;
  /** With `encrypt`: the image as it lands in the slot, and the ENC_EC256 value. */
  readonly slotImage?: Uint8Array;
  readonly enc?: Uint8Array;
}

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/** The trailer size imgtool reserves at the end of a slot (image.py `_trailer_size`, no encryption). */
export function imgtoolTrailerSize(align: number, maxAlign: number, maxSectors: number, overwriteOnly: boolean): number {
  const magicAlignSize = alignUp(16, maxAlign);
  if (overwriteOnly) return maxAlign * 2 + magicAlignSize;
  return maxSectors * 3 * align + maxAlign * 4 + magicAlignSize;
}

/**
 * Build the image.
 * @throws SignError for an option imgtool would refuse (bad alignment, header
 *   space not zero, image too big for the slot, pad without a slot size).
 */
export function signImage(o: SignOptions): Uint8Array {
  return signImageParts(o).image;
}

/** `signImage`, with the slot image and the ENC value of an encrypted image. */
export function signImageParts(o: SignOptions): SignedParts {
  const headerSize = o.headerSize ?? 0x200;
  const align = o.align ?? 1;
  const maxAlign = o.maxAlign ?? Math.max(8, align);
  const maxSectors = o.maxSectors ?? DEFAULT_MAX_SECTORS;
  const eraseValue = o.eraseValue ?? 0xff;
  const pad = !!(o.pad || o.confirm);
  const slotSize = o.slotSize ?? 0;
  if (!VALID_ALIGNS.includes(align)) throw new SignError(`--align must be one of ${VALID_ALIGNS.join(", ")}`);
  if (![8, 16, 32].includes(maxAlign) || maxAlign < align) throw new SignError(`--max-align must be 8, 16 or 32 and at least --align`);
  if (headerSize < IMAGE_HEADER_SIZE || headerSize > 0xffff) throw new SignError(`--header-size must be 32..0xffff, got ${headerSize}`);
  if (pad && slotSize <= 0) throw new SignError("--pad and --confirm need --slot-size");
  if (pad && o.encrypt) throw new SignError("--pad and --confirm make a factory slot: sign it without --encrypt (an encrypted image is what travels, not what a slot holds)");
  if (o.loadAddr !== undefined && o.romFixed !== undefined) throw new SignError("--load-addr and --rom-fixed exclude each other");
  if (eraseValue !== 0xff && eraseValue !== 0x00) throw new SignError("--erased-val must be 0xff or 0");
  if (o.securityCounter !== undefined && !(Number.isInteger(o.securityCounter) && o.securityCounter >= 0 && o.securityCounter <= 0xffffffff)) {
    throw new SignError("--security-counter must be 0..0xffffffff");
  }
  if (o.input.length >= 4 && new DataView(o.input.buffer, o.input.byteOffset, 4).getUint32(0, true) === IMAGE_MAGIC) {
    throw new SignError("input is already an MCUboot image (it starts with the header magic); sign the firmware binary, not a signed image", "input");
  }
  let body: Uint8Array;
  if (o.padHeader) body = o.input;
  else {
    if (o.input.length < headerSize) throw new SignError(`input shorter than the ${headerSize}-byte header space`, "input");
    for (let i = 0; i < headerSize; i++) {
      if (o.input[i] !== 0) throw new SignError(`input does not start with ${headerSize} zero bytes of header space; use --pad-header to prepend the header`);
    }
    body = o.input.subarray(headerSize);
  }
  if (body.length === 0) throw new SignError("input has no firmware (an empty body): nothing to sign", "input");
  let flags = 0;
  if (o.loadAddr) flags |= IMAGE_F_RAM_LOAD; // imgtool sets RAM_LOAD only for a non-zero address
  if (o.romFixed !== undefined) flags |= IMAGE_F_ROM_FIXED;
  const args: EncodeOptions = {
    body,
    version: o.version,
    securityCounter: o.securityCounter,
    headerSize,
    // imgtool --pad-header prepends erase-value bytes; otherwise the input's zeros stay.
    headerFill: o.padHeader ? eraseValue : 0,
    loadAddr: o.romFixed ?? o.loadAddr ?? 0,
    flags,
    signer: o.signer,
  };
  const encrypted = o.encrypt ? encryptImage(args, o.encrypt) : undefined;
  const image = encrypted ? encrypted.image : encodeImage(args);
  if (slotSize > 0) {
    // imgtool reserves two key slots in the swap status area for an encrypted image (`_trailer_size`)
    const trailer = imgtoolTrailerSize(align, maxAlign, maxSectors, !!o.overwriteOnly) + (o.encrypt && !o.overwriteOnly ? 2 * Math.ceil(16 / maxAlign) * maxAlign : 0);
    if (image.length + trailer > slotSize) {
      throw new SignError(`image size (0x${image.length.toString(16)}) + trailer (0x${trailer.toString(16)}) exceeds the slot size 0x${slotSize.toString(16)}`);
    }
  }
  if (encrypted) return encrypted;
  if (!pad) return { image };
  const out = new Uint8Array(slotSize).fill(eraseValue);
  out.set(image, 0);
  out.set(bootMagic(maxAlign), slotSize - 16);
  if (o.confirm && !o.overwriteOnly) out[slotSize - alignUp(16, maxAlign) - maxAlign] = BOOT_FLAG_SET;
  return { image: out };
}

/** imgtool's `--security-counter auto`: major << 24 | minor << 16 | revision. */
export function autoSecurityCounter(v: ImageVersion): number {
  return ((v.major << 24) >>> 0) + (v.minor << 16) + v.revision;
}
