/**
 * The release manifest as the device sees it after parsing and signature
 * checks: what the cloud offers, bound to one hardware class, version,
 * security counter, target image and payload. The byte encoding is in
 * docs/formats.md; the parser in ./manifest.ts.
 */
import type { ImageVersion } from "../image/format";

export type PayloadKind = "full" | "delta";

export interface ReleaseManifest {
  /** Hardware id / device class this release is for, e.g. "usr-n520". */
  readonly hardwareId: string;
  readonly version: ImageVersion;
  /** The image's SEC_CNT; must be >= the device's protected counter. */
  readonly securityCounter: number;
  /** The slot this build is linked for (direct-xip: the device's inactive slot). */
  readonly slot: 0 | 1;
  /** The target: the complete MCUboot image (header through TLV area) as it will sit in the slot. */
  readonly image: { readonly length: number; readonly sha256: Uint8Array };
  /** What is downloaded. */
  readonly payload: {
    readonly kind: PayloadKind;
    readonly length: number;
    readonly sha256: Uint8Array;
    /** For a delta: SHA-256 of the complete base image (the running image, header through TLV area). */
    readonly baseSha256?: Uint8Array;
    /** Payload compression, e.g. "none" for a full image; a patch names its codec in its own header. */
    readonly compression: string;
    /**
     * Present when the payload is encrypted for this device (MCUboot's ENC_EC256
     * value: ephemeral key, tag, wrapped key). A full payload is then the
     * encrypted image (`sha256` over it) and `image` is what it decrypts to in
     * the slot; a delta's patch is AES-CTR encrypted whole (`sha256` over the
     * ciphertext). docs/formats.md, "Encrypted images".
     */
    readonly encryption?: Uint8Array;
  };
  /** Where to fetch the payload: an MQTT stream id and/or an HTTPS URL. */
  readonly fetch: { readonly stream?: string; readonly url?: string };
  /** Unix seconds. */
  readonly issuedAt: number;
  /** Unix seconds; the offer is refused at or after this trusted time. */
  readonly expiresAt: number;
  /** The most bytes the device may download for this release (its data budget). */
  readonly maxDownload: number;
}

/** A parsed, signature-checked manifest with its identity. */
export interface AcceptedManifest {
  readonly manifest: ReleaseManifest;
  /** SHA-256 of the exact signed manifest bytes: the release id used for replay defence and reports. */
  readonly releaseId: Uint8Array;
  /** The key id (SHA-256 of the public key) that signed it. */
  readonly keyId: Uint8Array;
}
