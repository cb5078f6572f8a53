/*
 * Console, exit and command line over ARM semihosting (QEMU
 * `-semihosting-config enable=on,target=native`), and the newlib system
 * calls the lane needs: a bounded _sbrk (the C heap XS's parser and key
 * tables use, fixed regions of the linker script) and _write to the
 * console. Nothing else in newlib is wired to the host.
 *
 * Semihosting operations used (Arm "Semihosting for AArch32 and AArch64"):
 * SYS_OPEN (0x01) of ":tt" for the console, SYS_WRITE (0x05),
 * SYS_GET_CMDLINE (0x15) and SYS_EXIT_EXTENDED (0x20), whose subcode QEMU
 * returns as its own exit status.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include "device.h"

#define SYS_OPEN 0x01
#define SYS_WRITE 0x05
#define SYS_GET_CMDLINE 0x15
#define SYS_EXIT_EXTENDED 0x20
#define ADP_STOPPED_APPLICATION_EXIT 0x20026

static int semihost(int operation, void *block)
{
	register int r0 __asm("r0") = operation;
	register void *r1 __asm("r1") = block;
	__asm volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
	return r0;
}

static int consoleHandle = -1;

void deviceWrite(const char *bytes, size_t length)
{
	if (consoleHandle < 0) {
		uint32_t open[3] = { (uint32_t)":tt", 4 /* "w" */, 3 };
		consoleHandle = semihost(SYS_OPEN, open);
	}
	while (length) {
		uint32_t block[3] = { (uint32_t)consoleHandle, (uint32_t)bytes, length };
		int notWritten = semihost(SYS_WRITE, block);
		if (notWritten < 0 || (size_t)notWritten >= length)
			return;
		bytes += length - (size_t)notWritten;
		length = (size_t)notWritten;
	}
}

void devicePuts(const char *text)
{
	deviceWrite(text, strlen(text));
}

void deviceExit(int status)
{
	fflush(stdout);
	uint32_t block[2] = { ADP_STOPPED_APPLICATION_EXIT, (uint32_t)status };
	for (;;)
		semihost(SYS_EXIT_EXTENDED, block);
}

void deviceFault(const char *what, uint32_t cfsr, uint32_t hfsr, uint32_t pc, uint32_t lr)
{
	char line[160];
	snprintf(line, sizeof(line), "\n@@fault {\"what\":\"%s\",\"cfsr\":%lu,\"hfsr\":%lu,\"pc\":%lu,\"lr\":%lu}\n",
		what, (unsigned long)cfsr, (unsigned long)hfsr, (unsigned long)pc, (unsigned long)lr);
	devicePuts(line);
	deviceExit(4);
}

int deviceCommandLine(char *buffer, size_t size)
{
	uint32_t block[2] = { (uint32_t)buffer, size };
	return semihost(SYS_GET_CMDLINE, block);
}

/* newlib system calls */

/*
 * The C heap: the parts of the board's RAMs the device map leaves unused
 * (SSRAM1 above the 2 MiB "flash", SSRAM2/3 above the 1 MiB "RAM"), then the
 * linker script's PSRAM heap. Only XS's parser needs that much: parsing the
 * agent's 570 KB bundle takes over 10 MiB of C heap, a cost a device does not
 * pay (its code is compiled by xsc and preloaded). newlib's malloc accepts
 * a break that jumps to a new region.
 */
extern char __heap_start[], __heap_end[], __heap2_start[], __heap2_end[], __heap3_start[], __heap3_end[];
static struct { char *start, *end; } heapRegions[3];
static unsigned heapRegion;
static char *heapBreak;
static size_t heapUsedBefore; /* bytes in the regions left behind */

void *_sbrk(ptrdiff_t increment)
{
	if (!heapBreak) {
		/* In ascending address order: malloc takes a break that jumps up as new space, not one that jumps down. */
		heapRegions[0].start = __heap3_start, heapRegions[0].end = __heap3_end;
		heapRegions[1].start = __heap2_start, heapRegions[1].end = __heap2_end;
		heapRegions[2].start = __heap_start, heapRegions[2].end = __heap_end;
		heapBreak = heapRegions[0].start;
	}
	if (increment < 0) {
		errno = ENOMEM;
		return (void *)-1;
	}
	while ((size_t)(heapRegions[heapRegion].end - heapBreak) < (size_t)increment) {
		if (heapRegion + 1 >= sizeof(heapRegions) / sizeof(heapRegions[0])) {
			errno = ENOMEM;
			return (void *)-1;
		}
		heapUsedBefore += (size_t)(heapBreak - heapRegions[heapRegion].start);
		heapBreak = heapRegions[++heapRegion].start;
	}
	char *previous = heapBreak;
	heapBreak += increment;
	return previous;
}

size_t deviceHeapUsed(void)
{
	return heapBreak ? heapUsedBefore + (size_t)(heapBreak - heapRegions[heapRegion].start) : 0;
}

int _write(int fd, const char *bytes, int length)
{
	(void)fd;
	deviceWrite(bytes, (size_t)length);
	return length;
}

int _read(int fd, char *bytes, int length) { (void)fd; (void)bytes; (void)length; return 0; }
int _close(int fd) { (void)fd; return -1; }
int _lseek(int fd, int offset, int whence) { (void)fd; (void)offset; (void)whence; return 0; }
int _isatty(int fd) { (void)fd; return 1; }
int _fstat(int fd, struct stat *st) { (void)fd; memset(st, 0, sizeof(*st)); st->st_mode = S_IFCHR; return 0; }
int _getpid(void) { return 1; }
int _kill(int pid, int sig) { (void)pid; (void)sig; errno = EINVAL; return -1; }
void _exit(int status) { deviceExit(status); }

/* Virtual time since reset (the device has no calendar: Date.now() starts at 0). */
int _gettimeofday(struct timeval *tv, void *tz)
{
	(void)tz;
	uint64_t us = deviceTicks() * DEVICE_INSTRUCTIONS_PER_TICK / 1000u;
	tv->tv_sec = (time_t)(us / 1000000u);
	tv->tv_usec = (suseconds_t)(us % 1000000u);
	return 0;
}
