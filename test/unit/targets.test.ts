/**
 * The two device targets' build files agree with each other: the Kconfig
 * fragments and the Moddable device-target manifests that carry them, the
 * slot overlays and the slot each build declares, the MCUboot configuration,
 * and each target's networking.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

function parseConf(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const m = /^(CONFIG_[A-Z0-9_]+)=(.+)$/.exec(line);
    if (!m) throw new Error(`not a Kconfig assignment: ${line}`);
    if (m[1] in out) throw new Error(`${m[1]} assigned twice`);
    out[m[1]] = m[2];
  }
  return out;
}

const json = (path: string) => JSON.parse(readFileSync(path, "utf8"));

const targets = [
  { dir: "usr-n520", sub: "usr_n520", net: { CONFIG_NET_L2_ETHERNET: "y", CONFIG_NET_DHCPV4: "y" } },
  { dir: "usr-g771", sub: "usr_g771", net: { CONFIG_MODEM: "y", CONFIG_MODEM_CELLULAR: "y", CONFIG_NET_L2_PPP: "y" } },
];

for (const t of targets) {
  describe(`${t.dir} build files`, () => {
    const prj = parseConf(readFileSync(`targets/${t.dir}/zephyr/prj.conf`, "utf8"));

    it("the application is an MCUboot direct-xip-with-revert image with watchdog, hwinfo, reboot and flash map", () => {
      for (const key of [
        "CONFIG_BOOTLOADER_MCUBOOT",
        "CONFIG_MCUBOOT_BOOTLOADER_MODE_DIRECT_XIP_WITH_REVERT",
        "CONFIG_FLASH",
        "CONFIG_FLASH_MAP",
        "CONFIG_FLASH_PAGE_LAYOUT",
        "CONFIG_WATCHDOG",
        "CONFIG_HWINFO",
        "CONFIG_REBOOT",
        "CONFIG_NET_TCP",
        "CONFIG_NET_SOCKETS",
      ]) {
        expect(prj[key], key).toBe("y");
      }
      expect(prj.CONFIG_ROM_START_OFFSET).toBe("0x400");
      expect(prj.CONFIG_SETTINGS, "settings/NVS would claim storage_partition").toBeUndefined();
    });

    it("has its own networking", () => {
      for (const [k, v] of Object.entries(t.net)) expect(prj[k], k).toBe(v);
    });

    for (const [slot, name] of [[0, t.sub], [1, `${t.sub}_slot1`]] as const) {
      it(`the Moddable device target ${name} carries prj.conf verbatim and builds for slot ${slot}`, () => {
        const m = json(`targets/${t.dir}/moddable/${name}/manifest.json`);
        expect(m.zephyrConfig).toEqual(prj);
        expect(m.config.imageSlot).toBe(slot);
        expect(m.build.ZEPHYR_BOARD).toBe("nucleo_h743zi");
        // mcconfig resolves an overlay path that starts with "." against the
        // manifest's directory (tools/mcmanifest.js mergeManifest), so no
        // environment variable is needed.
        const dir = `targets/${t.dir}/moddable/${name}`;
        expect(m.zephyrOverlay.every((p: string) => p.startsWith("../../zephyr/"))).toBe(true);
        const overlays: string[] = m.zephyrOverlay.map((p: string) => join(dir, p));
        expect(overlays).toEqual([
          `targets/${t.dir}/zephyr/partitions.overlay`,
          `targets/${t.dir}/zephyr/slot${slot}.overlay`,
          `targets/${t.dir}/zephyr/board.overlay`,
        ]);
        for (const o of overlays) expect(existsSync(o), o).toBe(true);
        const slotOverlay = readFileSync(overlays[1], "utf8");
        expect(slotOverlay).toMatch(new RegExp(`zephyr,code-partition\\s*=\\s*&slot${slot}_partition;`));
      });

      it(`${name} has the host provider the SDK's zephyr IO manifest maps embedded:provider/builtin to`, () => {
        // modules/io/manifests/zephyr/manifest.json: "zephyr/*" →
        // "embedded:provider/builtin": "$(SUBPLATFORMDIRECTORY)/host/provider".
        const provider = readFileSync(`targets/${t.dir}/moddable/${name}/host/provider.js`, "utf8");
        expect(provider).toMatch(/^import device from "mc\/devicetree";$/m);
        expect(provider).toMatch(/^export default device;$/m);
      });
    }

    it("MCUboot is configured for direct-xip with revert, ECDSA P-256, build-number ordering", () => {
      const mcuboot = parseConf(readFileSync(`targets/${t.dir}/sysbuild/mcuboot.conf`, "utf8"));
      expect(mcuboot).toMatchObject({
        CONFIG_BOOT_DIRECT_XIP: "y",
        CONFIG_BOOT_DIRECT_XIP_REVERT: "y",
        CONFIG_BOOT_SIGNATURE_TYPE_ECDSA_P256: "y",
        CONFIG_BOOT_VERSION_CMP_USE_BUILD_NUMBER: "y",
      });
      // MCUBOOT_DOWNGRADE_PREVENTION depends on !BOOT_DIRECT_XIP in MCUboot's Kconfig.
      expect(mcuboot.CONFIG_MCUBOOT_DOWNGRADE_PREVENTION).toBeUndefined();
    });

    it("the project manifest starts the target's main, and both entry files exist", () => {
      const m = json(`targets/${t.dir}/manifest.json`);
      expect(m.include).toEqual(["../../manifest.json"]);
      expect(m.creation.main).toBe(`targets/${t.dir}/main`);
      expect(m.modules[`targets/${t.dir}/main`]).toBe("./main");
      expect(existsSync(`targets/${t.dir}/main.ts`)).toBe(true);
      const c = json(`targets/${t.dir}/conformance/manifest.json`);
      expect(c.platforms["zephyr/*"].modules[c.creation.main]).toBe("./main");
      expect(c.platforms.lin.modules[c.creation.main]).toBe("./sim");
      expect(c.config.conformanceCounter).toBe(false);
    });

    it("has a README with the exact mcconfig commands for both slots, for the Zephyr the SDK requires", () => {
      const readme = readFileSync(`targets/${t.dir}/README.md`, "utf8");
      expect(readme).toContain(`mcconfig -m -p zephyr:$XSOTA/targets/${t.dir}/moddable/${t.sub}`);
      expect(readme).toContain(`mcconfig -m -p zephyr:$XSOTA/targets/${t.dir}/moddable/${t.sub}_slot1`);
      // build/devices/zephyr/config/CMakeLists.txt.prefix: find_package(Zephyr 4.4.0 REQUIRED ...)
      expect(readme).toContain("west init -m https://github.com/zephyrproject-rtos/zephyr --mr v4.4.0");
    });
  });
}

describe("the Kconfig parser refuses what it cannot read", () => {
  it("rejects a malformed line and a duplicate", () => {
    expect(() => parseConf("CONFIG_A=y\nCONFIG_A=n\n")).toThrow(/twice/);
    expect(() => parseConf("CONFIG_A y\n")).toThrow(/not a Kconfig/);
  });
});
