/**
 * AES encryption (FIPS 197) for CTR mode: key expansion for 128- and 256-bit
 * keys and the forward cipher only (CTR never runs the inverse). Table-driven
 * (four 256-entry round tables, built on first use from the S-box, which is
 * itself computed from GF(2^8) inverses): 5 KiB of tables, no per-call
 * allocation beyond the round keys.
 *
 * Why not @noble/ciphers here: its `aes.js` module (with the GCM, SIV, KW,
 * CMAC and DRBG it also defines, and its utilities) is ~119 KB of source; on
 * the device lane the agent's bundle grew by 78 KB and no longer fit the XS
 * parser's heap, and a device would carry that bytecode in a slot whose
 * footprint is already tight. @noble/ciphers stays the reference the
 * conformance suite checks this against (test/unit/enc-cipher.test.ts).
 */

let SBOX: Uint8Array | undefined;
let T0: Uint32Array, T1: Uint32Array, T2: Uint32Array, T3: Uint32Array;

function xtime(a: number): number {
  return ((a << 1) ^ (a & 0x80 ? 0x11b : 0)) & 0xff;
}

function tables(): Uint8Array {
  if (SBOX) return SBOX;
  // log/antilog tables over generator 3, then the S-box as the affine map of the inverse
  const exp = new Uint8Array(256);
  const log = new Uint8Array(256);
  for (let i = 0, x = 1; i < 255; i++) {
    exp[i] = x;
    log[x] = i;
    x ^= xtime(x);
  }
  const sbox = new Uint8Array(256);
  for (let i = 0; i < 256; i++) {
    const inv = i === 0 ? 0 : exp[(255 - log[i]) % 255];
    let s = inv;
    let r = inv;
    for (let k = 0; k < 4; k++) {
      r = ((r << 1) | (r >>> 7)) & 0xff;
      s ^= r;
    }
    sbox[i] = s ^ 0x63;
  }
  T0 = new Uint32Array(256);
  T1 = new Uint32Array(256);
  T2 = new Uint32Array(256);
  T3 = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    const s = sbox[i];
    const s2 = xtime(s);
    const s3 = s2 ^ s;
    // column (2s, s, s, 3s) as a big-endian word, and its byte rotations
    const t = ((s2 << 24) | (s << 16) | (s << 8) | s3) >>> 0;
    T0[i] = t;
    T1[i] = ((t >>> 8) | (t << 24)) >>> 0;
    T2[i] = ((t >>> 16) | (t << 16)) >>> 0;
    T3[i] = ((t >>> 24) | (t << 8)) >>> 0;
  }
  SBOX = sbox;
  return sbox;
}

/** The expanded encryption key: (rounds + 1) × 4 big-endian words. */
export interface AesKey {
  readonly rounds: number;
  readonly words: Uint32Array;
}

/**
 * Expand a 16- or 32-byte key (FIPS 197 section 5.2).
 * @throws RangeError for another length.
 */
export function expandKey(key: Uint8Array): AesKey {
  if (key.length !== 16 && key.length !== 32) throw new RangeError(`AES key must be 16 or 32 bytes, got ${key.length}`);
  const sbox = tables();
  const nk = key.length / 4;
  const rounds = nk + 6;
  const w = new Uint32Array(4 * (rounds + 1));
  for (let i = 0; i < nk; i++) w[i] = ((key[4 * i] << 24) | (key[4 * i + 1] << 16) | (key[4 * i + 2] << 8) | key[4 * i + 3]) >>> 0;
  let rcon = 1;
  for (let i = nk; i < w.length; i++) {
    let t = w[i - 1];
    if (i % nk === 0) {
      t = ((sbox[(t >>> 16) & 0xff] << 24) | (sbox[(t >>> 8) & 0xff] << 16) | (sbox[t & 0xff] << 8) | sbox[t >>> 24]) ^ (rcon << 24);
      rcon = xtime(rcon);
    } else if (nk > 6 && i % nk === 4) {
      t = (sbox[t >>> 24] << 24) | (sbox[(t >>> 16) & 0xff] << 16) | (sbox[(t >>> 8) & 0xff] << 8) | sbox[t & 0xff];
    }
    w[i] = (w[i - nk] ^ t) >>> 0;
  }
  return { rounds, words: w };
}

/**
 * Encrypt one 16-byte block of `input` at `inOff` into `out` at `outOff`
 * (FIPS 197 section 5.1, the round function as four table lookups per column).
 */
export function encryptBlock(k: AesKey, input: Uint8Array, inOff: number, out: Uint8Array, outOff: number): void {
  const sbox = SBOX ?? tables();
  const w = k.words;
  let s0 = ((input[inOff] << 24) | (input[inOff + 1] << 16) | (input[inOff + 2] << 8) | input[inOff + 3]) ^ w[0];
  let s1 = ((input[inOff + 4] << 24) | (input[inOff + 5] << 16) | (input[inOff + 6] << 8) | input[inOff + 7]) ^ w[1];
  let s2 = ((input[inOff + 8] << 24) | (input[inOff + 9] << 16) | (input[inOff + 10] << 8) | input[inOff + 11]) ^ w[2];
  let s3 = ((input[inOff + 12] << 24) | (input[inOff + 13] << 16) | (input[inOff + 14] << 8) | input[inOff + 15]) ^ w[3];
  let r = 4;
  for (let round = 1; round < k.rounds; round++, r += 4) {
    const t0 = T0[s0 >>> 24] ^ T1[(s1 >>> 16) & 0xff] ^ T2[(s2 >>> 8) & 0xff] ^ T3[s3 & 0xff] ^ w[r];
    const t1 = T0[s1 >>> 24] ^ T1[(s2 >>> 16) & 0xff] ^ T2[(s3 >>> 8) & 0xff] ^ T3[s0 & 0xff] ^ w[r + 1];
    const t2 = T0[s2 >>> 24] ^ T1[(s3 >>> 16) & 0xff] ^ T2[(s0 >>> 8) & 0xff] ^ T3[s1 & 0xff] ^ w[r + 2];
    const t3 = T0[s3 >>> 24] ^ T1[(s0 >>> 16) & 0xff] ^ T2[(s1 >>> 8) & 0xff] ^ T3[s2 & 0xff] ^ w[r + 3];
    s0 = t0;
    s1 = t1;
    s2 = t2;
    s3 = t3;
  }
  // last round: SubBytes, ShiftRows, AddRoundKey (no MixColumns)
  const c0 = ((sbox[s0 >>> 24] << 24) | (sbox[(s1 >>> 16) & 0xff] << 16) | (sbox[(s2 >>> 8) & 0xff] << 8) | sbox[s3 & 0xff]) ^ w[r];
  const c1 = ((sbox[s1 >>> 24] << 24) | (sbox[(s2 >>> 16) & 0xff] << 16) | (sbox[(s3 >>> 8) & 0xff] << 8) | sbox[s0 & 0xff]) ^ w[r + 1];
  const c2 = ((sbox[s2 >>> 24] << 24) | (sbox[(s3 >>> 16) & 0xff] << 16) | (sbox[(s0 >>> 8) & 0xff] << 8) | sbox[s1 & 0xff]) ^ w[r + 2];
  const c3 = ((sbox[s3 >>> 24] << 24) | (sbox[(s0 >>> 16) & 0xff] << 16) | (sbox[(s1 >>> 8) & 0xff] << 8) | sbox[s2 & 0xff]) ^ w[r + 3];
  out[outOff] = c0 >>> 24;
  out[outOff + 1] = c0 >>> 16;
  out[outOff + 2] = c0 >>> 8;
  out[outOff + 3] = c0;
  out[outOff + 4] = c1 >>> 24;
  out[outOff + 5] = c1 >>> 16;
  out[outOff + 6] = c1 >>> 8;
  out[outOff + 7] = c1;
  out[outOff + 8] = c2 >>> 24;
  out[outOff + 9] = c2 >>> 16;
  out[outOff + 10] = c2 >>> 8;
  out[outOff + 11] = c2;
  out[outOff + 12] = c3 >>> 24;
  out[outOff + 13] = c3 >>> 16;
  out[outOff + 14] = c3 >>> 8;
  out[outOff + 15] = c3;
}

/**
 * AES-CTR: `data` XOR the keystream from counter block `counter` (incremented
 * as a 128-bit big-endian integer per block), skipping the first `skip` bytes
 * of the first block's keystream. Returns a new array.
 */
export function ctrXor(k: AesKey, counter: Uint8Array, skip: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(data.length);
  const ctr = new Uint8Array(16);
  ctr.set(counter);
  const ks = new Uint8Array(16);
  let o = 0;
  let at = skip;
  while (o < data.length) {
    encryptBlock(k, ctr, 0, ks, 0);
    for (; at < 16 && o < data.length; at++, o++) out[o] = data[o] ^ ks[at];
    at = 0;
    for (let i = 15; i >= 0; i--) {
      ctr[i] = (ctr[i] + 1) & 0xff;
      if (ctr[i] !== 0) break;
    }
  }
  ks.fill(0);
  return out;
}
