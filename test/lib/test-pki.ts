/**
 * A throwaway P-256 PKI made with the openssl CLI for chain tests: roots R and
 * B, intermediates I1 and I2 under R, leaves L1 (under I1), L2 (under I2), LB
 * (under B) for IP 127.0.0.1, localhost and *.fleet.example, a certificate
 * issued by the leaf L1 (a non-CA issuer), and an attacker's self-signed
 * certificate for the same names. Each as DER with its SHA-256 (the pin).
 */
import { spawnSync } from "node:child_process";
import { createHash, X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const PKI_NAMES = ["r", "b", "i1", "i2", "l1", "l2", "lb", "under-leaf", "evil"] as const;
export type PkiName = (typeof PKI_NAMES)[number];

export interface TestPki {
  readonly dir: string;
  readonly der: Record<PkiName, Uint8Array>;
  readonly pin: Record<PkiName, Uint8Array>;
  close(): void;
}

export function makeTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), "xs-ota-pki-"));
  const ssl = (args: string[]) => {
    const r = spawnSync("openssl", args, { cwd: dir, encoding: "utf8", timeout: 60_000 });
    if (r.error) throw new Error(`openssl is needed: ${r.error.message}`);
    if (r.status !== 0) throw new Error(`openssl ${args.join(" ")}: ${r.stderr}`);
  };
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  const caExt = ["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"];
  const root = (n: string) => ssl(["req", "-x509", ...ec, "-keyout", `${n}.key`, "-out", `${n}.pem`, "-days", "2", "-subj", `/CN=chain ${n}`, ...caExt]);
  const signed = (n: string, issuer: string, ext: string) => {
    ssl(["req", ...ec, "-keyout", `${n}.key`, "-out", `${n}.csr`, "-subj", `/CN=chain ${n}`]);
    writeFileSync(join(dir, `${n}.ext`), ext);
    ssl(["x509", "-req", "-in", `${n}.csr`, "-CA", `${issuer}.pem`, "-CAkey", `${issuer}.key`, "-CAcreateserial", "-out", `${n}.pem`, "-days", "2", "-sha256", "-extfile", `${n}.ext`]);
  };
  const ca = "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n";
  const leaf = "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:*.fleet.example\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n";
  root("r");
  root("b");
  signed("i1", "r", ca);
  signed("i2", "r", ca);
  signed("l1", "i1", leaf);
  signed("l2", "i2", leaf);
  signed("lb", "b", leaf);
  signed("under-leaf", "l1", leaf);
  ssl(["req", "-x509", ...ec, "-keyout", "evil.key", "-out", "evil.pem", "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"]);
  const der = {} as Record<PkiName, Uint8Array>;
  const pin = {} as Record<PkiName, Uint8Array>;
  for (const n of PKI_NAMES) {
    der[n] = new Uint8Array(new X509Certificate(readFileSync(join(dir, `${n}.pem`))).raw);
    pin[n] = new Uint8Array(createHash("sha256").update(der[n]).digest());
  }
  return { dir, der, pin, close: () => rmSync(dir, { recursive: true, force: true }) };
}
