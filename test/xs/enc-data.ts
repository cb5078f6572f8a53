/**
 * Node side of the encrypted-image entry (test/xs/entries/enc.ts), for the XS
 * and device lanes: the delta's patch, made here (codec 3's encoder module
 * needs node:zlib) from the same deterministic images the entry builds.
 */
import { TestOnlySeededRandom } from "../../hal/mock/random";
import { makePatch } from "../../tools/delta/index";
import { deltaEntry } from "../fixtures/firmware/xs-data";
import { encImages, provisionDeviceKey } from "../lib/enc-fixtures";
import { makeWorld } from "../lib/sim-world";

/** The entry file (default: the XS lane's) with its data module in front (for startXs or buildDevice). */
export function encEntry(entryPath = new URL("./entries/enc.ts", import.meta.url).pathname): string {
  const w = makeWorld();
  const d = w.addDevice("xs-enc");
  const { full, target } = encImages(w, provisionDeviceKey(d.storage, new TestOnlySeededRandom(21)));
  const encPatch = Buffer.from(makePatch(full.target.bytes, target.bytes).bytes).toString("hex");
  return deltaEntry({ encPatch }, entryPath);
}
