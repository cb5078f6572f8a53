/*
 * The device lane's native services for the bundle, installed after the
 * Moddable realm prelude (like an app's own globals) as one frozen global,
 * `__xsOtaDevice`:
 *
 * - `Digest`: a host class with the API of Moddable's `crypt` Digest
 *   (modules/crypt/digest/crypt.js and modCrypt.c, SDK 48ee02d8):
 *   `new Digest("SHA256")`, `write(buffer)` (an ArrayBuffer, a Uint8Array or
 *   a DataView), `close()` returning the digest as an ArrayBuffer, `reset()`,
 *   `blockSize`, `outputSize`. Only SHA-256 (the one the agent uses); any other
 *   name throws. Its state lives in an XS host chunk, as Moddable's does. The
 *   device build bundles hal/moddable/digest.ts unchanged with the module
 *   specifier "crypt" resolved to test/device/crypt.ts, which hands this class out.
 * - `firstProgrammed(cells, offset, length, eraseValue)`: the NOR check of a
 *   flash write (every target byte erased), in C as a flash driver does it.
 * - `instructions()`: instructions retired since reset (SysTick ticks × 40
 *   under -icount shift=0), so that a task can time its own sections.
 *
 * And the global `native(name)`: what xsc makes of `native("xs_name")` in
 * hal/moddable (a direct host function), which the runtime parser here does
 * not know: it hands out the host function of that name from the adapters'
 * own C files linked into the ELF (hal/moddable/native/crc32.c), so that the
 * adapter runs unchanged over its real C.
 */
#include "xsAll.h"
#include "xsmc.h"
#include "device.h"
#include "sha256.h"

typedef struct {
	DeviceSha256 sha;
	int closed;
} DeviceDigest;

static void xs_device_digest(xsMachine *the)
{
	if (xsmcArgc < 1 || xsmcTypeOf(xsArg(0)) != xsStringType || strcmp(xsmcToString(xsArg(0)), "SHA256"))
		xsUnknownError("Digest: only SHA256 on the device lane");
	xsmcGet(xsResult, xsTarget, xsID("prototype"));
	xsResult = xsNewHostInstance(xsResult);
	xsmcSetHostChunk(xsResult, C_NULL, sizeof(DeviceDigest));
	DeviceDigest *d = xsmcGetHostChunk(xsResult);
	deviceSha256Begin(&d->sha);
	d->closed = 0;
}

static void xs_device_digest_write(xsMachine *the)
{
	void *data;
	xsUnsignedValue size;
	xsmcGetBufferReadable(xsArg(0), &data, &size);
	DeviceDigest *d = xsmcGetHostChunk(xsThis);
	if (d->closed)
		xsUnknownError("Digest: write after close");
	deviceSha256Update(&d->sha, data, size);
}

static void xs_device_digest_close(xsMachine *the)
{
	xsmcSetArrayBuffer(xsResult, C_NULL, 32);
	DeviceDigest *d = xsmcGetHostChunk(xsThis); /* after the allocation: chunks move */
	if (d->closed)
		xsUnknownError("Digest: close after close");
	deviceSha256Finish(&d->sha, xsmcToArrayBuffer(xsResult));
	d->closed = 1;
}

static void xs_device_digest_reset(xsMachine *the)
{
	DeviceDigest *d = xsmcGetHostChunk(xsThis);
	deviceSha256Begin(&d->sha);
	d->closed = 0;
}

static void xs_device_digest_blockSize(xsMachine *the)
{
	xsResult = xsInteger(64);
}

static void xs_device_digest_outputSize(xsMachine *the)
{
	xsResult = xsInteger(32);
}

/* firstProgrammed(cells, offset, length, eraseValue): the index of the first byte of
 * cells[offset, offset + length) that is not eraseValue, or -1 (the NOR rule a flash
 * driver enforces in C; test/device/native-flash.ts). */
static void xs_device_firstProgrammed(xsMachine *the)
{
	void *data;
	xsUnsignedValue size;
	xsmcGetBufferReadable(xsArg(0), &data, &size);
	xsIntegerValue offset = xsmcToInteger(xsArg(1)), length = xsmcToInteger(xsArg(2)), erased = xsmcToInteger(xsArg(3));
	if (offset < 0 || length < 0 || (xsUnsignedValue)offset + (xsUnsignedValue)length > size)
		xsRangeError("firstProgrammed: outside the buffer");
	const uint8_t *cells = (const uint8_t *)data + offset;
	xsResult = xsInteger(-1);
	for (xsIntegerValue i = 0; i < length; i++) {
		if (cells[i] != (uint8_t)erased) {
			xsResult = xsInteger(offset + i);
			break;
		}
	}
}

extern void xs_otacrc32_update(xsMachine *the);

static const struct {
	char name[24];
	xsCallback callback;
	int length;
} deviceNatives[] = {
	{ "xs_otacrc32_update", xs_otacrc32_update, 4 },
};
#define DEVICE_NATIVES (sizeof(deviceNatives) / sizeof(deviceNatives[0]))

/* The host functions are made once, at install, into the array __xsOtaDevice.natives (the table's order); `native` hands them out. */
static void xs_device_native(xsMachine *the)
{
	xsmcVars(1);
	const char *name = xsmcToString(xsArg(0));
	for (unsigned i = 0; i < DEVICE_NATIVES; i++) {
		if (c_strcmp(name, deviceNatives[i].name) == 0) {
			xsmcGet(xsVar(0), xsGlobal, xsID("__xsOtaDevice"));
			xsmcGet(xsVar(0), xsVar(0), xsID("natives"));
			xsmcGetIndex(xsResult, xsVar(0), i);
			return;
		}
	}
	xsReferenceError("native: no host function %s in the device lane's ELF", name);
}

static void xs_device_instructions(xsMachine *the)
{
	xsResult = xsNumber((double)(deviceTicks() * DEVICE_INSTRUCTIONS_PER_TICK));
}

void deviceInstallHost(xsMachine *the)
{
	xsBeginHost(the);
	{
		xsmcVars(5);
		xsVar(0) = xsNewHostObject(C_NULL); /* instances hold their state in a host chunk, which XS frees */
		xsVar(1) = xsNewHostConstructor(xs_device_digest, 1, xsVar(0));
		xsVar(2) = xsNewHostFunction(xs_device_digest_write, 1);
		xsmcDefine(xsVar(0), xsID("write"), xsVar(2), xsDontEnum);
		xsVar(2) = xsNewHostFunction(xs_device_digest_close, 0);
		xsmcDefine(xsVar(0), xsID("close"), xsVar(2), xsDontEnum);
		xsVar(2) = xsNewHostFunction(xs_device_digest_reset, 0);
		xsmcDefine(xsVar(0), xsID("reset"), xsVar(2), xsDontEnum);
		xsVar(2) = xsNewHostFunction(xs_device_digest_blockSize, 0);
		xsmcDefine(xsVar(0), xsID("blockSize"), xsVar(2), xsIsGetter | xsDontEnum);
		xsVar(2) = xsNewHostFunction(xs_device_digest_outputSize, 0);
		xsmcDefine(xsVar(0), xsID("outputSize"), xsVar(2), xsIsGetter | xsDontEnum);
		xsVar(3) = xsNewObject();
		xsmcDefine(xsVar(3), xsID("Digest"), xsVar(1), xsDontEnum | xsDontSet | xsDontDelete);
		xsVar(2) = xsNewHostFunction(xs_device_firstProgrammed, 4);
		xsmcDefine(xsVar(3), xsID("firstProgrammed"), xsVar(2), xsDontEnum | xsDontSet | xsDontDelete);
		xsVar(2) = xsNewHostFunction(xs_device_instructions, 0);
		xsmcDefine(xsVar(3), xsID("instructions"), xsVar(2), xsDontEnum | xsDontSet | xsDontDelete);
		xsVar(4) = xsNewArray(DEVICE_NATIVES);
		for (unsigned i = 0; i < DEVICE_NATIVES; i++) {
			xsVar(2) = xsNewHostFunction(deviceNatives[i].callback, deviceNatives[i].length);
			xsmcSetIndex(xsVar(4), i, xsVar(2));
		}
		xsmcDefine(xsVar(3), xsID("natives"), xsVar(4), xsDontEnum | xsDontSet | xsDontDelete);
		xsmcGet(xsVar(2), xsGlobal, xsID("Object"));
		xsCall1(xsVar(2), xsID("freeze"), xsVar(4));
		xsCall1(xsVar(2), xsID("freeze"), xsVar(0));
		xsCall1(xsVar(2), xsID("freeze"), xsVar(1));
		xsCall1(xsVar(2), xsID("freeze"), xsVar(3));
		xsmcDefine(xsGlobal, xsID("__xsOtaDevice"), xsVar(3), xsDontEnum | xsDontSet | xsDontDelete);
		xsVar(2) = xsNewHostFunction(xs_device_native, 1);
		xsmcDefine(xsGlobal, xsID("native"), xsVar(2), xsDontEnum | xsDontSet | xsDontDelete);
	}
	xsEndHost(the);
}
