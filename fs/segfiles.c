/* segfiles.c - segments/: one read-only file per segment, named
 * NNNN-TYPE by rank in file-offset order, with the header as xattrs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rvffs.h"

const char *const seg_xattr_names[] = {
	"user.rvf.type", "user.rvf.id", "user.rvf.offset",
	"user.rvf.payload_length", "user.rvf.content_hash", "user.rvf.hash_ok",
	"user.rvf.content_hash_algo", "user.rvf.payload_format",
	NULL,
};

static void type_label(const rvf_segment *s, char out[24])
{
	if (s->gap) {
		snprintf(out, 24, "gap"); /* bytes that are no segment */
		return;
	}
	uint8_t t = s->type;
	const char *n = rvf_segment_type_name(t);
	if (n)
		snprintf(out, 24, "%s", n);
	else
		snprintf(out, 24, "type-%02x", t);
}

void seg_name(rvf_view *v, size_t i, char out[SEG_NAME_MAX])
{
	char t[24];
	type_label(rvf_view_segment(v, i), t);
	snprintf(out, SEG_NAME_MAX, "%04zu-%s", i + 1, t);
}

long seg_find(rvf_view *v, const char *name)
{
	char *end;
	unsigned long rank = strtoul(name, &end, 10);
	if (end == name || *end != '-' || rank == 0 ||
	    rank > rvf_view_segment_count(v))
		return -1;
	char want[SEG_NAME_MAX];
	seg_name(v, rank - 1, want);
	return strcmp(want, name) ? -1 : (long)(rank - 1);
}

long seg_find_ino(rvffs *fs, rvf_view *v, uint64_t ino)
{
	uint64_t off = ino & ((1ull << SEG_OFFSET_BITS) - 1);
	if (seg_ino(fs, off) != ino)
		return -1; /* from before a compaction */
	size_t lo = 0, hi = rvf_view_segment_count(v);
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (rvf_view_segment(v, mid)->offset < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < rvf_view_segment_count(v) && rvf_view_segment(v, lo)->offset == off)
		return (long)lo;
	return -1;
}

long seg_xattr(rvf_view *v, size_t i, const char *name, char *buf, size_t size)
{
	const rvf_segment *s = rvf_view_segment(v, i);
	char val[64];
	if (!strcmp(name, "user.rvf.type"))
		type_label(s, val);
	else if (!strcmp(name, "user.rvf.id"))
		snprintf(val, sizeof(val), "%llu", (unsigned long long)s->id);
	else if (!strcmp(name, "user.rvf.offset"))
		snprintf(val, sizeof(val), "%llu", (unsigned long long)s->offset);
	else if (!strcmp(name, "user.rvf.payload_length"))
		snprintf(val, sizeof(val), "%llu", (unsigned long long)s->payload_length);
	else if (!strcmp(name, "user.rvf.content_hash"))
		for (int b = 0; b < 16; b++)
			snprintf(val + 2 * b, 3, "%02x", s->content_hash[b]);
	else if (!strcmp(name, "user.rvf.hash_ok"))
		snprintf(val, sizeof(val), "%s", s->hash_ok ? "true" : "false");
	else if (!strcmp(name, "user.rvf.content_hash_algo"))
		snprintf(val, sizeof(val), "%s",
			 s->readable ? rvf_hash_algo_name((rvf_hash_algo)s->hash_algo) :
				       "unreadable");
	else if (!strcmp(name, "user.rvf.payload_format"))
		snprintf(val, sizeof(val), "%s",
			 rvf_segment_is_json(v, s) ? "json" : "binary");
	else
		return -ENODATA;
	size_t n = strlen(val);
	if (size == 0)
		return (long)n;
	if (size < n)
		return -ERANGE;
	memcpy(buf, val, n);
	return (long)n;
}

/* A segment never changes, so its time should not either: the time of
 * the first witness written at or after it (its commit), else the
 * newest witness before it, else the mount's. */
struct timespec seg_mtime(rvf_view *v, size_t i)
{
	uint64_t off = rvf_view_segment(v, i)->offset;
	const rvf_witness *best = NULL, *before = NULL;
	for (size_t k = 0; k < rvf_view_witness_count(v); k++) {
		const rvf_witness *w = rvf_view_witness(v, k);
		if (w->segment->offset >= off) {
			if (!best || w->segment->offset < best->segment->offset)
				best = w;
		} else if (!before || w->segment->offset > before->segment->offset) {
			before = w;
		}
	}
	if (!best)
		best = before;
	struct timespec t = { 0, 0 };
	if (best) {
		t.tv_sec = (time_t)(best->timestamp_ns / 1000000000ull);
		t.tv_nsec = (long)(best->timestamp_ns % 1000000000ull);
	} else {
		t.tv_sec = 1700000000; /* files without witnesses: a fixed time */
	}
	return t;
}
