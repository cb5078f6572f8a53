/**
 * Throwaway TLS material for `xs-ota serve` and the tests: a P-256 CA and a
 * server certificate for 127.0.0.1 and localhost, made with the openssl CLI.
 * The CA's private key is deleted once the server certificate is signed, so
 * the throwaway CA can vouch for nothing else.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface TlsFiles {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

function openssl(args: string[], cwd: string): void {
  const r = spawnSync("openssl", args, { cwd, encoding: "utf8", timeout: 60_000 });
  if (r.error) throw new Error(`openssl is needed to make the throwaway CA: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr.trim()}`);
}

/** Paths of the TLS files in `dir` (ca.pem, server.pem, server-key.pem). */
export function tlsPaths(dir: string): TlsFiles {
  return { ca: join(dir, "ca.pem"), cert: join(dir, "server.pem"), key: join(dir, "server-key.pem") };
}

function complete(p: TlsFiles): boolean {
  return existsSync(p.ca) && existsSync(p.cert) && existsSync(p.key);
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Make (or reuse, when all three exist) a CA and server certificate in `dir`.
 * Several processes may call it at once on one folder (two serve instances
 * started together): one makes the files under a lock file, in a private
 * temporary folder, and moves them in with the server certificate last; the
 * others wait for the set to be complete (at most 60 s; a lock older than
 * that is taken as left by a dead process).
 * @param names extra SAN entries besides IP:127.0.0.1 and DNS:localhost.
 */
export function ensureTlsFiles(dir: string, names: readonly string[] = []): TlsFiles {
  const p = tlsPaths(dir);
  if (complete(p)) return p;
  mkdirSync(dir, { recursive: true });
  const lock = join(dir, ".making.lock");
  const deadline = Date.now() + 60_000;
  let fd: number | undefined;
  while (fd === undefined) {
    try {
      fd = openSync(lock, "wx");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      if (complete(p)) return p;
      if (Date.now() > deadline || Date.now() - statSync(lock, { throwIfNoEntry: false })!.mtimeMs > 60_000) {
        rmSync(lock, { force: true });
        continue;
      }
      sleepMs(50);
    }
  }
  const work = mkdtempSync(join(dir, ".new-"));
  try {
    if (complete(p)) return p;
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    openssl(["req", "-x509", ...ec, "-keyout", "ca-key.pem", "-out", "ca.pem", "-days", "825", "-subj", "/CN=xs-ota serve throwaway CA",
      "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"], work);
    openssl(["req", ...ec, "-keyout", "server-key.pem", "-out", "server.csr", "-subj", "/CN=localhost"], work);
    const san = ["IP:127.0.0.1", "DNS:localhost", ...names.map((n) => (/^\d+\.\d+\.\d+\.\d+$/.test(n) ? `IP:${n}` : `DNS:${n}`))].join(",");
    writeFileSync(join(work, "server.ext"), `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n`);
    openssl(["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial", "-out", "server.pem", "-days", "825", "-sha256", "-extfile", "server.ext"], work);
    chmodSync(join(work, "server-key.pem"), 0o600);
    // The CA's key never leaves the temporary folder; the server certificate moves in last, completing the set.
    renameSync(join(work, "ca.pem"), p.ca);
    renameSync(join(work, "server-key.pem"), p.key);
    renameSync(join(work, "server.pem"), p.cert);
    return p;
  } finally {
    rmSync(work, { recursive: true, force: true });
    closeSync(fd);
    rmSync(lock, { force: true });
  }
}
