/**
 * Device entry: builds the Platform from hal/moddable and the build's
 * mc/config, reports how the device booted, and supervises itself with the
 * hardware watchdog.
 *
 * The agent (src/agent/) has not landed yet. When it does, this file starts it
 * with `new Agent(platform, config)` in place of the idle supervision below,
 * and the agent confirms a trial image after its self-test. Until then nothing
 * confirms an image, so MCUboot reverts any trial image on the next reset: a
 * firmware that cannot run the agent must not become permanent.
 */
import config from "mc/config";
import Timer from "timer";
import { devicePlatform, readDeviceConfig } from "../../hal/moddable/platform";

const deviceConfig = readDeviceConfig();
const platform = devicePlatform(deviceConfig);

const watchdogMs = typeof config.watchdogTimeoutMs === "number" ? config.watchdogTimeoutMs : 8000;
platform.watchdog.start(watchdogMs);
// Feed at a third of the timeout: two missed ticks still leave margin.
Timer.repeat(() => platform.watchdog.feed(), Math.max(1, Math.floor(watchdogMs / 3)));

trace(`xs-ota: slot ${platform.system.runningSlot()}, reset cause ${platform.system.resetCause()}, security counter ${platform.counter.read()}\n`);
