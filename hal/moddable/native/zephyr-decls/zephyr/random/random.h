/* From the Zephyr "Random Number Generation" API reference (include/zephyr/random/random.h). */
#ifndef XSOTA_DECLS_RANDOM_H
#define XSOTA_DECLS_RANDOM_H

#include <stddef.h>

/* Fill dst with len cryptographically secure random bytes (CONFIG_CSPRNG_ENABLED: the entropy
 * driver, on the STM32H7 its RNG peripheral). Returns 0, or a negative errno on failure. */
int sys_csrand_get(void *dst, size_t len);

#endif
