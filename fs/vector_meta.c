/* vector_meta.c - a vector's metadata fields as xattrs of vectors/ID
 * (user.rvf.meta.NAME); setting or removing one writes the vector again
 * with its fields. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node.h"

#define META_PREFIX "user.rvf.meta."

static int value_text(const rvf_value *v, char **out, size_t *len)
{
	switch (v->type) {
	case RVF_VALUE_STRING:
	case RVF_VALUE_BYTES:
		*out = malloc(v->u.str.len ? v->u.str.len : 1);
		if (!*out)
			return -ENOMEM;
		memcpy(*out, v->u.str.ptr, v->u.str.len);
		*len = v->u.str.len;
		return 0;
	case RVF_VALUE_I64:
		*len = (size_t)asprintf(out, "%lld", (long long)v->u.i64);
		break;
	case RVF_VALUE_U64:
		*len = (size_t)asprintf(out, "%llu", (unsigned long long)v->u.u64);
		break;
	case RVF_VALUE_F64:
		*len = (size_t)asprintf(out, "%.17g", v->u.f64);
		break;
	case RVF_VALUE_BOOL:
		*len = (size_t)asprintf(out, "%s", v->u.b ? "true" : "false");
		break;
	}
	return *out ? 0 : -ENOMEM;
}

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
		char *t = NULL;
		size_t len = 0;
		if (value_text(&f[k].value, &t, &len))
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

/* A new value is text; a field that already holds a number keeps its
 * type when the text parses as one. */
static rvf_value typed_value(rvf_value old, const char *value, size_t size)
{
	rvf_value val = { .type = RVF_VALUE_STRING, .u.str = { value, size } };
	rvf_value t = old;
	char buf[64];
	char *end;
	if (t.type == RVF_VALUE_STRING || t.type == RVF_VALUE_BYTES ||
	    size >= sizeof(buf))
		return val;
	memcpy(buf, value, size);
	buf[size] = '\0';
	errno = 0;
	if (t.type == RVF_VALUE_I64) {
		t.u.i64 = strtoll(buf, &end, 10);
	} else if (t.type == RVF_VALUE_U64) {
		t.u.u64 = strtoull(buf, &end, 10);
	} else if (t.type == RVF_VALUE_F64) {
		t.u.f64 = strtod(buf, &end);
	} else {
		t.u.b = !strcmp(buf, "true");
		end = !strcmp(buf, "true") || !strcmp(buf, "false") ? buf + size : buf;
	}
	return *end == '\0' && !errno && size ? t : val;
}

/* Sets (or removes) one metadata field: the vector is written again with
 * its fields. */
static int set_meta(rvffs *fs, rvf_view *v, uint64_t ino, const char *field,
		    const char *value, size_t size, bool remove)
{
	uint64_t id;
	long i = vec_id_of(fs, ino, &id) ? rvf_view_find(v, id) : -1;
	if (i < 0)
		return -ENOENT;
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
	if (remove && !had)
		rc = -ENODATA;
	for (size_t j = 0; !remove && j < k && !set; j++)
		if (!strcmp(f[j].name, field)) {
			f[j].value = typed_value(f[j].value, value, size);
			set = true;
		}
	if (!remove && !set) {
		f[k].name = field;
		f[k].value = (rvf_value){ .type = RVF_VALUE_STRING,
					  .u.str = { value, size } };
		k++;
	}
	if (!rc) {
		size_t start[2] = { 0, k };
		rvf_error err;
		rvf_view_vector_at(v, (size_t)i, x);
		if (rvf_store_ingest(fs->store, 1, &id, x, f, start, NULL, &err) != RVF_OK)
			rc = -fs_rvf_errno(fs, "metadata", &err);
	}
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
