/* From the Zephyr "Hardware Information" API reference
 * (include/zephyr/drivers/hwinfo.h): reset cause flags, which accumulate
 * until hwinfo_clear_reset_cause() is called. */
#ifndef XSOTA_DECLS_HWINFO_H
#define XSOTA_DECLS_HWINFO_H

#include <stdint.h>

#define RESET_PIN (1U << 0)
#define RESET_SOFTWARE (1U << 1)
#define RESET_BROWNOUT (1U << 2)
#define RESET_POR (1U << 3)
#define RESET_WATCHDOG (1U << 4)
#define RESET_DEBUG (1U << 5)
#define RESET_SECURITY (1U << 6)
#define RESET_LOW_POWER_WAKE (1U << 7)
#define RESET_CPU_LOCKUP (1U << 8)
#define RESET_PARITY (1U << 9)
#define RESET_PLL (1U << 10)
#define RESET_CLOCK (1U << 11)
#define RESET_HARDWARE (1U << 12)
#define RESET_USER (1U << 13)
#define RESET_TEMPERATURE (1U << 14)

/* Return 0 or a negative errno (-ENOSYS when the SoC does not support it). */
int hwinfo_get_reset_cause(uint32_t *cause);
int hwinfo_clear_reset_cause(void);

#endif
