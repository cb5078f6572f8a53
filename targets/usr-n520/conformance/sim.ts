/**
 * The HAL conformance suites against the strict mocks, for Moddable's own
 * simulator (`mcconfig -d -m -p lin|mac|win` in this directory): the same
 * suites vitest and the XS lane run, here inside Moddable's runtime.
 */
import { mockSuites } from "../../../test/conformance/mocks";
import { runSuites } from "../../../test/lib/spec";

runSuites(mockSuites()).then((report) => {
  for (const f of report.failed) trace(`FAIL ${f.name}: ${f.error}\n`);
  trace(`conformance (mocks): ${report.passed} passed, ${report.failed.length} failed\n`);
});
