/* vector_meta.c - a vector's metadata fields as xattrs of vectors/ID
 * (user.rvf.meta.NAME); setting or removing one writes the vector again
 * with its fields.  Values are in librvf's text form (rvf_value_text):
 * 17, 2.5, true, red, and "17" for the string 17, so a value read and
 * written back (getfattr -d / setfattr --restore, cp -a, rsync -X) keeps
 * its type. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node.h"

#define META_PREFIX "user.rvf.meta."

void vector_getxattr(fuse_req_t req, rvffs *fs, rvf_view *v, uint64_t ino,
		     const char *name, size_t size)
{
	uint64_t id;
	const rvf_meta_field *f;
	size_t n = vec_id_of(fs, ino, &id) ? rvf_view_metadata(v, id, &f) : 0;
	if (strncmp(name, META_PREFIX, strlen(META_PREFIX)))
		n = 0;
	for (size_t k = 0; k < n; k++) {
		if (strcmp(f[k].name, name + strlen(META_PREFIX)))
			continue;
		size_t len = 0;
		char *t = rvf_value_text(&f[k].value, &len);
		if (!t)
			fuse_reply_err(req, ENOMEM);
		else
			xattr_reply(req, t, len, size);
		free(t);
		return;
	}
	fuse_reply_err(req, ENODATA);
}

void vector_listxattr(rvffs *fs, rvf_view *v, uint64_t ino, FILE *out)
{
	uint64_t id;
	const rvf_meta_field *m;
	size_t n = vec_id_of(fs, ino, &id) ? rvf_view_metadata(v, id, &m) : 0;
	for (size_t i = 0; i < n; i++)
		fprintf(out, META_PREFIX "%s%c", m[i].name, 0);
}

/* Sets (or removes) one metadata field: the vector is written again with
 * its fields. */
static int set_meta(rvffs *fs, rvf_view *v, uint64_t ino, const char *field,
		    const char *value, size_t size, bool remove)
{
	uint64_t id;
	if (!vec_id_of(fs, ino, &id))
		return -ENOENT;
	long i = rvf_view_find(v, id);
	if (i < 0) {
		/* cp -a: a new vector's xattrs come before the close that
		 * commits it; they wait on its writer */
		int rc = remove ? 0 : pending_meta_check(fs, field, value, size);
		return rc ? rc : writer_meta(fs, ino, field, remove ? NULL : value, size);
	}
	const rvf_meta_field *old;
	size_t n = rvf_view_metadata(v, id, &old);
	rvf_meta_field *f = calloc(n + 1, sizeof(*f));
	float *x = malloc(4 * (size_t)rvf_view_info(v)->dimension);
	if (!f || !x) {
		free(f);
		free(x);
		return -ENOMEM;
	}
	size_t k = 0;
	bool had = false, set = false;
	for (size_t j = 0; j < n; j++) {
		if (!strcmp(old[j].name, field)) {
			had = true;
			if (remove)
				continue;
		}
		f[k++] = old[j];
	}
	int rc = 0;
	char *owned = NULL;
	rvf_value val = { 0 };
	rvf_value_type want = 0;
	if (remove && !had)
		rc = -ENODATA;
	if (!remove) {
		/* The text says the type; a field the store already has keeps
		 * its type (a bare 17 into a string field is "17"). */
		rvf_error err;
		rvf_view_meta_type(v, field, &want);
		if (rvf_value_parse(value, size, want, &val, &owned, &err) != RVF_OK) {
			fs_error(fs, "vectors/%llu: user.rvf.meta.%s: %s; nothing changed",
				 (unsigned long long)id, field, err.message);
			rc = -EINVAL;
		}
	}
	for (size_t j = 0; !rc && !remove && j < k && !set; j++)
		if (!strcmp(f[j].name, field)) {
			f[j].value = val;
			set = true;
		}
	if (!rc && !remove && !set) {
		f[k].name = field;
		f[k].value = val;
		k++;
	}
	if (!rc) {
		size_t start[2] = { 0, k };
		rvf_error err;
		rvf_ingest *t = NULL;
		rvf_view_vector_at(v, (size_t)i, x);
		/* The last field removed: the record is cleared (a row without
		 * fields would leave it alone). */
		rvf_code c = rvf_ingest_begin(fs->store, &t, &err);
		if (c == RVF_OK && k == 0)
			c = rvf_ingest_clear_metadata(t, 1, &id, &err);
		if (c == RVF_OK)
			c = rvf_ingest_add(t, 1, &id, x, f, start, &err);
		if (c == RVF_OK)
			c = rvf_ingest_commit(t, NULL, &err);
		else if (t)
			rvf_ingest_abort(t);
		if (c != RVF_OK)
			rc = -fs_rvf_errno(fs, "metadata", &err);
	}
	free(owned);
	free(f);
	free(x);
	return rc;
}

int vector_setxattr(rvffs *fs, rvf_view *v, uint64_t ino, const char *name,
		    const char *value, size_t size)
{
	if (strncmp(name, META_PREFIX, strlen(META_PREFIX)) || !name[strlen(META_PREFIX)])
		return -ENOTSUP;
	return set_meta(fs, v, ino, name + strlen(META_PREFIX), value, size, false);
}

int vector_removexattr(rvffs *fs, rvf_view *v, uint64_t ino, const char *name)
{
	if (strncmp(name, META_PREFIX, strlen(META_PREFIX)))
		return -ENOTSUP;
	return set_meta(fs, v, ino, name + strlen(META_PREFIX), NULL, 0, true);
}
