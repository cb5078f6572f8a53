/* SHA-256 for the device lane's native digest (sha256.c). */
#ifndef DEVICE_SHA256_H
#define DEVICE_SHA256_H
#include <stdint.h>
#include <stddef.h>

typedef struct {
	uint32_t state[8];
	uint64_t length;
	uint8_t block[64];
	size_t held;
} DeviceSha256;

void deviceSha256Begin(DeviceSha256 *s);
void deviceSha256Update(DeviceSha256 *s, const uint8_t *data, size_t size);
/* The digest of everything fed since Begin; the state must be begun again before reuse. */
void deviceSha256Finish(DeviceSha256 *s, uint8_t out[32]);
#endif
