/**
 * The device identity's portable suites: the seeded test-only Random, key
 * generation, the PKCS#10 CSR (round trip, tamper), the identity records
 * (survive a reset, AT+RELD keeps them, =NEW replaces them), certificate
 * checks, and the console flow (AT+CSR, AT+CERT=BEGIN/lines/END). Registered
 * with vitest by test/unit/identity.test.ts and run inside XS by
 * test/xs/identity.test.ts (this file is the XS entry).
 */
import { TestOnlySeededRandom } from "../../../hal/mock/random";
import { NorFlash } from "../../../hal/mock/flash";
import { PowerRail } from "../../../hal/mock/rail";
import { buildCsr, devicePublicKey, generateDeviceKey, isDeviceKey, parseCsr, signWithDeviceKey } from "../../../src/crypto/csr";
import { P256_N } from "../../../src/crypto/der";
import { verifyP256 } from "../../../src/crypto/ecdsa";
import { sha256Of } from "../../../src/crypto/hash";
import { softwareDigest } from "../../../src/crypto/sha256";
import { parseDeviceCertificate } from "../../../src/crypto/x509";
import { Reason } from "../../../src/errors";
import { DeviceIdentity } from "../../../src/store/identity";
import { openStorage } from "../../../src/store/layout";
import { base64Decode, base64Encode, pemLines } from "../../../src/util/base64";
import { toHex, utf8Encode } from "../../../src/util/bytes";
import { issueTestCertificate } from "../../lib/test-ca";
import { checkServerChain } from "../../../src/crypto/server-chain";
import { fromHex } from "../../../src/util/bytes";
import { CHAIN_HEX, NOW } from "../../vectors/tls-chain";
import { assert, runSuites, suite, type Suite } from "../../lib/spec";
import { serve, task } from "../runtime";
import { makeRig, type Rig } from "./at";

const KiB = 1024;
const CA_KEY = new Uint8Array(32).fill(0x5a);

function chip(): NorFlash {
  return new NorFlash({ size: 64 * KiB, blockLength: 8 * KiB, writeAlign: 32 }, new PowerRail({ seed: 3 }));
}

function scalar(k: Uint8Array): bigint {
  let v = 0n;
  for (const b of k) v = (v << 8n) | BigInt(b);
  return v;
}

/** A Random that always returns the same byte: the reduction must still give a valid scalar. */
function constantRandom(byte: number) {
  return { fill: (out: Uint8Array) => out.fill(byte) };
}

export function keySuite(): Suite {
  return suite("device identity: keys and CSR", (it) => {
    it("the test-only generator is repeatable per seed and differs between seeds", () => {
      const a = new TestOnlySeededRandom(1).fill(new Uint8Array(40));
      const b = new TestOnlySeededRandom(1).fill(new Uint8Array(40));
      const c = new TestOnlySeededRandom(2).fill(new Uint8Array(40));
      assert.bytes(a, b);
      assert.ok(toHex(a) !== toHex(c), "seeds 1 and 2 differ");
      assert.ok(new TestOnlySeededRandom(1).testOnly === true, "marked test-only");
      assert.throws(() => new TestOnlySeededRandom(1).fill(new Uint8Array(1025)), (e) => e instanceof RangeError);
    });
    it("a device key is a scalar in [1, n-1], also from degenerate random bytes", () => {
      for (const byte of [0x00, 0xff]) {
        const k = generateDeviceKey(constantRandom(byte));
        assert.ok(isDeviceKey(k), `from 0x${byte.toString(16)} bytes`);
        assert.ok(scalar(k) >= 1n && scalar(k) < P256_N);
      }
      const k1 = generateDeviceKey(new TestOnlySeededRandom(9));
      const k2 = generateDeviceKey(new TestOnlySeededRandom(10));
      assert.ok(toHex(k1) !== toHex(k2));
      assert.ok(!isDeviceKey(new Uint8Array(32)), "zero is not a key");
    });
    it("a key from a failing random source is not made", () => {
      const failing = { fill: (): Uint8Array => { throw new Error("rng health test failed"); } };
      assert.throws(() => generateDeviceKey(failing), (e) => (e as Error).message === "rng health test failed");
    });
    it("the CSR parses back to the device id and the device's public key, and its signature verifies", () => {
      const k = generateDeviceKey(new TestOnlySeededRandom(11));
      const csr = buildCsr(k, "dev-42");
      const req = parseCsr(csr);
      assert.ok(req, "parses");
      assert.equal(req.commonName, "dev-42");
      assert.bytes(req.publicKey, devicePublicKey(k));
    });
    it("a CSR with any byte of its request info changed is refused (proof of possession)", () => {
      const csr = buildCsr(generateDeviceKey(new TestOnlySeededRandom(12)), "dev-43");
      let refused = 0;
      for (let i = 0; i < csr.length; i++) {
        const t = csr.slice();
        t[i] ^= 0x01;
        if (parseCsr(t) === undefined) refused++;
      }
      assert.equal(refused, csr.length, "every single-bit change");
    });
    it("signatures by the device key verify with its public key (ECDSA-SHA256)", () => {
      const k = generateDeviceKey(new TestOnlySeededRandom(13));
      const msg = utf8Encode("client hello transcript");
      assert.equal(verifyP256(sha256Of(softwareDigest, msg), signWithDeviceKey(k, msg), devicePublicKey(k)), Reason.OK);
    });
    it("base64 round-trips every length and refuses non-canonical text", () => {
      for (let n = 0; n < 40; n++) {
        const b = new TestOnlySeededRandom(n).fill(new Uint8Array(n));
        assert.bytes(base64Decode(base64Encode(b))!, b, `length ${n}`);
      }
      for (const bad of ["A", "AB=", "QQ=A", "QR==", "QUI=x", "Q!==", "===="]) assert.equal(base64Decode(bad), undefined, bad);
    });
  });
}

export function recordSuite(): Suite {
  return suite("device identity: protected records", (it) => {
    it("the key is made once, survives a reset (storage reopened) and is not remade", () => {
      const c = chip();
      const a = new DeviceIdentity(openStorage(c).identity, new TestOnlySeededRandom(21));
      assert.ok(!a.hasKey);
      a.ensureKey();
      const pub = a.publicKey();
      const b = new DeviceIdentity(openStorage(c).identity, new TestOnlySeededRandom(99));
      assert.ok(b.hasKey, "after reopen");
      b.ensureKey();
      assert.bytes(b.publicKey(), pub, "same key after a reset");
    });
    it("installs only a certificate for its own key and its device id", () => {
      const c = chip();
      const id = new DeviceIdentity(openStorage(c).identity, new TestOnlySeededRandom(22));
      assert.equal(id.installCertificate(issueTestCertificate(CA_KEY, "dev-1", devicePublicKey(CA_KEY)), "dev-1"), Reason.IDENTITY_NO_KEY);
      id.ensureKey();
      const other = devicePublicKey(generateDeviceKey(new TestOnlySeededRandom(23)));
      assert.equal(id.installCertificate(issueTestCertificate(CA_KEY, "dev-1", other), "dev-1"), Reason.IDENTITY_CERT_WRONG_KEY);
      assert.equal(id.installCertificate(issueTestCertificate(CA_KEY, "dev-2", id.publicKey()), "dev-1"), Reason.IDENTITY_CERT_WRONG_NAME);
      assert.equal(id.installCertificate(Uint8Array.of(0x30, 0x00), "dev-1"), Reason.IDENTITY_CERT_MALFORMED);
      assert.equal(id.installCertificate(new Uint8Array(2000), "dev-1"), Reason.IDENTITY_CERT_TOO_LARGE);
      assert.equal(id.certificate(), undefined, "nothing stored by a refusal");
      assert.equal(id.tlsIdentity("dev-1"), undefined);
      const der = issueTestCertificate(CA_KEY, "dev-1", id.publicKey());
      assert.equal(id.installCertificate(der, "dev-1"), Reason.OK);
      assert.equal(id.certificate()!.commonName, "dev-1");
      const tls = id.tlsIdentity("dev-1")!;
      assert.bytes(tls.certificate, der);
      assert.bytes(devicePublicKey(tls.privateKey), id.publicKey());
      assert.equal(id.tlsIdentity("dev-2"), undefined, "not presented for another device id");
      // After a reset the certificate is still there.
      assert.equal(new DeviceIdentity(openStorage(c).identity, undefined).certificate()!.commonName, "dev-1");
    });
    it("a new key (AT+CSR=NEW) drops the certificate that named the old one", () => {
      const id = new DeviceIdentity(openStorage(chip()).identity, new TestOnlySeededRandom(24));
      id.ensureKey();
      assert.equal(id.installCertificate(issueTestCertificate(CA_KEY, "dev-1", id.publicKey()), "dev-1"), Reason.OK);
      const before = toHex(id.publicKey());
      id.ensureKey(true);
      assert.ok(toHex(id.publicKey()) !== before);
      assert.equal(id.certificate(), undefined);
    });
    it("without a random source or room in the layout, no key is made (typed errors)", () => {
      const noRandom = new DeviceIdentity(openStorage(chip()).identity, undefined);
      assert.throws(() => noRandom.ensureKey(), (e) => (e as { code?: number }).code === Reason.IDENTITY_NO_RANDOM);
      const noRoom = new DeviceIdentity(undefined, new TestOnlySeededRandom(1));
      assert.throws(() => noRoom.ensureKey(), (e) => (e as { code?: number }).code === Reason.STORE_GEOMETRY);
      assert.throws(() => noRoom.csr("dev-1"), (e) => (e as { code?: number }).code === Reason.IDENTITY_NO_KEY);
    });
    it("the layout keeps the identity where it fits and leaves the other spaces as they were", () => {
      const small = new NorFlash({ size: 32 * KiB, blockLength: 16 * KiB, writeAlign: 32 }, new PowerRail({ seed: 1 }));
      const big = new NorFlash({ size: 256 * KiB, blockLength: 128 * KiB, writeAlign: 32 }, new PowerRail({ seed: 1 }));
      assert.equal(openStorage(small).identity, undefined, "2 x 16 KiB (shared): no room beside the audit ring");
      assert.ok(openStorage(big).identity !== undefined, "the STM32H743's 2 x 128 KiB");
      assert.ok(openStorage(chip()).identity !== undefined, "the simulator's 8 x 8 KiB (split)");
    });
  });
}

function lines(_r: Rig, text: string): string[] {
  return text.split("\r\n").filter((l) => l.length > 0);
}

export function consoleSuite(): Suite {
  return suite("device identity: AT+CSR and AT+CERT", (it) => {
    it("AT+CSR prints a PEM CSR for the saved device id; the key never appears in any reply", () => {
      const r = makeRig();
      const out = r.at("AT+CSR");
      const l = lines(r, out);
      assert.equal(l[0], "-----BEGIN CERTIFICATE REQUEST-----");
      assert.equal(l[l.length - 2], "-----END CERTIFICATE REQUEST-----");
      assert.equal(l[l.length - 1], "+OK=sim-0001");
      const der = base64Decode(l.slice(1, -2).join(""))!;
      const req = parseCsr(der)!;
      assert.equal(req.commonName, "sim-0001");
      assert.bytes(req.publicKey, r.console.identity!.publicKey());
      assert.equal(r.at("AT+CSR"), out, "the same key on a second AT+CSR");
    });
    it("AT+CERT=BEGIN, the PEM lines, END installs the CA's certificate; AT+CERT? shows it; the key is in no reply", () => {
      const r = makeRig();
      let said = r.at("AT+CSR");
      const id = r.console.identity!;
      const der = issueTestCertificate(CA_KEY, "sim-0001", id.publicKey());
      const pem = pemLines("CERTIFICATE", der);
      assert.equal(r.at("AT+CERT=BEGIN"), "\r\n+OK=0\r\n");
      let total = 0;
      for (const line of pem.slice(1, -1)) {
        total += line.length;
        said += r.at("AT+CERT=" + line);
        assert.ok(said.endsWith(`\r\n+OK=${total}\r\n`), line);
      }
      assert.equal(r.at("AT+CERT=END"), `\r\n+OK=sim-0001,${der.length}\r\n`);
      assert.equal(r.at("AT+CERT?"), `\r\n+OK=sim-0001,${der.length}\r\n`);
      assert.equal(r.at("AT+CERT=END"), "\r\n+ERR=-5,656\r\n", "END without BEGIN");
      said += r.at("AT+H") + r.at("AT+LOG=0,16") + r.at("AT+CERT") + r.at("AT+CSR=?");
      const key = id.tlsIdentity("sim-0001")!.privateKey;
      assert.ok(!leaksKey(said, key), "the private key (hex or base64) appears in no reply");
      assert.ok(leaksKey(toHex(key), key), "the check itself finds a leak");
    });
    it("a certificate for another device's key or id is refused and nothing is stored", () => {
      const r = makeRig();
      r.at("AT+CSR");
      const send = (der: Uint8Array) => {
        r.at("AT+CERT=BEGIN");
        for (const line of pemLines("CERTIFICATE", der).slice(1, -1)) r.at("AT+CERT=" + line);
        return r.at("AT+CERT=END");
      };
      const other = devicePublicKey(generateDeviceKey(new TestOnlySeededRandom(31)));
      assert.equal(send(issueTestCertificate(CA_KEY, "sim-0001", other)), "\r\n+ERR=-5,653\r\n");
      assert.equal(send(issueTestCertificate(CA_KEY, "sim-0002", r.console.identity!.publicKey())), "\r\n+ERR=-5,654\r\n");
      assert.equal(r.at("AT+CERT?"), "\r\n+OK=NONE\r\n");
    });
    it("an upload longer than a certificate can be is cut off", () => {
      const r = makeRig();
      r.at("AT+CERT=BEGIN");
      const replies: string[] = [];
      for (let i = 0; i < 30; i++) replies.push(r.at("AT+CERT=" + "A".repeat(64)));
      const cut = replies.indexOf("\r\n+ERR=-5,655\r\n");
      assert.equal(cut, 21, "the 22nd line passes 1368 characters");
      assert.equal(replies[cut + 1], "\r\n+ERR=-5,656\r\n", "the upload is dropped: BEGIN again");
    });
    it("AT+RELD keeps the identity (it is the device's, not configuration)", () => {
      const r = makeRig();
      r.at("AT+CSR");
      const pub = toHex(r.console.identity!.publicKey());
      assert.equal(r.at("AT+RELD"), "\r\n+OK=defaults saved; AT+Z applies\r\n");
      assert.equal(toHex(r.console.identity!.publicKey()), pub);
    });
    it("while locked, AT+CSR, AT+CSR=NEW and AT+CERT= are refused; AT+CERT? answers", () => {
      const r = makeRig();
      r.at("AT+CSR");
      r.at("AT+LOCK=s3cret-pw");
      for (const l of ["AT+CSR", "AT+CSR=NEW", "AT+CERT=BEGIN", "AT+CERT=END"]) assert.equal(r.at(l), "\r\n+ERR=-5,357\r\n", l);
      assert.equal(r.at("AT+CERT?"), "\r\n+OK=NONE\r\n");
    });
  });
}

/** The private key's encodings must not appear in `text`. */
export function leaksKey(text: string, key: Uint8Array): boolean {
  return text.toLowerCase().indexOf(toHex(key)) >= 0 || text.indexOf(base64Encode(key).slice(0, 40)) >= 0;
}

export function chainSuite(): Suite {
  return suite("server chain check (the Moddable adapter's, portable)", (it) => {
    const der = (n: keyof typeof CHAIN_HEX) => fromHex(CHAIN_HEX[n])!;
    const pinOf = (n: keyof typeof CHAIN_HEX) => sha256Of(softwareDigest, der(n));
    const check = (presented: (keyof typeof CHAIN_HEX)[], pin?: keyof typeof CHAIN_HEX) =>
      checkServerChain({ presented: presented.map(der), anchors: [der("r")], serverName: "127.0.0.1", ...(pin ? { pin: pinOf(pin) } : {}), now: NOW, digest: softwareDigest });
    it("the leaf through its intermediate to the configured root", () => assert.equal(check(["l1", "i1"]), Reason.OK));
    it("an attacker's leaf in front of a genuine chain is refused", () => assert.equal(check(["evil", "l1", "i1"]), Reason.SOCKET_TLS));
    it("the pinned intermediate passes; another's chain is TLS_PIN_MISMATCH", () => {
      assert.equal(check(["l1", "i1"], "i1"), Reason.OK);
      assert.equal(check(["l2", "i2"], "i1"), Reason.TLS_PIN_MISMATCH);
      assert.equal(check(["l1", "i1"], "b"), Reason.TLS_PIN_MISMATCH);
    });
  });
}

export function allIdentitySuites(): Suite[] {
  return [keySuite(), recordSuite(), consoleSuite(), chainSuite()];
}

task("identity-suites", () => runSuites(allIdentitySuites()));
task("identity-keygen-csr", () => {
  // XS cost of what AT+CSR does the first time: a key from the generator, its public point, the signed CSR.
  const k = generateDeviceKey(new TestOnlySeededRandom(77));
  return buildCsr(k, "sim-0001").length;
});
task("identity-cert-parse", () => {
  const k = generateDeviceKey(new TestOnlySeededRandom(78));
  return parseDeviceCertificate(issueTestCertificate(CA_KEY, "sim-0001", devicePublicKey(k)))!.commonName;
});
serve();
