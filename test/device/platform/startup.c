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

extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end, __stack_bottom, __stack_top;
extern int main(void);

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SCB_ICSR (*(volatile uint32_t *)0xE000ED04u)
#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)
#define SCB_CFSR (*(volatile uint32_t *)0xE000ED28u)
#define SCB_HFSR (*(volatile uint32_t *)0xE000ED2Cu)
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

#define STACK_PAINT 0x5AC3A55Cu

size_t deviceStackUsed(void)
{
	const uint32_t *p = &__stack_bottom;
	while (p < &__stack_top && *p == STACK_PAINT)
		p++;
	return (size_t)((const char *)&__stack_top - (const char *)p);
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

/* `frame`: the exception frame the core stacked (r0-r3, r12, lr, pc, xpsr). */
__attribute__((used, noreturn)) void deviceFaultReport(const char *what, const uint32_t *frame)
{
	deviceFault(what, SCB_CFSR, SCB_HFSR, frame[6], frame[5]);
}

/* Each fault handler reports on a fresh stack: the fault may be a stack overflow. */
#define FAULT_HANDLER(name, text) \
	__attribute__((naked)) void name(void) \
	{ \
		__asm volatile("mrs r1, msp\n ldr r0, =__stack_top\n mov sp, r0\n ldr r0, =1f\n b deviceFaultReport\n .ltorg\n 1: .asciz \"" text "\"\n .balign 2"); \
	}

FAULT_HANDLER(HardFault_Handler, "HardFault")
FAULT_HANDLER(MemManage_Handler, "MemManage")
FAULT_HANDLER(BusFault_Handler, "BusFault")
FAULT_HANDLER(UsageFault_Handler, "UsageFault")
FAULT_HANDLER(Default_Handler, "unexpected interrupt")

void Reset_Handler(void)
{
	uint32_t *src = &__data_load, *dst = &__data_start;
	while (dst < &__data_end)
		*dst++ = *src++;
	for (dst = &__bss_start; dst < &__bss_end;)
		*dst++ = 0;
	/* Paint the stack below this frame, for the high-water mark (deviceStackUsed). */
	uint32_t *paintEnd = (uint32_t *)((uintptr_t)&__stack_top - 256u);
	for (dst = &__stack_bottom; dst < paintEnd;)
		*dst++ = STACK_PAINT;
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
