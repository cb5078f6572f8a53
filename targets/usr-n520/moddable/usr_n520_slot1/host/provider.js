/*
 * The host provider (`embedded:provider/builtin`) of this Zephyr device target.
 * The SDK's Zephyr IO manifest (modules/io/manifests/zephyr/manifest.json) maps
 * that specifier to $(SUBPLATFORMDIRECTORY)/host/provider, i.e. this file, for
 * every zephyr/<board> build. Like the SDK's own Zephyr targets, it exports the
 * device object mcconfig generates from the board's devicetree ("mc/devicetree",
 * tools/mcdevicetree.js): device.serial.<label>, device.flash, device.io, ...
 */
import device from "mc/devicetree";

export default device;
