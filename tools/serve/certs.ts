/**
 * Throwaway TLS material for `xs-ota serve` and the tests: a P-256 CA and a
 * server certificate for 127.0.0.1 and localhost, made with the openssl CLI.
 * The CA's private key is deleted once the server certificate is signed, so
 * the throwaway CA can vouch for nothing else.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
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

/**
 * Make (or reuse, when all three exist) a CA and server certificate in `dir`.
 * @param names extra SAN entries besides IP:127.0.0.1 and DNS:localhost.
 */
export function ensureTlsFiles(dir: string, names: readonly string[] = []): TlsFiles {
  const p = tlsPaths(dir);
  if (existsSync(p.ca) && existsSync(p.cert) && existsSync(p.key)) return p;
  mkdirSync(dir, { recursive: true });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  openssl(["req", "-x509", ...ec, "-keyout", "ca-key.pem", "-out", "ca.pem", "-days", "825", "-subj", "/CN=xs-ota serve throwaway CA",
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"], dir);
  openssl(["req", ...ec, "-keyout", "server-key.pem", "-out", "server.csr", "-subj", "/CN=localhost"], dir);
  const san = ["IP:127.0.0.1", "DNS:localhost", ...names.map((n) => (/^\d+\.\d+\.\d+\.\d+$/.test(n) ? `IP:${n}` : `DNS:${n}`))].join(",");
  writeFileSync(join(dir, "server.ext"), `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n`);
  openssl(["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial", "-out", "server.pem", "-days", "825", "-sha256", "-extfile", "server.ext"], dir);
  for (const f of ["ca-key.pem", "server.csr", "server.ext", "ca.srl"]) rmSync(join(dir, f), { force: true });
  chmodSync(p.key, 0o600);
  return p;
}
