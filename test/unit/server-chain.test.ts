/**
 * The strict server-chain check the Moddable adapter uses in place of the
 * SDK's (src/crypto/server-chain.ts), against chains made by openssl: root R
 * with intermediates I1, I2 (leaves L1, L2), another root B (leaf LB), and an
 * attacker's self-signed certificate for the same name. The chain
 * [attacker, L1, I1] — which Moddable's ssl_cert.js verify() accepts, taking
 * the attacker's key as the server's — is refused here.
 */
import { X509Certificate } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkServerChain, parseCertificate } from "../../src/crypto/server-chain";
import { softwareDigest } from "../../src/crypto/sha256";
import { Reason } from "../../src/errors";
import { makeTestPki, type PkiName, type TestPki } from "../lib/test-pki";

let pki: TestPki;
let der: TestPki["der"];
let pin: TestPki["pin"];
beforeAll(() => {
  pki = makeTestPki();
  der = pki.der;
  pin = pki.pin;
});
afterAll(() => pki?.close());

const now = () => Math.floor(Date.now() / 1000);
const check = (presented: PkiName[], anchors: PkiName[], o: { name?: string; pin?: PkiName; at?: number } = {}) =>
  checkServerChain({
    presented: presented.map((n) => der[n]),
    anchors: anchors.map((n) => der[n]),
    serverName: o.name ?? "127.0.0.1",
    ...(o.pin ? { pin: pin[o.pin] } : {}),
    now: o.at ?? now(),
    digest: softwareDigest,
  });

describe("strict server chain (src/crypto/server-chain.ts)", () => {
  it("parses openssl's certificates: names, CA flag, validity", () => {
    const l1 = parseCertificate(der.l1)!;
    expect(l1.dnsNames).toEqual(["localhost", "*.fleet.example"]);
    expect(l1.ipAddresses).toEqual(["127.0.0.1"]);
    expect(l1.isCa).toBe(false);
    expect(parseCertificate(der.i1)!.isCa).toBe(true);
    const x = new X509Certificate(Buffer.from(der.l1));
    expect(l1.notAfter).toBe(Math.floor(new Date(x.validTo).getTime() / 1000));
    expect(l1.notBefore).toBe(Math.floor(new Date(x.validFrom).getTime() / 1000));
  });
  it("accepts the leaf through its intermediate to the configured root, by IP and by name (wildcard too)", () => {
    expect(check(["l1", "i1"], ["r"])).toBe(Reason.OK);
    expect(check(["l1", "i1"], ["r"], { name: "LOCALHOST" })).toBe(Reason.OK);
    expect(check(["l1", "i1"], ["r"], { name: "a.fleet.example" })).toBe(Reason.OK);
    expect(check(["l1"], ["i1"])).toBe(Reason.OK); // the intermediate configured as the anchor
    expect(check(["lb"], ["b"])).toBe(Reason.OK);
  });
  it("refuses the chain Moddable's ssl_cert.js accepts: an attacker's key in front of a genuine certificate for the name", () => {
    expect(check(["evil", "l1", "i1"], ["r"])).toBe(Reason.SOCKET_TLS);
    expect(check(["evil"], ["r"])).toBe(Reason.SOCKET_TLS);
  });
  it("refuses another CA, a wrong name, a non-CA issuer, a missing intermediate, dates outside validity", () => {
    expect(check(["l1", "i1"], ["b"])).toBe(Reason.SOCKET_TLS);
    expect(check(["lb"], ["r"])).toBe(Reason.SOCKET_TLS);
    expect(check(["l1", "i1"], ["r"], { name: "example.com" })).toBe(Reason.SOCKET_TLS);
    expect(check(["l1", "i1"], ["r"], { name: "a.b.fleet.example" })).toBe(Reason.SOCKET_TLS);
    expect(check(["under-leaf", "l1", "i1"], ["r"])).toBe(Reason.SOCKET_TLS);
    expect(check(["l1"], ["r"])).toBe(Reason.SOCKET_TLS);
    expect(check(["l1", "i2"], ["r"])).toBe(Reason.SOCKET_TLS);
    expect(check(["l1", "i1"], ["r"], { at: now() + 4 * 86400 })).toBe(Reason.SOCKET_TLS);
    expect(check(["l1", "i1"], ["r"], { at: now() - 86400 })).toBe(Reason.SOCKET_TLS);
    expect(check([], ["r"])).toBe(Reason.SOCKET_TLS);
  });
  it("the pin: the issuing intermediate or the root passes; the leaf, a sibling or another CA is TLS_PIN_MISMATCH", () => {
    expect(check(["l1", "i1"], ["r"], { pin: "i1" })).toBe(Reason.OK);
    expect(check(["l1", "i1"], ["r"], { pin: "r" })).toBe(Reason.OK);
    expect(check(["l1", "i1"], ["r"], { pin: "l1" })).toBe(Reason.TLS_PIN_MISMATCH);
    expect(check(["l1", "i1"], ["r"], { pin: "i2" })).toBe(Reason.TLS_PIN_MISMATCH);
    expect(check(["l1", "i1"], ["r"], { pin: "b" })).toBe(Reason.TLS_PIN_MISMATCH);
    // A pinned CA appended to the presented chain but not on the path does not count.
    expect(check(["l2", "i2", "i1"], ["r"], { pin: "i1" })).toBe(Reason.TLS_PIN_MISMATCH);
  });
  it("a change to any of the leaf's bytes is refused (sampled every 5th byte)", () => {
    let refused = 0;
    let tried = 0;
    for (let i = 0; i < der.l1.length; i += 5) {
      const t = der.l1.slice();
      t[i] ^= 0x01;
      tried++;
      if (checkServerChain({ presented: [t, der.i1], anchors: [der.r], serverName: "127.0.0.1", now: now(), digest: softwareDigest }) !== Reason.OK) refused++;
    }
    expect(refused).toBe(tried);
  });
});
