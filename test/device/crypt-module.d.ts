/**
 * Moddable's "crypt" module as hal/moddable/digest.ts uses it, for the test
 * program's type check (tsconfig.json; tsconfig.moddable.json takes the SDK's
 * own declaration from hal/moddable/sdk-typings.d.ts). Source:
 * modules/crypt/digest/crypt.js (SDK 48ee02d8).
 */
declare module "crypt" {
  export class Digest {
    constructor(type: string);
    write(data: ArrayBuffer | ArrayBufferView | string): void;
    close(more?: boolean): ArrayBuffer;
    reset(): void;
    readonly blockSize: number;
    readonly outputSize: number;
  }
}
