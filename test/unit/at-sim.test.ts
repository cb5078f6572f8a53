/**
 * A virtual device with no update agent boots through targets/sim (the
 * MCUboot model, the factory image) and runs the console from the sim's
 * firmware entry; AT+Z restarts it through the bootloader with the settings
 * kept; a power cut mid-AT+S reboots it with the old or the new set.
 */
import { describe, expect, it } from "vitest";
import { VirtualDevice } from "../../targets/sim/device";
import { smallFlashMap, stm32h743FlashMap } from "../../targets/sim/flashmap";
import type { ConsoleRuntime } from "../../src/at/start";
import { installFactoryImage } from "../../tools/sim/fleet";
import { simFactory, simFirmware } from "../../tools/sim/firmware";

function simDevice(map = smallFlashMap()) {
  const runtimes: ConsoleRuntime[] = [];
  const device = new VirtualDevice({
    map,
    firmware: simFirmware({ factory: () => simFactory(7), console: { startMode: "command" }, onBoot: (r) => runtimes.push(r) }),
  });
  installFactoryImage(device);
  device.run(10);
  const at = (line: string) => {
    device.serial.send(line + "\r");
    device.run(5);
    return device.serial.drainText();
  };
  return { device, runtimes, at };
}

describe("the console firmware on the virtual device", () => {
  for (const [name, map] of [["small map", smallFlashMap()], ["device map (128 KiB sectors)", stm32h743FlashMap]] as const) {
    it(`boots with no agent and keeps settings across AT+Z (${name})`, () => {
      const { device, runtimes, at } = simDevice(map);
      expect(device.boots).toHaveLength(1);
      at("AT+E=OFF");
      expect(at("AT+VER")).toBe("\r\n+OK=1.0.0+0,sim\r\n");
      expect(at("AT+OTASTATE")).toBe("\r\n+OK=NONE,0,0\r\n");
      expect(at("AT+OTACHECK")).toBe("\r\n+ERR=-5,354\r\n");
      expect(at("AT+DEVID?")).toBe("\r\n+OK=sim-0007\r\n");
      expect(at("AT+HEARTTM=30")).toBe("\r\n+OK=pending; AT+S saves\r\n");
      expect(at("AT+S")).toBe("\r\n+OK=saved; AT+Z applies\r\n");
      expect(runtimes[0].settings.active.heartbeatIntervalS).toBe(60);
      expect(at("AT+Z")).toBe("\r\n+OK=restarting\r\n");
      device.run(200);
      expect(device.boots).toHaveLength(2);
      expect(device.boots[1].cause).toBe("software");
      expect(runtimes).toHaveLength(2);
      expect(runtimes[1].settings.active.heartbeatIntervalS).toBe(30);
      // Echo is on again after the restart (AT+E is not saved).
      expect(at("AT+HEARTTM?")).toBe("AT+HEARTTM?\r\n+OK=30\r\n");
      expect(at("AT+LOG?")).toMatch(/\+OK=4,0,\d+\r\n$/);
    });
  }

  it("a power cut during AT+S on the device: it reboots with the old or the new settings", () => {
    // AT+S performs two mutating operations here: the settings record, then the audit entry.
    for (let k = 1; k <= 2; k++) {
      for (const mode of ["clean", "torn"] as const) {
        const { device, runtimes, at } = simDevice();
        at("AT+E=OFF");
        at("AT+HEARTTM=45");
        at("AT+OTASVR=new.example.net,1884");
        device.rail.armCut(k, mode);
        device.serial.send("AT+S\r");
        device.run(2000); // the cut unwinds to run(), which powers the device up again after 1 s
        expect(runtimes.length, `cut ${k} ${mode}: the device rebooted`).toBe(2);
        const last = runtimes[runtimes.length - 1].settings.active;
        const pair = `${last.heartbeatIntervalS},${last.serverHost}`;
        expect(["60,127.0.0.1", "45,new.example.net"], `cut ${k} ${mode}`).toContain(pair);
      }
    }
  });
});
