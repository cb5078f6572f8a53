/** `xs-ota apply`: run the device's own patcher (src/delta) on the host, over in-memory mock flash slots. */
import { NorFlash } from "../../hal/mock/flash";
import { softwareDigest } from "../../src/crypto/sha256";
import { PatchApplier, DEFAULT_MAX_BLOCK_SIZE } from "../../src/delta/patcher";
import { toHex } from "../../src/util/bytes";
import { checkWritable, intOption, io, parse, readImageInput, usageError, writeOutput, type Command } from "./command";

const usage = `usage: xs-ota apply OLD PATCH -o NEW [options]

Apply PATCH to OLD with the device's own patcher, exactly as a device runs
it: OLD sits in a mock "active slot", the patch is fed in chunks, the new
image is written to a strict mock NOR "inactive slot" (erase before write,
aligned writes, never a byte twice) and its SHA-256 is checked against the
patch header. Use it to check a patch before it is released.

options:
  -o, --output FILE        where to write the new image (required)
      --chunk N            patch bytes fed per call (default 4096)
      --erase-block N      erase block of the mock flash (default 4096)
      --write-align N      write unit of the mock flash (default 32)
      --max-block-size N   the device's block-size limit (default ${DEFAULT_MAX_BLOCK_SIZE})
      --force              overwrite NEW if it exists

example: xs-ota apply app-1.0.0.bin 1.0.0-to-1.0.1.xsdp -o app-1.0.1.bin`;

export const command: Command = {
  summary: "apply a delta patch with the device's patcher (to check it)",
  usage,
  async run(argv) {
    const { values, positionals } = parse(argv, {
      output: { type: "string", short: "o" },
      chunk: { type: "string" },
      "erase-block": { type: "string" },
      "write-align": { type: "string" },
      "max-block-size": { type: "string" },
      force: { type: "boolean" },
    });
    if (positionals.length !== 2) throw usageError("expected OLD and PATCH");
    if (!values.output) throw usageError("-o NEW is required");
    const chunk = intOption(values.chunk, "chunk", 4096);
    const eraseBlock = intOption(values["erase-block"], "erase-block", 4096);
    const writeAlign = intOption(values["write-align"], "write-align", 32);
    const maxBlockSize = intOption(values["max-block-size"], "max-block-size", DEFAULT_MAX_BLOCK_SIZE);
    const pow2 = (n: number) => n > 0 && (n & (n - 1)) === 0;
    if (chunk < 1) throw usageError("--chunk must be at least 1");
    if (!(pow2(writeAlign) && writeAlign <= 4096)) throw usageError(`--write-align must be a power of two 1..4096, got ${writeAlign}`);
    if (!(pow2(eraseBlock) && eraseBlock <= 1 << 20)) throw usageError(`--erase-block must be a power of two 1..1048576, got ${eraseBlock}`);
    if (eraseBlock % writeAlign !== 0) throw usageError(`--erase-block ${eraseBlock} must be a multiple of --write-align ${writeAlign}`);
    checkWritable(values.output, values.force, "-o");
    const old = readImageInput(positionals[0], "OLD").bytes;
    const patch = readImageInput(positionals[1], "PATCH").bytes;
    // Slots large enough for either image (the header's new length is checked against it by the patcher).
    const declaredNew = patch.length >= 16 ? (patch[12] | (patch[13] << 8) | (patch[14] << 16) | (patch[15] << 24)) >>> 0 : 0;
    const want = Math.max(old.length, Math.min(declaredNew, 64 * 1024 * 1024), 1);
    const slotSize = Math.ceil(want / eraseBlock) * eraseBlock;
    const chip = new NorFlash({ size: 2 * slotSize, blockLength: eraseBlock, writeAlign });
    const active = chip.partition(0, slotSize);
    const inactive = chip.partition(slotSize, slotSize);
    active.cells.set(old);
    const applier = new PatchApplier({ activeSlot: active, inactiveSlot: inactive, digest: softwareDigest, maxBlockSize });
    for (let at = 0; at < patch.length; at += chunk) applier.update(patch.subarray(at, Math.min(at + chunk, patch.length)));
    const result = applier.finish();
    writeOutput(values.output, inactive.cells.subarray(0, result.length), true, "-o");
    io.say(
      `${values.output}: ${result.length} bytes, sha256 ${toHex(result.sha256)} (matches the patch header); ` +
        `decoder working memory ${applier.workingMemory} bytes, ${chip.stats.erases} erases, ${chip.stats.writes} writes`,
    );
    return 0;
  },
};
