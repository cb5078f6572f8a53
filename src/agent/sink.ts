/**
 * Where downloaded payload bytes go: straight into the inactive slot (a full
 * image, through the SlotWriter) or through the patcher (a delta, reading
 * the running image from the active slot). Both are resumable from what the
 * journal recorded, and both say how far they are durable.
 *
 * Preconditions (the agent checked them): the manifest passed policy; the
 * inactive slot is not the running one.
 */
import type { Cipher, Digest, Flash, HashStream } from "../../hal/types";
import { aesCtrAt, unwrapImageKey } from "../image/enc";
import { EncryptedImageDecoder } from "../image/enc-stream";
import { OtaError, Reason } from "../errors";
import { trailerLayout } from "../image/trailer";
import { decodeCheckpoint, encodeCheckpoint, PATCH_HEADER_SIZE, parsePatchHeader, type PatchCheckpoint } from "../delta/format";
import { codecName, codecOfName, patchVersionOf } from "../update/codec";
import { PatchApplier } from "../delta/patcher";
import { HeaderHold, SlotWriter } from "../update/slot-writer";
import type { ReleaseManifest } from "../update/types";
import { equalBytes } from "../util/bytes";

export interface SinkProgress {
  /** Payload offset up to which everything is durable in flash. */
  readonly payloadOffset: number;
  /** Encoded patcher checkpoint (delta) or empty. */
  readonly checkpoint: Uint8Array;
  /** The held header unit once complete (journaled with the progress), else empty. */
  readonly header: Uint8Array;
}

/**
 * Bounded work per call: `write` only queues (a copy); `pump` does one slice —
 * a full image at most SINK_SLICE_BYTES programmed (so at most one erase
 * block entered), a patch one PatchApplier.pump (at most PATCH_SLICE_OUTPUT
 * bytes of new image, at most one erase block, for version-2 patches). The
 * caller returns to the event loop between slices (the supervisor feeds the
 * watchdog there) and asks for more payload only when the queue is empty.
 */
export const SINK_SLICE_BYTES = 4096;
/** Most payload bytes queued at once (a fetcher's window or range is far below). */
export const MAX_QUEUED_BYTES = 256 * 1024;

/** Queued payload bytes, taken in pieces from the front (no concatenation). */
class ByteQueue {
  private chunks: Uint8Array[] = [];
  private at = 0;
  bytes = 0;

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    if (this.bytes + chunk.length > MAX_QUEUED_BYTES) throw new RangeError(`sink: more than ${MAX_QUEUED_BYTES} bytes queued`);
    this.chunks.push(chunk.slice());
    this.bytes += chunk.length;
  }

  /** Up to `n` bytes from the front (a view). */
  take(n: number): Uint8Array {
    const head = this.chunks[0];
    if (!head || n <= 0) return new Uint8Array(0);
    const k = Math.min(n, head.length - this.at);
    const piece = head.subarray(this.at, this.at + k);
    this.at += k;
    this.bytes -= k;
    if (this.at === head.length) {
      this.chunks.shift();
      this.at = 0;
    }
    return piece;
  }
}

export interface PayloadSink {
  /** The payload offset the next byte must come from. */
  readonly nextOffset: number;
  /** Queue payload bytes (no flash work). @throws RangeError past MAX_QUEUED_BYTES. */
  write(chunk: Uint8Array): void;
  /** One slice of work; true while work remains (queued bytes or output pending). */
  pump(): boolean;
  /** Bytes queued and not yet taken by a slice. */
  readonly queued: number;
  /** Make what was written durable and say how far (for the journal). */
  durable(): SinkProgress;
  /** All bytes arrived: finish and check the payload. Returns the new image's length. */
  finish(): number;
  /** RAM held by the sink's buffers (for the memory budget). */
  readonly workingMemory: number;
  /** Bytes of the new image written into the inactive slot so far (install progress). */
  readonly imageWritten: number;
}

export interface SinkOptions {
  readonly manifest: ReleaseManifest;
  readonly activeSlot: Flash;
  /** The inactive slot as the writer sees it: its header unit held in RAM until the trial is requested. */
  readonly inactiveSlot: HeaderHold;
  readonly digest: Digest;
  /** Called when a patch block finished (its checkpoint is durable): the agent journals. */
  readonly onDurable?: (p: SinkProgress) => void;
  /**
   * The running image's length and SHA-256 (hashed in slices at boot): spares
   * the patcher its one-go pass over the old image. The new image is then
   * checked in slices by the verification that follows, not by the patcher.
   */
  readonly running?: { readonly length: number; readonly sha256: Uint8Array };
  /**
   * For an encrypted payload (`manifest.payload.encryption`): the cipher and
   * the device's decryption key (read from protected storage when the sink
   * opens; undefined when none is provisioned). The image key is unwrapped
   * from the manifest's ENC_EC256, its HMAC checked, before anything is
   * erased or written; it lives in RAM only, never in the journal: a resume
   * unwraps it again.
   */
  readonly decryption?: { readonly cipher: Cipher; readonly privateKey: () => Uint8Array | undefined };
}

/** The image key for an encrypted payload. @throws OtaError ENC_NO_KEY, ENC_KEY_UNWRAP, ENC_* (nothing touched yet). */
function payloadKey(o: SinkOptions): { cipher: Cipher; key: Uint8Array; enc: Uint8Array } | undefined {
  const enc = o.manifest.payload.encryption;
  if (!enc) return undefined;
  const secret = o.decryption?.privateKey();
  if (!o.decryption || !secret) throw new OtaError(Reason.ENC_NO_KEY, "the release is encrypted and this device has no decryption key");
  try {
    return { cipher: o.decryption.cipher, key: unwrapImageKey(o.decryption.cipher, secret, enc), enc };
  } finally {
    secret.fill(0);
  }
}

/** Bytes of the inactive slot an image may use: everything below the trailer. */
export function imageCapacity(slot: Flash): number {
  return trailerLayout(slot).start;
}

/**
 * Erase the trailer's erase block of the inactive slot, so a stale trailer
 * (a confirmed older image's image_ok) can never apply to the new image.
 * Done before the first byte of a fresh download.
 */
export function eraseTrailerBlock(slot: Flash): void {
  const { size, blockLength } = slot.status();
  slot.eraseBlock(size / blockLength - 1);
}

/**
 * The patch header is the codec the manifest's payload.compression names
 * (src/update/codec.ts): the header parses (magic, CRC, a version and codec
 * this build decodes) and carries that codec and its format version.
 * @throws OtaError PATCH_CODEC_MISMATCH; the header errors of parsePatchHeader.
 */
export function checkPatchCodec(manifest: ReleaseManifest, header: Uint8Array): void {
  const named = codecOfName(manifest.payload.compression);
  const h = parsePatchHeader(header);
  if (named === undefined || h.codec !== named || h.version !== patchVersionOf(named)) {
    throw new OtaError(
      Reason.PATCH_CODEC_MISMATCH,
      `the manifest names "${manifest.payload.compression}", the patch header is version ${h.version}, codec ${h.codec} (${codecName(h.codec) ?? "unknown"})`,
      h.codec,
    );
  }
}

function heldHeader(o: SinkOptions): Uint8Array {
  return o.inactiveSlot.bytes() ?? new Uint8Array(0);
}

class FullImageSink implements PayloadSink {
  private writer: SlotWriter;
  private hash: HashStream | undefined;
  /** An encrypted image: payload bytes → slot bytes (same offsets below its TLV area). */
  private decoder: EncryptedImageDecoder | undefined;

  constructor(private readonly o: SinkOptions, resumeFrom: number, decrypt?: { cipher: Cipher; key: Uint8Array; enc: Uint8Array }) {
    const limit = imageCapacity(o.inactiveSlot);
    // Without the held header (lost, or never complete) the image cannot go on: start again.
    if (o.inactiveSlot.bytes() === undefined) resumeFrom = 0;
    if (resumeFrom === 0) {
      eraseTrailerBlock(o.inactiveSlot);
      this.writer = SlotWriter.open(o.inactiveSlot, { limit });
      this.hash = o.digest.sha256();
    } else {
      const safe = SlotWriter.safeResumeOffset(o.inactiveSlot, resumeFrom);
      this.writer = SlotWriter.resume(o.inactiveSlot, safe, { limit });
      // The payload hash cannot be resumed; the image hash (manifest) and MCUboot's checks still cover every byte.
      this.hash = undefined;
    }
    // The keystream is a function of the offset: the decoder resumes where the writer does, from the held header.
    if (decrypt) this.decoder = new EncryptedImageDecoder(decrypt.cipher, decrypt.key, this.writer.offset, o.inactiveSlot.bytes(), decrypt.enc);
  }

  private readonly queue = new ByteQueue();

  get nextOffset(): number {
    return this.decoder ? this.decoder.offset : this.writer.offset;
  }

  get workingMemory(): number {
    return this.writer.bytes + this.queue.bytes + (this.decoder?.workingMemory ?? 0);
  }

  get imageWritten(): number {
    return this.writer.offset;
  }

  get queued(): number {
    return this.queue.bytes;
  }

  write(chunk: Uint8Array): void {
    this.queue.push(chunk);
  }

  pump(): boolean {
    const piece = this.queue.take(SINK_SLICE_BYTES);
    if (piece.length > 0) {
      // the payload hash is over what was sent (for an encrypted image, the ciphertext)
      this.hash?.update(piece);
      const out = this.decoder ? this.decoder.push(piece) : piece;
      if (out.length > 0) this.writer.write(out);
    }
    return this.queue.bytes > 0;
  }

  durable(): SinkProgress {
    this.writer.flush();
    // an encrypted image's TLV area is held in RAM until the end: durable only up to its start
    const tlvStart = this.decoder?.layout?.tlvStart;
    const payloadOffset = tlvStart === undefined ? this.writer.durableOffset : Math.min(this.writer.durableOffset, tlvStart);
    return { payloadOffset, checkpoint: new Uint8Array(0), header: heldHeader(this.o) };
  }

  finish(): number {
    if (this.queue.bytes > 0) throw new Error("sink: finish with payload still queued");
    if (this.decoder) {
      if (this.decoder.offset !== this.o.manifest.payload.length) throw new OtaError(Reason.DOWNLOAD_SIZE, `received ${this.decoder.offset} of ${this.o.manifest.payload.length} bytes`);
      // the slot's TLV area: the slot TLVs the encrypted image carries (ENC_NO_SLOT_TLVS, ENC_MISMATCH)
      this.writer.write(this.decoder.finish());
      const n = this.writer.finish();
      if (this.hash && !equalBytes(this.hash.finish(), this.o.manifest.payload.sha256)) throw new OtaError(Reason.VERIFY_FAILED, "payload SHA-256 differs from the manifest's");
      if (n !== this.o.manifest.image.length) throw new OtaError(Reason.VERIFY_FAILED, `decrypted image of ${n} bytes, the manifest's is ${this.o.manifest.image.length}`);
      return n;
    }
    const n = this.writer.finish();
    if (n !== this.o.manifest.payload.length) throw new OtaError(Reason.DOWNLOAD_SIZE, `received ${n} of ${this.o.manifest.payload.length} bytes`);
    if (this.hash && !equalBytes(this.hash.finish(), this.o.manifest.payload.sha256)) {
      throw new OtaError(Reason.VERIFY_FAILED, "payload SHA-256 differs from the manifest's");
    }
    return n;
  }
}

class DeltaSink implements PayloadSink {
  private applier: PatchApplier;
  private hash: HashStream | undefined;
  private readonly queue = new ByteQueue();
  /** The applier has output pending for the input it took. */
  private busy = false;

  /** An encrypted patch: AES-CTR over the whole patch, at the patch offset. */
  private decrypt: { cipher: Cipher; key: Uint8Array } | undefined;
  private cipherOffset = 0;
  /**
   * A fresh install: the patch header gathered here first and checked against
   * the manifest's codec (checkPatchCodec) before the trailer block is erased
   * and the patcher sees a byte; undefined once handed on (or on a resume).
   */
  private gate: Uint8Array | undefined;
  private gateHave = 0;

  constructor(private readonly o: SinkOptions, checkpoint: Uint8Array, decrypt?: { cipher: Cipher; key: Uint8Array }) {
    this.decrypt = decrypt;
    const options = {
      activeSlot: o.activeSlot,
      inactiveSlot: o.inactiveSlot,
      digest: o.digest,
      capacity: imageCapacity(o.inactiveSlot),
      sliced: true,
      ...(o.running ? { knownOld: o.running, deferNewCheck: true } : {}),
      // Journal exactly the checkpoint the patcher hands over: on resume it may be a rewound one
      // (back to the start of an erase block), which must be durable before anything is erased.
      onBlock: (cp: PatchCheckpoint) => o.onDurable?.({ payloadOffset: cp.nextPatchOffset, checkpoint: encodeCheckpoint(cp), header: heldHeader(o) }),
    };
    // A checkpoint past the header needs the held header; without it, start again.
    if (o.inactiveSlot.bytes() === undefined) checkpoint = new Uint8Array(0);
    if (checkpoint.length === 0) {
      // Nothing is erased until the header has arrived and names the manifest's codec (pump).
      this.gate = new Uint8Array(PATCH_HEADER_SIZE);
      this.applier = new PatchApplier(options);
      this.hash = o.digest.sha256();
    } else {
      const cp = decodeCheckpoint(checkpoint);
      checkPatchCodec(o.manifest, cp.header);
      this.applier = PatchApplier.resume(options, cp);
      this.hash = undefined;
    }
    this.cipherOffset = this.applier.patchOffset;
  }

  get nextOffset(): number {
    return this.gate ? this.gateHave : this.applier.patchOffset;
  }

  get workingMemory(): number {
    return this.applier.workingMemory + this.queue.bytes + (this.gate ? this.gate.length : 0);
  }

  get imageWritten(): number {
    return this.applier.progress.newOffset;
  }

  get queued(): number {
    return this.queue.bytes;
  }

  write(chunk: Uint8Array): void {
    this.queue.push(chunk);
  }

  /** Gather the patch header from the queue; once complete, check it, erase the trailer block and hand it to the patcher. */
  private pumpHeader(gate: Uint8Array): boolean {
    const piece = this.queue.take(gate.length - this.gateHave);
    if (piece.length > 0) {
      this.hash?.update(piece);
      gate.set(this.plain(piece), this.gateHave);
      this.gateHave += piece.length;
    }
    if (this.gateHave < gate.length) return this.queue.bytes > 0;
    checkPatchCodec(this.o.manifest, gate);
    eraseTrailerBlock(this.o.inactiveSlot);
    this.gate = undefined;
    this.applier.update(gate);
    return true;
  }

  /** An encrypted patch's bytes decrypted at their patch offset; others as they are. */
  private plain(piece: Uint8Array): Uint8Array {
    if (!this.decrypt) return piece;
    const plain = aesCtrAt(this.decrypt.cipher, this.decrypt.key, this.cipherOffset, piece);
    this.cipherOffset += piece.length;
    return plain;
  }

  pump(): boolean {
    if (this.gate) return this.pumpHeader(this.gate);
    if (!this.busy && this.queue.bytes > 0) {
      const piece = this.queue.take(this.applier.inputBound);
      if (piece.length > 0) {
        // the manifest's patch hash is over what was sent (the ciphertext)
        this.hash?.update(piece);
        this.applier.update(this.plain(piece));
      }
    }
    const before = this.queue.bytes;
    this.busy = this.applier.pump();
    // Bounded: a slice that neither decoded nor took input would repeat forever.
    if (!this.busy && this.queue.bytes > 0 && this.queue.bytes === before && this.applier.inputBound === 0) throw new Error("sink: the patcher takes no input and has no work");
    return this.busy || this.queue.bytes > 0;
  }

  durable(): SinkProgress {
    const cp = this.applier.checkpoint();
    if (!cp) return { payloadOffset: 0, checkpoint: new Uint8Array(0), header: new Uint8Array(0) };
    return { payloadOffset: cp.nextPatchOffset, checkpoint: encodeCheckpoint(cp), header: heldHeader(this.o) };
  }

  finish(): number {
    if (this.queue.bytes > 0 || this.busy) throw new Error("sink: finish with payload still queued");
    if (this.gate) throw new OtaError(Reason.PATCH_TRUNCATED, `the patch ended after ${this.gateHave} of its ${PATCH_HEADER_SIZE} header bytes`);
    const r = this.applier.finish();
    if (this.hash && !equalBytes(this.hash.finish(), this.o.manifest.payload.sha256)) {
      throw new OtaError(Reason.VERIFY_FAILED, "patch SHA-256 differs from the manifest's");
    }
    if (r.length !== this.o.manifest.image.length || !equalBytes(r.sha256, this.o.manifest.image.sha256)) {
      throw new OtaError(Reason.VERIFY_FAILED, "patched image differs from the manifest's image");
    }
    return r.length;
  }
}

/**
 * A sink for the manifest's payload, fresh (`progress` empty) or resumed from
 * the journal's last durable progress.
 * @throws OtaError from the flash, PATCH_BAD_CHECKPOINT for an unusable checkpoint;
 *   for an encrypted payload ENC_NO_KEY, ENC_KEY_UNWRAP (another device's key,
 *   tampered) or another ENC_* before anything is erased.
 */
export function openSink(o: SinkOptions, progress: { payloadOffset: number; checkpoint: Uint8Array }): PayloadSink {
  const decrypt = payloadKey(o);
  if (o.manifest.payload.kind === "full") return new FullImageSink(o, progress.payloadOffset, decrypt);
  return new DeltaSink(o, progress.checkpoint, decrypt);
}
