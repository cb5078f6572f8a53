/* From the Zephyr "Flash map" API reference
 * (include/zephyr/storage/flash_map.h): partitions of the devicetree's
 * fixed-partitions node, addressed by id, with partition-relative offsets. */
#ifndef XSOTA_DECLS_FLASH_MAP_H
#define XSOTA_DECLS_FLASH_MAP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <zephyr/device.h>

struct flash_area {
	uint8_t fa_id;
	uint8_t fa_device_id;
	uint16_t pad16;
	off_t fa_off;
	size_t fa_size;
	const struct device *fa_dev;
};

int flash_area_open(uint8_t id, const struct flash_area **fa);
void flash_area_close(const struct flash_area *fa);
int flash_area_read(const struct flash_area *fa, off_t off, void *dst, size_t len);
int flash_area_write(const struct flash_area *fa, off_t off, const void *src, size_t len);
int flash_area_erase(const struct flash_area *fa, off_t off, size_t len);
uint32_t flash_area_align(const struct flash_area *fa);
uint8_t flash_area_erased_val(const struct flash_area *fa);

/* Real Zephyr: DT_FIXED_PARTITION_ID(DT_NODELABEL(label)), an integer constant. */
#define FIXED_PARTITION_ID(label) xsota_partition_id_##label
/* (label is a plain identifier here, so no expansion step is needed.) */
enum { xsota_partition_id_counter_partition = 4 };

#endif
