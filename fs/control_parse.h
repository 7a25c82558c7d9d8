/* control_parse.h - the `control` command language, parsed without FUSE
 * or a store (so a fuzzer can drive it; tests/fuzz/fuzz_control.c).
 *
 *   compact [force] | freeze | remove-kernel | remove-ebpf
 *   delete ID...                     (ids space or comma separated)
 *   delete-filter JSON               (the rest of the line)
 *   derive CHILD_PATH [dim=N] [metric=M]
 *   branch CHILD_PATH
 *   embed-kernel IMAGE_PATH [arch=N] [type=N] [flags=N] [api_port=N] [compress] [cmdline=...]
 *   embed-ebpf PROG_PATH [btf=PATH] [prog_type=N] [attach_type=N] [max_dim=N]
 *   sign KEY_PATH
 *
 * Arguments are separated by blanks; "..." quotes one (with \" and \\).
 * An unquoted cmdline= takes the rest of the line.  Paths must be
 * absolute (the daemon's working directory means nothing to the caller). */
#ifndef RVFFS_CONTROL_PARSE_H
#define RVFFS_CONTROL_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "rvf.h"

typedef enum control_verb {
	CTL_BLANK,          /* an empty line: nothing to do */
	CTL_COMPACT,
	CTL_FREEZE,
	CTL_REMOVE_KERNEL,
	CTL_REMOVE_EBPF,
	CTL_REBUILD_REFCOUNTS,
	CTL_DELETE,
	CTL_DELETE_FILTER,
	CTL_DERIVE,
	CTL_BRANCH,
	CTL_EMBED_KERNEL,
	CTL_EMBED_EBPF,
	CTL_SIGN,
} control_verb;

typedef struct control_cmd {
	control_verb verb;
	const char *name;           /* the command word, for messages */
	const char *path;           /* child / image / program / key path */
	const char *btf_path;       /* embed-ebpf btf=, or NULL */
	const char *filter;         /* delete-filter: the JSON text */
	rvf_child_options child;    /* derive */
	rvf_kernel_spec kernel;     /* embed-kernel (cmdline points into buf) */
	rvf_ebpf_spec ebpf;         /* embed-ebpf */
	bool force;                 /* compact force: even with branch children */
	uint64_t *ids;              /* delete */
	size_t nids;
	char *buf;                  /* storage for the strings above */
	char error[200];            /* why the line was refused */
} control_cmd;

/* Parses one command line (no newline).  Returns 0, or -EINVAL / -E2BIG /
 * -ENOMEM with the reason in c->error.  control_cmd_free() either way. */
int control_parse(const char *line, control_cmd *c);
void control_cmd_free(control_cmd *c);

#endif
