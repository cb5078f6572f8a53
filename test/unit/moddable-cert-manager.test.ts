/**
 * hal/moddable/cert-manager.ts (the strict replacement of Moddable's ssl/cert)
 * driven as the SDK's TLS session drives it (ssl_handshake.js: verify(certs,
 * session.options) on the certificate message, then register(peerCert) and
 * getKey(peerCert); findPreferredCert on a CertificateRequest), with the SDK
 * modules it imports faked: `x509` (decode → spki) and `crypt` (SHA-256 by
 * node:crypto, as modCrypt.c computes it). Chains from the openssl test PKI.
 */
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Reason } from "../../src/errors";
import { makeTestPki, type TestPki } from "../lib/test-pki";

vi.mock("x509", () => ({ default: { decode: (b: Uint8Array) => ({ spki: `spki:${createHash("sha256").update(b).digest("hex").slice(0, 8)}` }) } }));
vi.mock("crypt", () => ({
  Digest: class {
    private h = createHash("sha256");
    constructor(type: string) {
      if (type !== "SHA256") throw new Error("unsupported");
    }
    write(m: ArrayBuffer) {
      this.h.update(new Uint8Array(m));
    }
    close(): ArrayBuffer {
      const d = this.h.digest();
      return new Uint8Array(d).buffer as ArrayBuffer;
    }
  },
}));

const { default: CertificateManager } = await import("../../hal/moddable/cert-manager");

let pki: TestPki;
beforeAll(() => (pki = makeTestPki()));
afterAll(() => pki?.close());

const ab = (u: Uint8Array) => u.slice().buffer as ArrayBuffer;

describe("the strict ssl/cert for Moddable builds", () => {
  it("verifies the path from the leaf to the configured CA, reports OK, and gives the peer's key to the session", () => {
    const verdicts: number[] = [];
    const m = new CertificateManager({ certificate: ab(pki.der.r), xsOtaVerdict: (r) => verdicts.push(r) });
    expect(m.verify([ab(pki.der.l1), ab(pki.der.i1)], { tls_server_name: "127.0.0.1" })).toBe(true);
    expect(verdicts).toEqual([Reason.OK]);
    m.register(ab(pki.der.l1));
    expect(m.getKey(ab(pki.der.l1))).toBe(`spki:${createHash("sha256").update(pki.der.l1).digest("hex").slice(0, 8)}`);
    expect(() => m.getKey(ab(pki.der.i1))).toThrow(/no such key/);
    expect(() => m.getKey()).toThrow(/no such key/);
  });
  it("refuses what the SDK's ssl_cert.js accepts: an attacker's leaf in front of a genuine chain", () => {
    const verdicts: number[] = [];
    const m = new CertificateManager({ certificate: ab(pki.der.r), xsOtaVerdict: (r) => verdicts.push(r) });
    expect(m.verify([ab(pki.der.evil), ab(pki.der.l1), ab(pki.der.i1)], { tls_server_name: "127.0.0.1" })).toBe(false);
    expect(verdicts).toEqual([Reason.SOCKET_TLS]);
  });
  it("the pin: the issuing CA passes, another CA's chain is TLS_PIN_MISMATCH", () => {
    const verdicts: number[] = [];
    const ok = new CertificateManager({ certificate: ab(pki.der.r), xsOtaCaPin: pki.pin.i1, xsOtaVerdict: (r) => verdicts.push(r) });
    expect(ok.verify([ab(pki.der.l1), ab(pki.der.i1)], { tls_server_name: "localhost" })).toBe(true);
    const other = new CertificateManager({ certificate: ab(pki.der.r), xsOtaCaPin: pki.pin.i1, xsOtaVerdict: (r) => verdicts.push(r) });
    expect(other.verify([ab(pki.der.l2), ab(pki.der.i2)], { tls_server_name: "localhost" })).toBe(false);
    expect(verdicts).toEqual([Reason.OK, Reason.TLS_PIN_MISMATCH]);
  });
  it("trusts only the configured CA and registered ones (no built-in list); presents the client certificates asked for", () => {
    const none = new CertificateManager({});
    expect(none.verify([ab(pki.der.lb)], { tls_server_name: "127.0.0.1" })).toBe(false);
    CertificateManager.register(ab(pki.der.b));
    expect(new CertificateManager({}).verify([ab(pki.der.lb)], { tls_server_name: "127.0.0.1" })).toBe(true);
    const client = [ab(Uint8Array.of(1, 2, 3))];
    expect(new CertificateManager({ clientCertificates: client }).findPreferredCert([64], [])).toBe(client);
    expect(() => none.getCerts()).toThrow();
    expect(() => none.getDH()).toThrow();
  });
});
