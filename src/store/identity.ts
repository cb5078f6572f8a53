/**
 * The device identity in protected storage: the device's P-256 private key
 * (generated on the device from the platform's Random, never printed, never
 * exported, never sent) and the certificate the fleet CA issued for it.
 *
 * Records (space IDENTITY_SPACE of the storage layout, power-safe like the
 * settings): key 0 = `[1][32-byte scalar]`, key 1 = `[1][certificate DER]`
 * or empty (no certificate). Both survive resets and firmware updates. A
 * factory reset (AT+RELD) resets the settings only: the identity is the
 * device's, not configuration, so it stays; a new key is made only by
 * `AT+CSR=NEW` (which drops the certificate). "Protected" here means: no
 * command, message or log carries the key; the storage partition is not
 * readable from outside the firmware only when the MCU's read-out protection
 * is set (RDP; see the README's threat notes): an attacker with a debugger on
 * an unprotected part reads it.
 */
import type { Random } from "../../hal/types";
import { buildCsr, DEVICE_KEY_LENGTH, devicePublicKey, generateDeviceKey, isDeviceKey } from "../crypto/csr";
import { MAX_DEVICE_CERT, parseDeviceCertificate } from "../crypto/x509";
import { OtaError, Reason, type ReasonCode } from "../errors";
import { equalBytes } from "../util/bytes";
import type { RecordSpace } from "./records";

const KEY_RECORD = 0;
const CERT_RECORD = 1;
const RECORD_VERSION = 1;

/** What the TLS adapter presents (see SocketOptions.clientIdentity). */
export interface TlsIdentity {
  readonly certificate: Uint8Array;
  readonly privateKey: Uint8Array;
}

/** A summary of the installed certificate, safe to print. */
export interface CertificateSummary {
  readonly commonName: string;
  readonly length: number;
}

export class DeviceIdentity {
  /**
   * @param space the identity records (undefined: the storage layout has no room; every write fails STORE_GEOMETRY)
   * @param random the key source (undefined: no key can be made, IDENTITY_NO_RANDOM)
   */
  constructor(
    private readonly space: RecordSpace | undefined,
    private readonly random: Random | undefined,
  ) {}

  private read(record: number): Uint8Array | undefined {
    const v = this.space?.get(record);
    return v && v.length > 1 && v[0] === RECORD_VERSION ? v.subarray(1) : undefined;
  }

  private write(record: number, body: Uint8Array | undefined): void {
    if (!this.space) throw new OtaError(Reason.STORE_GEOMETRY, "the storage layout has no room for the device identity");
    if (!body) return this.space.put(record, new Uint8Array(0));
    const v = new Uint8Array(body.length + 1);
    v[0] = RECORD_VERSION;
    v.set(body, 1);
    this.space.put(record, v);
  }

  /**
   * The device key's public point, computed once (a scalar multiplication)
   * and dropped when ensureKey writes a key: this object is the only writer
   * of its records.
   */
  private pub: Uint8Array | undefined;

  private pointOf(k: Uint8Array): Uint8Array {
    this.pub ??= devicePublicKey(k);
    return this.pub;
  }

  private key(): Uint8Array | undefined {
    const k = this.read(KEY_RECORD);
    return k && k.length === DEVICE_KEY_LENGTH && isDeviceKey(k) ? k : undefined;
  }

  /** True once a device key exists. */
  get hasKey(): boolean {
    return this.key() !== undefined;
  }

  /**
   * Make the device key if there is none (or, with `replace`, a new one; the
   * certificate, which names the old key, is dropped). Saved before it returns.
   * @throws OtaError IDENTITY_NO_RANDOM, STORE_GEOMETRY, flash errors.
   */
  ensureKey(replace = false): void {
    if (!replace && this.key()) return;
    if (!this.random) throw new OtaError(Reason.IDENTITY_NO_RANDOM, "this platform has no random source");
    if (!this.space) throw new OtaError(Reason.STORE_GEOMETRY, "the storage layout has no room for the device identity");
    const k = generateDeviceKey(this.random);
    this.pub = undefined;
    if (this.read(CERT_RECORD)) this.write(CERT_RECORD, undefined);
    this.write(KEY_RECORD, k);
    k.fill(0);
  }

  /** The device key's public point (65 bytes). @throws OtaError IDENTITY_NO_KEY. */
  publicKey(): Uint8Array {
    const k = this.key();
    if (!k) throw new OtaError(Reason.IDENTITY_NO_KEY, "no device key (AT+CSR makes one)");
    return Uint8Array.from(this.pointOf(k));
  }

  /** The CSR (DER) for `deviceId`, signed by the device key. @throws OtaError IDENTITY_NO_KEY. */
  csr(deviceId: string): Uint8Array {
    const k = this.key();
    if (!k) throw new OtaError(Reason.IDENTITY_NO_KEY, "no device key (AT+CSR makes one)");
    return buildCsr(k, deviceId);
  }

  /**
   * Check and store the certificate the fleet CA issued: it must parse, carry
   * the device key's public key and name `deviceId` as its commonName.
   * Nothing is stored unless it passes. (The CA's signature is checked by the
   * broker that receives it, which is where trust lives.)
   * @returns Reason.OK or IDENTITY_NO_KEY, IDENTITY_CERT_TOO_LARGE, IDENTITY_CERT_MALFORMED,
   *   IDENTITY_CERT_WRONG_KEY, IDENTITY_CERT_WRONG_NAME.
   * @throws OtaError STORE_GEOMETRY, flash errors.
   */
  installCertificate(der: Uint8Array, deviceId: string): ReasonCode {
    const k = this.key();
    if (!k) return Reason.IDENTITY_NO_KEY;
    if (der.length > MAX_DEVICE_CERT) return Reason.IDENTITY_CERT_TOO_LARGE;
    const cert = parseDeviceCertificate(der);
    if (!cert) return Reason.IDENTITY_CERT_MALFORMED;
    if (!equalBytes(cert.publicKey, this.pointOf(k))) return Reason.IDENTITY_CERT_WRONG_KEY;
    if (cert.commonName !== deviceId) return Reason.IDENTITY_CERT_WRONG_NAME;
    this.write(CERT_RECORD, der);
    return Reason.OK;
  }

  /** What the installed certificate says, or undefined when none. */
  certificate(): CertificateSummary | undefined {
    const der = this.read(CERT_RECORD);
    const c = der && parseDeviceCertificate(der);
    return c ? Object.freeze({ commonName: c.commonName, length: der!.length }) : undefined;
  }

  /**
   * Certificate and key for the TLS adapter, when both exist and the
   * certificate names `deviceId` (a certificate for another id would only be
   * refused by the broker). Only the firmware's network wrapper calls this.
   */
  tlsIdentity(deviceId: string): TlsIdentity | undefined {
    const k = this.key();
    const der = this.read(CERT_RECORD);
    if (!k || !der) return undefined;
    const c = parseDeviceCertificate(der);
    if (!c || c.commonName !== deviceId || !equalBytes(c.publicKey, this.pointOf(k))) return undefined;
    return Object.freeze({ certificate: Uint8Array.from(der), privateKey: Uint8Array.from(k) });
  }
}
