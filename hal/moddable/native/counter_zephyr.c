/*
 * XS host functions for the protected counter (hal/moddable/counter.ts) over
 * the devicetree partition labelled `counter_partition`. Single instance:
 * the partition is opened and scanned once, then the cached state is the
 * truth (only this module writes the partition).
 *
 *   xs_otacounter_read()        -> value (0..0xFFFFFFFF), or -1 on failure
 *   xs_otacounter_advance(v)    -> xsota_counter_status (0 = ok)
 */
#include "xsmc.h"

#include <zephyr/storage/flash_map.h>

#include "counter_core.h"

static const struct flash_area *gArea;
static xsota_counter_io gIO;
static xsota_counter_state gState;
static int gReady; /* 1 after a successful open + scan */

static int areaRead(void *context, uint32_t offset, void *data, uint32_t length)
{
	return flash_area_read((const struct flash_area *)context, (off_t)offset, data, length);
}

static int areaWrite(void *context, uint32_t offset, const void *data, uint32_t length)
{
	return flash_area_write((const struct flash_area *)context, (off_t)offset, data, length);
}

static xsota_counter_status counterOpen(void)
{
	if (gReady)
		return XSOTA_COUNTER_OK;
	if (flash_area_open(FIXED_PARTITION_ID(counter_partition), &gArea) != 0)
		return XSOTA_COUNTER_IO;
	gIO.context = (void *)gArea;
	gIO.read = areaRead;
	gIO.write = areaWrite;
	gIO.size = (uint32_t)gArea->fa_size;
	gIO.write_unit = flash_area_align(gArea);
	gIO.erase_value = flash_area_erased_val(gArea);
	xsota_counter_status status = xsota_counter_scan(&gIO, &gState);
	if (status != XSOTA_COUNTER_OK) {
		flash_area_close(gArea);
		return status;
	}
	gReady = 1;
	return XSOTA_COUNTER_OK;
}

void xs_otacounter_read(xsMachine *the)
{
	if (counterOpen() != XSOTA_COUNTER_OK) {
		xsmcSetInteger(xsResult, -1);
		return;
	}
	xsmcSetNumber(xsResult, (xsNumberValue)gState.value);
}

void xs_otacounter_advance(xsMachine *the)
{
	/* The TypeScript side checked: integer, 0..0xFFFFFFFF. */
	xsNumberValue requested = xsmcToNumber(xsArg(0));
	xsota_counter_status status = counterOpen();
	if (status == XSOTA_COUNTER_OK) {
		if (!(requested >= 0) || requested > 4294967295.0)
			status = XSOTA_COUNTER_GEOMETRY;
		else
			status = xsota_counter_advance(&gIO, &gState, (uint32_t)requested);
	}
	xsmcSetInteger(xsResult, (xsIntegerValue)status);
}
