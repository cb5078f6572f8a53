/**
 * Device identity under vitest: the portable suites (also run inside XS by
 * test/xs/identity.test.ts), and the Node-only parts: the fleet CA
 * (tools/ca) issuing for a device's CSR, node:crypto reading what it issues,
 * and the Node socket presenting the device certificate (mutual TLS).
 */
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { nodeRandom } from "../../hal/node/random";
import { buildCsr, generateDeviceKey, devicePublicKey } from "../../src/crypto/csr";
import { parseDeviceCertificate } from "../../src/crypto/x509";
import { toHex } from "../../src/util/bytes";
import { fromPem, initCa, signCsr, toPem } from "../../tools/ca/ca";
import { registerSuite } from "../lib/vitest-suite";
import { allIdentitySuites } from "../xs/entries/identity";

for (const s of allIdentitySuites()) registerSuite(s);

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), "xs-ota-ca-"));
  dirs.push(d);
  return d;
}

describe("Random on Node", () => {
  it("is the OS CSPRNG: 1024 bytes, no two fills alike, bound enforced", () => {
    const a = nodeRandom.fill(new Uint8Array(1024));
    const b = nodeRandom.fill(new Uint8Array(1024));
    expect(toHex(a)).not.toBe(toHex(b));
    expect(new Set(a).size).toBeGreaterThan(200);
    expect(() => nodeRandom.fill(new Uint8Array(1025))).toThrow(RangeError);
  });
});

describe("fleet CA (tools/ca)", () => {
  it("issues a certificate for a device's CSR that node:crypto verifies under the CA and the device parses", () => {
    const dir = tmp();
    const caDer = initCa(dir, "test fleet CA", 30);
    const ca = new X509Certificate(Buffer.from(caDer));
    expect(ca.ca).toBe(true);
    expect(ca.verify(ca.publicKey)).toBe(true);
    const key = generateDeviceKey(nodeRandom);
    const issued = signCsr(dir, toPem("CERTIFICATE REQUEST", buildCsr(key, "dev-7")), 30);
    const cert = new X509Certificate(Buffer.from(issued.der));
    expect(cert.subject).toBe("CN=dev-7");
    expect(cert.issuer).toBe("CN=test fleet CA");
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(cert.checkIssued(ca)).toBe(true);
    expect(cert.ca).toBe(false);
    expect(cert.keyUsage).toEqual(["1.3.6.1.5.5.7.3.2"]);
    const spki = cert.publicKey.export({ format: "der", type: "spki" });
    expect(toHex(new Uint8Array(spki).subarray(-65))).toBe(toHex(devicePublicKey(key)));
    expect(parseDeviceCertificate(issued.der)!.commonName).toBe("dev-7");
    expect(readFileSync(join(dir, "serial.log"), "utf8")).toContain(" dev-7 ");
    expect(fromPem(readFileSync(join(dir, "ca.pem"), "utf8"), "CERTIFICATE")).toEqual(caDer);
  });
  it("refuses a CSR whose signature does not verify, a name that is not a device id, and a second init", () => {
    const dir = tmp();
    initCa(dir, "test fleet CA", 30);
    const csr = buildCsr(generateDeviceKey(nodeRandom), "dev-8");
    const forged = csr.slice();
    forged[40] ^= 1; // inside the subject's name: the signature no longer covers it
    expect(() => signCsr(dir, forged, 30)).toThrow(/does not verify/);
    expect(() => signCsr(dir, buildCsr(generateDeviceKey(nodeRandom), "no spaces allowed"), 30)).toThrow(/not a device id/);
    expect(() => initCa(dir, "again", 30)).toThrow(/already holds a CA/);
    expect(() => signCsr(tmp(), csr, 30)).toThrow(/no CA/);
  });
});
