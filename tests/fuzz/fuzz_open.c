/* fuzz_open.c - libFuzzer target: the RVF file reader.
 *
 * The input is a store file.  It goes to a memfd, is opened read-only
 * through /proc/self/fd/N, and on success everything a reader can reach is
 * walked: info, every visible id and vector, segments and their bytes,
 * deletions, witnesses, kernel (and its image), eBPF, metadata of each
 * visible id, hash/chain/signature verification and one k=3 search.
 * A branch child names its parent relative to /proc/self/fd, so it
 * normally fails with ParentNotFound: fine. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <math.h>
#include <string.h>

#include "fuzz_common.h"

/* Bounds per input, so a (valid) file with millions of rows does not make
 * one execution take seconds. */
#define MAX_ROWS_WALKED 65536u

static void walk_segment(const rvf_view *v, const rvf_segment *s)
{
	const rvf_info *info = rvf_view_info(v);
	const unsigned char *b = rvf_view_segment_bytes(v, s);
	if (s->gap) { /* raw bytes that are no segment: shown, never decoded */
		FUZZ_CHECK(b != NULL && !s->readable && !s->hash_ok);
		FUZZ_CHECK(s->offset + s->payload_length <= info->file_size);
		fuzz_touch(b, (size_t)s->payload_length);
		return;
	}
	if (!s->readable) {
		FUZZ_CHECK(b == NULL);
		FUZZ_CHECK(!s->hash_ok);
		return;
	}
	FUZZ_CHECK(b != NULL);
	FUZZ_CHECK(s->payload_length <= RVF_MAX_PAYLOAD);
	FUZZ_CHECK(s->offset + RVF_SEGMENT_HEADER_SIZE + s->payload_length <=
		   info->file_size);
	fuzz_touch(b, RVF_SEGMENT_HEADER_SIZE + (size_t)s->payload_length);
	fuzz_sink += s->type + s->id + s->timestamp_ns + s->flags;
	const char *name = rvf_segment_type_name(s->type);
	if (name)
		fuzz_touch(name, strlen(name));
}

static void walk_view(const rvf_view *v, unsigned depth)
{
	const rvf_info *info = rvf_view_info(v);
	FUZZ_CHECK(info != NULL);
	FUZZ_CHECK(info->dimension >= 1 && info->dimension <= 65535);
	fuzz_touch(info, sizeof(*info) - 2 * sizeof(char *));
	if (info->parent_path)
		fuzz_touch(info->parent_path, strlen(info->parent_path));
	if (info->parent_resolved)
		fuzz_touch(info->parent_resolved, strlen(info->parent_resolved));
	fuzz_touch(rvf_metric_name(info->metric), 1);

	/* Vectors, ascending by id. */
	uint32_t dim = info->dimension;
	float *vec = malloc(4 * (size_t)dim);
	FUZZ_CHECK(vec != NULL);
	uint64_t prev = 0;
	size_t walk = info->visible < MAX_ROWS_WALKED ? (size_t)info->visible :
							 MAX_ROWS_WALKED;
	for (size_t i = 0; i < walk; i++) {
		uint64_t id = rvf_view_id_at(v, i);
		FUZZ_CHECK(i == 0 || id > prev);
		prev = id;
		FUZZ_CHECK(rvf_view_find(v, id) == (long)i);
		rvf_view_vector_at(v, i, vec);
		fuzz_touch(vec, 4 * (size_t)dim);
		const rvf_meta_field *fields = NULL;
		size_t nf = rvf_view_metadata(v, id, &fields);
		fuzz_touch_fields(fields, nf);
	}
	free(vec);
	uint64_t max_id;
	if (rvf_view_max_id(v, &max_id)) {
		fuzz_sink += max_id;
		FUZZ_CHECK(info->visible == 0 || info->inherited ||
			   max_id >= rvf_view_id_at(v, (size_t)info->visible - 1));
	}

	/* Segments, by offset, and the directory. */
	size_t ns = rvf_view_segment_count(v);
	for (size_t i = 0; i < ns; i++) {
		const rvf_segment *s = rvf_view_segment(v, i);
		FUZZ_CHECK(s != NULL);
		FUZZ_CHECK(i == 0 || s->offset >= rvf_view_segment(v, i - 1)->offset);
		walk_segment(v, s);
	}
	size_t nd = rvf_view_directory_count(v);
	FUZZ_CHECK(nd == info->directory_len);
	for (size_t i = 0; i < nd; i++)
		walk_segment(v, rvf_view_directory(v, i));

	size_t ndel = rvf_view_deleted_count(v);
	for (size_t i = 0; i < ndel; i++) {
		uint64_t id = rvf_view_deleted_at(v, i);
		FUZZ_CHECK(i == 0 || id > rvf_view_deleted_at(v, i - 1));
	}

	size_t nw = rvf_view_witness_count(v);
	for (size_t i = 0; i < nw; i++) {
		const rvf_witness *w = rvf_view_witness(v, i);
		FUZZ_CHECK(w != NULL && w->action != NULL);
		fuzz_touch(w->action, strlen(w->action));
		fuzz_touch(w->prev_hash, 32);
		if (w->segment)
			walk_segment(v, w->segment);
	}

	rvf_kernel_info k;
	if (rvf_view_kernel(v, &k)) {
		fuzz_sink += k.image_size + k.cmdline_offset + k.stored_length;
		unsigned char *image = NULL;
		char *cmdline = NULL;
		size_t image_len = 0;
		rvf_error err;
		if (rvf_view_kernel_image(v, &image, &image_len, &cmdline, &err) ==
		    RVF_OK) {
			fuzz_touch(image, image_len);
			if (cmdline)
				fuzz_touch(cmdline, strlen(cmdline));
		} else {
			fuzz_touch(err.message, strlen(err.message));
		}
		free(image);
		free(cmdline);
	}

	rvf_ebpf_info e;
	if (rvf_view_ebpf(v, &e)) {
		if (e.bytecode) {
			const unsigned char *base =
				rvf_view_segment_bytes(v, e.segment);
			FUZZ_CHECK(base != NULL);
			size_t end = RVF_SEGMENT_HEADER_SIZE +
				     (size_t)e.segment->payload_length;
			FUZZ_CHECK(e.bytecode >= base &&
				   e.bytecode + e.program_size <= base + end);
			fuzz_touch(e.bytecode, (size_t)e.program_size);
			if (e.btf) {
				FUZZ_CHECK(e.btf >= base &&
					   e.btf + e.btf_size <= base + end);
				fuzz_touch(e.btf, e.btf_size);
			}
		}
	}

	rvf_error err;
	rvf_code rc = rvf_view_verify_hashes(v, &err);
	if (rc != RVF_OK)
		fuzz_touch(err.message, strlen(err.message));
	rvf_chain_report report;
	rc = rvf_view_verify_chains(v, &report, &err);
	fuzz_sink += rc + report.witnesses;
	rvf_signature_check *checks = NULL;
	size_t nchecks = 0;
	rc = rvf_view_verify_signatures(v, NULL, &checks, &nchecks, &err);
	for (size_t i = 0; i < nchecks; i++)
		fuzz_touch(checks[i].problem, strlen(checks[i].problem));
	free(checks);

	/* One exact search for the 3 nearest neighbours of the zero vector. */
	float *q = calloc(dim, 4);
	rvf_hit hits[3];
	size_t count = 0;
	rvf_search_options so = { .threads = 1 };
	FUZZ_CHECK(q != NULL);
	if (rvf_view_search(v, q, 1, 3, &so, hits, &count, &err) == RVF_OK) {
		FUZZ_CHECK(count <= 3 && count <= info->visible);
		for (size_t i = 0; i < count; i++) {
			FUZZ_CHECK(rvf_view_find(v, hits[i].id) >= 0);
			if (i == 0)
				continue;
			/* (distance, id) ascending, NaN after every number. */
			float a = hits[i - 1].distance, b = hits[i].distance;
			if (isnan(a))
				FUZZ_CHECK(isnan(b));
			else if (!isnan(b))
				FUZZ_CHECK(a < b || (a == b && hits[i - 1].id < hits[i].id));
		}
	}
	free(q);

	const rvf_view *parent = rvf_view_parent(v);
	if (parent && depth < 4)
		walk_view(parent, depth + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd = fuzz_memfd("fuzz_open", data, size);
	if (fd < 0)
		return 0;
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	rvf_store *s = NULL;
	rvf_error err;
	rvf_code rc = rvf_store_open(path, RVF_OPEN_READ_ONLY, &s, &err);
	if (rc == RVF_OK) {
		FUZZ_CHECK(s != NULL && rvf_store_read_only(s));
		rvf_view *v = rvf_store_view(s);
		FUZZ_CHECK(v != NULL);
		FUZZ_CHECK(rvf_view_info(v)->file_size <= size);
		const rvf_info *info = rvf_view_info(v);
		fuzz_note("open ok: dim %u, %llu visible, %zu segments\n",
			  info->dimension, (unsigned long long)info->visible,
			  rvf_view_segment_count(v));
		(void)info;
		walk_view(v, 0);
		/* Unchanged file: a refresh keeps the view. */
		rc = rvf_store_refresh(s, &err);
		fuzz_sink += rc;
		rvf_view_release(v);
		rvf_store_close(s);
	} else {
		FUZZ_CHECK(err.code == rc);
		FUZZ_CHECK(memchr(err.message, '\0', sizeof(err.message)) != NULL);
		fuzz_touch(err.message, strlen(err.message));
		fuzz_touch(rvf_code_name(rc), 1);
		fuzz_note("open failed: %s: %s\n", rvf_code_name(rc), err.message);
	}
	close(fd);
	return 0;
}
