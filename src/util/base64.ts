/**
 * Base64 (RFC 4648, standard alphabet, with padding) for PEM text on the
 * console: XS on a device has no atob/btoa.
 */
const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/** Encode bytes as base64 with `=` padding. */
export function base64Encode(b: Uint8Array): string {
  let s = "";
  let i = 0;
  for (; i + 2 < b.length; i += 3) {
    const n = (b[i] << 16) | (b[i + 1] << 8) | b[i + 2];
    s += ALPHABET[n >> 18] + ALPHABET[(n >> 12) & 63] + ALPHABET[(n >> 6) & 63] + ALPHABET[n & 63];
  }
  if (i + 1 === b.length) {
    const n = b[i] << 16;
    s += ALPHABET[n >> 18] + ALPHABET[(n >> 12) & 63] + "==";
  } else if (i + 2 === b.length) {
    const n = (b[i] << 16) | (b[i + 1] << 8);
    s += ALPHABET[n >> 18] + ALPHABET[(n >> 12) & 63] + ALPHABET[(n >> 6) & 63] + "=";
  }
  return s;
}

/**
 * Decode strict base64: length a multiple of 4, padding only at the end, the
 * unused bits of the last symbol zero (one encoding per byte string).
 * @returns the bytes, or undefined for anything else.
 */
export function base64Decode(s: string): Uint8Array | undefined {
  if (s.length % 4 !== 0) return undefined;
  const pad = s.endsWith("==") ? 2 : s.endsWith("=") ? 1 : 0;
  const out = new Uint8Array((s.length / 4) * 3 - pad);
  let o = 0;
  for (let i = 0; i < s.length; i += 4) {
    let n = 0;
    for (let j = 0; j < 4; j++) {
      const c = s[i + j];
      const last = i + 4 === s.length;
      if (c === "=" && last && j >= 4 - pad) {
        n <<= 6;
        continue;
      }
      const v = ALPHABET.indexOf(c);
      if (v < 0) return undefined;
      n = (n << 6) | v;
    }
    if (o < out.length) out[o++] = (n >> 16) & 0xff;
    if (o < out.length) out[o++] = (n >> 8) & 0xff;
    else if (i + 4 === s.length && pad === 2 && (n & 0xffff) !== 0) return undefined;
    if (o < out.length) out[o++] = n & 0xff;
    else if (i + 4 === s.length && pad === 1 && (n & 0xff) !== 0) return undefined;
  }
  return out;
}

/** PEM text (64-character lines) of DER bytes under `label`, as lines. */
export function pemLines(label: string, der: Uint8Array): string[] {
  const b64 = base64Encode(der);
  const lines = [`-----BEGIN ${label}-----`];
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  lines.push(`-----END ${label}-----`);
  return lines;
}
