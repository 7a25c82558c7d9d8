/* mount.h - acting on a store through the tree of its rvffs mount.
 *
 * A mounted store is locked by its daemon, so rvfctl cannot open it for
 * writing; instead it acts through the tree (ingest/, query, vectors/) and
 * the `control` file, and the daemon commits and shows the change at once.
 * Reads go through the tree too, so they show what the mount shows. */
#ifndef RVFCTL_MOUNT_H
#define RVFCTL_MOUNT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

/* True when path is the root of an rvffs mount: a directory with a
 * `control` file and a `status` file that has a "pid:" line. */
bool mnt_detect(const char *path);

/* Reads NAME under the mount point whole (NUL-terminated); NULL with
 * errno set. */
char *mnt_read(const char *mnt, const char *name, size_t *len);

/* The mount's `status` as an object of strings; reports and returns an
 * exit code on failure. */
int mnt_status(ctl_ctx *ctx, const char *mnt, json_t **out);
/* The mounted store's dimension, from its status; an exit code on failure. */
int mnt_dimension(ctl_ctx *ctx, const char *mnt, uint32_t *dim);
/* "key: value" lines as an object of strings. */
json_t *mnt_parse_kv(const char *text);
/* A status value as a number (0 when missing). */
uint64_t kv_u64(json_t *kv, const char *key);
const char *kv_str(json_t *kv, const char *key);

/* Sends one command line to the control file and waits for its commit.
 * On failure prints the daemon's reason (from `errors`) and returns the
 * exit code; `what` names the operation. */
int mnt_command(ctl_ctx *ctx, const char *mnt, const char *what,
		const char *line);

/* s as one quoted argument of a control command (malloc'd). */
char *mnt_quote(const char *s);

/* The store file mounted at mnt (from /proc/self/mountinfo, where rvffs
 * names it as the source), malloc'd, or NULL. */
char *mnt_store_path(const char *mnt);
/* Opens STORE, a file or an rvffs mount point, read-only by its file (a
 * mounted store's daemon keeps the writer lock; readers need none).
 * With file, also the file's path (malloc'd).  Reports and returns an
 * exit code on failure. */
int mnt_open_file_read_only(ctl_ctx *ctx, const char *path, rvf_store **out,
			    char **file);
/* Where the store file is mounted by rvffs (malloc'd), or NULL. */
char *mnt_of_store(const char *store);

/* The daemon's reason for the failure of an operation done through the
 * tree: the newest line `errors` gained since it was errors_before bytes
 * long (NULL if none; malloc'd). */
size_t mnt_errors_len(const char *mnt);
char *mnt_new_error(const char *mnt, size_t errors_before);

#endif
