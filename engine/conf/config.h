/* config.h - rvffs.conf (rvffs.conf(5)), read alike by rvffs and rvfctl:
 * one parser, so one file is judged the same by both. */
#ifndef RVFFS_CONFIG_H
#define RVFFS_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rvf.h"

typedef struct rvffs_config {
	unsigned threads;           /* [mount] threads: search threads, 0 = per CPU */
	unsigned query_k;           /* [query] k: default k of the query file */
	bool codes_off;             /* [query] codes = off */
	unsigned codes_max_mb;      /* [query] codes_max_mb: 0 = the default */
	rvf_metric create_metric;   /* [create] metric */
	uint8_t kernel_arch;        /* [kernel] arch */
	uint8_t kernel_type;        /* [kernel] type */
	uint16_t kernel_api_port;   /* [kernel] api_port */
	bool kernel_compress;       /* [kernel] compression = zstd */
	char signing_key[PATH_MAX]; /* [signing] key: a key prefix, or "" */
	char source[PATH_MAX];      /* the file read, or "" */
} rvffs_config;

/* Defaults, then `path` if given, else the first of
 * $XDG_CONFIG_HOME/rvffs/rvffs.conf (~/.config when unset) and
 * /etc/rvffs.conf that exists.  Unknown sections or keys and bad values
 * fail with "FILE:LINE: ..." in why. */
bool config_load(const char *path, rvffs_config *cfg, char *why,
		     size_t why_len);

#endif
