/**
 * XS entry that must NOT load on a device: it reads `TextEncoder` while the
 * module loads, as @noble/curves' nist.js did (issue 13). Moddable has no
 * TextEncoder, so loading throws `ReferenceError: get TextEncoder: undefined
 * variable`. test/xs/strict.test.ts expects exactly that in the XS lane; the
 * device lane can load it the same way.
 */
import { serve, task } from "../runtime";

// tsconfig.portable.json (ES2020 library, no DOM) rightly knows no TextEncoder:
// declared here only so that this deliberate mistake type-checks.
declare const TextEncoder: new () => { encode(text: string): Uint8Array };

const header = new TextEncoder().encode("xs-ota");

task("encoded", () => Array.from(header));
serve();
