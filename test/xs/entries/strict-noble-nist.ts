/**
 * XS entry that must NOT load on a device: it imports @noble/curves' nist.js,
 * whose module body builds the RFC 9380 hash-to-curve suites and calls
 * utf8ToBytes → TextEncoder (issue 13). src/crypto/p256 exists so that the
 * agent never imports it. test/xs/strict.test.ts expects the ReferenceError.
 */
import { p256 } from "@noble/curves/nist.js";
import { serve, task } from "../runtime";

task("order", () => p256.Point.CURVE().n.toString(16));
serve();
