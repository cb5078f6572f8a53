/** `xs-ota diff`: make a delta patch (bsdiff matching, our block format), or convert a BSDIFF40 patch. */
import { sha256 } from "@noble/hashes/sha2.js";
import { Codec, parsePatchHeader } from "../../src/delta/format";
import { equalBytes, fromHex, toHex } from "../../src/util/bytes";
import { readBsdiff40 } from "../delta/bsdiff40";
import { DEFAULT_BLOCK_SIZE, LZ_BLOCK_SIZES, makePatch } from "../delta/index";
import { CliError, checkWritable, intOption, io, parse, readImageInput, usageError, writeOutput, type Command } from "./command";

const usage = `usage: xs-ota diff OLD NEW -o PATCH [options]
       xs-ota diff --from-bsdiff BSDIFF_PATCH OLD (--new NEW | --new-sha256 HEX) -o PATCH [options]

Make a delta patch that turns OLD (the complete image in the device's active
slot) into NEW: bsdiff's matching, written in xs-ota's patch format (blocks
of NEW compressed one by one, so a device applies it in bounded memory and
resumes after a power cut). With --from-bsdiff, convert a classic BSDIFF40
patch made by the stock \`bsdiff\` tool for OLD (needs the \`bzip2\` program).
A BSDIFF40 patch names neither image, so the conversion needs the image it
must make (--new, or its whole-file SHA-256 --new-sha256) and refuses a patch
that makes anything else (the wrong OLD, say). Files ending in .hex are read
as Intel HEX. An empty OLD or NEW is refused: a patch goes between images.

options:
  -o, --output FILE       the patch to write (required)
      --block-size N      bytes of NEW per block, a power of two 1024..65536 (default: lz and lzr try
                          ${LZ_BLOCK_SIZES.join(", ")} and keep the smallest patch, their decoder's memory
                          does not depend on it; range, deflate and stored use ${DEFAULT_BLOCK_SIZE}, and
                          devices refuse their blocks above their limit)
      --codec NAME        auto (default: lz), lz (format version 2: copies from old and new, relocation
                          rules, Huffman-coded; decodes about as cheaply as deflate), lzr (the same, coded
                          with an adaptive range coder: smaller, about twice lz's decode work), smallest
                          (the smallest of lz, lzr, range and deflate), range, deflate or stored (version 1)
      --new FILE          with --from-bsdiff: the image the patch must make
      --new-sha256 HEX    with --from-bsdiff: that image's SHA-256
      --force             overwrite PATCH if it exists
      --json              one object on stdout; the text on stderr

examples:
  xs-ota diff app-1.0.0.bin app-1.0.1.bin -o 1.0.0-to-1.0.1.xsdp
  bsdiff app-1.0.0.bin app-1.0.1.bin old.bsdiff && xs-ota diff --from-bsdiff old.bsdiff app-1.0.0.bin --new app-1.0.1.bin -o 1.0.0-to-1.0.1.xsdp`;

export const command: Command = {
  summary: "make a delta patch (or convert a BSDIFF40 patch)",
  usage,
  json: true,
  async run(argv) {
    const { values, positionals } = parse(argv, {
      output: { type: "string", short: "o" },
      "from-bsdiff": { type: "boolean" },
      "block-size": { type: "string" },
      codec: { type: "string" },
      new: { type: "string" },
      "new-sha256": { type: "string" },
      force: { type: "boolean" },
    });
    const bsdiff = values["from-bsdiff"] === true;
    if (positionals.length !== 2) throw usageError(bsdiff ? "expected BSDIFF_PATCH and OLD" : "expected OLD and NEW");
    if (!values.output) throw usageError("-o PATCH is required");
    if (!bsdiff && (values.new !== undefined || values["new-sha256"] !== undefined)) throw usageError("--new and --new-sha256 go with --from-bsdiff");
    if (bsdiff && values.new === undefined && values["new-sha256"] === undefined) {
      throw usageError("--from-bsdiff needs --new NEW or --new-sha256 HEX: a BSDIFF40 patch carries no hash, so a wrong OLD would go unnoticed");
    }
    const want = values["new-sha256"];
    if (want !== undefined && !/^[0-9a-fA-F]{64}$/.test(want)) throw usageError("--new-sha256 must be 64 hex digits");
    const blockSize = values["block-size"] === undefined ? undefined : intOption(values["block-size"], "block-size", DEFAULT_BLOCK_SIZE);
    if (blockSize !== undefined && !(blockSize >= 1024 && blockSize <= 65536 && (blockSize & (blockSize - 1)) === 0)) {
      throw usageError(`--block-size must be a power of two in 1024..65536, got ${blockSize}`);
    }
    const codecName = values.codec ?? "auto";
    const codecs = { auto: "auto", smallest: "smallest", range: Codec.RANGE, deflate: Codec.DEFLATE, stored: Codec.STORED, lz: Codec.LZ, lzr: Codec.LZR } as const;
    if (!(codecName in codecs)) throw usageError(`--codec must be auto, lz, lzr, smallest, range, deflate or stored, got "${codecName}"`);
    const codec = codecs[codecName as keyof typeof codecs];
    checkWritable(values.output, values.force, "-o");
    let old: Uint8Array;
    let nw: Uint8Array;
    let segments;
    if (bsdiff) {
      const patchBytes = readImageInput(positionals[0], "BSDIFF_PATCH").bytes;
      old = readImageInput(positionals[1], "OLD").bytes;
      if (old.length === 0) throw new CliError(`OLD ${positionals[1]} is empty: a patch goes from an image`);
      try {
        ({ newImage: nw, segments } = readBsdiff40(patchBytes, old));
      } catch (e) {
        throw new CliError(`BSDIFF_PATCH ${positionals[0]}: ${(e as Error).message}`);
      }
      const expected = want !== undefined ? fromHex(want.toLowerCase())! : sha256(readImageInput(values.new!, "--new").bytes);
      if (!equalBytes(sha256(nw), expected)) {
        throw new CliError(`BSDIFF_PATCH ${positionals[0]} applied to OLD ${positionals[1]} does not make the expected NEW (SHA-256 ${toHex(sha256(nw))}, expected ${toHex(expected)}): the patch was made for another OLD`);
      }
    } else {
      old = readImageInput(positionals[0], "OLD").bytes;
      nw = readImageInput(positionals[1], "NEW").bytes;
      if (old.length === 0) throw new CliError(`OLD ${positionals[0]} is empty: a patch goes from an image`);
    }
    if (nw.length === 0) throw new CliError(`NEW ${bsdiff ? "(from the BSDIFF40 patch)" : positionals[1]} is empty: a patch must make an image`);
    const patch = makePatch(old, nw, { blockSize, codec, segments });
    writeOutput(values.output, patch.bytes, true, "-o");
    const h = parsePatchHeader(patch.bytes);
    const percent = (100 * patch.bytes.length) / nw.length;
    io.say(
      `${values.output}: ${patch.bytes.length} bytes (${percent.toFixed(2)} % of the new image), ` +
        `${patch.blocks.length} blocks of ${h.blockSize}, ${codecName}; old ${old.length} bytes -> new ${nw.length} bytes, new SHA-256 ${toHex(h.newSha256)}`,
    );
    io.result({
      file: values.output,
      length: patch.bytes.length,
      percentOfNew: Number(percent.toFixed(2)),
      blocks: patch.blocks.length,
      blockSize: h.blockSize,
      codec: codecName,
      old: { length: h.oldLength, sha256: toHex(h.oldSha256) },
      new: { length: h.newLength, sha256: toHex(h.newSha256) },
    });
    return 0;
  },
};
