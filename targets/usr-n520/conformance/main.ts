/**
 * The HAL conformance suites on the device, with the Moddable adapters:
 * build with `mcconfig -d -m -p zephyr/<board>` in this directory and read the
 * report on the console (xsbug or serial). DESTRUCTIVE: erases and writes the
 * `storage` partition. The counter suite raises the real protected counter
 * (irreversible, and the device then refuses releases with a lower security
 * counter), so it runs only when built with `conformanceCounter=true`.
 *
 * Not run here, because their suites drive time synchronously (`advance`),
 * which a real clock cannot do: clock, watchdog (its expiry test resets the
 * board), serial and network. See the target README for how those are
 * checked on hardware.
 */
import config from "mc/config";
import { ZephyrCounter } from "../../../hal/moddable/counter";
import { nativeDigest } from "../../../hal/moddable/digest";
import { ModdableFlash } from "../../../hal/moddable/flash";
import { flashConformance } from "../../../test/conformance/flash";
import { counterConformance, digestConformance } from "../../../test/conformance/peripherals";
import { runSuites, type Suite } from "../../../test/lib/spec";

const suites: Suite[] = [
  flashConformance({ name: "storage partition (Moddable flash, STM32H7)", strict: false, make: () => ({ flash: new ModdableFlash("storage") }) }),
  digestConformance({ name: "crypt Digest SHA-256 (native)", make: () => nativeDigest }),
];
if (config.conformanceCounter === true) suites.push(counterConformance({ name: "protected counter (native)", make: () => new ZephyrCounter() }));

runSuites(suites).then((report) => {
  for (const f of report.failed) trace(`FAIL ${f.name}: ${f.error}\n`);
  trace(`conformance: ${report.passed} passed, ${report.failed.length} failed\n`);
});
