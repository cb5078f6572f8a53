/*
 * The device lane's XS host: the XS platform functions for a fixed arena
 * (device platform header: xsPlatformDevice.h) and the task runner.
 *
 * Memory. XS's chunks (strings, buffers, code) grow up from the bottom of
 * the arena and its slots (and the JS stack) grow down from the top; when
 * they would meet, allocation fails and XS aborts with "memory full". The
 * arena never grows: its size is fixed by the linker script. XS's parser,
 * key array and name tables use the C heap (newlib malloc over a bounded
 * _sbrk), a separate fixed region.
 *
 * Boot. The prelude (test/lib/moddable-realm: only Moddable's globals,
 * built-ins frozen) and then the bundle are parsed from flash and run as
 * programs. The bundle's runtime (test/xs/runtime.ts) installs
 * globalThis.handleCommand.
 *
 * Tasks. The semihosting command line names the tasks. For each: collect
 * garbage, reset the peaks, call handleCommand(name), run promise jobs until
 * the reply is filled (bounded), and print one line:
 *   @@task {"name":..,"instructions":..,"memory":{..},"reply":{ok,value|error}}
 * Exit status: 0 all tasks ok; 1 a task failed; 2 an exception escaped
 * (load or handleCommand); 3 XS aborted (memory full, stack overflow...);
 * 4 a CPU fault.
 */
#include "xsAll.h"
#include "xs.h"
#include "device.h"

extern const char preludeStart[], preludeEnd[], bundleStart[], bundleEnd[];
extern char __xs_arena_start[], __xs_arena_end[], __stack_bottom[];
extern size_t deviceHeapUsed(void);

/* ---- XS platform ---- */

static char *arenaChunksTop = __xs_arena_start; /* chunks: [arena start, arenaChunksTop) */
static char *arenaSlotsBottom = __xs_arena_end; /* slots: [arenaSlotsBottom, arena end) */

void fxCreateMachinePlatform(txMachine *the)
{
	the->promiseJobs = 0;
	the->abortStatus = 0;
}

void fxDeleteMachinePlatform(txMachine *the)
{
	(void)the;
}

void *fxAllocateChunks(txMachine *the, txSize size)
{
	(void)the;
	size = (size + 7) & ~7;
	if (size <= 0 || (arenaSlotsBottom - arenaChunksTop) < size)
		return C_NULL;
	void *chunks = arenaChunksTop;
	arenaChunksTop += size;
	return chunks;
}

void fxFreeChunks(txMachine *the, void *chunks)
{
	(void)the;
	(void)chunks; /* freed with the machine only */
}

txSlot *fxAllocateSlots(txMachine *the, txSize count)
{
	txSize size = count * (txSize)sizeof(txSlot);
	if (count <= 0 || (arenaSlotsBottom - arenaChunksTop) < size) {
		/* XS also grows the slot heap when collections free too little ("thrashing"): when
		 * free slots remain, decline with (txSlot*)-1 (fxGrowSlots' "no growth" answer, as
		 * device ports do) instead of failing; fail only when none remain. */
		return the->freeHeap ? (txSlot *)-1 : C_NULL;
	}
	arenaSlotsBottom -= size;
	return (txSlot *)arenaSlotsBottom;
}

void fxFreeSlots(txMachine *the, void *slots)
{
	(void)the;
	(void)slots;
}

void fxQueuePromiseJobs(txMachine *the)
{
	the->promiseJobs = 1;
}

char *fxCStackLimit(void)
{
	return __stack_bottom + 16 * 1024;
}

uint32_t modMilliseconds(void)
{
	return (uint32_t)(deviceTicks() * DEVICE_INSTRUCTIONS_PER_TICK / 1000000u);
}

void fxAbort(txMachine *the, int status)
{
	const char *why = "unknown";
	switch (status) {
	case XS_DEBUGGER_EXIT: why = "debugger"; break;
	case XS_NOT_ENOUGH_MEMORY_EXIT: why = "memory full"; break;
	case XS_STACK_OVERFLOW_EXIT: why = "stack overflow"; break;
	case XS_FATAL_CHECK_EXIT: why = "fatal check"; break;
	case XS_DEAD_STRIP_EXIT: why = "dead strip"; break;
	case XS_UNHANDLED_EXCEPTION_EXIT: why = "unhandled exception"; break;
	case XS_NO_MORE_KEYS_EXIT: why = "not enough keys"; break;
	case XS_TOO_MUCH_COMPUTATION_EXIT: why = "too much computation"; break;
	case XS_UNHANDLED_REJECTION_EXIT: why = "unhandled rejection"; break;
	}
	char line[200];
	snprintf(line, sizeof(line), "\n@@abort {\"status\":%d,\"why\":\"%s\",\"arenaChunks\":%ld,\"arenaSlots\":%ld}\n", status, why,
		(long)(arenaChunksTop - __xs_arena_start), (long)(__xs_arena_end - arenaSlotsBottom));
	fflush(stdout);
	devicePuts(line);
	(void)the;
	deviceExit(3);
}

/* ---- output ---- */

static void printJsonString(const char *text)
{
	char buffer[8];
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
		if (*p == '"' || *p == '\\') {
			putchar('\\');
			putchar(*p);
		}
		else if (*p < 0x20) {
			snprintf(buffer, sizeof(buffer), "\\u%04x", *p);
			fputs(buffer, stdout);
		}
		else
			putchar(*p);
	}
	putchar('"');
}

static uint64_t instructionsSince(uint64_t ticks)
{
	return (deviceTicks() - ticks) * DEVICE_INSTRUCTIONS_PER_TICK;
}

static txSize chunksBefore, slotsBefore;

static void printMemory(txMachine *the)
{
	printf("{\"chunksBefore\":%ld,\"slotsBefore\":%ld,\"chunks\":%ld,\"slots\":%ld,\"chunksPeak\":%ld,\"slotsPeak\":%ld,\"arenaReserved\":%ld,\"arenaSize\":%ld,\"cHeap\":%lu,\"cStack\":%lu}",
		(long)chunksBefore, (long)slotsBefore * (long)sizeof(txSlot),
		(long)the->currentChunksSize, (long)the->currentHeapCount * (long)sizeof(txSlot), (long)the->peakChunksSize,
		(long)the->peakHeapCount * (long)sizeof(txSlot), (long)((arenaChunksTop - __xs_arena_start) + (__xs_arena_end - arenaSlotsBottom)),
		(long)(__xs_arena_end - __xs_arena_start), (unsigned long)deviceHeapUsed(), (unsigned long)deviceStackUsed());
}

static void resetPeaks(txMachine *the)
{
	fxCollectGarbage(the);
	the->peakChunksSize = chunksBefore = the->currentChunksSize;
	the->peakHeapCount = slotsBefore = the->currentHeapCount;
}

/* ---- calibration: a loop of a known number of instructions ---- */

__attribute__((noinline)) static void spin(uint32_t loops)
{
	__asm volatile("1: subs %0, %0, #1\n bne 1b" : "+r"(loops)::"cc");
}

/* A short loop at every boot; with `long`, also one long enough that SysTick's 24-bit counter wraps. */
static void calibrate(int long_)
{
	const uint32_t runs[] = { 5000000u, long_ ? 350000000u : 1000u };
	printf("@@calibration {\"instructionsPerTick\":%u,\"runs\":[", DEVICE_INSTRUCTIONS_PER_TICK);
	for (unsigned i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
		uint64_t ticks = deviceTicks();
		spin(runs[i]);
		uint64_t measured = instructionsSince(ticks);
		printf("%s{\"loops\":%lu,\"expected\":%lu,\"measured\":%llu}", i ? "," : "", (unsigned long)runs[i],
			(unsigned long)(2u * runs[i]), (unsigned long long)measured);
	}
	printf("]}\n");
}

/* ---- boot and tasks ---- */

/* Parse and run a program; with `report`, print its completion value as `@@<report> <JSON>`. */
static int runProgram(txMachine *the, const char *start, const char *end, const char *report)
{
	volatile int ok = 1;
	xsBeginHost(the);
	{
		xsVars(2);
		xsTry {
			txStringCStream stream = { (txString)start, 0, (txSize)(end - start) };
			txScript *script = fxParseScript(the, &stream, fxStringCGetter, mxProgramFlag);
			if (!script)
				xsSyntaxError("cannot parse");
			txSlot *realm = mxProgram.value.reference->next->value.module.realm;
			fxRunScript(the, script, mxRealmGlobal(realm), C_NULL, mxRealmClosures(realm)->value.reference, C_NULL, mxProgram.value.reference);
			mxPullSlot(mxResult);
			if (report) {
				xsVar(1) = xsGet(xsGlobal, xsID("JSON"));
				xsVar(0) = xsCall1(xsVar(1), xsID("stringify"), xsResult);
				printf("@@%s %s\n", report, xsToString(xsVar(0)));
			}
			while (the->promiseJobs) {
				the->promiseJobs = 0;
				fxRunPromiseJobs(the);
			}
		}
		xsCatch {
			printf("@@error {\"phase\":\"load\",\"message\":");
			printJsonString(xsToString(xsException));
			printf("}\n");
			xsException = xsUndefined;
			ok = 0;
		}
	}
	xsEndHost(the);
	return ok;
}

/* Promise-job rounds a task may take before it counts as hung. */
#define MAX_JOB_ROUNDS 1000000

static int runTask(txMachine *the, const char *name, int *escaped)
{
	volatile int ok = 0;
	resetPeaks(the);
	xsBeginHost(the);
	{
		xsVars(3);
		uint64_t ticks = deviceTicks();
		xsTry {
			xsVar(0) = xsArrayBuffer((void *)name, (xsIntegerValue)strlen(name));
			xsVar(1) = xsCall1(xsGlobal, xsID("handleCommand"), xsVar(0));
			int rounds = 0;
			while (!xsHas(xsVar(1), xsID("result")) && the->promiseJobs && rounds++ < MAX_JOB_ROUNDS) {
				the->promiseJobs = 0;
				fxRunPromiseJobs(the);
			}
			uint64_t instructions = instructionsSince(ticks);
			printf("@@task {\"name\":");
			printJsonString(name);
			printf(",\"instructions\":%llu,\"memory\":", (unsigned long long)instructions);
			printMemory(the);
			printf(",\"reply\":");
			if (xsHas(xsVar(1), xsID("result"))) {
				xsVar(2) = xsGet(xsVar(1), xsID("result"));
				xsIntegerValue length = xsGetArrayBufferLength(xsVar(2));
				const char *reply = xsToArrayBuffer(xsVar(2));
				fwrite(reply, 1, (size_t)length, stdout);
				/* test/xs/runtime.ts replies JSON.stringify({ok, ...}): ok comes first */
				ok = length >= 10 && !strncmp(reply, "{\"ok\":true", 10);
			}
			else
				printf("{\"ok\":false,\"error\":\"no reply after the promise jobs ran out\"}");
			printf("}\n");
		}
		xsCatch {
			printf("@@error {\"phase\":\"task\",\"name\":");
			printJsonString(name);
			printf(",\"message\":");
			printJsonString(xsToString(xsException));
			printf("}\n");
			xsException = xsUndefined;
			*escaped = 1;
			ok = 0;
		}
	}
	xsEndHost(the);
	fflush(stdout);
	return ok;
}

int main(void)
{
	static char commandLine[4096];
	calibrate(0);
	xsCreation creation = {
		256 * 1024, /* initialChunkSize */
		64 * 1024,  /* incrementalChunkSize */
		16 * 1024,  /* initialHeapCount */
		4 * 1024,   /* incrementalHeapCount */
		4096,       /* stackCount */
		2048,       /* initialKeyCount */
		1024,       /* incrementalKeyCount */
		1993,       /* nameModulo */
		127,        /* symbolModulo */
		1024 * 1024, /* parserBufferSize: the longest token (the bundles carry test data as long string literals) */
		1993,       /* parserTableModulo */
		0,          /* staticSize */
	};
	uint64_t ticks = deviceTicks();
	txMachine *the = xsCreateMachine(&creation, "device", C_NULL);
	if (!the) {
		devicePuts("@@error {\"phase\":\"create\",\"message\":\"xsCreateMachine failed\"}\n");
		return 2;
	}
	uint64_t createInstructions = instructionsSince(ticks);
	ticks = deviceTicks();
	int loaded = runProgram(the, preludeStart, preludeEnd, "prelude");
	if (loaded)
		deviceInstallHost(the); /* after the prelude, as an app's own global (host.c) */
	loaded = loaded && runProgram(the, bundleStart, bundleEnd, C_NULL);
	uint64_t loadInstructions = instructionsSince(ticks);
	size_t parserHeap = deviceHeapUsed();
	resetPeaks(the);
	printf("@@load {\"ok\":%s,\"createInstructions\":%llu,\"loadInstructions\":%llu,\"preludeBytes\":%ld,\"bundleBytes\":%ld,\"memory\":",
		loaded ? "true" : "false", (unsigned long long)createInstructions, (unsigned long long)loadInstructions,
		(long)(preludeEnd - preludeStart), (long)(bundleEnd - bundleStart));
	printMemory(the);
	printf(",\"cHeapAfterParse\":%lu}\n", (unsigned long)parserHeap);
	fflush(stdout);
	if (!loaded)
		return 2;

	if (deviceCommandLine(commandLine, sizeof(commandLine)) != 0) {
		devicePuts("@@error {\"phase\":\"cmdline\",\"message\":\"SYS_GET_CMDLINE failed\"}\n");
		return 2;
	}
	int failed = 0, escaped = 0, first = 1;
	for (char *word = strtok(commandLine, " "); word; word = strtok(C_NULL, " ")) {
		if (first) { /* argv[0]: the program's name */
			first = 0;
			continue;
		}
		if (!strcmp(word, "@calibrate-long")) /* not a JS task: the timer across SysTick wraps */
			calibrate(1);
		else if (!runTask(the, word, &escaped))
			failed = 1;
	}
	printf("@@done {\"failed\":%s,\"escaped\":%s}\n", failed ? "true" : "false", escaped ? "true" : "false");
	fflush(stdout);
	return escaped ? 2 : failed ? 1 : 0;
}
