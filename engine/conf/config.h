/* config.h - rvffs.conf (rvffs.conf(5)), read alike by rvffs and rvfctl:
 * one parser, so one file is judged the same by both. */
#ifndef RVFFS_CONFIG_H
#define RVFFS_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rvf.h"

/* Default seconds between durable commits of a mount (ext4's default). */
#define RVFFS_COMMIT_DEFAULT_S 5

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
	/* [limits]: what one descriptor or user may make the daemon hold. */
	uint64_t request_max;       /* bytes of one request (query file, slot) */
	uint64_t results_max;       /* bytes of the results of one batch */
	uint64_t staged_max;        /* bytes a user may stage in ingest/ */
	unsigned slots_max;         /* query slots per user */
	uint64_t query_user_max;    /* query-file bytes per user, all fds */
	char signing_key[PATH_MAX]; /* [signing] key: a key prefix, or "" */
	unsigned commit_s;          /* [mount] commit: seconds between durable commits */
	bool compact_auto;          /* [compact] auto = on|off */
	double compact_ratio;       /* [compact] ratio: dead/file size, 0..1 */
	unsigned compact_min_mb;    /* [compact] min_dead_mb */
	char source[PATH_MAX];      /* the file read, or "" */
} rvffs_config;

/* Defaults, then `path` if given, else the first of
 * $XDG_CONFIG_HOME/rvffs/rvffs.conf (~/.config when unset) and
 * /etc/rvffs.conf that exists.  Unknown sections or keys and bad values
 * fail with "FILE:LINE: ..." in why. */
bool config_load(const char *path, rvffs_config *cfg, char *why,
		     size_t why_len);

/* A lock wait in seconds (decimals allowed, 0 to 3600), as rvfctl's
 * --wait and rvffs's -o wait= take it, into milliseconds. */
bool config_parse_wait(const char *v, unsigned *ms);

#endif
