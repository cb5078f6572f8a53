/**
 * The bootloader model's direct-xip-with-revert decisions on the virtual
 * device (portable: runs on Node and in XS).
 */
import { formatVersion, parseVersion } from "../../src/image/format";
import { setConfirmed, setPending, readTrailer } from "../../src/image/trailer";
import { DeviceReset, VirtualDevice } from "../../targets/sim/device";
import { slotLoadAddress } from "../../targets/sim/flashmap";
import { encodeImage } from "../../tools/image/encode";
import { assert, suite, type Suite } from "../lib/spec";

function body(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 17 + seed) & 0xff;
  return b;
}

/** Write a whole image into a slot (erase first), as a factory programmer would. */
export function programSlot(device: VirtualDevice, slot: 0 | 1, image: Uint8Array): void {
  device.program(slot, image);
}

export function factoryDevice(hwCounter = false): VirtualDevice {
  const device = new VirtualDevice(hwCounter ? { mcuboot: { hwRollbackProtection: true } } : {});
  const slotSize = device.map.slots[0].size;
  const image = encodeImage({
    body: body(5000, 1),
    version: parseVersion("1.0.0+1"),
    securityCounter: 1,
    loadAddr: slotLoadAddress(device.map, 0),
    pad: { slotSize, writeAlign: device.map.geometry.writeAlign, confirm: true },
  });
  programSlot(device, 0, image);
  return device;
}

function stageUpdate(device: VirtualDevice, version: string, sec = 1): void {
  const image = encodeImage({
    body: body(6000, 2),
    version: parseVersion(version),
    securityCounter: sec,
    loadAddr: slotLoadAddress(device.map, 1),
  });
  programSlot(device, 1, image);
  setPending(device.slots[1], false);
}

export function bootloaderSuite(): Suite {
  return suite("bootloader model: direct-xip with revert", (it) => {
    it("boots the confirmed factory image", () => {
      const d = factoryDevice();
      const b = d.boot()!;
      assert.equal(b.slot, 0);
      assert.equal(b.trial, false);
    });

    it("an unconfirmed slot is abandoned after a reset and the older slot boots", () => {
      const d = factoryDevice();
      d.boot()!;
      stageUpdate(d, "1.1.0+2");
      const trial = d.boot()!;
      assert.equal(trial.slot, 1, "the newer pending image is tried");
      assert.equal(trial.trial, true);
      assert.equal(readTrailer(d.slots[1]).copyDone, "set", "selection is recorded");
      // the new firmware never confirms; the device resets (watchdog)
      const next = d.boot()!;
      assert.equal(next.slot, 0, "the old image boots again");
      assert.ok(next.erased.includes(1), "the abandoned slot is erased");
      assert.equal(d.slots[1].cells.every((x) => x === 0xff), true, "slot 1 fully erased");
      assert.equal(d.boot()!.slot, 0, "and stays on the old image");
    });

    it("a confirmed slot stays across resets (hardware counter on)", () => {
      const d = factoryDevice(true);
      d.boot()!;
      stageUpdate(d, "1.1.0+2", 2);
      assert.equal(d.boot()!.slot, 1);
      setConfirmed(d.slots[1]);
      for (let i = 0; i < 3; i++) {
        const b = d.boot()!;
        assert.equal(b.slot, 1);
        assert.equal(b.trial, false);
        assert.equal(formatVersion(b.info!.header.version), "1.1.0+2");
      }
      assert.equal(d.counter.read(), 2, "the confirmed image raised the protected counter");
    });

    it("an image whose hash does not match is never booted", () => {
      const d = factoryDevice();
      d.boot()!;
      stageUpdate(d, "2.0.0");
      // flip one bit of the body behind the flash's back (bit rot, tampering)
      d.slots[1].cells[0x305] ^= 0x01;
      const b = d.boot()!;
      assert.equal(b.slot, 0);
      assert.ok(b.rejected.some((r) => r.slot === 1), "slot 1 rejected");
      assert.ok(b.erased.includes(1), "and erased, as MCUboot's direct-xip boot_validate_slot does");
    });

    it("an image below the protected security counter is refused (hardware counter on)", () => {
      const d = factoryDevice(true);
      d.boot()!;
      assert.equal(d.counter.read(), 1, "the confirmed factory image raised the counter to its SEC_CNT");
      stageUpdate(d, "3.0.0", 0);
      const b = d.boot()!;
      assert.equal(b.slot, 0, "the newer image with a lower security counter is skipped");
      assert.ok(b.rejected.some((r) => r.slot === 1 && r.why.includes("security counter")));
    });

    it("a watchdog reset during the trial reverts through run()", () => {
      const d = factoryDevice();
      let started = 0;
      d.firmware = (platform, boot) => {
        started++;
        if (boot.trial) platform.watchdog.start(1000); // the new firmware hangs: never feeds
      };
      d.boot()!;
      stageUpdate(d, "1.2.0");
      d.pressReset();
      d.run(5000);
      assert.equal(d.runningSlot, 0, "back on slot 0");
      const causes = d.boots.map((b) => b.cause);
      assert.ok(causes.includes("watchdog"), "a watchdog reset happened");
      assert.ok(started >= 3, "boots: factory, trial, revert");
    });

    it("reboot() unwinds as a software reset", () => {
      const d = factoryDevice();
      d.boot()!;
      assert.throws(() => d.platform.system.reboot(), (e) => e instanceof DeviceReset && e.resetCause === "software");
    });
  });
}
