import { bootloaderSuite } from "../conformance/bootloader";
import { registerSuite } from "../lib/vitest-suite";

registerSuite(bootloaderSuite());
