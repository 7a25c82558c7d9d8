/* common.h - helpers shared by rvfctl's commands.
 *
 * Every command gets the invocation's context (ctl_ctx: --json, the
 * configuration) and returns an exit code.  Failures go through
 * ctl_report / ctl_fail, which print one "rvfctl: ..." line on stderr and,
 * with --json, an {"error": ...} object on stdout, so that a script always
 * reads one JSON document. */
#ifndef RVFCTL_COMMON_H
#define RVFCTL_COMMON_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "rvf.h"

/* Exit codes (documented in --help and rvfctl(1)). */
enum {
	EXIT_OTHER = 1,   /* anything else */
	EXIT_USAGE = 2,   /* bad command line or configuration file */
	EXIT_REFUSED = 3, /* refused or damaged store, bad input data, failed verification */
	EXIT_IO = 4,      /* I/O error, lock held */
};

typedef struct ctl_ctx {
	bool json;          /* --json: one JSON document on stdout */
	bool children_noted; /* the branch-children warning was printed */
	unsigned wait_ms;   /* --wait SECONDS: how long to wait for the lock */
	rvffs_config cfg;     /* rvffs.conf */
} ctl_ctx;

/* Exit code for a library code / an errno. */
int ctl_exit_code(rvf_code code);
int ctl_errno_exit(int e);
/* Exit code for a library error: as ctl_exit_code, but a path that is
 * missing or that the caller may not read is no I/O failure (EXIT_OTHER). */
int ctl_error_exit(const rvf_error *err);

/* Prints the failure and returns `code` (an exit code).  extra (may be
 * NULL, consumed) adds fields to the --json error object. */
int ctl_fail(ctl_ctx *ctx, int code, json_t *extra, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* ctl_fail for a library error, prefixed by `what` (may be NULL). */
int ctl_report(ctl_ctx *ctx, const char *what, const rvf_error *err);
/* ctl_fail with EXIT_USAGE. */
int ctl_usage_error(ctl_ctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Prints a JSON document on stdout (one line) and releases it. */
void ctl_print_json(json_t *o);
/* A JSON id: an integer, or text above 2^53 (where doubles lose it). */
json_t *json_id(uint64_t id);
json_t *json_hex(const uint8_t *p, size_t n);

/* Opens a store, printing why not.  Returns 0 or an exit code.  Opening
 * one writable warns when it has branch children beside it. */
int ctl_open(ctl_ctx *ctx, const char *path, bool writable, rvf_store **out);
/* Closes a store this run committed to, compacting it first when the
 * [compact] policy says so -- as a mount does -- unless branch children
 * depend on it.  A failed compaction only warns: the commits stand. */
void ctl_close_written(ctl_ctx *ctx, const char *path, rvf_store *s);
/* Prints that `what` (e.g. "writing to") PATH concerns its branch
 * children, if it has any beside it; returns how many. */
int ctl_children_note(ctl_ctx *ctx, const char *path, const char *what);

/* Parses canonical decimal u64 / u32 (rvf_parse_id); false when not a
 * whole number in range. */
bool parse_u64(const char *s, uint64_t *out);
bool parse_u32(const char *s, uint32_t max, uint32_t *out);
/* Parses "1,2 3" / "[1, 2, 3]" into floats (rvf_parse_floats); returns
 * the count or -1. */
long parse_floats(const char *s, float **out);
/* Parses a comma/space separated id list; returns the count or -1. */
long parse_ids(const char *s, uint64_t **out);

/* Writes a float so it parses back to the same float32. */
void print_float(FILE *f, float v);
/* A float as a JSON real that reads back as the same float32. */
json_t *json_float(float v);
/* Lower-case hex of n bytes into out (2n+1 bytes). */
void hex_encode(const uint8_t *p, size_t n, char *out);
/* Reads a whole file; NULL with errno set on failure. */
/* Everything up to end of file, NUL-terminated (not counted in *len);
 * NULL with errno set. */
char *read_fd(int fd, size_t *len);
unsigned char *read_file(const char *path, size_t *len);
/* Writes a whole file; 0 or an exit code (reported). */
int write_file(ctl_ctx *ctx, const char *path, const void *p, size_t n);
/* Segment type names as the reference's segments() spells them. */
void ref_type_name(uint8_t t, char out[24]);
/* Absolute form of a path that need not exist yet (its directory must);
 * malloc'd, NULL with errno set. */
char *absolute_path(const char *path);

/* Each command: argc/argv start at the command name. */
int cmd_create(ctl_ctx *ctx, int argc, char **argv);
int cmd_ingest(ctl_ctx *ctx, int argc, char **argv);
int cmd_query(ctl_ctx *ctx, int argc, char **argv);
int cmd_delete(ctl_ctx *ctx, int argc, char **argv);
int cmd_status(ctl_ctx *ctx, int argc, char **argv);
int cmd_inspect(ctl_ctx *ctx, int argc, char **argv);
int cmd_export(ctl_ctx *ctx, int argc, char **argv);
int cmd_compact(ctl_ctx *ctx, int argc, char **argv);
int cmd_derive(ctl_ctx *ctx, int argc, char **argv);
int cmd_branch(ctl_ctx *ctx, int argc, char **argv);
int cmd_freeze(ctl_ctx *ctx, int argc, char **argv);
int cmd_detach(ctl_ctx *ctx, int argc, char **argv);
int cmd_restore(ctl_ctx *ctx, int argc, char **argv);
int cmd_embed_kernel(ctl_ctx *ctx, int argc, char **argv);
int cmd_extract_kernel(ctl_ctx *ctx, int argc, char **argv);
int cmd_remove_kernel(ctl_ctx *ctx, int argc, char **argv);
int cmd_embed_ebpf(ctl_ctx *ctx, int argc, char **argv);
int cmd_extract_ebpf(ctl_ctx *ctx, int argc, char **argv);
int cmd_remove_ebpf(ctl_ctx *ctx, int argc, char **argv);
int cmd_verify(ctl_ctx *ctx, int argc, char **argv);
int cmd_keygen(ctl_ctx *ctx, int argc, char **argv);
int cmd_sign(ctl_ctx *ctx, int argc, char **argv);
int cmd_extract_wasm(ctl_ctx *ctx, int argc, char **argv);
int cmd_extract_dashboard(ctl_ctx *ctx, int argc, char **argv);
int cmd_filter(ctl_ctx *ctx, int argc, char **argv);
int cmd_verify_attestation(ctl_ctx *ctx, int argc, char **argv);
int cmd_rebuild_refcounts(ctl_ctx *ctx, int argc, char **argv);
int cmd_serve(ctl_ctx *ctx, int argc, char **argv);
int cmd_launch(ctl_ctx *ctx, int argc, char **argv);

#endif
