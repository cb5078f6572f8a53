/** Register a portable Suite with vitest. */
import { describe, it } from "vitest";
import type { Suite } from "./spec";

export function registerSuite(s: Suite): void {
  describe(s.name, () => {
    for (const spec of s.specs) it(spec.name, spec.run);
  });
}
