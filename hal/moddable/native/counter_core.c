/* See counter_core.h for the format and its power-cut argument. */
#include "counter_core.h"

#include <stddef.h>

static uint32_t crc32_ieee(const uint8_t *data, uint32_t length)
{
	uint32_t crc = 0xFFFFFFFFu;
	for (uint32_t i = 0; i < length; i++) {
		crc ^= data[i];
		for (int bit = 0; bit < 8; bit++)
			crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
	}
	return ~crc;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

void xsota_counter_encode(uint32_t value, uint8_t record[XSOTA_COUNTER_RECORD_SIZE])
{
	for (uint32_t i = 0; i < XSOTA_COUNTER_RECORD_SIZE; i++)
		record[i] = 0;
	put_le32(record, XSOTA_COUNTER_MAGIC);
	put_le32(record + 4, value);
	put_le32(record + 8, ~value);
	put_le32(record + 12, crc32_ieee(record, 12));
}

int xsota_counter_decode(const uint8_t record[XSOTA_COUNTER_RECORD_SIZE], uint32_t *value)
{
	if (get_le32(record) != XSOTA_COUNTER_MAGIC)
		return 0;
	uint32_t v = get_le32(record + 4);
	if (get_le32(record + 8) != ~v)
		return 0;
	if (get_le32(record + 12) != crc32_ieee(record, 12))
		return 0;
	for (uint32_t i = 16; i < XSOTA_COUNTER_RECORD_SIZE; i++)
		if (record[i] != 0)
			return 0;
	*value = v;
	return 1;
}

static int is_erased(const uint8_t *record, uint8_t erase_value)
{
	for (uint32_t i = 0; i < XSOTA_COUNTER_RECORD_SIZE; i++)
		if (record[i] != erase_value)
			return 0;
	return 1;
}

xsota_counter_status xsota_counter_scan(const xsota_counter_io *io, xsota_counter_state *state)
{
	if (io->write_unit == 0 || io->write_unit > XSOTA_COUNTER_RECORD_SIZE ||
	    XSOTA_COUNTER_RECORD_SIZE % io->write_unit != 0 ||
	    io->size < XSOTA_COUNTER_RECORD_SIZE || io->size % XSOTA_COUNTER_RECORD_SIZE != 0)
		return XSOTA_COUNTER_GEOMETRY;
	uint8_t record[XSOTA_COUNTER_RECORD_SIZE];
	uint32_t capacity = io->size / XSOTA_COUNTER_RECORD_SIZE;
	uint32_t value = 0;
	uint32_t index = 0;
	/* Bounded: at most `capacity` iterations. Stops at the first free slot. */
	for (; index < capacity; index++) {
		if (io->read(io->context, index * XSOTA_COUNTER_RECORD_SIZE, record, XSOTA_COUNTER_RECORD_SIZE) < 0)
			return XSOTA_COUNTER_IO;
		if (is_erased(record, io->erase_value))
			break;
		uint32_t v;
		if (xsota_counter_decode(record, &v) && v > value)
			value = v;
	}
	state->value = value;
	state->next = index;
	state->capacity = capacity;
	return XSOTA_COUNTER_OK;
}

xsota_counter_status xsota_counter_advance(const xsota_counter_io *io, xsota_counter_state *state, uint32_t value)
{
	if (value < state->value)
		return XSOTA_COUNTER_DECREASE;
	if (value == state->value)
		return XSOTA_COUNTER_OK;
	if (state->next >= state->capacity)
		return XSOTA_COUNTER_FULL;
	uint8_t record[XSOTA_COUNTER_RECORD_SIZE];
	uint8_t check[XSOTA_COUNTER_RECORD_SIZE];
	uint32_t offset = state->next * XSOTA_COUNTER_RECORD_SIZE;
	xsota_counter_encode(value, record);
	/* The slot is consumed whatever happens: a failed program may have
	 * written part of it, and a flash word is never programmed twice. */
	state->next++;
	if (io->write(io->context, offset, record, XSOTA_COUNTER_RECORD_SIZE) < 0)
		return XSOTA_COUNTER_IO;
	uint32_t got;
	if (io->read(io->context, offset, check, XSOTA_COUNTER_RECORD_SIZE) < 0 ||
	    !xsota_counter_decode(check, &got) || got != value)
		return XSOTA_COUNTER_IO;
	state->value = value;
	return XSOTA_COUNTER_OK;
}
