/** Simulator test fixtures: the demo's firmware and release builders (tools/demo/firmware.ts). */
export * from "../../tools/demo/firmware";
