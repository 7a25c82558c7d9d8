/* pending_meta.c - user.rvf.meta.* xattrs set on a vector file before it is
 * a vector: rsync -X sets them on its temporary before the rename, cp -a on
 * the new file before its close.  They wait in a list (the text form, checked
 * when set) and are committed with the vector. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "node.h"

#define PENDING_META_MAX 4096 /* fields waiting on one file */

staged_xattr *pending_meta_find(staged_xattr *x, size_t n, const char *field)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(x[i].name, field))
			return &x[i];
	return NULL;
}

int pending_meta_check(rvffs *fs, const char *field, const char *value, size_t len)
{
	rvf_value val;
	char *owned = NULL;
	rvf_error err;
	if (rvf_value_parse(value, len, 0, &val, &owned, &err) != RVF_OK) {
		fs_error(fs, "user.rvf.meta.%s: %s; nothing changed", field, err.message);
		return -EINVAL;
	}
	free(owned);
	return 0;
}

int pending_meta_set(staged_xattr **x, size_t *n, const char *field,
		     const char *value, size_t len)
{
	char *nv = malloc(len ? len : 1);
	if (!nv)
		return -ENOMEM;
	memcpy(nv, value, len);
	staged_xattr *old = pending_meta_find(*x, *n, field);
	if (old) {
		free(old->value);
		old->value = nv;
		old->len = len;
		return 0;
	}
	if (*n >= PENDING_META_MAX) {
		free(nv);
		return -ENOSPC;
	}
	staged_xattr *g = realloc(*x, (*n + 1) * sizeof(*g));
	char *nn = strdup(field);
	if (g)
		*x = g;
	if (!g || !nn) {
		free(nn);
		free(nv);
		return -ENOMEM;
	}
	(*x)[(*n)++] = (staged_xattr){ nn, nv, len };
	return 0;
}

int pending_meta_remove(staged_xattr *x, size_t *n, const char *field)
{
	staged_xattr *old = pending_meta_find(x, *n, field);
	if (!old)
		return -ENODATA;
	free(old->name);
	free(old->value);
	*old = x[--*n];
	return 0;
}
