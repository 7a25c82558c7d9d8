/* inode.c - inode numbers of segments and vectors (the numbering is in
 * rvffs.h; which kind a number is: node.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rvffs.h"

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
