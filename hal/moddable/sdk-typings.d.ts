/**
 * For `npm run typecheck` ONLY (tsconfig.moddable.json), never for mcconfig:
 * what the Moddable SDK's own typings declare at SDK commit 48ee02d
 * (typings/embedded/storage/flash.d.ts, typings/crypt.d.ts) but the pinned npm
 * package @moddable/typings 5.6.0 does not. In an mcconfig build the SDK's
 * files declare these modules and this file is not in the program (declaring
 * them twice would fail it). Restated as narrowly as the adapters use them,
 * each checked against the module's source.
 */

/**
 * ECMA-419 flash storage on Zephyr: modules/io/flash/zephyr/flash-zephyr.js
 * (the default export is a frozen `{open(options), [Symbol.iterator]}`;
 * `open` returns a `Flash`) and flash-zephyr.c: partitions are found by their
 * devicetree `label` ("can't find partition" otherwise), mode "r" or "r+";
 * read(byteLength, byteOffset) returns a new ArrayBuffer; write(buffer,
 * byteOffset) takes any readable buffer and logs "write returned %d" through
 * xsLog on every call; eraseBlock(start, end?) erases blocks start..end-1;
 * status() returns {size, blockLength, blocks, writeAlign, eraseValue}.
 */
declare module "embedded:storage/flash" {
  export interface FlashOpenOptions {
    path: string;
    mode?: "r" | "r+";
  }
  export interface FlashStatus {
    size: number;
    blockLength: number;
    blocks: number;
    writeAlign: number;
    eraseValue: number;
  }
  export class Flash {
    close(): void;
    eraseBlock(start: number, end?: number): void;
    read(byteLength: number, byteOffset: number): ArrayBuffer;
    write(buffer: ArrayBuffer | ArrayBufferView, byteOffset: number): void;
    status(): FlashStatus;
    format: "buffer";
  }
  const FlashStorage: {
    open(options: FlashOpenOptions): Flash;
    [Symbol.iterator](): IterableIterator<string>;
  };
  export default FlashStorage;
}

/**
 * Moddable's `crypt` Digest (modules/crypt/digest/crypt.js, modCrypt.c):
 * `new Digest("SHA256")`, `write(data)`, `close()` returning the digest as an
 * ArrayBuffer, `reset()`.
 */
declare module "crypt" {
  export class Digest {
    constructor(type: "MD5" | "SHA1" | "SHA224" | "SHA256" | "SHA384" | "SHA512");
    write(message: string | ArrayBuffer): void;
    close(): ArrayBuffer;
    reset(): void;
  }
}

/**
 * xsc's host-function form for modules compiled from TypeScript (the `@ "name"`
 * syntax of Moddable's .js modules is not TypeScript): `native("xs_name")` is
 * the C host function of that name, called as `.call(this, ...args)`.
 * Declared exactly as the SDK declares it in xs/includes/xs.d.ts (which
 * mcconfig's TypeScript step includes); used the same way by
 * modules/io/flash/zephyr/flash-zephyr.js.
 */
declare function native(name: string): (...args: any[]) => any;
