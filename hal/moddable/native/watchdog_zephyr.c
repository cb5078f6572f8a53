/*
 * XS host functions for the hardware watchdog (hal/moddable/watchdog.ts) on
 * Zephyr's watchdog API, device = devicetree alias `watchdog0` (the STM32H7
 * IWDG). Zephyr's API cannot change a timeout once wdt_setup() ran and the
 * IWDG cannot be stopped, so the first start() fixes the timeout for the life
 * of the boot; a later start() with the same timeout feeds.
 *
 *   xs_otawatchdog_start(ms) -> 0 ok; -1 device not ready; -2 install failed;
 *                               -3 setup failed; -4 already armed with another timeout
 *   xs_otawatchdog_feed()    -> 0 ok (no-op before start); -5 feed failed
 */
#include "xsmc.h"

#include <zephyr/device.h>
#include <zephyr/drivers/watchdog.h>

static const struct device *const gWatchdog = DEVICE_DT_GET(DT_ALIAS(watchdog0));
static int gChannel = -1;
static uint32_t gTimeoutMs;

void xs_otawatchdog_start(xsMachine *the)
{
	/* The TypeScript side checked 1..32000 ms. */
	uint32_t timeoutMs = (uint32_t)xsmcToInteger(xsArg(0));
	int result = 0;
	if (gChannel >= 0) {
		if (timeoutMs != gTimeoutMs)
			result = -4;
		else if (wdt_feed(gWatchdog, gChannel) != 0)
			result = -5;
	}
	else if (!device_is_ready(gWatchdog))
		result = -1;
	else {
		struct wdt_timeout_cfg config = {
			.window = { .min = 0, .max = timeoutMs },
			.callback = NULL,
			.flags = WDT_FLAG_RESET_SOC,
		};
		int channel = wdt_install_timeout(gWatchdog, &config);
		if (channel < 0)
			result = -2;
		else if (wdt_setup(gWatchdog, WDT_OPT_PAUSE_HALTED_BY_DBG) != 0)
			result = -3;
		else {
			gChannel = channel;
			gTimeoutMs = timeoutMs;
		}
	}
	xsmcSetInteger(xsResult, result);
}

void xs_otawatchdog_feed(xsMachine *the)
{
	int result = 0;
	if (gChannel >= 0 && wdt_feed(gWatchdog, gChannel) != 0)
		result = -5;
	xsmcSetInteger(xsResult, result);
}
