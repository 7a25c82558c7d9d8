/* children.c - a mounted store with branch children beside it.
 *
 * Children read the parent as it was when they were made (librvf reads the
 * matching prefix of the parent file), so writes to the parent do not break
 * them for rvffs and rvfctl; the reference refuses them after any write,
 * and a compaction of the parent cuts them off for every reader.  So: the
 * first write through a mount with children logs a warning (log and
 * `errors`), automatic compaction holds off, `compact` through `control`
 * is refused without `force`, and `status` counts them.  Children are the
 * store files beside the store whose COW_MAP names it (rvf_branch_children). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rvffs.h"

/* "a.rvf b.rvf" (base names), malloc'd; NULL when there are none. */
static char *children_list(rvffs *fs, size_t *n)
{
	rvf_children ch;
	*n = 0;
	if (rvf_branch_children(fs->store_path, &ch, NULL) != RVF_OK || !ch.count)
		return NULL;
	size_t len = 1;
	for (size_t i = 0; i < ch.count; i++)
		len += strlen(ch.paths[i]) + 1;
	char *out = calloc(1, len);
	for (size_t i = 0; out && i < ch.count; i++) {
		const char *slash = strrchr(ch.paths[i], '/');
		if (i)
			strcat(out, " ");
		strcat(out, slash ? slash + 1 : ch.paths[i]);
	}
	*n = ch.count;
	rvf_children_free(&ch);
	return out;
}

size_t fs_children_count(rvffs *fs)
{
	size_t n;
	free(children_list(fs, &n));
	return n;
}

void fs_children_written(rvffs *fs)
{
	if (fs->read_only)
		return;
	size_t n;
	char *list = children_list(fs, &n);
	if (list)
		fs_error(fs, "warning: writing to %s, which has %zu branch child%s beside it (%s): rvffs and rvfctl keep reading the parent as it was when each child was made, but the reference (rvf-node) refuses a child once its parent changed, and compacting the parent cuts the children off (`rvfctl detach CHILD` makes one independent)",
			 fs->store_path, n, n == 1 ? "" : "ren", list);
	free(list);
}

int fs_children_block(rvffs *fs, const char *what)
{
	size_t n;
	char *list = children_list(fs, &n);
	if (!list)
		return 0;
	fs_error(fs, "%s: %s has %zu branch child%s beside it (%s): compacting it would cut %s off from the vectors %s inherit%s; detach %s first (unmount a child, then `rvfctl detach CHILD`)%s",
		 what, fs->store_path, n, n == 1 ? "" : "ren", list,
		 n == 1 ? "it" : "them", n == 1 ? "it" : "they",
		 n == 1 ? "s" : "", n == 1 ? "it" : "them",
		 strcmp(what, "control: compact") ? "" : ", or write `compact force`");
	free(list);
	return -EBUSY;
}
