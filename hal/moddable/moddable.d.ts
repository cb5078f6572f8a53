/**
 * Declarations for Moddable modules the device adapters use and that the
 * Moddable SDK's own typings (typings/ at SDK commit 48ee02d) do not declare
 * under the specifier the adapters import. Both type-checks see this file:
 * mcconfig's (the root manifest adds it to `typescript.tsconfig.compilerOptions.types`
 * for zephyr builds, as the SDK's own manifests add theirs) and
 * `npm run typecheck` (tsconfig.moddable.json). It must therefore declare
 * nothing that the SDK's typings declare: a module declared twice fails the
 * mcconfig build. Each shape is taken from the module's SOURCE, which wins
 * over any typing.
 */

/**
 * TLS over a TCP socket, as Moddable ships it for ECMA-419: an example module,
 * not part of modules/ (examples/io/tcp/tlssocket/tlssocket.js; its manifest
 * maps it to "embedded:io/socket/tcp/tls" and pulls in crypt/tls_419.json,
 * which uses no network/socket). The SDK's typings/embedded_io/socket/tls.d.ts
 * is mapped under another specifier and lacks `TCP`, without which the
 * constructor throws.
 *
 * From the source: the constructor builds an ssl/session_419 Session from
 * `{serverName: host, ...secure, protocolVersion: 0x303}`, then
 * `new options.TCP.io({...options, onReadable, onWritable, onError})`, so every
 * option the TCP module reads (`address`, `port`) passes through. onWritable
 * reports the TCP module's free space less 96 bytes of record overhead, and
 * only after the handshake; onReadable reports the bytes of one decrypted
 * record. read(count) returns an ArrayBuffer (or undefined when nothing is
 * held) and throws when count exceeds what it holds; write(buffer) encrypts
 * and sends through the session.
 */
declare module "embedded:io/socket/tcp/tls" {
  import type TCP from "embedded:io/socket/tcp";

  export interface TLSSocketOptions {
    /** Server name for SNI (ssl/session_419 `serverName`); `secure.serverName` overrides it. */
    host?: string;
    /** The TCP module's options pass through: Moddable's Zephyr TCP reads `address` (IPv4 literal) and `port`. */
    address: string;
    port: number;
    format?: "buffer";
    /** The TCP socket class TLSSocket opens (`new options.TCP.io(...)`). */
    TCP: { io: typeof TCP };
    /** ssl/session_419 options: `serverName`, `certificate` (a DER ArrayBuffer, registered as trusted), `verify`, ... */
    secure?: Record<string, unknown>;
    onReadable?: (bytes: number) => void;
    onWritable?: (bytes: number) => void;
    onError?: () => void;
  }

  export default class TLSSocket {
    constructor(options: TLSSocketOptions);
    read(count?: number): ArrayBuffer | undefined;
    write(buffer: ArrayBuffer | ArrayBufferView): unknown;
    close(): void;
    format: "buffer" | "number";
  }
}

/**
 * Moddable's TLS random generator (modules/crypt/etc/rng.js and rng.c; part of
 * crypt/tls_common.json, which the TLS socket's manifest includes): RC4
 * seeded from C rand() on first use unless `init(seed)` gave a seed (an
 * ArrayBuffer; its bytes key the RC4 state). `get(n)` returns an ArrayBuffer
 * of n bytes. The SDK's typings do not declare it.
 */
declare module "rng" {
  const RNG: {
    get(n: number): ArrayBuffer;
    init(seed?: ArrayBuffer): void;
  };
  export default RNG;
}

/**
 * Moddable's X.509 helpers (modules/crypt/etc/x509.js): `decode(buf)` returns
 * `{tbs, algo, sig, spki}`, `spki` being the public key in the form the SDK's
 * TLS verifies ServerKeyExchange with (what ssl_cert.js `getKey` returns).
 * The SDK's typings do not declare it.
 */
declare module "x509" {
  const X509: {
    decode(buf: ArrayBuffer | Uint8Array): { tbs: ArrayBuffer; algo: unknown; sig: ArrayBuffer; spki: unknown };
  };
  export default X509;
}
