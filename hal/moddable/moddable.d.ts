/**
 * Declarations for the Moddable APIs the device adapters use that the pinned
 * `@moddable/typings` (5.6.0) does not declare. Each declares exactly what
 * hal/moddable calls, nothing more, with the source it was taken from.
 */

/**
 * xsc's host-function form for TypeScript (where the `@ "xs_name"` syntax of
 * Moddable's .js modules is not valid): `native("xs_name")` evaluates to the
 * C host function of that name, called with `.call(this, ...args)`.
 * Source: Moddable modules/io/flash/zephyr/flash-zephyr.js, which uses
 * `native("xs_flashstorage_read").call(this, byteLength, byteOffset)`.
 */
declare function native(name: string): (this: unknown, ...args: unknown[]) => unknown;

/**
 * ECMA-419 flash storage as Moddable implements it on Zephyr: partitions are
 * opened by their devicetree `label` property.
 * Source: Moddable modules/io/flash/zephyr/flash-zephyr.js (open, read,
 * write, eraseBlock, status, close) and flash-zephyr.c (status() fields,
 * read() returning an ArrayBuffer), documentation/devices/zephyr.md ("flash").
 */
declare module "embedded:storage/flash" {
  export interface FlashPartitionStatus {
    readonly size: number;
    readonly blockLength: number;
    readonly blocks: number;
    readonly writeAlign: number;
    readonly eraseValue: number;
  }
  export interface FlashPartition {
    read(byteLength: number, byteOffset: number): ArrayBuffer;
    write(buffer: ArrayBuffer | ArrayBufferView, byteOffset: number): void;
    /** Erases blocks `start` up to (not including) `end`; one block when `end` is omitted. */
    eraseBlock(start: number, end?: number): void;
    status(): FlashPartitionStatus;
    close(): void;
  }
  const flash: {
    open(options: { path: string; mode?: "r" | "r+" }): FlashPartition;
  };
  export default flash;
}

/**
 * Moddable's `crypt` module, Digest only.
 * Source: Moddable modules/crypt/digest/crypt.js (`new Digest(type)`,
 * `write(data)`, `close()` returning the digest as an ArrayBuffer).
 */
declare module "crypt" {
  export class Digest {
    constructor(type: "SHA256");
    write(data: ArrayBuffer): void;
    close(): ArrayBuffer;
    reset(): void;
  }
}
