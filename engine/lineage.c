/* lineage.c - derive (lineage-only child), branch (queryable copy-on-write
 * child with COW_MAP + MEMBERSHIP) and freeze. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bytes.h"
#include "error.h"
#include "hash.h"
#include "store.h"

/* The reference caps the membership bitmap at 64 MiB: ids below 2^29. */
#define MAX_MEMBERSHIP_BITS (1ull << 29)

unsigned char *cow_map_encode(const cow_state *c, size_t *len)
{
	size_t plen = strlen(c->parent_path);
	*len = 81 + plen + c->map_len;
	unsigned char *p = calloc(1, *len);
	if (!p)
		return NULL;
	st32(p, 0x5256434Du);
	st16(p + 4, 1);
	st32(p + 8, c->cluster_size);
	st32(p + 12, c->vectors_per_cluster);
	memcpy(p + 16, c->base_file_id, 16);
	memcpy(p + 32, c->base_file_hash, 32);
	st32(p + 0x40, c->bytes_per_vector);
	p[0x44] = c->frozen ? 1 : 0;
	st32(p + 0x45, c->snapshot_epoch);
	st32(p + 0x49, (uint32_t)plen);
	st32(p + 0x4D, c->map_len);
	memcpy(p + 81, c->parent_path, plen);
	if (c->map_len)
		memcpy(p + 81 + plen, c->map_bytes, c->map_len);
	return p;
}

unsigned char *membership_encode(const unsigned char *bitmap,
				 uint64_t capacity_bits, size_t *len)
{
	size_t fsize = (size_t)(8 * ((capacity_bits + 63) / 64));
	*len = 96 + fsize;
	unsigned char *p = calloc(1, *len);
	if (!p)
		return NULL;
	uint64_t members = 0;
	if (fsize)
		memcpy(p + 96, bitmap, fsize);
	for (size_t i = 0; i < fsize; i++)
		members += (uint64_t)__builtin_popcount(p[96 + i]);
	st32(p, 0x52564D42u);
	st16(p + 4, 1);
	st64(p + 8, capacity_bits);
	st64(p + 0x10, members);
	st64(p + 0x18, 96);
	st32(p + 0x20, (uint32_t)fsize);
	rvf_simple_hash256(p + 96, fsize, p + 0x28);
	return p;
}

/* H(last min(64 KiB, size) bytes) of the parent as it is now (§4.2). */
static void parent_hash(const rvf_view *v, uint8_t out[32])
{
	uint64_t size = v->info.file_size;
	uint64_t tail = size < 65536 ? size : 65536;
	rvf_simple_hash256(v->map->base + size - tail, (size_t)tail, out);
}

/* Creates the child file exclusively, locks it and writes MANIFEST#1. */
static rvf_code create_child(const char *path, const manifest *m,
			     rvf_store **out, rvf_error *err)
{
	rvf_store *s = store_alloc(path);
	if (!s)
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	rvf_code rc;
	s->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (s->fd < 0) {
		rc = errno == EEXIST ?
		     rvf_fail(err, RVF_E_EXISTS, "%s already exists", path) :
		     rvf_fail_io(err, errno, "cannot create %s", path);
		store_discard(s);
		return rc;
	}
	rc = lock_acquire(path, 0, &s->lock, err);
	if (rc == RVF_OK)
		rc = store_write_first_manifest(s, m, err);
	if (rc != RVF_OK) {
		unlink(path);
		store_discard(s);
		return rc;
	}
	*out = s;
	return RVF_OK;
}

static void child_manifest(const rvf_view *pv, manifest *m)
{
	memset(m, 0, sizeof(*m));
	m->dimension = (uint16_t)pv->info.dimension;
	m->metric = (uint8_t)pv->info.metric;
	m->profile = pv->info.profile;
	m->has_identity = true;
	do
		randombytes_buf(m->identity.file_id, 16);
	while (m->identity.file_id[0] == 0);
	memcpy(m->identity.parent_id, pv->info.identity.file_id, 16);
	parent_hash(pv, m->identity.parent_hash);
	m->identity.lineage_depth = pv->info.identity.lineage_depth + 1;
}

rvf_code rvf_store_derive(rvf_store *parent, const char *child_path,
			  const rvf_child_options *opt, rvf_store **child,
			  rvf_error *err)
{
	/* The child names the parent's file: it must hold what we see. */
	if (!rvf_store_read_only(parent) && rvf_store_sync(parent, NULL, err) != RVF_OK)
		return err ? err->code : RVF_E_IO;
	if (sodium_init() < 0)
		return rvf_fail(err, RVF_E_IO, "libsodium failed to initialise");
	rvf_view *pv = rvf_store_view(parent);
	manifest m;
	child_manifest(pv, &m);
	rvf_code rc = RVF_OK;
	if (opt && opt->dimension) {
		if (opt->dimension > 65535)
			rc = rvf_fail(err, RVF_E_INVALID_ARGUMENT,
				      "dimension %u is above 65535", opt->dimension);
		m.dimension = (uint16_t)opt->dimension;
	}
	if (opt && opt->metric >= 0) {
		if (opt->metric > 2)
			rc = rvf_fail(err, RVF_E_INVALID_ARGUMENT, "unknown metric %d",
				      opt->metric);
		m.metric = (uint8_t)opt->metric;
	}
	rvf_view_release(pv);
	if (rc != RVF_OK)
		return rc;
	return create_child(child_path, &m, child, err);
}

/* Splits an absolute canonical path into its components (in place). */
static size_t split_path(char *path, char **parts, size_t max)
{
	size_t n = 0;
	char *save = NULL;
	for (char *tok = strtok_r(path, "/", &save); tok && n < max;
	     tok = strtok_r(NULL, "/", &save))
		parts[n++] = tok;
	return n;
}

/* The parent's path relative to the child's directory, as the reference
 * stores it (both canonicalised first). */
static char *relative_parent_path(const char *parent, const char *child)
{
	char p[PATH_MAX], d[PATH_MAX];
	char *copy = strdup(child);
	if (!copy)
		return NULL;
	bool ok = realpath(parent, p) && realpath(dirname(copy), d);
	free(copy);
	if (!ok)
		return NULL;
	char *pp[PATH_MAX / 2], *dp[PATH_MAX / 2];
	size_t np = split_path(p, pp, PATH_MAX / 2);
	size_t nd = split_path(d, dp, PATH_MAX / 2);
	size_t common = 0;
	while (common < np - 1 && common < nd && !strcmp(pp[common], dp[common]))
		common++;
	size_t len = 1;
	for (size_t i = common; i < nd; i++)
		len += 3;
	for (size_t i = common; i < np; i++)
		len += strlen(pp[i]) + 1;
	char *out = malloc(len);
	if (!out)
		return NULL;
	out[0] = '\0';
	for (size_t i = common; i < nd; i++)
		strcat(out, "../");
	for (size_t i = common; i < np; i++) {
		strcat(out, pp[i]);
		if (i + 1 < np)
			strcat(out, "/");
	}
	return out;
}

/* The parent's live own ids as a membership bitmap (*bits bits). */
static rvf_code live_membership(const rvf_view *pv, unsigned char **bitmap,
				uint64_t *bits, rvf_error *err)
{
	*bits = pv->own_has_max ? pv->own_max + 1 : 0;
	if (pv->own_has_max && pv->own_max >= MAX_MEMBERSHIP_BITS)
		return rvf_fail(err, RVF_E_MEMBERSHIP_INVALID,
				"cannot branch: parent id %llu is too large for a membership bitmap (ids must be below 2^29)",
				(unsigned long long)pv->own_max);
	size_t fsize = (size_t)(8 * ((*bits + 63) / 64));
	*bitmap = calloc(1, fsize ? fsize : 1);
	if (!*bitmap)
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	for (size_t i = 0; i < pv->nown; i++) {
		uint64_t id = pv->own[i].id;
		if (!view_is_deleted(pv, id))
			(*bitmap)[id / 8] |= (unsigned char)(1u << (id % 8));
	}
	return RVF_OK;
}

/* The child's COW map: every cluster refers to the parent, as the
 * reference writes it; cluster size a power of two of at least 4 KiB.
 * The map's bytes are cow->map_bytes (the caller frees them). */
static rvf_code parent_ref_cow_map(const rvf_view *pv, const manifest *m,
				   cow_state *cow, rvf_error *err)
{
	uint32_t dim = pv->info.dimension;
	cow->vectors_per_cluster = 4096 / (4 * dim) ? 4096 / (4 * dim) : 1;
	uint64_t cs = (uint64_t)cow->vectors_per_cluster * 4 * dim;
	if (cs < 4096)
		cs = 4096;
	uint64_t pow2 = 1;
	while (pow2 < cs)
		pow2 <<= 1;
	cow->cluster_size = (uint32_t)pow2;
	memcpy(cow->base_file_id, m->identity.parent_id, 16);
	memcpy(cow->base_file_hash, m->identity.parent_hash, 32);
	cow->bytes_per_vector = 4 * dim;
	uint64_t clusters = (pv->nown + cow->vectors_per_cluster - 1) /
			    cow->vectors_per_cluster;
	cow->map_len = (uint32_t)(5 + 9 * clusters);
	unsigned char *map_bytes = calloc(1, cow->map_len);
	if (!map_bytes)
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	st32(map_bytes + 1, (uint32_t)clusters);
	for (uint64_t i = 0; i < clusters; i++)
		map_bytes[5 + 9 * i] = 1; /* parent-ref, as the reference writes */
	cow->map_bytes = map_bytes;
	return RVF_OK;
}

/* The child's first commit: its COW map and membership (epoch stays 0). */
static rvf_code commit_branch_segments(rvf_store *s, const cow_state *cow,
				       const unsigned char *bitmap, uint64_t bits,
				       rvf_error *err)
{
	commit c;
	rvf_code rc = commit_begin(s, &c, err);
	if (rc != RVF_OK)
		return rc;
	size_t len;
	unsigned char *p = cow_map_encode(cow, &len);
	rc = p ? commit_append(&c, RVF_SEG_COW_MAP, p, len, err) :
	     rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	free(p);
	if (rc == RVF_OK) {
		p = membership_encode(bitmap, bits, &len);
		rc = p ? commit_append(&c, RVF_SEG_MEMBERSHIP, p, len, err) :
		     rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
		free(p);
	}
	if (rc != RVF_OK) {
		commit_abort(&c);
		return rc;
	}
	return commit_finish(&c, NULL, err);
}

rvf_code rvf_store_branch(rvf_store *parent, const char *child_path,
			  rvf_store **child, rvf_error *err)
{
	/* The child names the parent's file: it must hold what we see. */
	if (!rvf_store_read_only(parent) && rvf_store_sync(parent, NULL, err) != RVF_OK)
		return err ? err->code : RVF_E_IO;
	if (sodium_init() < 0)
		return rvf_fail(err, RVF_E_IO, "libsodium failed to initialise");
	rvf_view *pv = rvf_store_view(parent);
	unsigned char *bitmap = NULL;
	uint64_t bits = 0;
	cow_state cow = { 0 };
	manifest m;
	rvf_store *s = NULL;

	rvf_code rc = live_membership(pv, &bitmap, &bits, err);
	if (rc != RVF_OK)
		goto out;
	cow.parent_path = relative_parent_path(rvf_store_path(parent), child_path);
	if (!cow.parent_path) {
		rc = rvf_fail_io(err, errno, "cannot resolve %s relative to %s",
				 rvf_store_path(parent), child_path);
		goto out;
	}
	child_manifest(pv, &m);
	rc = parent_ref_cow_map(pv, &m, &cow, err);
	if (rc == RVF_OK)
		rc = create_child(child_path, &m, &s, err);
	if (rc != RVF_OK)
		goto out;
	rc = commit_branch_segments(s, &cow, bitmap, bits, err);
	if (rc != RVF_OK) {
		unlink(child_path);
		rvf_store_close(s);
		goto out;
	}
	*child = s;
out:
	free(bitmap);
	free((void *)cow.map_bytes);
	free(cow.parent_path);
	rvf_view_release(pv);
	return rc;
}

rvf_code rvf_store_freeze(rvf_store *s, rvf_commit_info *info, rvf_error *err)
{
	commit c;
	rvf_code rc = commit_begin(s, &c, err);
	if (rc != RVF_OK)
		return rc;
	/* Epoch unchanged; a branch child records frozen in its COW_MAP.
	 * Set frozen first so the published view says read-only. */
	c.freeze = c.base->is_branch;
	c.durable = true;
	s->frozen = true;
	rc = commit_finish(&c, info, err);
	if (rc != RVF_OK)
		s->frozen = false;
	return rc;
}
