/*
 * XS host function for the patch blocks' CRC-32 (hal/moddable/digest.ts,
 * `crc32`): the CRC of src/delta/crc.ts and src/util/crc32.ts (IEEE 802.3,
 * reflected, polynomial 0xEDB88320, initial and final XOR 0xFFFFFFFF), in C.
 * In JS on XS it costs about 750 Cortex-M7 instructions per byte, here about
 * six: it is most of what separates the codec-3 install from the flash's pace.
 *
 *   xs_otacrc32_update(crc: number, bytes: Uint8Array | ArrayBuffer,
 *                      start: number, end: number) -> number
 *     continues `crc` (0 to begin; the finished CRC of everything fed so far)
 *     over bytes[start, end) and returns the finished CRC as a uint32.
 *     0 <= start <= end <= the buffer's length, else RangeError.
 *
 * One byte a step over a 256-entry table (1 KiB of RAM), computed from the
 * polynomial on first use.
 */
#include "xsmc.h"

#include <stdint.h>

static uint32_t crcTable[256];
static int crcTableReady;

static void crcBuildTable(void)
{
	for (uint32_t n = 0; n < 256; n++) {
		uint32_t c = n;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (0xEDB88320u ^ (c >> 1)) : (c >> 1);
		crcTable[n] = c;
	}
	crcTableReady = 1;
}

static uint32_t crcUpdate(uint32_t crc, const uint8_t *data, uint32_t length)
{
	if (!crcTableReady)
		crcBuildTable();
	uint32_t c = ~crc;
	/* Bounded: `length` bytes. */
	while (length--)
		c = crcTable[(c ^ *data++) & 0xFF] ^ (c >> 8);
	return ~c;
}

void xs_otacrc32_update(xsMachine *the)
{
	void *data;
	xsUnsignedValue size;
	uint32_t crc = (uint32_t)xsmcToNumber(xsArg(0));
	xsIntegerValue start = xsmcToInteger(xsArg(2));
	xsIntegerValue end = xsmcToInteger(xsArg(3));

	xsmcGetBufferReadable(xsArg(1), &data, &size);
	if (start < 0 || end < start || (xsUnsignedValue)end > size)
		xsRangeError("crc32: [start, end) outside the buffer");
	crc = crcUpdate(crc, (const uint8_t *)data + start, (uint32_t)(end - start));
	xsmcSetNumber(xsResult, (double)crc);
}
