/** XS entry: the HAL conformance suites on the mocks, the power-cut script and the bootloader model. */
import { mockSuites } from "../../conformance/mocks";
import { powerCutSuite } from "../../conformance/powercut";
import { bootloaderSuite } from "../../conformance/bootloader";
import { runSuites } from "../../lib/spec";
import { serve, task } from "../runtime";

task("conformance", () => runSuites(mockSuites()));
task("powercut", () => runSuites([powerCutSuite()]));
task("bootloader", () => runSuites([bootloaderSuite()]));
task("throws", () => {
  throw new RangeError("deliberate failure inside XS");
});
serve();
