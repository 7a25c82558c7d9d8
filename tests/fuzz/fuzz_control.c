/* fuzz_control.c - libFuzzer target: the `control` command language
 * (fs/control_parse.c, no FUSE, no store).
 *
 * The input is one command line (NUL bytes end it early, as the daemon
 * refuses them before parsing).  Whatever it is, control_parse returns 0
 * or a negative errno with a non-empty reason; on success the command's
 * fields obey the promises control.c relies on: a path where the command
 * needs one, and it is absolute; ids only for delete (at least one); a
 * filter text only for delete-filter; options within their ranges. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <string.h>

#include "control_parse.h"
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

static void check_parsed(const control_cmd *c)
{
	switch (c->verb) {
	case CTL_DERIVE:
	case CTL_BRANCH:
	case CTL_EMBED_KERNEL:
	case CTL_EMBED_EBPF:
	case CTL_SIGN:
		FUZZ_CHECK(c->path && c->path[0] == '/');
		fuzz_touch(c->path, strlen(c->path));
		break;
	default:
		FUZZ_CHECK(!c->path);
	}
	FUZZ_CHECK(!c->btf_path || (c->verb == CTL_EMBED_EBPF && c->btf_path[0] == '/'));
	FUZZ_CHECK((c->verb == CTL_DELETE) == (c->nids > 0));
	FUZZ_CHECK((c->verb == CTL_DELETE_FILTER) == (c->filter != NULL));
	if (c->filter)
		fuzz_touch(c->filter, strlen(c->filter));
	if (c->verb == CTL_DERIVE) {
		FUZZ_CHECK(c->child.dimension <= 65535);
		FUZZ_CHECK(c->child.metric >= -1 && c->child.metric <= 2);
	}
	if (c->kernel.cmdline)
		fuzz_touch(c->kernel.cmdline, strlen(c->kernel.cmdline));
	if (c->nids)
		fuzz_touch(c->ids, c->nids * sizeof(uint64_t));
	FUZZ_CHECK(c->verb == CTL_BLANK || c->name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line = strndup((const char *)data, size);
	if (!line)
		return 0;
	control_cmd c;
	int rc = control_parse(line, &c);
	if (rc == 0) {
		check_parsed(&c);
	} else {
		FUZZ_CHECK(rc == -EINVAL || rc == -E2BIG || rc == -ENOMEM);
		FUZZ_CHECK(c.error[0] != '\0');
	}
	control_cmd_free(&c);
	free(line);
	return 0;
}
