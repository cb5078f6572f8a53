/* The device lane's bare-metal services (startup.c, semihost.c). */
#ifndef DEVICE_H
#define DEVICE_H
#include <stdint.h>
#include <stddef.h>

/* SysTick ticks since reset (processor clock), 64 bits wide. */
uint64_t deviceTicks(void);
/* Instructions per SysTick tick under `-icount shift=0` on mps2 (1e9 / SYSCLK). */
#define DEVICE_INSTRUCTIONS_PER_TICK 40u

/* Bytes of the C stack ever used (painted at reset). */
size_t deviceStackUsed(void);

/* Console and exit over ARM semihosting. */
void deviceWrite(const char *bytes, size_t length);
void devicePuts(const char *text);
__attribute__((noreturn)) void deviceExit(int status);
/* A CPU fault: the fault status registers and the faulting pc and lr, then exit 4. */
__attribute__((noreturn)) void deviceFault(const char *what, uint32_t cfsr, uint32_t hfsr, uint32_t pc, uint32_t lr);
/* The semihosting command line (the task names); 0 on success. */
int deviceCommandLine(char *buffer, size_t size);
/* Install the lane's native services (host.c: the crypt-like Digest, the instruction counter). */
struct sxMachine;
void deviceInstallHost(struct sxMachine *the);
#endif
