/*
 * XS host function for the HAL Random (hal/moddable/random.ts): Zephyr's
 * cryptographically secure random source, sys_csrand_get(), which on the
 * STM32H7 draws from the RNG peripheral through the entropy driver
 * (CONFIG_ENTROPY_GENERATOR=y, the `rng` node enabled). Never a seeded
 * software generator: a failure is reported, not papered over.
 *
 *   xs_otarandom_fill(buffer: ArrayBuffer) -> 0 | negative errno
 *     fills the whole buffer (at most 1024 bytes, checked here too)
 */
#include "xsmc.h"

#include <zephyr/random/random.h>

#define XSOTA_RANDOM_MAX 1024

void xs_otarandom_fill(xsMachine *the)
{
	void *data;
	xsUnsignedValue length;

	xsmcGetBufferWritable(xsArg(0), &data, &length);
	if (length > XSOTA_RANDOM_MAX) {
		xsmcSetInteger(xsResult, -22); /* EINVAL */
		return;
	}
	xsmcSetInteger(xsResult, (xsIntegerValue)sys_csrand_get(data, (size_t)length));
}
