/* From the Zephyr "Device Driver Model" API reference: struct device is
 * opaque to drivers' users; device_is_ready() reports whether the driver
 * initialised successfully. */
#ifndef XSOTA_DECLS_DEVICE_H
#define XSOTA_DECLS_DEVICE_H

#include <stdbool.h>
#include <zephyr/devicetree.h>

struct device {
	const char *name;
	const void *config;
	const void *api;
	void *data;
};

bool device_is_ready(const struct device *dev);

/* Real Zephyr: a pointer to the statically allocated device of a devicetree node. */
#define XSOTA_DEVICE_DT_GET_(node_id) (&xsota_device_##node_id)
#define DEVICE_DT_GET(node_id) XSOTA_DEVICE_DT_GET_(node_id)

/* The devices the native modules obtain with DEVICE_DT_GET. */
extern const struct device xsota_device_xsota_dt_alias_watchdog0;

#endif
