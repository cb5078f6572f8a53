/**
 * The NIST P-256 curve (secp256r1) for ECDSA over SHA-256, built from
 * @noble/curves' generic short-Weierstrass code and nothing else.
 *
 * Why not `@noble/curves/nist.js`: importing it also builds P-384, P-521 and
 * the RFC 9380 hash-to-curve, OPRF and FROST suites, and one of those encodes
 * a string with `TextEncoder` while the module loads. Moddable's XS has no
 * `TextEncoder`, so the whole agent failed at start-up; the extra modules also
 * cost ~37 KB of bytecode on a device. This module's import graph is
 * abstract/{weierstrass,curve,modular}, curves/utils and @noble/hashes'
 * sha2/hmac/utils, none of which touches a missing global while loading
 * (checked by test/xs/strict.test.ts and test/unit/portable.test.ts).
 */
import { ecdsa, weierstrass } from "@noble/curves/abstract/weierstrass.js";
import { sha256 } from "@noble/hashes/sha2.js";

/**
 * The P-256 domain parameters, from SEC 2 v2 section 2.4.2 (secp256r1) and
 * FIPS 186-5 / SP 800-186 section 3.2.1.3: the field prime p, the curve
 * y² = x³ + a·x + b with a = p − 3, the base point G = (Gx, Gy) of prime
 * order n, cofactor h = 1. test/unit/crypto.test.ts checks them against
 * @noble/curves' own table.
 */
export const P256_DOMAIN: Readonly<{ p: bigint; n: bigint; h: bigint; a: bigint; b: bigint; Gx: bigint; Gy: bigint }> = Object.freeze({
  p: 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn,
  n: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
  h: 1n,
  a: 0xffffffff00000001000000000000000000000000fffffffffffffffffffffffcn,
  b: 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn,
  Gx: 0x6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296n,
  Gy: 0x4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5n,
});

/**
 * ECDSA on P-256 with SHA-256 as the message hash (callers that pass a
 * digest use `{ prehash: false }`). Verification is what the device needs;
 * the same object signs in tests and host tools.
 *
 * @example p256.verify(rawRS, digest, point, { prehash: false, lowS: false, format: "compact" })
 */
export const p256 = /* @__PURE__ */ ecdsa(p256Point(), sha256);

/**
 * The curve's point class with no precomputed base-point table. noble's
 * default (window 8) builds 4,224 points on the first multiplication: on the
 * device lane's Cortex-M7 that first verification cost 8.6 × 10⁹ instructions
 * (21 s at 400 MHz) and left ~676 KB on the XS heap, beyond a device's whole
 * XS block (384 KiB). Window 1 is noble's table-free ladder: every
 * verification costs the same, in bounded memory. A device verifies a few
 * signatures per update, so speed per call matters less than memory.
 */
function p256Point() {
  const Point = weierstrass<bigint>(P256_DOMAIN);
  Point.BASE.precompute(1);
  return Point;
}
