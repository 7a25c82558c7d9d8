/* config.h - rvffs.conf (see rvffs.conf(5)). */
#ifndef RVFFS_CONFIG_H
#define RVFFS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "rvf.h"

typedef struct rvffs_config {
	unsigned threads;          /* [mount] threads: search threads, 0 = per CPU */
	unsigned query_k;          /* [query] k: default k of the query file */
	rvf_metric create_metric;  /* [create] metric */
	char source[512];          /* the file read, or "" */
} rvffs_config;

/* Loads defaults, then `path` if given, else the first of
 * $XDG_CONFIG_HOME/rvffs/rvffs.conf and /etc/rvffs.conf that exists.
 * Unknown sections or keys and bad values fail with "FILE:LINE: ..." in why. */
bool config_load(const char *path, rvffs_config *cfg, char *why, size_t why_len);

#endif
