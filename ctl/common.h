/* common.h - helpers shared by rvfctl's commands. */
#ifndef RVFCTL_COMMON_H
#define RVFCTL_COMMON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "rvf.h"

/* Exit codes (documented in rvfctl(1)). */
enum {
	EXIT_OTHER = 1,   /* anything else */
	EXIT_USAGE = 2,   /* bad command line */
	EXIT_REFUSED = 3, /* refused or damaged store, bad input data */
	EXIT_IO = 4,      /* I/O error, lock held */
};

/* Prints "rvfctl: MESSAGE" for err and returns the matching exit code. */
int ctl_report(const rvf_error *err);
/* Exit code for a library code. */
int ctl_exit_code(rvf_code code);
/* Prints "rvfctl: " + printf message; returns EXIT_USAGE. */
int ctl_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Opens a store, printing why not.  Returns 0 or an exit code. */
int ctl_open(const char *path, bool writable, rvf_store **out);

/* Parses decimal u64 / u32; false when not a whole number in range. */
bool parse_u64(const char *s, uint64_t *out);
bool parse_u32(const char *s, uint32_t max, uint32_t *out);
/* Parses "1,2 3" / "[1, 2, 3]" into floats; returns the count or -1. */
long parse_floats(const char *s, float **out);
/* Parses a comma/space separated id list; returns the count or -1. */
long parse_ids(const char *s, uint64_t **out);

/* Writes a float so it parses back to the same float32. */
void print_float(FILE *f, float v);
/* Lower-case hex of n bytes into out (2n+1 bytes). */
void hex_encode(const uint8_t *p, size_t n, char *out);
/* Reads a whole file; NULL with errno set on failure. */
unsigned char *read_file(const char *path, size_t *len);

/* Each command: argc/argv start at the command name. */
int cmd_create(int argc, char **argv);
int cmd_ingest(int argc, char **argv);
int cmd_query(int argc, char **argv);
int cmd_delete(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_compact(int argc, char **argv);
int cmd_derive(int argc, char **argv);
int cmd_branch(int argc, char **argv);
int cmd_freeze(int argc, char **argv);
int cmd_embed_kernel(int argc, char **argv);
int cmd_extract_kernel(int argc, char **argv);
int cmd_remove_kernel(int argc, char **argv);
int cmd_embed_ebpf(int argc, char **argv);
int cmd_extract_ebpf(int argc, char **argv);
int cmd_remove_ebpf(int argc, char **argv);

#endif
