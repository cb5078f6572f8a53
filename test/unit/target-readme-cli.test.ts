/**
 * The target READMEs' factory flow (issue 17, item 4), run as written: the
 * `xs-ota sign` commands of step 6 are taken from targets/<board>/README.md,
 * run with the built CLI, and the result is programmed into slot 0 of the
 * simulator's device (the STM32H743 map, the MCUboot boot model with its
 * signature check). The device boots it, and boots it again after a power
 * cycle (it is confirmed). The unpadded image of step 5, programmed as a
 * factory image, has no boot magic: MCUboot's boot_select_or_erase erases the
 * slot and the device is bricked, which is why step 6 signs with --pad --confirm.
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { createKeyring } from "../../src/crypto/keyring";
import { softwareDigest } from "../../src/crypto/sha256";
import { imageSignatureChecker } from "../../src/image/signature";
import { VirtualDevice } from "../../targets/sim/device";
import { stm32h743FlashMap } from "../../targets/sim/flashmap";
import { readPublicKey } from "../../tools/keys/pem";
import { repoRoot, xsOta } from "../lib/cli";

let dir: string;
const p = (n: string) => join(dir, n);

/** The `npx xs-ota sign` commands of a README's "Build and flash" block, continuation lines joined. */
function signCommands(readme: string): string[][] {
  const block = /```sh\n([\s\S]*?)```/.exec(readme.slice(readme.indexOf("## Build and flash")))![1];
  const joined = block.replace(/\\\n\s*/g, " ");
  return joined
    .split("\n")
    .filter((l) => l.startsWith("npx xs-ota sign "))
    .map((l) =>
      l
        .replace(/^npx xs-ota /, "")
        .trim()
        .split(/\s+/)
        .map((a) => a.replace("$XSOTA/keys/release-p256.pem", p("release-p256.pem")).replace(/<build-dir-slot[01]>\/zephyr\/zephyr\.bin/, p("zephyr.bin")).replace(/^(app-.*\.img)$/, (f) => p(f))),
    );
}

function deviceWith(image: Uint8Array): VirtualDevice {
  const device = new VirtualDevice({ map: stm32h743FlashMap, checkSignature: imageSignatureChecker(createKeyring([readPublicKey(p("release-p256.pub.pem"))], softwareDigest)) });
  device.program(0, image);
  return device;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "xs-ota-target-readme-"));
  // A Zephyr build for MCUboot (CONFIG_ROM_START_OFFSET=0x400) starts with the header's room, zeroed.
  writeFileSync(p("zephyr.bin"), Uint8Array.from({ length: 200_000 }, (_, i) => (i < 0x400 ? 0 : (i * 29 + (i >> 7)) & 0xff)));
  expect(xsOta(["keygen", "-o", p("release-p256.pem"), "--public", p("release-p256.pub.pem")]).status).toBe(0);
});

for (const board of ["usr-n520", "usr-g771"]) {
  describe(`targets/${board}/README.md factory flow`, () => {
    const readme = readFileSync(join(repoRoot, "targets", board, "README.md"), "utf8");
    it("does not claim that a slot without boot magic is treated as confirmed", () => {
      expect(readme).not.toMatch(/without\s+(#\s*)?boot magic is treated[\s\S]{0,40}confirmed/);
    });
    it("the factory image is signed with --pad --confirm, and the simulator's device boots it (twice)", () => {
      const cmds = signCommands(readme);
      const factory = cmds.find((c) => c.includes("--pad") && c.includes("--confirm"));
      expect(factory, "a sign command with --pad --confirm").toBeDefined();
      for (const c of cmds) {
        const r = xsOta([...c, "--force"]);
        expect(r.status, `${c.join(" ")}: ${r.stderr}`).toBe(0);
      }
      const image = new Uint8Array(readFileSync(factory![factory!.length - 1]));
      const device = deviceWith(image);
      const first = device.boot()!;
      expect(first.slot).toBe(0);
      expect(first.erased).toEqual([]);
      expect(device.bricked).toBe(false);
      const second = device.boot()!;
      expect(second.slot).toBe(0);
      expect(second.trial).toBe(false);
      // The unpadded slot-0 image (step 5) as a factory image: no boot magic → erased, nothing to boot.
      const unpadded = cmds.find((c) => c !== factory && c[c.length - 1].endsWith("slot0.img"))!;
      const bricked = deviceWith(new Uint8Array(readFileSync(unpadded[unpadded.length - 1])));
      const d = bricked.boot()!;
      expect(d.slot).toBeUndefined();
      expect(d.erased).toContain(0);
    });
  });
}
