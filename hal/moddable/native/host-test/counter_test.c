/*
 * Host test of counter_core.c against a strict simulated NOR partition:
 * 32-byte write unit, a write over bytes that are not erased is refused (as
 * the STM32H7 refuses to reprogram an ECC flash word), and a power cut can
 * interrupt any write after any number of bytes (torn write). Run by
 * test/interop/native-counter.test.ts; prints one line per check, exits 1 on
 * the first failure.
 */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../counter_core.h"

#define MAX_SIZE (128u * 1024u)

static uint8_t cells[MAX_SIZE];
static uint32_t partitionSize;
static long cutAfterWrites = -1; /* cut during the N-th write from now; -1 never */
static uint32_t tornBytes;       /* bytes programmed by the torn write */
static jmp_buf powerCut;
static long writes;

static int simRead(void *context, uint32_t offset, void *data, uint32_t length)
{
	(void)context;
	if (offset + length > partitionSize)
		return -1;
	memcpy(data, cells + offset, length);
	return 0;
}

static int simWrite(void *context, uint32_t offset, const void *data, uint32_t length)
{
	(void)context;
	if (offset % 32 || length % 32 || offset + length > partitionSize)
		return -1;
	for (uint32_t i = 0; i < length; i++)
		if (cells[offset + i] != 0xFF)
			return -1; /* never program a word twice */
	writes++;
	if (cutAfterWrites == 0) {
		memcpy(cells + offset, data, tornBytes < length ? tornBytes : length);
		longjmp(powerCut, 1);
	}
	if (cutAfterWrites > 0)
		cutAfterWrites--;
	memcpy(cells + offset, data, length);
	return 0;
}

static xsota_counter_io makeIO(uint32_t size)
{
	partitionSize = size;
	xsota_counter_io io = { NULL, simRead, simWrite, size, 32, 0xFF };
	return io;
}

static int failures;
#define CHECK(cond, ...) do { if (!(cond)) { printf("FAIL %s:%d ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); failures++; return; } } while (0)

static void testRoundTripAndRefusals(void)
{
	memset(cells, 0xFF, sizeof cells);
	xsota_counter_io io = makeIO(1024); /* 32 slots */
	xsota_counter_state st;
	CHECK(xsota_counter_scan(&io, &st) == XSOTA_COUNTER_OK && st.value == 0 && st.next == 0 && st.capacity == 32, "fresh");
	CHECK(xsota_counter_advance(&io, &st, 7) == XSOTA_COUNTER_OK && st.value == 7, "advance 7");
	CHECK(xsota_counter_advance(&io, &st, 7) == XSOTA_COUNTER_OK && st.next == 1, "equal is a no-op, no record used");
	CHECK(xsota_counter_advance(&io, &st, 6) == XSOTA_COUNTER_DECREASE && st.value == 7, "decrease refused");
	CHECK(xsota_counter_advance(&io, &st, 0xFFFFFFFFu) == XSOTA_COUNTER_OK, "max value");
	xsota_counter_state again;
	CHECK(xsota_counter_scan(&io, &again) == XSOTA_COUNTER_OK && again.value == 0xFFFFFFFFu && again.next == 2, "rescan sees max");
	printf("ok round trip, equal no-op, decrease refused, 32-bit max\n");
}

static void testExhaustion(void)
{
	memset(cells, 0xFF, sizeof cells);
	xsota_counter_io io = makeIO(MAX_SIZE); /* the device's 128 KiB partition */
	xsota_counter_state st;
	CHECK(xsota_counter_scan(&io, &st) == XSOTA_COUNTER_OK && st.capacity == 4096, "capacity 4096");
	for (uint32_t v = 1; v <= 4096; v++)
		CHECK(xsota_counter_advance(&io, &st, v) == XSOTA_COUNTER_OK, "advance %u", v);
	CHECK(xsota_counter_advance(&io, &st, 4097) == XSOTA_COUNTER_FULL && st.value == 4096, "full after 4096");
	xsota_counter_state again;
	CHECK(xsota_counter_scan(&io, &again) == XSOTA_COUNTER_OK && again.value == 4096 && again.next == 4096, "rescan full");
	printf("ok 4096 advances fill 128 KiB, the 4097th is refused FULL\n");
}

static void testGeometry(void)
{
	xsota_counter_io io = makeIO(1024);
	xsota_counter_state st;
	io.write_unit = 64;
	CHECK(xsota_counter_scan(&io, &st) == XSOTA_COUNTER_GEOMETRY, "write unit 64 refused");
	io.write_unit = 32;
	io.size = 1000;
	CHECK(xsota_counter_scan(&io, &st) == XSOTA_COUNTER_GEOMETRY, "size not a record multiple refused");
	printf("ok geometry refusals\n");
}

static void testCorruptRecordsSkipped(void)
{
	memset(cells, 0xFF, sizeof cells);
	xsota_counter_io io = makeIO(1024);
	xsota_counter_state st;
	xsota_counter_scan(&io, &st);
	xsota_counter_advance(&io, &st, 3);
	/* Flip each bit of the second record in turn: it must never be believed. */
	uint8_t rec[32];
	xsota_counter_encode(9, rec);
	for (int bit = 0; bit < 32 * 8; bit++) {
		uint8_t bad[32];
		memcpy(bad, rec, 32);
		bad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		uint32_t v;
		CHECK(!xsota_counter_decode(bad, &v), "bit %d flipped accepted", bit);
	}
	printf("ok every single-bit corruption of a record is rejected\n");
}

/* Advance 1,2,...,n; cut power during write number k (torn after t bytes),
 * reboot (rescan) and redo the remaining advances. */
static void runWithCut(uint32_t n, long k, uint32_t t, int *cutHappened)
{
	memset(cells, 0xFF, 1024);
	xsota_counter_io io = makeIO(1024);
	xsota_counter_state st;
	volatile uint32_t target = 1;
	writes = 0;
	cutAfterWrites = k;
	tornBytes = t;
	*cutHappened = 0;
	volatile uint32_t lastSeen = 0;
	for (volatile int boot = 0; boot < 3; boot++) { /* bounded: one cut, so two boots suffice */
		if (setjmp(powerCut)) {
			*cutHappened = 1;
			cutAfterWrites = -1;
			continue; /* reboot */
		}
		CHECK(xsota_counter_scan(&io, &st) == XSOTA_COUNTER_OK, "scan");
		CHECK(st.value >= lastSeen, "counter went down after a cut: %u < %u", st.value, lastSeen);
		CHECK(st.value == target - 1 || st.value == target, "after cut value %u not old %u or new %u", st.value, target - 1, target);
		if (st.value == target)
			target++;
		lastSeen = st.value;
		for (; target <= n; target++) {
			CHECK(xsota_counter_advance(&io, &st, target) == XSOTA_COUNTER_OK, "advance %u", target);
			lastSeen = target;
		}
		CHECK(st.value == n, "final value");
		return;
	}
	CHECK(0, "did not finish");
}

static void testPowerCutEverywhere(void)
{
	uint32_t n = 5;
	int runs = 0;
	for (long k = 0; k < (long)n; k++) {
		for (uint32_t t = 0; t <= 32; t++) {
			int cut;
			int before = failures;
			runWithCut(n, k, t, &cut);
			if (failures != before)
				return;
			CHECK(cut, "cut %ld did not happen", k);
			runs++;
		}
	}
	printf("ok power cut at every write of %u advances, torn after every byte count 0..32 (%d runs): old or new value, never lower\n", n, runs);
}

int main(void)
{
	testRoundTripAndRefusals();
	testExhaustion();
	testGeometry();
	testCorruptRecordsSkipped();
	testPowerCutEverywhere();
	if (failures) {
		printf("FAILED %d\n", failures);
		return 1;
	}
	printf("PASS\n");
	return 0;
}
