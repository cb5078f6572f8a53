/* From the Zephyr "Watchdog" API reference (include/zephyr/drivers/watchdog.h):
 * install a timeout, then wdt_setup() starts the watchdog; wdt_feed() restarts
 * the countdown of one channel. */
#ifndef XSOTA_DECLS_WATCHDOG_H
#define XSOTA_DECLS_WATCHDOG_H

#include <stdint.h>
#include <zephyr/device.h>

/* wdt_setup() options */
#define WDT_OPT_PAUSE_IN_SLEEP (1U << 0)
#define WDT_OPT_PAUSE_HALTED_BY_DBG (1U << 1)

/* wdt_timeout_cfg.flags: what a timeout resets */
#define WDT_FLAG_RESET_NONE 0U
#define WDT_FLAG_RESET_CPU_CORE (1U << 0)
#define WDT_FLAG_RESET_SOC (2U << 0)

struct wdt_window {
	uint32_t min; /* ms; 0 for a plain (non-window) watchdog */
	uint32_t max; /* ms; the timeout */
};

typedef void (*wdt_callback_t)(const struct device *dev, int channel_id);

struct wdt_timeout_cfg {
	struct wdt_window window;
	wdt_callback_t callback; /* NULL: reset without a pre-timeout callback */
	uint8_t flags;
};

/* Returns the channel id (>= 0) or a negative errno. */
int wdt_install_timeout(const struct device *dev, const struct wdt_timeout_cfg *cfg);
/* Returns 0 or a negative errno. */
int wdt_setup(const struct device *dev, uint8_t options);
int wdt_feed(const struct device *dev, int channel_id);
int wdt_disable(const struct device *dev);

#endif
