/* config.h - rvffs.conf as rvfctl reads it (rvffs.conf(5)).
 *
 * The same file as the daemon's: rvfctl uses [create], [kernel] and
 * [signing], and checks [mount] and [query] the same way, so one file is
 * judged alike by both. */
#ifndef RVFCTL_CONFIG_H
#define RVFCTL_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rvf.h"

typedef struct ctl_config {
	rvf_metric create_metric;   /* [create] metric */
	uint8_t kernel_arch;        /* [kernel] arch */
	uint8_t kernel_type;        /* [kernel] type */
	uint16_t kernel_api_port;   /* [kernel] api_port */
	bool kernel_compress;       /* [kernel] compression = zstd */
	char signing_key[PATH_MAX]; /* [signing] key: a key prefix, or "" */
	char source[PATH_MAX];      /* the file read, or "" */
} ctl_config;

/* Defaults, then `path` if given, else the first of
 * $XDG_CONFIG_HOME/rvffs/rvffs.conf (~/.config when unset) and
 * /etc/rvffs.conf that exists.  Unknown sections or keys and bad values
 * fail with "FILE:LINE: ..." in why. */
bool ctl_config_load(const char *path, ctl_config *cfg, char *why,
		     size_t why_len);

#endif
