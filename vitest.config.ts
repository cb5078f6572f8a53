import { defineConfig } from "vitest/config";

// Lanes (design.md section 8): unit + xs run in `npm test`; interop and faults have their own scripts.
export default defineConfig({
  test: {
    projects: [
      { test: { name: "unit", include: ["test/unit/**/*.test.ts"], testTimeout: 60_000, globalSetup: ["test/setup/build-cli.ts"] } },
      { test: { name: "xs", include: ["test/xs/**/*.test.ts"], testTimeout: 600_000, hookTimeout: 600_000 } },
      { test: { name: "interop", include: ["test/interop/**/*.test.ts"], testTimeout: 600_000, hookTimeout: 300_000, fileParallelism: false, globalSetup: ["test/setup/build-cli.ts"] } },
      { test: { name: "faults", include: ["test/faults/**/*.test.ts"], testTimeout: 1_800_000, globalSetup: ["test/setup/build-cli.ts"] } },
      { test: { name: "device", include: ["test/device/**/*.test.ts"], testTimeout: 900_000, hookTimeout: 900_000 } },
    ],
  },
});
