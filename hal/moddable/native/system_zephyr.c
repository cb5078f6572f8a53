/*
 * XS host functions for reset cause and reboot (hal/moddable/system.ts).
 *
 * Reset-cause flags accumulate in hardware until cleared (on the STM32H7 the
 * RCC_RSR flags, and a watchdog or software reset also pulses NRST so the pin
 * flag is set too). The flags are read once, cleared, and cached, so a later
 * reset reports only its own cause; the most specific flag wins:
 * watchdog > software > brownout > power-on > pin.
 *
 *   xs_otasystem_resetCause() -> "watchdog" | "software" | "brownout" |
 *                                "power-on" | "pin" | "unknown"
 *   xs_otasystem_reboot()     -> does not return (cold reboot)
 */
#include "xsmc.h"

#include <zephyr/drivers/hwinfo.h>
#include <zephyr/sys/reboot.h>

static const char *gCause;

static const char *classify(uint32_t flags)
{
	if (flags & RESET_WATCHDOG)
		return "watchdog";
	if (flags & RESET_SOFTWARE)
		return "software";
	if (flags & RESET_BROWNOUT)
		return "brownout";
	if (flags & RESET_POR)
		return "power-on";
	if (flags & RESET_PIN)
		return "pin";
	return "unknown";
}

void xs_otasystem_resetCause(xsMachine *the)
{
	if (!gCause) {
		uint32_t flags = 0;
		if (hwinfo_get_reset_cause(&flags) == 0) {
			gCause = classify(flags);
			(void)hwinfo_clear_reset_cause();
		}
		else
			gCause = "unknown";
	}
	xsmcSetString(xsResult, (xsStringValue)gCause);
}

void xs_otasystem_reboot(xsMachine *the)
{
	(void)the;
	sys_reboot(SYS_REBOOT_COLD);
}
