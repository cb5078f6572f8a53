/**
 * The HAL Random on the device: Zephyr's CSPRNG over the STM32H7's hardware
 * RNG, through native/random_zephyr.c (`sys_csrand_get`). The device key is
 * made from it (src/crypto/csr.ts); a failed draw throws IDENTITY_NO_RANDOM,
 * never returns weak bytes.
 *
 * Moddable's own TLS does not use it: its `rng` module
 * (modules/crypt/etc/rng.c) is RC4 seeded, on first use, from 16 calls to
 * C `rand()`, and on Zephyr nothing in the SDK calls `srand` (c_rand is
 * `rand`, xs/platforms/zephyr/xsHost.h), so every boot would draw the same
 * stream: the TLS client random, the ECDHE private key
 * (ssl/ssl_handshake.js clientKeyExchange, `RNG.get(curve.orderSize)`) and
 * CBC IVs (ssl/ssl_record.js) would repeat across boots and devices.
 * `seedModdableTlsRng` reseeds that generator with 32 bytes from the
 * hardware RNG (`RNG.init(seed)`, xs_rng_init), once at start-up, before the
 * first connection. (RC4's output biases remain; the SDK offers no other.)
 */
import RNG from "rng";
import { OtaError, Reason } from "../../src/errors";
import type { Random } from "../types";

/** Largest single fill (the HAL's precondition; the native side checks it too). */
export const RANDOM_FILL_MAX = 1024;

export class ZephyrRandom implements Random {
  fill(out: Uint8Array): Uint8Array {
    if (!(out instanceof Uint8Array)) throw new TypeError("fill: out must be a Uint8Array");
    if (out.length > RANDOM_FILL_MAX) throw new RangeError(`fill: at most ${RANDOM_FILL_MAX} bytes, got ${out.length}`);
    if (out.length === 0) return out;
    const buffer = new ArrayBuffer(out.length);
    const status = this.draw(buffer);
    if (status !== 0) throw new OtaError(Reason.IDENTITY_NO_RANDOM, "sys_csrand_get failed", status);
    out.set(new Uint8Array(buffer));
    return out;
  }

  // The one form xsc compiles into a direct host function (see system.ts).
  private draw(buffer: ArrayBuffer): number {
    return native("xs_otarandom_fill").call(this, buffer);
  }
}

/** Reseed Moddable's TLS random generator from `random` (32 bytes). @throws OtaError IDENTITY_NO_RANDOM. */
export function seedModdableTlsRng(random: Random): void {
  const seed = random.fill(new Uint8Array(32));
  RNG.init(seed.buffer as ArrayBuffer);
  seed.fill(0);
}
