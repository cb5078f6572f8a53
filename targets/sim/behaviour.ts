/**
 * How a simulated firmware image behaves once booted, decided by a marker
 * that a test or the demo puts in the image body, so rollback paths run with
 * real signed images:
 *
 *   "XSOTA-SIM-BEHAVIOUR=healthy;"     runs the agent normally (the default)
 *   "XSOTA-SIM-BEHAVIOUR=hang;"        stops feeding the watchdog at once
 *   "XSOTA-SIM-BEHAVIOUR=crash-loop;"  reboots itself shortly after every boot
 *   "XSOTA-SIM-BEHAVIOUR=no-cloud;"    runs the agent, but its network never connects
 */
import type { Flash } from "../../hal/types";
import { parseImageHeader } from "../../src/image/format";
import { utf8Encode } from "../../src/util/bytes";

export type Behaviour = "healthy" | "hang" | "crash-loop" | "no-cloud";

const PREFIX = "XSOTA-SIM-BEHAVIOUR=";
const BEHAVIOURS: readonly Behaviour[] = Object.freeze(["healthy", "hang", "crash-loop", "no-cloud"]);

/** The marker bytes to embed in a firmware body. */
export function behaviourMarker(b: Behaviour): Uint8Array {
  return utf8Encode(`${PREFIX}${b};`);
}

/** Bytes scanned at most (the marker sits near the start of the body in our fixtures). */
export const MARKER_SCAN_LIMIT = 64 * 1024;

/** Find the marker in the image body of `slot`; "healthy" when absent. */
export function readBehaviour(slot: Flash): Behaviour {
  const header = parseImageHeader(slot.read(32, 0));
  const end = Math.min(header.hdrSize + header.imgSize, header.hdrSize + MARKER_SCAN_LIMIT);
  const prefix = utf8Encode(PREFIX);
  const CHUNK = 1024;
  const overlap = prefix.length + 16;
  for (let off = header.hdrSize; off < end; off += CHUNK - overlap) {
    const n = Math.min(CHUNK, end - off);
    const buf = slot.read(n, off);
    for (let i = 0; i + prefix.length <= buf.length; i++) {
      let match = true;
      for (let k = 0; k < prefix.length && match; k++) match = buf[i + k] === prefix[k];
      if (!match) continue;
      let word = "";
      for (let j = i + prefix.length; j < buf.length && buf[j] !== 0x3b && word.length < 16; j++) word += String.fromCharCode(buf[j]);
      if ((BEHAVIOURS as readonly string[]).includes(word)) return word as Behaviour;
    }
    if (n < CHUNK) break;
  }
  return "healthy";
}
