/*
 * XS platform header for the device lane: bare-metal Cortex-M7 (QEMU
 * mps2-an500), newlib, no RTOS. Selected with -DXSPLATFORM="xsPlatformDevice.h";
 * XS's generic platforms/xsPlatform.h includes it and fills every c_* default.
 *
 * What XS asks of a platform (read from XS's platforms/xsPlatform.h and
 * sources/xsPlatforms.c, and Moddable's zephyr/esp ports for the device
 * shape): the machine's platform fields, chunk and slot allocation, the
 * promise-job hook, abort, and modMilliseconds. This file says which of
 * those XS's own defaults cover and which device.c implements.
 */
#ifndef XS_PLATFORM_DEVICE_H
#define XS_PLATFORM_DEVICE_H

#include <ctype.h>
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/time.h>

#define mxExport extern
#define mxImport extern
#define XS_FUNCTION_NORETURN __attribute__((noreturn))

#define mxSeparator '/'
#define C_PATH_MAX 256

/* A single-threaded device: no sockets, no threads, no atomics library. */
typedef int txSocket;
#define mxNoSocket (-1)

/* The machine's platform fields: a flag set when XS queues promise jobs. */
#define mxMachinePlatform \
	int promiseJobs; \
	int abortStatus;

/* XS's own defaults (sources/xsPlatforms.c) for what a device needs no
 * special version of: the key table, module lookup (none: one script),
 * script parsing, shared chunks (Atomics on one thread). */
#define mxUseDefaultBuildKeys 1
#define mxUseDefaultFindModule 1
#define mxUseDefaultLoadModule 1
#define mxUseDefaultParseScript 1
#define mxUseDefaultSharedChunks 1

/* Implemented in device.c: machine platform, chunk and slot allocation from
 * the fixed arena, promise-job queue, abort. */
#define mxUseDefaultMachinePlatform 0
#define mxUseDefaultChunkAllocation 0
#define mxUseDefaultSlotAllocation 0
#define mxUseDefaultQueuePromiseJobs 0
#define mxUseDefaultAbort 0
/* The C stack is the linker script's: device.c returns its limit, so deep
 * recursion throws a RangeError instead of running into .bss. */
#define mxUseDefaultCStackLimit 0

#endif
