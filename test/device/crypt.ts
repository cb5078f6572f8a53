/**
 * The module "crypt" as the device lane's bundles see it: Moddable's `crypt`
 * Digest class, here the C implementation the lane's platform installs
 * (test/device/platform/host.c, same API as modules/crypt/digest/crypt.js).
 * buildDevice resolves the specifier "crypt" to this file, so
 * hal/moddable/digest.ts runs on the emulated M7 unchanged.
 */
import type { Digest as CryptDigest } from "crypt";

interface DeviceHost {
  Digest: typeof CryptDigest;
  instructions(): number;
}

function host(): DeviceHost {
  const h = (globalThis as { __xsOtaDevice?: DeviceHost }).__xsOtaDevice;
  if (!h) throw new Error("crypt: no native Digest here (the device lane's platform installs __xsOtaDevice)");
  return h;
}

export const Digest: typeof CryptDigest = host().Digest;

/** Instructions retired since reset (the device lane's counter), or undefined off the device lane. */
export function deviceInstructions(): number | undefined {
  return (globalThis as { __xsOtaDevice?: DeviceHost }).__xsOtaDevice?.instructions();
}
