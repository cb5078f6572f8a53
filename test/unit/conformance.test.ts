import { mockSuites } from "../conformance/mocks";
import { registerSuite } from "../lib/vitest-suite";

for (const s of mockSuites()) registerSuite(s);
