/*
 * Start-up for the device lane's bare-metal Cortex-M7 (QEMU mps2-an500):
 * the vector table, the reset handler (copy .data, zero .bss, enable the
 * FPU, run main), SysTick as a 64-bit tick counter, and fault handlers that
 * report over semihosting and exit non-zero.
 *
 * Timing: SysTick counts the processor clock. QEMU's mps2 boards clock it
 * at SYSCLK = 25 MHz; with `-icount shift=0` one guest instruction advances
 * virtual time by 1 ns, so one tick is 40 instructions. main.c checks this
 * against a loop of known length before trusting any figure.
 */
#include <stdint.h>
#include "device.h"

extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end, __stack_top;
extern int main(void);

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SCB_ICSR (*(volatile uint32_t *)0xE000ED04u)
#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)
#define SCB_CFSR (*(volatile uint32_t *)0xE000ED28u)
#define SCB_HFSR (*(volatile uint32_t *)0xE000ED2Cu)
#define SCB_MMFAR (*(volatile uint32_t *)0xE000ED34u)
#define SCB_BFAR (*(volatile uint32_t *)0xE000ED38u)
#define ICSR_PENDSTSET (1u << 26)
#define SYSTICK_PERIOD 0x1000000u /* 24-bit counter, reload 0xFFFFFF */

static volatile uint32_t systickWraps;

void SysTick_Handler(void)
{
	systickWraps++;
}

uint64_t deviceTicks(void)
{
	uint32_t primask, wraps, value;
	__asm volatile("mrs %0, primask\n cpsid i" : "=r"(primask)::"memory");
	wraps = systickWraps;
	value = SYST_CVR;
	if (SCB_ICSR & ICSR_PENDSTSET) {
		/* Wrapped after the interrupts were masked: the handler has not counted it yet. */
		value = SYST_CVR;
		wraps++;
	}
	__asm volatile("msr primask, %0" ::"r"(primask) : "memory");
	return (uint64_t)wraps * SYSTICK_PERIOD + (SYSTICK_PERIOD - 1u - value);
}

static void systickStart(void)
{
	SYST_RVR = SYSTICK_PERIOD - 1u;
	SYST_CVR = 0;
	SYST_CSR = 7u; /* ENABLE | TICKINT | CLKSOURCE = processor clock */
	/* The counter loads its reload value on the first tick: start counting from there. */
	while (SYST_CVR == 0)
		;
}

static void fault(const char *what)
{
	deviceFault(what, SCB_CFSR, SCB_HFSR, SCB_MMFAR, SCB_BFAR);
}

void HardFault_Handler(void) { fault("HardFault"); }
void MemManage_Handler(void) { fault("MemManage"); }
void BusFault_Handler(void) { fault("BusFault"); }
void UsageFault_Handler(void) { fault("UsageFault"); }
void Default_Handler(void) { fault("unexpected interrupt"); }

void Reset_Handler(void)
{
	uint32_t *src = &__data_load, *dst = &__data_start;
	while (dst < &__data_end)
		*dst++ = *src++;
	for (dst = &__bss_start; dst < &__bss_end;)
		*dst++ = 0;
	/* CP10 and CP11 full access: the code is built for the hard-float ABI. */
	SCB_CPACR |= (0xFu << 20);
	__asm volatile("dsb\n isb" ::: "memory");
	systickStart();
	deviceExit(main());
}

typedef void (*Vector)(void);

__attribute__((section(".vectors"), used)) const Vector vectorTable[16 + 32] = {
	(Vector)&__stack_top,
	Reset_Handler,
	Default_Handler, /* NMI */
	HardFault_Handler,
	MemManage_Handler,
	BusFault_Handler,
	UsageFault_Handler,
	0, 0, 0, 0,
	Default_Handler, /* SVCall */
	Default_Handler, /* DebugMonitor */
	0,
	Default_Handler, /* PendSV */
	SysTick_Handler,
	/* external interrupts: none enabled */
	[16 ... 47] = Default_Handler,
};
