import { powerCutSuite } from "../conformance/powercut";
import { registerSuite } from "../lib/vitest-suite";

registerSuite(powerCutSuite());
