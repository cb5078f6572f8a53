/*
 * The protected security counter's storage format: an append-only log of
 * 32-byte records in a dedicated flash partition. Platform independent (no
 * Zephyr, no XS) so that the same code is cross-compiled for the device and
 * compiled for the host test (host-test/counter_test.c).
 *
 * Record (32 bytes = one STM32H7 flash word, written in one program op):
 *   0..3   magic 0x544E4358 ("XCNT"), little-endian
 *   4..7   value, LE
 *   8..11  ~value, LE
 *   12..15 CRC-32 (IEEE 802.3, reflected) of bytes 0..11, LE
 *   16..31 0x00
 * A record slot that reads as all erase-value bytes is free. Every advance
 * programs the next free slot; nothing is ever rewritten or erased (the
 * STM32H7 cannot reprogram a written flash word: each 256-bit word carries
 * ECC, and Zephyr's driver refuses such writes). The value is the highest
 * valid record; a torn or corrupt record is skipped, so after a power cut
 * during an advance the counter reads the old or the new value.
 * Capacity: partition size / 32 advances (4096 for 128 KiB).
 */
#ifndef XSOTA_COUNTER_CORE_H
#define XSOTA_COUNTER_CORE_H

#include <stdint.h>

#define XSOTA_COUNTER_RECORD_SIZE 32u
#define XSOTA_COUNTER_MAGIC 0x544E4358u

typedef enum {
	XSOTA_COUNTER_OK = 0,
	XSOTA_COUNTER_DECREASE = 1, /* the value asked for is below the current one */
	XSOTA_COUNTER_FULL = 2,     /* no free record slot left */
	XSOTA_COUNTER_IO = 3,       /* a read or write failed, or did not read back */
	XSOTA_COUNTER_GEOMETRY = 4  /* partition unusable: size or write unit */
} xsota_counter_status;

/* Partition access; offsets are partition-relative. Return 0 or negative. */
typedef struct {
	void *context;
	int (*read)(void *context, uint32_t offset, void *data, uint32_t length);
	int (*write)(void *context, uint32_t offset, const void *data, uint32_t length);
	uint32_t size;       /* partition size in bytes */
	uint32_t write_unit; /* must divide XSOTA_COUNTER_RECORD_SIZE */
	uint8_t erase_value;
} xsota_counter_io;

typedef struct {
	uint32_t value;    /* current counter value */
	uint32_t next;     /* index of the next free record slot */
	uint32_t capacity; /* number of record slots */
} xsota_counter_state;

void xsota_counter_encode(uint32_t value, uint8_t record[XSOTA_COUNTER_RECORD_SIZE]);
/* 1 and *value set when the record is valid, else 0. */
int xsota_counter_decode(const uint8_t record[XSOTA_COUNTER_RECORD_SIZE], uint32_t *value);
/* Read the whole log (bounded: capacity reads of 32 bytes). */
xsota_counter_status xsota_counter_scan(const xsota_counter_io *io, xsota_counter_state *state);
/* Raise to value (equal: no-op). Preconditions: state came from a scan. */
xsota_counter_status xsota_counter_advance(const xsota_counter_io *io, xsota_counter_state *state, uint32_t value);

#endif
