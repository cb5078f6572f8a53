/* From the Zephyr "Reboot" API reference (include/zephyr/sys/reboot.h). */
#ifndef XSOTA_DECLS_REBOOT_H
#define XSOTA_DECLS_REBOOT_H

#define SYS_REBOOT_WARM 0
#define SYS_REBOOT_COLD 1

/* Does not return. */
void sys_reboot(int type) __attribute__((noreturn));

#endif
