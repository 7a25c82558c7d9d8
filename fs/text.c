/* text.c - the generated files: status, manifest, lineage, witness and
 * the text of one vector.  Each is built whole from one view. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rvffs.h"

static void hex(FILE *f, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%02x", p[i]);
}

/* Closes the memstream (which sets *buf) and returns its text. */
static char *finish(FILE *f, char **buf, size_t *len)
{
	fclose(f);
	*len = *buf ? strlen(*buf) : 0;
	return *buf;
}

/* file_id, parent_id, [parent_hash,] lineage_depth lines. */
static void put_identity(FILE *f, const rvf_identity *id, bool with_hash)
{
	fputs("file_id: ", f);
	hex(f, id->file_id, 16);
	fputs("\nparent_id: ", f);
	hex(f, id->parent_id, 16);
	if (with_hash) {
		fputs("\nparent_hash: ", f);
		hex(f, id->parent_hash, 32);
	}
	fprintf(f, "\nlineage_depth: %u\n", id->lineage_depth);
}

char *text_status(rvffs *fs, rvf_view *v, size_t *len)
{
	char *buf = NULL;
	size_t sz = 0;
	FILE *f = open_memstream(&buf, &sz);
	if (!f)
		return NULL;
	const rvf_info *i = rvf_view_info(v);
	fprintf(f, "dimension: %u\n", i->dimension);
	fprintf(f, "metric: %s\n", rvf_metric_name(i->metric));
	fprintf(f, "vectors: %llu\n", (unsigned long long)i->visible);
	fprintf(f, "deleted: %llu\n", (unsigned long long)i->deleted);
	fprintf(f, "epoch: %u\n", i->epoch);
	fprintf(f, "segments: %zu\n", rvf_view_segment_count(v));
	fprintf(f, "file_size: %llu\n", (unsigned long long)i->file_size);
	fprintf(f, "generation: %llu\n", (unsigned long long)i->generation);
	fprintf(f, "dead_bytes: %llu\n", (unsigned long long)i->dead_bytes);
	fprintf(f, "durable: %s\n", i->pending ? "no" : "yes");
	put_identity(f, &i->identity, false);
	fprintf(f, "read_only: %s\n",
		fs->read_only || rvf_store_read_only(fs->store) ? "true" : "false");
	fprintf(f, "pid: %ld\n", (long)getpid());
	fprintf(f, "branch_children: %zu\n", fs_children_count(fs));
	if (i->is_branch)
		fprintf(f, "parent_as_of: %llu\nparent_size: %llu\n",
			(unsigned long long)i->parent_as_of,
			(unsigned long long)i->parent_size);
	if (fflush(f) == 0) /* buf and sz now hold the text so far */
		fprintf(f, "heap_bytes: %llu\n", fs_heap_bytes_shown(fs, buf, sz));
	return finish(f, &buf, len);
}

char *text_manifest(rvf_view *v, size_t *len)
{
	char *buf = NULL;
	size_t sz = 0;
	FILE *f = open_memstream(&buf, &sz);
	if (!f)
		return NULL;
	const rvf_info *i = rvf_view_info(v);
	fprintf(f, "offset: %llu\nepoch: %u\ndimension: %u\nmetric: %s (byte %u)\n"
		   "profile: %u\ntotal_vectors: %llu\ndirectory: %zu entries\n",
		(unsigned long long)i->manifest_offset, i->epoch, i->dimension,
		rvf_metric_name(i->metric), i->metric_byte, i->profile,
		(unsigned long long)i->manifest_total, rvf_view_directory_count(v));
	fputs("# position id type offset length\n", f);
	for (size_t k = 0; k < rvf_view_directory_count(v); k++) {
		const rvf_segment *s = rvf_view_directory(v, k);
		const char *n = rvf_segment_type_name(s->type);
		fprintf(f, "entry: %zu %llu ", k + 1, (unsigned long long)s->id);
		if (n)
			fputs(n, f);
		else
			fprintf(f, "type-%02x", s->type);
		fprintf(f, " %llu %llu\n", (unsigned long long)s->offset,
			(unsigned long long)s->payload_length);
	}
	fprintf(f, "deleted: %zu\n", rvf_view_deleted_count(v));
	fprintf(f, "file_identity: %s\n", i->has_identity ? "present" : "absent");
	put_identity(f, &i->identity, true);
	return finish(f, &buf, len);
}

char *text_lineage(rvf_view *v, size_t *len)
{
	char *buf = NULL;
	size_t sz = 0;
	FILE *f = open_memstream(&buf, &sz);
	if (!f)
		return NULL;
	const rvf_info *i = rvf_view_info(v);
	put_identity(f, &i->identity, true);
	fprintf(f, "kind: %s\n", i->is_branch ? "branch" :
		i->identity.lineage_depth ? "derived" : "root");
	if (i->is_branch) {
		fprintf(f, "parent_path: %s\n", i->parent_path);
		fprintf(f, "parent_resolved: %s\n", i->parent_resolved);
		fprintf(f, "inherited_vectors: %llu\n",
			(unsigned long long)i->inherited);
		fprintf(f, "frozen: %s\n", i->frozen ? "true" : "false");
		/* less than parent_size: the parent changed since the branch;
		 * the child reads it as it was (its first parent_as_of bytes) */
		fprintf(f, "parent_as_of: %llu\nparent_size: %llu\n",
			(unsigned long long)i->parent_as_of,
			(unsigned long long)i->parent_size);
	}
	return finish(f, &buf, len);
}

char *text_witness(rvf_view *v, size_t *len)
{
	char *buf = NULL;
	size_t sz = 0;
	FILE *f = open_memstream(&buf, &sz);
	if (!f)
		return NULL;
	fputs("# type time action link\n", f);
	for (size_t k = 0; k < rvf_view_witness_count(v); k++) {
		const rvf_witness *w = rvf_view_witness(v, k);
		char stamp[RVF_WITNESS_TIME_SIZE];
		rvf_witness_time(w, true, stamp);
		fprintf(f, "%s %s %s %s\n", rvf_witness_kind(w->type), stamp, w->action,
			rvf_witness_link(w));
	}
	return finish(f, &buf, len);
}

/* Shortest %g form that reads back as the same float32. */
static void put_float(FILE *f, float x)
{
	char b[RVF_FLOAT_TEXT_MAX];
	rvf_format_float(x, b);
	fputs(b, f);
}

char *text_vector(rvf_view *v, size_t index, size_t *len)
{
	uint32_t dim = rvf_view_info(v)->dimension;
	float *x = malloc(4 * (size_t)dim);
	char *buf = NULL;
	size_t sz = 0;
	FILE *f = x ? open_memstream(&buf, &sz) : NULL;
	if (!f) {
		free(x);
		return NULL;
	}
	rvf_view_vector_at(v, index, x);
	for (uint32_t d = 0; d < dim; d++) {
		if (d)
			fputc(' ', f);
		put_float(f, x[d]);
	}
	fputc('\n', f);
	free(x);
	return finish(f, &buf, len);
}

/* Every `ls -l vectors/` and every getattr of a vector needs the length of
 * its text, so lengths are kept for the newest view seen (4 bytes a
 * vector, 0 = not known yet) and computed once per snapshot.  Under
 * fs->mu: true when fs->sizes is v's (made now if v is newer). */
static bool sizes_of(rvffs *fs, rvf_view *v, rvf_view **old)
{
	if (fs->sizes_view != v && (!fs->sizes_view ||
	    rvf_view_info(v)->epoch > rvf_view_info(fs->sizes_view)->epoch)) {
		uint32_t *sizes = calloc(rvf_view_info(v)->visible + 1, sizeof(uint32_t));
		if (sizes) {
			*old = fs->sizes_view;
			free(fs->sizes);
			fs->sizes = sizes;
			fs->sizes_view = rvf_view_ref(v);
		}
	}
	return fs->sizes_view == v;
}

size_t text_vector_size(rvffs *fs, rvf_view *v, size_t index)
{
	uint32_t len = 0;
	pthread_mutex_lock(&fs->mu);
	if (fs->sizes_view == v)
		len = fs->sizes[index];
	pthread_mutex_unlock(&fs->mu);
	if (len)
		return len;
	rvf_view_text_lengths(v, index, 1, &len);
	rvf_view *old = NULL;
	pthread_mutex_lock(&fs->mu);
	if (sizes_of(fs, v, &old))
		fs->sizes[index] = len;
	pthread_mutex_unlock(&fs->mu);
	if (old)
		rvf_view_release(old);
	return len;
}

void text_vector_sizes(rvffs *fs, rvf_view *v, size_t first, size_t n)
{
	size_t visible = rvf_view_info(v)->visible;
	if (first >= visible)
		return;
	if (n > visible - first)
		n = visible - first;
	uint32_t *lens = malloc(n * sizeof(uint32_t));
	if (!lens)
		return; /* sized one by one */
	rvf_view *old = NULL;
	pthread_mutex_lock(&fs->mu);
	bool kept = sizes_of(fs, v, &old);
	if (kept)
		memcpy(lens, fs->sizes + first, n * sizeof(uint32_t));
	pthread_mutex_unlock(&fs->mu);
	if (old)
		rvf_view_release(old);
	if (kept) {
		rvf_view_text_lengths(v, first, n, lens);
		pthread_mutex_lock(&fs->mu);
		if (fs->sizes_view == v)
			memcpy(fs->sizes + first, lens, n * sizeof(uint32_t));
		pthread_mutex_unlock(&fs->mu);
	}
	free(lens);
}

void text_sizes_free(rvffs *fs)
{
	free(fs->sizes);
	fs->sizes = NULL;
	if (fs->sizes_view)
		rvf_view_release(fs->sizes_view);
	fs->sizes_view = NULL;
}
