/** `xs-ota diff`: make a delta patch (bsdiff matching, our block format), or convert a BSDIFF40 patch. */
import { readFileSync, writeFileSync } from "node:fs";
import { Codec } from "../../src/delta/format";
import { toHex } from "../../src/util/bytes";
import { readBsdiff40 } from "../delta/bsdiff40";
import { DEFAULT_BLOCK_SIZE, makePatch } from "../delta/index";
import { CliError, intOption, parse, usageError, type Command } from "./command";

const usage = `usage: xs-ota diff OLD NEW -o PATCH [options]
       xs-ota diff --from-bsdiff BSDIFF_PATCH OLD -o PATCH [options]

Make a delta patch that turns OLD (the complete image in the device's active
slot) into NEW: bsdiff's matching, written in xs-ota's patch format (blocks
of NEW compressed one by one, so a device applies it in bounded memory and
resumes after a power cut). With --from-bsdiff, convert a classic BSDIFF40
patch made by the stock \`bsdiff\` tool for OLD (needs the \`bzip2\` program).

options:
  -o, --output FILE       the patch to write (required)
      --block-size N      bytes of NEW per block, a power of two 1024..65536
                          (default ${DEFAULT_BLOCK_SIZE}; devices refuse blocks above their limit)
      --codec NAME        auto (default: range and deflate, the smaller wins), range, deflate or stored

examples:
  xs-ota diff app-1.0.0.bin app-1.0.1.bin -o 1.0.0-to-1.0.1.xsdp
  bsdiff app-1.0.0.bin app-1.0.1.bin old.bsdiff && xs-ota diff --from-bsdiff old.bsdiff app-1.0.0.bin -o 1.0.0-to-1.0.1.xsdp`;

export const command: Command = {
  summary: "make a delta patch (or convert a BSDIFF40 patch)",
  usage,
  async run(argv) {
    const { values, positionals } = parse(argv, {
      output: { type: "string", short: "o" },
      "from-bsdiff": { type: "boolean" },
      "block-size": { type: "string" },
      codec: { type: "string" },
    });
    if (positionals.length !== 2) throw usageError(values["from-bsdiff"] ? "expected BSDIFF_PATCH and OLD" : "expected OLD and NEW");
    if (!values.output) throw usageError("-o PATCH is required");
    const blockSize = intOption(values["block-size"], "block-size", DEFAULT_BLOCK_SIZE);
    if (!(blockSize >= 1024 && blockSize <= 65536 && (blockSize & (blockSize - 1)) === 0)) {
      throw usageError(`--block-size must be a power of two in 1024..65536, got ${blockSize}`);
    }
    const codecName = values.codec ?? "auto";
    const codecs = { auto: "auto", range: Codec.RANGE, deflate: Codec.DEFLATE, stored: Codec.STORED } as const;
    if (!(codecName in codecs)) throw usageError(`--codec must be auto, range, deflate or stored, got "${codecName}"`);
    const codec = codecs[codecName as keyof typeof codecs];
    let old: Uint8Array;
    let nw: Uint8Array;
    let segments;
    if (values["from-bsdiff"]) {
      const bsdiff = new Uint8Array(readFileSync(positionals[0]));
      old = new Uint8Array(readFileSync(positionals[1]));
      try {
        ({ newImage: nw, segments } = readBsdiff40(bsdiff, old));
      } catch (e) {
        throw new CliError(`${positionals[0]}: ${(e as Error).message}`);
      }
    } else {
      old = new Uint8Array(readFileSync(positionals[0]));
      nw = new Uint8Array(readFileSync(positionals[1]));
    }
    const patch = makePatch(old, nw, { blockSize, codec, segments });
    writeFileSync(values.output, patch.bytes);
    const sha = toHex(patch.bytes.subarray(48, 80));
    process.stdout.write(
      `${values.output}: ${patch.bytes.length} bytes (${nw.length ? ((100 * patch.bytes.length) / nw.length).toFixed(2) : "-"} % of the new image), ` +
        `${patch.blocks.length} blocks of ${blockSize}, ${codecName}; old ${old.length} bytes -> new ${nw.length} bytes, new sha256 ${sha}\n`,
    );
    return 0;
  },
};
