/* Stand-ins for Zephyr's devicetree macros (see ../README.md): each node
 * reference becomes a distinct identifier so that DEVICE_DT_GET and
 * FIXED_PARTITION_ID can name a declared symbol. */
#ifndef XSOTA_DECLS_DEVICETREE_H
#define XSOTA_DECLS_DEVICETREE_H

#define DT_ALIAS(alias) xsota_dt_alias_##alias
#define DT_NODELABEL(label) xsota_dt_nodelabel_##label

#endif
