/* test_store.c - the store end to end through the public API: create,
 * ingest, reopen, delete, compact, derive, branch, freeze, kernel, eBPF,
 * metadata, streaming abort, read-only refresh and error paths. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rvf.h"

#include "check.h"
#include "store.h" /* view_rows_copied */
#define OK(call)                                                              \
	do {                                                                  \
		rvf_code rc_ = (call);                                        \
		if (rc_ != RVF_OK) {                                          \
			fprintf(stderr, "%s:%d: %s failed: %s (%s)\n", __FILE__, \
				__LINE__, #call, err.message, rvf_code_name(rc_)); \
			failures++;                                           \
		}                                                             \
	} while (0)

static char dir[64];
static rvf_error err;

static const char *path_in(const char *name)
{
	static char buf[4][256];
	static int next;
	char *p = buf[next++ % 4];
	snprintf(p, 256, "%s/%s", dir, name);
	return p;
}

static uint64_t file_size(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static size_t visible(rvf_store *s)
{
	rvf_view *v = rvf_store_view(s);
	size_t n = rvf_view_info(v)->visible;
	rvf_view_release(v);
	return n;
}

static bool has_id(rvf_store *s, uint64_t id)
{
	rvf_view *v = rvf_store_view(s);
	bool r = rvf_view_find(v, id) >= 0;
	rvf_view_release(v);
	return r;
}

static void test_create_and_layout(void)
{
	rvf_store *s;
	rvf_create_options o = { .dimension = 4, .metric = RVF_METRIC_L2 };
	const char *p = path_in("x_min.rvf");
	OK(rvf_store_create(p, &o, &s, &err));
	CHECK(file_size(p) == 162);
	CHECK(access(path_in("x_min.rvf.lock"), F_OK) == 0);
	CHECK(rvf_store_create(p, &o, &s, &err) == RVF_E_EXISTS);
	float vecs[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	uint64_t ids[2] = { 10, 20 };
	rvf_commit_info info;
	OK(rvf_store_ingest(s, 2, ids, vecs, NULL, NULL, &info, &err));
	CHECK(info.epoch == 1 && info.accepted == 2);
	/* Same segment sizes as the reference's x_min.rvf (648 bytes). */
	CHECK(file_size(p) == 648);
	rvf_view *v = rvf_store_view(s);
	const rvf_info *i = rvf_view_info(v);
	CHECK(i->visible == 2 && i->epoch == 1 && i->directory_len == 3);
	CHECK(rvf_view_directory(v, 0)->type == RVF_SEG_MANIFEST);
	CHECK(rvf_view_directory(v, 1)->type == RVF_SEG_VEC);
	CHECK(rvf_view_directory(v, 1)->offset == 162);
	CHECK(rvf_view_directory(v, 2)->type == RVF_SEG_WITNESS);
	CHECK(rvf_view_segment_count(v) == 4);
	float out[4];
	rvf_view_vector_at(v, 1, out);
	CHECK(rvf_view_id_at(v, 1) == 20 && out[3] == 8);
	CHECK(rvf_view_witness_count(v) == 1 &&
	      strcmp(rvf_view_witness(v, 0)->action, "ingest:count=2,epoch=1") == 0);
	rvf_view_release(v);
	/* A second writer is refused while we hold the lock. */
	rvf_store *s2;
	CHECK(rvf_store_open_wait(p, 0, 0, &s2, &err) == RVF_E_LOCK_HELD);
	rvf_store_close(s);
	CHECK(access(path_in("x_min.rvf.lock"), F_OK) != 0);

	/* Reopen: segment ids continue after the directory's maximum. */
	OK(rvf_store_open(p, 0, &s, &err));
	float v3[4] = { 0, 0, 0, 1 };
	uint64_t id3 = 30;
	OK(rvf_store_ingest(s, 1, &id3, v3, NULL, NULL, &info, &err));
	v = rvf_store_view(s);
	CHECK(rvf_view_info(v)->epoch == 2 && rvf_view_info(v)->visible == 3);
	/* D = loaded directory (3) + VEC + WITNESS; the reopened session's
	 * manifest #4 is not listed (reference behaviour, §2.3). */
	CHECK(rvf_view_directory_count(v) == 5);
	CHECK(rvf_view_directory(v, 3)->id == 4); /* id reused after reopen */
	rvf_view_release(v);
	rvf_store_close(s);
}

static void test_delete_reingest_compact(void)
{
	rvf_store *s;
	rvf_create_options o = { .dimension = 2, .metric = RVF_METRIC_L2 };
	const char *p = path_in("del.rvf");
	OK(rvf_store_create(p, &o, &s, &err));
	float vecs[10] = { 0, 0, 1, 1, 2, 2, 3, 3, 4, 4 };
	uint64_t ids[5] = { 1, 2, 3, 4, 5 };
	rvf_commit_info info;
	OK(rvf_store_ingest(s, 5, ids, vecs, NULL, NULL, &info, &err));
	uint64_t del[3] = { 2, 99, 2 };
	OK(rvf_store_delete(s, 3, del, &info, &err));
	CHECK(info.accepted == 1 && info.epoch == 2);
	CHECK(visible(s) == 4 && !has_id(s, 2));
	/* Deleting again counts nothing but still commits (epoch++). */
	OK(rvf_store_delete(s, 1, del, &info, &err));
	CHECK(info.accepted == 0 && info.epoch == 3);
	/* Re-ingesting a deleted id does not revive it until compaction. */
	float nv[2] = { 9, 9 };
	uint64_t two = 2;
	OK(rvf_store_ingest(s, 1, &two, nv, NULL, NULL, &info, &err));
	CHECK(!has_id(s, 2));
	/* Duplicate id: the later row wins. */
	float dup[4] = { 7, 7, 8, 8 };
	uint64_t dids[2] = { 3, 3 };
	OK(rvf_store_ingest(s, 2, dids, dup, NULL, NULL, &info, &err));
	rvf_view *v = rvf_store_view(s);
	float out[2];
	rvf_view_vector_at(v, (size_t)rvf_view_find(v, 3), out);
	CHECK(out[0] == 8);
	rvf_view_release(v);
	uint64_t before = file_size(p);
	OK(rvf_store_compact(s, &info, &err));
	CHECK(info.accepted == 1);
	CHECK(file_size(p) < before);
	v = rvf_store_view(s);
	CHECK(rvf_view_info(v)->deleted == 0 && rvf_view_info(v)->visible == 4);
	/* Compacted layout: VEC first, the file ends with a witness. */
	CHECK(rvf_view_segment(v, 0)->type == RVF_SEG_VEC &&
	      rvf_view_segment(v, 0)->offset == 0);
	rvf_view_release(v);
	CHECK(access(path_in("del.rvf.compact.tmp"), F_OK) != 0);
	/* After compaction the id can be reused. */
	OK(rvf_store_ingest(s, 1, &two, nv, NULL, NULL, &info, &err));
	CHECK(has_id(s, 2));
	rvf_store_close(s);
	/* Reopened: same state. */
	OK(rvf_store_open(p, RVF_OPEN_READ_ONLY, &s, &err));
	CHECK(visible(s) == 5 && has_id(s, 2));
	v = rvf_store_view(s);
	rvf_view_vector_at(v, (size_t)rvf_view_find(v, 3), out);
	CHECK(out[0] == 8);
	rvf_view_release(v);
	CHECK(rvf_store_delete(s, 1, &two, &info, &err) == RVF_E_READ_ONLY);
	rvf_store_close(s);
}

static rvf_code add_rows(rvf_ingest *t, uint64_t first, size_t n, uint32_t dim)
{
	float *v = calloc(n * dim, sizeof(float));
	uint64_t *ids = malloc(n * sizeof(uint64_t));
	for (size_t i = 0; i < n; i++) {
		ids[i] = first + i;
		for (uint32_t d = 0; d < dim; d++)
			v[i * dim + d] = (float)(i * 31 + d);
	}
	rvf_code rc = rvf_ingest_add(t, n, ids, v, NULL, NULL, &err);
	free(v);
	free(ids);
	return rc;
}

static void test_streaming_abort_and_auto_ids(void)
{
	rvf_store *s;
	rvf_create_options o = { .dimension = 8, .metric = RVF_METRIC_COSINE };
	const char *p = path_in("stream.rvf");
	OK(rvf_store_create(p, &o, &s, &err));
	rvf_ingest *t;
	OK(rvf_ingest_begin(s, &t, &err));
	OK(add_rows(t, 0, 200000, 8));
	uint64_t size0 = 162;
	CHECK(file_size(p) > size0); /* rows went to the file already */
	CHECK(visible(s) == 0);       /* but nobody sees them */
	rvf_ingest_abort(t);
	CHECK(file_size(p) == size0);
	OK(rvf_ingest_begin(s, &t, &err));
	OK(add_rows(t, 5, 3, 8));
	rvf_commit_info info;
	OK(rvf_ingest_commit(t, &info, &err));
	CHECK(visible(s) == 3);
	/* Auto ids continue after the largest id ever used. */
	float z[16] = { 1 };
	OK(rvf_store_ingest(s, 2, NULL, z, NULL, NULL, &info, &err));
	CHECK(has_id(s, 8) && has_id(s, 9));
	/* An empty batch writes nothing. */
	uint64_t before = file_size(p);
	OK(rvf_store_ingest(s, 0, NULL, z, NULL, NULL, &info, &err));
	CHECK(file_size(p) == before);
	rvf_store_close(s);
}

static void test_kernel_ebpf(void)
{
	rvf_store *s;
	rvf_create_options o = { .dimension = 3, .metric = RVF_METRIC_L2 };
	const char *p = path_in("k.rvf");
	OK(rvf_store_create(p, &o, &s, &err));
	unsigned char img1[300], img2[5000];
	for (size_t i = 0; i < sizeof(img1); i++)
		img1[i] = (unsigned char)i;
	for (size_t i = 0; i < sizeof(img2); i++)
		img2[i] = (unsigned char)(i / 7);
	rvf_kernel_spec k = { .arch = 1, .kernel_type = 2, .flags = 17,
			      .api_port = 8080, .cmdline = "console=ttyS0" };
	rvf_commit_info info;
	OK(rvf_store_embed_kernel(s, &k, img1, sizeof(img1), &info, &err));
	k.compress = true;
	k.cmdline = NULL;
	OK(rvf_store_embed_kernel(s, &k, img2, sizeof(img2), &info, &err));
	rvf_view *v = rvf_store_view(s);
	rvf_kernel_info ki;
	CHECK(rvf_view_kernel(v, &ki) && ki.api_port == 8080 && ki.compression == 1);
	size_t kernels = 0;
	for (size_t i = 0; i < rvf_view_directory_count(v); i++)
		kernels += rvf_view_directory(v, i)->type == RVF_SEG_KERNEL;
	CHECK(kernels == 1); /* the old entry left the directory */
	unsigned char *img;
	size_t len;
	char *cmd;
	OK(rvf_view_kernel_image(v, &img, &len, &cmd, &err));
	CHECK(len == sizeof(img2) && memcmp(img, img2, len) == 0 && cmd == NULL);
	free(img);
	rvf_view_release(v);
	unsigned char prog[64] = { 0x95 }, btf[18] = { 1, 2, 3 };
	rvf_ebpf_spec e = { .program_type = 1, .attach_type = 2, .max_dimension = 4 };
	OK(rvf_store_embed_ebpf(s, &e, prog, sizeof(prog), btf, sizeof(btf), &info,
				&err));
	v = rvf_store_view(s);
	rvf_ebpf_info ei;
	CHECK(rvf_view_ebpf(v, &ei) && ei.program_size == 64 && ei.btf_size == 18 &&
	      ei.insn_count == 8 && ei.btf[2] == 3);
	rvf_view_release(v);
	OK(rvf_store_remove_kernel(s, &info, &err));
	CHECK(rvf_store_remove_kernel(s, &info, &err) == RVF_E_NOT_FOUND);
	v = rvf_store_view(s);
	CHECK(!rvf_view_kernel(v, &ki));
	rvf_view_release(v);
	rvf_store_close(s);
}

static void test_lineage(void)
{
	rvf_store *p, *c, *d;
	rvf_create_options o = { .dimension = 2, .metric = RVF_METRIC_L2 };
	OK(rvf_store_create(path_in("parent.rvf"), &o, &p, &err));
	float vecs[8] = { 0, 0, 1, 0, 2, 0, 3, 0 };
	uint64_t ids[4] = { 0, 1, 2, 3 };
	rvf_commit_info info;
	OK(rvf_store_ingest(p, 4, ids, vecs, NULL, NULL, &info, &err));
	uint64_t one = 1;
	OK(rvf_store_delete(p, 1, &one, &info, &err));
	OK(rvf_store_derive(p, path_in("derived.rvf"), NULL, &d, &err));
	CHECK(visible(d) == 0);
	rvf_view *dv = rvf_store_view(d);
	CHECK(rvf_view_info(dv)->identity.lineage_depth == 1);
	rvf_view_release(dv);
	rvf_store_close(d);
	OK(rvf_store_branch(p, path_in("child.rvf"), &c, &err));
	CHECK(visible(c) == 3 && has_id(c, 0) && !has_id(c, 1));
	/* Child edits: override id 2, delete inherited 3, add 7. */
	float nv[4] = { 5, 5, 7, 7 };
	uint64_t nids[2] = { 2, 7 };
	OK(rvf_store_ingest(c, 2, nids, nv, NULL, NULL, &info, &err));
	uint64_t three = 3;
	OK(rvf_store_delete(c, 1, &three, &info, &err));
	CHECK(info.accepted == 1);
	rvf_view *v = rvf_store_view(c);
	CHECK(rvf_view_info(v)->visible == 3 && rvf_view_info(v)->inherited == 1);
	float q[2] = { 5, 5 };
	rvf_hit hits[3];
	size_t n;
	OK(rvf_view_search(v, q, 1, 3, NULL, hits, &n, &err));
	CHECK(n == 3 && hits[0].id == 2 && hits[0].distance == 0);
	rvf_view_release(v);
	rvf_store_close(c);
	rvf_store_close(p);
	/* Reopened child resolves its parent by the relative path. */
	OK(rvf_store_open(path_in("child.rvf"), RVF_OPEN_READ_ONLY, &c, &err));
	CHECK(visible(c) == 3 && has_id(c, 7) && !has_id(c, 3));
	rvf_store_close(c);
	/* The parent changes: the child reads it as it was when branched
	 * (id 3, ingested into the parent now, is not inherited). */
	OK(rvf_store_open(path_in("parent.rvf"), 0, &p, &err));
	OK(rvf_store_ingest(p, 1, &three, vecs, NULL, NULL, &info, &err));
	rvf_store_close(p);
	OK(rvf_store_open(path_in("child.rvf"), RVF_OPEN_READ_ONLY, &c, &err));
	CHECK(visible(c) == 3 && has_id(c, 7) && !has_id(c, 3));
	v = rvf_store_view(c);
	CHECK(rvf_view_info(v)->parent_as_of < rvf_view_info(v)->parent_size);
	rvf_view_release(v);
	rvf_store_close(c);
	/* The parent is gone. */
	CHECK(rename(path_in("parent.rvf"), path_in("moved.rvf")) == 0);
	CHECK(rvf_store_open(path_in("child.rvf"), RVF_OPEN_READ_ONLY, &c, &err) ==
	      RVF_E_PARENT_NOT_FOUND);
}

static void test_freeze_refresh(void)
{
	rvf_store *w, *r;
	rvf_create_options o = { .dimension = 2, .metric = RVF_METRIC_INNER_PRODUCT };
	const char *p = path_in("fr.rvf");
	OK(rvf_store_create(p, &o, &w, &err));
	OK(rvf_store_open(p, RVF_OPEN_READ_ONLY, &r, &err));
	float v[2] = { 1, 2 };
	uint64_t id = 1;
	rvf_commit_info info;
	OK(rvf_store_ingest(w, 1, &id, v, NULL, NULL, &info, &err));
	CHECK(visible(r) == 0);
	OK(rvf_store_refresh(r, &err));
	CHECK(visible(r) == 1);
	OK(rvf_store_compact(w, &info, &err));
	OK(rvf_store_refresh(r, &err)); /* follows the rename */
	CHECK(visible(r) == 1);
	OK(rvf_store_freeze(w, &info, &err));
	CHECK(rvf_store_ingest(w, 1, &id, v, NULL, NULL, &info, &err) ==
	      RVF_E_READ_ONLY);
	rvf_store_close(r);
	rvf_store_close(w);
}

static void test_metadata_and_filters(void)
{
	rvf_store *s;
	rvf_create_options o = { .dimension = 1, .metric = RVF_METRIC_L2 };
	const char *p = path_in("meta.rvf");
	OK(rvf_store_create(p, &o, &s, &err));
	float v[3] = { 1, 2, 3 };
	uint64_t ids[3] = { 1, 2, 3 };
	rvf_meta_field m[3] = {
		{ "color", { .type = RVF_VALUE_STRING, .u.str = { "red", 3 } } },
		{ "color", { .type = RVF_VALUE_STRING, .u.str = { "blue", 4 } } },
		{ "size", { .type = RVF_VALUE_I64, .u.i64 = 5 } },
	};
	size_t start[4] = { 0, 1, 2, 3 };
	rvf_commit_info info;
	OK(rvf_store_ingest(s, 3, ids, v, m, start, &info, &err));
	rvf_store_close(s);
	OK(rvf_store_open(p, 0, &s, &err));
	rvf_view *view = rvf_store_view(s);
	const rvf_meta_field *f;
	CHECK(rvf_view_metadata(view, 2, &f) == 1 && !strcmp(f[0].name, "color") &&
	      f[0].value.u.str.len == 4);
	rvf_filter *flt = rvf_filter_parse("{\"op\":\"eq\",\"field\":\"color\",\"value\":\"red\"}", &err);
	CHECK(flt != NULL);
	float q = 3;
	rvf_hit hits[3];
	size_t n;
	rvf_search_options so = { .filter = flt };
	OK(rvf_view_search(view, &q, 1, 3, &so, hits, &n, &err));
	CHECK(n == 1 && hits[0].id == 1);
	rvf_view_release(view);
	OK(rvf_store_delete_filter(s, flt, &info, &err));
	CHECK(info.accepted == 1 && !has_id(s, 1));
	rvf_filter_free(flt);
	CHECK(rvf_filter_parse("{\"op\":\"bogus\"}", &err) == NULL &&
	      err.code == RVF_E_FILTER);
	OK(rvf_store_compact(s, &info, &err));
	view = rvf_store_view(s);
	CHECK(rvf_view_metadata(view, 3, &f) == 1 && !strcmp(f[0].name, "size"));
	CHECK(rvf_view_metadata(view, 1, &f) == 0);
	rvf_view_release(view);
	rvf_store_close(s);
}

static void test_errors(void)
{
	rvf_store *s;
	rvf_create_options o = { .dimension = 0 };
	CHECK(rvf_store_create(path_in("zero.rvf"), &o, &s, &err) ==
	      RVF_E_INVALID_MANIFEST);
	CHECK(rvf_store_open(path_in("missing.rvf"), RVF_OPEN_READ_ONLY, &s, &err) ==
	      RVF_E_IO && err.sys_errno == ENOENT);
	int fd = open(path_in("junk.rvf"), O_WRONLY | O_CREAT, 0644);
	CHECK(write(fd, "not an rvf file at all, just text", 33) == 33);
	close(fd);
	CHECK(rvf_store_open(path_in("junk.rvf"), RVF_OPEN_READ_ONLY, &s, &err) ==
	      RVF_E_MANIFEST_NOT_FOUND);
	/* A flipped byte in a VEC payload: InvalidChecksum naming it. */
	o.dimension = 2;
	OK(rvf_store_create(path_in("flip.rvf"), &o, &s, &err));
	float v[2] = { 1, 2 };
	uint64_t id = 1;
	rvf_commit_info info;
	OK(rvf_store_ingest(s, 1, &id, v, NULL, NULL, &info, &err));
	rvf_store_close(s);
	fd = open(path_in("flip.rvf"), O_RDWR);
	unsigned char b;
	CHECK(pread(fd, &b, 1, 162 + 64 + 10) == 1);
	b ^= 0xff;
	CHECK(pwrite(fd, &b, 1, 162 + 64 + 10) == 1);
	close(fd);
	CHECK(rvf_store_open(path_in("flip.rvf"), RVF_OPEN_READ_ONLY, &s, &err) ==
	      RVF_E_INVALID_CHECKSUM);
	CHECK(strstr(err.message, "vec segment id 2 at offset 162") != NULL);
}

static void test_fault_injection(void)
{
	rvf_store *s;
	rvf_create_options o = { .dimension = 2, .metric = RVF_METRIC_L2 };
	const char *p = path_in("fault.rvf");
	OK(rvf_store_create(p, &o, &s, &err));
	float v[2] = { 1, 2 };
	uint64_t id = 1;
	rvf_commit_info info;
	OK(rvf_store_ingest(s, 1, &id, v, NULL, NULL, &info, &err));
	uint64_t size = file_size(p);
	setenv("RVF_FAULT", "fsync:1:5", 1); /* the next fsync fails with EIO */
	id = 2;
	CHECK(rvf_store_ingest(s, 1, &id, v, NULL, NULL, &info, &err) == RVF_E_IO);
	unsetenv("RVF_FAULT");
	CHECK(file_size(p) == size && visible(s) == 1);
	OK(rvf_store_ingest(s, 1, &id, v, NULL, NULL, &info, &err));
	CHECK(visible(s) == 2);
	rvf_store_close(s);
}

/* Deferred durability: changes are visible at once, reach the file's
 * manifest only at sync, together, with one witness per kind. */
static size_t visible_on_disk(const char *p)
{
	rvf_store *r;
	size_t n = (size_t)-1;
	if (rvf_store_open(p, RVF_OPEN_READ_ONLY, &r, &err) == RVF_OK) {
		n = visible(r);
		rvf_store_close(r);
	}
	return n;
}

static void test_deferred_sync(void)
{
	const char *p = path_in("deferred.rvf");
	rvf_create_options co = { .dimension = 2, .metric = RVF_METRIC_L2 };
	rvf_store *s;
	OK(rvf_store_create(p, &co, &s, &err));
	OK(rvf_store_set_deferred(s, true, &err));
	uint64_t first_size = file_size(p);
	for (uint64_t id = 1; id <= 10; id++) {
		float x[2] = { (float)id, 0 };
		OK(rvf_store_ingest(s, 1, &id, x, NULL, NULL, NULL, &err));
	}
	uint64_t del[2] = { 3, 4 };
	rvf_commit_info info;
	OK(rvf_store_delete(s, 2, del, &info, &err));
	CHECK(info.accepted == 2);
	/* Visible in the store's views at once ... */
	CHECK(visible(s) == 8 && has_id(s, 10) && !has_id(s, 3));
	rvf_view *v = rvf_store_view(s);
	CHECK(rvf_view_info(v)->pending && rvf_view_info(v)->epoch == 11);
	rvf_view_release(v);
	CHECK(rvf_store_dirty(s));
	/* ... while the file still says what it said (a crash now loses all
	 * eleven changes, and nothing else). */
	CHECK(visible_on_disk(p) == 0);
	CHECK(file_size(p) > first_size);
	OK(rvf_store_sync(s, &info, &err));
	CHECK(!rvf_store_dirty(s) && info.epoch == 11);
	CHECK(visible_on_disk(p) == 8);
	v = rvf_store_view(s);
	const rvf_info *i = rvf_view_info(v);
	CHECK(!i->pending && i->deleted == 2);
	/* one witness per kind, not one per change */
	CHECK(rvf_view_witness_count(v) == 2);
	CHECK(rvf_view_witness_count(v) == 2 &&
	      strcmp(rvf_view_witness(v, 0)->action, "ingest:count=10,epoch=11") == 0 &&
	      strcmp(rvf_view_witness(v, 1)->action, "delete:count=2,epoch=11") == 0);
	/* older manifest, journals and deleted rows are dead */
	CHECK(i->dead_bytes > 0 && i->dead_bytes < i->file_size);
	rvf_view_release(v);
	/* Nothing new: a sync writes nothing. */
	uint64_t synced = file_size(p);
	OK(rvf_store_sync(s, NULL, &err));
	CHECK(file_size(p) == synced);
	/* Close syncs what is left. */
	uint64_t id = 42;
	float x[2] = { 4, 2 };
	OK(rvf_store_ingest(s, 1, &id, x, NULL, NULL, NULL, &err));
	CHECK(visible_on_disk(p) == 8);
	rvf_store_close(s);
	CHECK(visible_on_disk(p) == 9);
	/* Compaction takes the deferred state with it. */
	OK(rvf_store_open(p, 0, &s, &err));
	OK(rvf_store_set_deferred(s, true, &err));
	uint64_t d5 = 5;
	OK(rvf_store_delete(s, 1, &d5, NULL, &err));
	OK(rvf_store_compact(s, NULL, &err));
	CHECK(!rvf_store_dirty(s));
	v = rvf_store_view(s);
	CHECK(rvf_view_info(v)->dead_bytes == 0 || rvf_view_info(v)->dead_bytes < 200);
	rvf_view_release(v);
	rvf_store_close(s);
	CHECK(visible_on_disk(p) == 8);

	/* A loop of single changes grows one VEC and one JOURNAL segment in
	 * place: a short directory, and hashes that verify after a reopen. */
	const char *q = path_in("tail.rvf");
	OK(rvf_store_create(q, &co, &s, &err));
	OK(rvf_store_set_deferred(s, true, &err));
	for (uint64_t k = 0; k < 200; k++) {
		float y[2] = { (float)k, 1 };
		OK(rvf_store_ingest(s, 1, &k, y, NULL, NULL, NULL, &err));
	}
	v = rvf_store_view(s);
	CHECK(rvf_view_directory_count(v) <= 3);
	rvf_view_release(v);
	for (uint64_t k = 0; k < 200; k += 2)
		OK(rvf_store_delete(s, 1, &k, NULL, &err));
	v = rvf_store_view(s);
	CHECK(rvf_view_info(v)->visible == 100 && rvf_view_directory_count(v) <= 4);
	rvf_view_release(v);
	rvf_store_close(s);
	rvf_store *r;
	OK(rvf_store_open(q, RVF_OPEN_READ_ONLY, &r, &err));
	v = rvf_store_view(r);
	CHECK(rvf_view_info(v)->visible == 100 && rvf_view_info(v)->deleted == 100);
	OK(rvf_view_verify_hashes(v, &err));
	float out2[2];
	long at = rvf_view_find(v, 199);
	CHECK(at >= 0);
	if (at >= 0) {
		rvf_view_vector_at(v, (size_t)at, out2);
		CHECK(out2[0] == 199 && out2[1] == 1);
	}
	rvf_view_release(v);
	rvf_store_close(r);
}

/* Every visible id of v against live[1..n]: count, order, find, rows. */
static void check_view_matches(rvf_view *v, const bool *live, uint64_t n)
{
	size_t want = 0;
	for (uint64_t id = 1; id <= n; id++)
		want += live[id];
	CHECK(rvf_view_info(v)->visible == want);
	size_t at = 0;
	for (uint64_t id = 1; id <= n; id++) {
		long i = rvf_view_find(v, id);
		if (!live[id]) {
			CHECK(i < 0);
			continue;
		}
		CHECK(i == (long)at);
		CHECK(rvf_view_id_at(v, at) == id);
		float x[2];
		rvf_view_vector_at(v, at, x);
		CHECK(x[0] == (float)id && x[1] == 1);
		at++;
	}
}

/* rm of many files one at a time on a deferred store: each delete must
 * cost what it deletes (views share the rows and hide the deleted ones),
 * not a copy of every visible row, and every view -- including an old
 * one a reader still holds -- shows exactly its own state. */
static void test_deferred_deletes_cost(void)
{
	const char *p = path_in("rm-star.rvf");
	rvf_create_options co = { .dimension = 2, .metric = RVF_METRIC_L2 };
	enum { N = 3000, DELS = 1500 };
	static bool live[N + 1];
	rvf_store *s;
	OK(rvf_store_create(p, &co, &s, &err));
	uint64_t *ids = malloc(N * sizeof(uint64_t));
	float *x = malloc(2 * N * sizeof(float));
	for (uint64_t k = 0; k < N; k++) {
		ids[k] = k + 1;
		x[2 * k] = (float)(k + 1);
		x[2 * k + 1] = 1;
		live[k + 1] = true;
	}
	OK(rvf_store_ingest(s, N, ids, x, NULL, NULL, NULL, &err));
	OK(rvf_store_set_deferred(s, true, &err));
	rvf_view *held = NULL;
	static bool held_live[N + 1];
	size_t copied = atomic_load(&view_rows_copied);
	for (uint64_t k = 0; k < DELS; k++) {
		uint64_t id = (k * 7919) % N + 1; /* `rm *` order is not numeric */
		OK(rvf_store_delete(s, 1, &id, NULL, &err));
		live[id] = false;
		if (k == 100) {
			held = rvf_store_view(s);
			memcpy(held_live, live, sizeof(live));
		}
	}
	copied = atomic_load(&view_rows_copied) - copied;
	/* A copy of every row per delete would be about N * DELS / 1.3 */
	CHECK(copied < (size_t)N * DELS / 40);
	rvf_view *v = rvf_store_view(s);
	check_view_matches(v, live, N);
	/* A search sees the same rows. */
	float q[2] = { 2, 1 };
	rvf_hit hits[5];
	size_t got = 0;
	OK(rvf_view_search(v, q, 1, 5, NULL, hits, &got, &err));
	CHECK(got == 5);
	for (size_t i = 0; i < got; i++)
		CHECK(hits[i].id <= N && live[hits[i].id]);
	rvf_view_release(v);
	check_view_matches(held, held_live, N);
	rvf_view_release(held);
	/* A new row after deletes, then the durable state on disk. */
	uint64_t extra = N + 1;
	float ex[2] = { (float)extra, 1 };
	OK(rvf_store_ingest(s, 1, &extra, ex, NULL, NULL, NULL, &err));
	CHECK(has_id(s, extra) && visible(s) == N - DELS + 1);
	OK(rvf_store_sync(s, NULL, &err));
	CHECK(visible_on_disk(p) == N - DELS + 1);
	rvf_store_close(s);
	free(ids);
	free(x);
}

/* A bash loop of single-vector writes (ascending ids) on a deferred
 * store: each write appends its row to the array the views share instead
 * of copying every row, and an old view a reader holds keeps showing its
 * own rows.  Then writes that cannot append (a lower id, a rewrite) and
 * deletes after appends: every view still shows exactly its state. */
static void test_deferred_writes_cost(void)
{
	const char *p = path_in("echo-loop.rvf");
	rvf_create_options co = { .dimension = 2, .metric = RVF_METRIC_L2 };
	enum { N = 3000 };
	static bool live[N + 1], held_live[N + 1];
	rvf_store *s;
	OK(rvf_store_create(p, &co, &s, &err));
	OK(rvf_store_set_deferred(s, true, &err));
	rvf_view *held = NULL;
	size_t copied = atomic_load(&view_own_rows_copied);
	for (uint64_t id = 2; id < N; id++) {
		float x[2] = { (float)id, 1 };
		OK(rvf_store_ingest(s, 1, &id, x, NULL, NULL, NULL, &err));
		live[id] = true;
		if (id == 1000) {
			held = rvf_store_view(s);
			memcpy(held_live, live, sizeof(live));
		}
	}
	copied = atomic_load(&view_own_rows_copied) - copied;
	/* A copy of every row per write would be about N * N / 2 */
	CHECK(copied < (size_t)N * N / 100);
	rvf_view *v = rvf_store_view(s);
	check_view_matches(v, live, N);
	rvf_view_release(v);
	check_view_matches(held, held_live, N);
	/* Below every id, and a rewrite: merged, not appended. */
	uint64_t one = 1;
	float x1[2] = { 1, 1 };
	OK(rvf_store_ingest(s, 1, &one, x1, NULL, NULL, NULL, &err));
	live[1] = true;
	uint64_t five = 5;
	float x5[2] = { 50, 1 };
	OK(rvf_store_ingest(s, 1, &five, x5, NULL, NULL, NULL, &err));
	v = rvf_store_view(s);
	float got[2];
	rvf_view_vector_at(v, (size_t)rvf_view_find(v, 5), got);
	CHECK(got[0] == 50);
	rvf_view_release(v);
	x5[0] = 5;
	OK(rvf_store_ingest(s, 1, &five, x5, NULL, NULL, NULL, &err));
	/* Deletes after appends, then appends after deletes. */
	for (uint64_t id = 10; id <= 40; id += 3) {
		OK(rvf_store_delete(s, 1, &id, NULL, &err));
		live[id] = false;
	}
	uint64_t top = N - 1;
	OK(rvf_store_delete(s, 1, &top, NULL, &err));
	live[top] = false;
	uint64_t last = N;
	float xl[2] = { (float)N, 1 };
	OK(rvf_store_ingest(s, 1, &last, xl, NULL, NULL, NULL, &err));
	live[last] = true;
	v = rvf_store_view(s);
	check_view_matches(v, live, N);
	rvf_view_release(v);
	check_view_matches(held, held_live, N);
	rvf_view_release(held);
	OK(rvf_store_sync(s, NULL, &err));
	size_t want = 0;
	for (uint64_t id = 1; id <= N; id++)
		want += live[id];
	CHECK(visible_on_disk(p) == want);
	rvf_store_close(s);
}

int main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/rvf-store-XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	test_create_and_layout();
	test_delete_reingest_compact();
	test_streaming_abort_and_auto_ids();
	test_kernel_ebpf();
	test_lineage();
	test_freeze_refresh();
	test_metadata_and_filters();
	test_errors();
	test_fault_injection();
	test_deferred_sync();
	test_deferred_deletes_cost();
	test_deferred_writes_cost();
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	if (failures) {
		fprintf(stderr, "test_store: %d check(s) failed\n", failures);
		return 1;
	}
	printf("test_store: all checks passed\n");
	return 0;
}
