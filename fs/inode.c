/* inode.c - inode numbers and attributes of every node in the tree. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rvffs.h"

#define BLKSIZE (1u << 20) /* tools read in large blocks */

node_kind fs_node_kind(uint64_t ino)
{
	if (ino >= INO_VEC_BASE)
		return NODE_VECTOR;
	if (ino >= INO_SEG_BASE)
		return NODE_SEGMENT;
	if (ino >= INO_BIGID_BASE)
		return NODE_VECTOR;
	if (ino >= INO_DYN_BASE)
		return NODE_STAGED; /* or a slot: callers look both up */
	if (bundle_node(ino))
		return NODE_BUNDLE;
	if (ino >= INO_ROOT && ino < INO_FIXED_END)
		return NODE_FIXED;
	return NODE_NONE;
}

uint64_t seg_ino(rvffs *fs, uint64_t offset)
{
	pthread_mutex_lock(&fs->mu);
	uint64_t gen = fs->seg_gen & 0xFFFFF;
	pthread_mutex_unlock(&fs->mu);
	return INO_SEG_BASE | gen << SEG_OFFSET_BITS |
	       (offset & ((1ull << SEG_OFFSET_BITS) - 1));
}

/* Ids with the top bit set get inode numbers from a table: bigids[i] is
 * the id of inode INO_BIGID_BASE + i, and an open-addressing hash (slots
 * hold i + 1, 0 is empty, at most half full) finds i from the id, so a
 * listing of many such ids stays linear (it was a scan per id under the
 * global lock). */
static size_t big_slot(uint64_t id, size_t mask)
{
	id ^= id >> 30; /* splitmix64's finalizer: ids may be sequential */
	id *= 0xbf58476d1ce4e5b9ull;
	id ^= id >> 27;
	id *= 0x94d049bb133111ebull;
	id ^= id >> 31;
	return (size_t)id & mask;
}

/* Index of id in fs->bigids, or nbigids when unknown (holds fs->mu). */
static size_t big_find(rvffs *fs, uint64_t id)
{
	if (!fs->bighash_cap)
		return fs->nbigids;
	size_t mask = fs->bighash_cap - 1;
	for (size_t s = big_slot(id, mask);; s = (s + 1) & mask) {
		size_t e = fs->bighash[s];
		if (!e)
			return fs->nbigids;
		if (fs->bigids[e - 1] == id)
			return e - 1;
	}
}

/* Adds id as index nbigids (holds fs->mu); false when out of memory. */
static bool big_add(rvffs *fs, uint64_t id)
{
	size_t n = fs->nbigids;
	if (n == fs->bigcap) {
		size_t cap = n ? 2 * n : 64;
		uint64_t *a = realloc(fs->bigids, cap * sizeof(uint64_t));
		if (!a)
			return false;
		fs->bigids = a;
		fs->bigcap = cap;
	}
	if (2 * (n + 1) > fs->bighash_cap) {
		size_t cap = fs->bighash_cap ? 2 * fs->bighash_cap : 128;
		size_t *h = calloc(cap, sizeof(size_t));
		if (!h)
			return false;
		for (size_t i = 0; i < n; i++) {
			size_t s = big_slot(fs->bigids[i], cap - 1);
			while (h[s])
				s = (s + 1) & (cap - 1);
			h[s] = i + 1;
		}
		free(fs->bighash);
		fs->bighash = h;
		fs->bighash_cap = cap;
	}
	size_t s = big_slot(id, fs->bighash_cap - 1);
	while (fs->bighash[s])
		s = (s + 1) & (fs->bighash_cap - 1);
	fs->bighash[s] = n + 1;
	fs->bigids[n] = id;
	fs->nbigids = n + 1;
	return true;
}

uint64_t vec_ino(rvffs *fs, uint64_t id)
{
	if (id < INO_VEC_BASE)
		return INO_VEC_BASE | id;
	pthread_mutex_lock(&fs->mu);
	size_t i = big_find(fs, id);
	if (i == fs->nbigids && !big_add(fs, id))
		i = SIZE_MAX;
	pthread_mutex_unlock(&fs->mu);
	/* Out of memory: inode 0, which every handler answers ENOENT. */
	return i == SIZE_MAX ? 0 : INO_BIGID_BASE + i;
}

bool vec_id_of(rvffs *fs, uint64_t ino, uint64_t *id)
{
	if (ino >= INO_VEC_BASE) {
		*id = ino & ~INO_VEC_BASE;
		return true;
	}
	bool ok = false;
	pthread_mutex_lock(&fs->mu);
	if (ino >= INO_BIGID_BASE && ino - INO_BIGID_BASE < fs->nbigids) {
		*id = fs->bigids[ino - INO_BIGID_BASE];
		ok = true;
	}
	pthread_mutex_unlock(&fs->mu);
	return ok;
}

/* The store's mtime as of view v.  Every getattr and lookup needs it, so
 * stat the store only when a commit changed the committed state. */
static struct timespec view_mtime(rvffs *fs, rvf_view *v)
{
	const rvf_info *i = rvf_view_info(v);
	pthread_mutex_lock(&fs->mu);
	bool fresh = fs->mtime_valid && fs->mtime_epoch == i->epoch &&
		     fs->mtime_size == i->file_size;
	struct timespec t = fs->mtime;
	pthread_mutex_unlock(&fs->mu);
	if (fresh)
		return t;
	struct stat st;
	t = stat(fs->store_path, &st) == 0 ? st.st_mtim : fs->mount_time;
	pthread_mutex_lock(&fs->mu);
	fs->mtime = t;
	fs->mtime_epoch = i->epoch;
	fs->mtime_size = i->file_size;
	fs->mtime_valid = true;
	pthread_mutex_unlock(&fs->mu);
	return t;
}

static void fill(rvffs *fs, struct stat *st, uint64_t ino, mode_t mode,
		 uint64_t size, struct timespec mtime)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	bool dir = S_ISDIR(mode);
	/* A read-only mount still answers queries: the query file, queries/
	 * and its slots stay writable; nothing else is. */
	bool query_side = ino == INO_QUERY || ino == INO_QUERIES ||
			  (ino >= INO_DYN_BASE && ino < INO_BIGID_BASE);
	if (fs->read_only && !query_side)
		mode &= ~(mode_t)0222;
	st->st_mode = mode;
	st->st_nlink = dir ? 2 : 1;
	st->st_uid = getuid();
	st->st_gid = getgid();
	st->st_size = (off_t)size;
	st->st_blksize = BLKSIZE;
	st->st_blocks = (blkcnt_t)((size + 511) / 512);
	if (dir)
		st->st_blocks = 1;
	st->st_mtim = st->st_ctim = st->st_atim = mtime;
}

static uint64_t text_size(char *(*gen)(rvf_view *, size_t *), rvf_view *v)
{
	size_t len = 0;
	free(gen(v, &len));
	return len;
}

static uint64_t kernel_size(rvf_view *v)
{
	rvf_kernel_info k;
	if (!rvf_view_kernel(v, &k))
		return 0;
	return k.image_length;
}

bool fs_stat(rvffs *fs, rvf_view *v, uint64_t ino, struct stat *st)
{
	struct timespec vt = view_mtime(fs, v);
	size_t len;
	switch (fs_node_kind(ino)) {
	case NODE_FIXED:
		switch (ino) {
		case INO_ROOT:
		case INO_SEGMENTS:
		case INO_VECTORS:
			fill(fs, st, ino, S_IFDIR | 0755, 0, vt);
			return true;
		case INO_INGEST:
		case INO_QUERIES:
			fill(fs, st, ino, S_IFDIR | 0755, 0, vt);
			return true;
		case INO_STATUS:
			free(text_status(fs, v, &len));
			fill(fs, st, ino, S_IFREG | 0444, len, vt);
			return true;
		case INO_MANIFEST:
			fill(fs, st, ino, S_IFREG | 0444, text_size(text_manifest, v), vt);
			return true;
		case INO_LINEAGE:
			fill(fs, st, ino, S_IFREG | 0444, text_size(text_lineage, v), vt);
			return true;
		case INO_WITNESS:
			fill(fs, st, ino, S_IFREG | 0444, text_size(text_witness, v), vt);
			return true;
		case INO_ERRORS:
			pthread_mutex_lock(&fs->mu);
			len = fs->errors_len;
			pthread_mutex_unlock(&fs->mu);
			fill(fs, st, ino, S_IFREG | 0444, len, fs->mount_time);
			return true;
		case INO_QUERY:
			fill(fs, st, ino, S_IFREG | 0666, 0, fs->mount_time);
			return true;
		case INO_CONTROL: /* commands in; reads empty (tar, rsync) */
			fill(fs, st, ino, S_IFREG | 0644, 0, fs->mount_time);
			return true;
		case INO_KERNEL: {
			rvf_kernel_info k;
			if (!rvf_view_kernel(v, &k))
				return false;
			fill(fs, st, ino, S_IFREG | 0644, kernel_size(v), vt);
			return true;
		}
		case INO_WASM:
		case INO_DASHBOARD: {
			mode_t mode;
			uint64_t size;
			if (!bundle_stat(v, ino, &mode, &size))
				return false;
			fill(fs, st, ino, mode, size, vt);
			return true;
		}
		case INO_EBPF: {
			rvf_ebpf_info e;
			if (!rvf_view_ebpf(v, &e))
				return false;
			fill(fs, st, ino, S_IFREG | 0644, e.program_size, vt);
			return true;
		}
		}
		return false;
	case NODE_SEGMENT: {
		long i = seg_find_ino(fs, v, ino);
		if (i < 0)
			return false;
		const rvf_segment *s = rvf_view_segment(v, (size_t)i);
		fill(fs, st, ino, S_IFREG | 0444,
		     RVF_SEGMENT_HEADER_SIZE + s->payload_length,
		     seg_mtime(v, (size_t)i));
		return true;
	}
	case NODE_BUNDLE: {
		mode_t mode;
		uint64_t size;
		if (!bundle_stat(v, ino, &mode, &size))
			return false;
		fill(fs, st, ino, mode, size, vt);
		return true;
	}
	case NODE_VECTOR: {
		uint64_t id;
		if (!vec_id_of(fs, ino, &id))
			return false;
		long i = rvf_view_find(v, id);
		if (i < 0)
			return false;
		fill(fs, st, ino, S_IFREG | 0644, text_vector_size(fs, v, (size_t)i), vt);
		return true;
	}
	case NODE_STAGED: {
		bool found = false;
		pthread_mutex_lock(&fs->mu);
		staged *s = staged_find_ino(fs, ino);
		if (s) {
			fill(fs, st, ino, S_IFREG | (s->mode & 07777), s->size, s->mtime);
			st->st_uid = s->uid;
			st->st_gid = s->gid;
			found = true;
		}
		slot *q = slot_find_ino(fs, ino);
		if (q) {
			/* A slot is its maker's: others may not read or
			 * rewrite its request or read its results. */
			found = true;
			if (ino == q->ino)
				fill(fs, st, ino, S_IFDIR | 0755, 0, q->mtime);
			else if (ino == q->ino + 1)
				fill(fs, st, ino, S_IFREG | 0600, q->request_len, q->mtime);
			else
				fill(fs, st, ino, S_IFREG | 0400, q->result_len, q->mtime);
			st->st_uid = q->uid;
			st->st_gid = q->gid;
		}
		pthread_mutex_unlock(&fs->mu);
		return found;
	}
	default:
		return false;
	}
}

static const struct {
	const char *name;
	uint64_t ino;
} root_names[] = {
	{ "status", INO_STATUS },     { "manifest", INO_MANIFEST },
	{ "lineage", INO_LINEAGE },   { "witness", INO_WITNESS },
	{ "errors", INO_ERRORS },     { "query", INO_QUERY },
	{ "kernel", INO_KERNEL },     { "ebpf", INO_EBPF },
	{ "segments", INO_SEGMENTS }, { "vectors", INO_VECTORS },
	{ "ingest", INO_INGEST },     { "queries", INO_QUERIES },
	{ "control", INO_CONTROL },
	{ "wasm", INO_WASM },         { "dashboard", INO_DASHBOARD },
};

size_t fs_root_count(void)
{
	return sizeof(root_names) / sizeof(root_names[0]);
}

const char *fs_root_name(size_t i, uint64_t *ino)
{
	*ino = root_names[i].ino;
	return root_names[i].name;
}

uint64_t fs_lookup_name(rvffs *fs, rvf_view *v, uint64_t parent,
			const char *name)
{
	uint64_t ino = 0, id;
	switch (parent) {
	case INO_ROOT:
		for (size_t i = 0; i < fs_root_count(); i++)
			if (!strcmp(name, root_names[i].name))
				ino = root_names[i].ino;
		break;
	case INO_SEGMENTS: {
		long i = seg_find(v, name);
		if (i >= 0)
			ino = seg_ino(fs, rvf_view_segment(v, (size_t)i)->offset);
		break;
	}
	case INO_VECTORS:
		if (name[0] == '.') { /* a temporary of rsync's */
			pthread_mutex_lock(&fs->mu);
			staged *s = staged_find_in(fs, INO_VECTORS, name);
			ino = s ? s->ino : 0;
			pthread_mutex_unlock(&fs->mu);
		} else if (rvf_parse_id(name, strlen(name), &id) &&
			   rvf_view_find(v, id) >= 0) {
			ino = vec_ino(fs, id);
		}
		break;
	case INO_INGEST: {
		pthread_mutex_lock(&fs->mu);
		staged *s = staged_find_name(fs, name);
		ino = s ? s->ino : 0;
		pthread_mutex_unlock(&fs->mu);
		break;
	}
	case INO_WASM:
	case INO_DASHBOARD:
		ino = bundle_lookup(v, parent, name);
		break;
	case INO_QUERIES: {
		pthread_mutex_lock(&fs->mu);
		slot *q = slot_find_name(fs, name);
		ino = q ? q->ino : 0;
		pthread_mutex_unlock(&fs->mu);
		break;
	}
	default: {
		pthread_mutex_lock(&fs->mu);
		slot *q = slot_find_ino(fs, parent);
		if (q && parent == q->ino) {
			if (!strcmp(name, "request"))
				ino = q->ino + 1;
			else if (!strcmp(name, "result"))
				ino = q->ino + 2;
		}
		pthread_mutex_unlock(&fs->mu);
	}
	}
	struct stat st;
	if (ino && !fs_stat(fs, v, ino, &st))
		ino = 0; /* e.g. kernel when the store has none */
	return ino;
}
