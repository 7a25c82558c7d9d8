/* rvfctl export: every visible vector (with metadata in jsonl/json), as
 * jsonl, json, csv, fvecs or npy; --ids FILE also writes the ids, one a
 * line in row order (fvecs and npy have none).
 *
 * On a mount point the store file is read directly when the caller may
 * read it (export_mounted_file); otherwise the vectors are read from
 * MNT/vectors/ID and their metadata from the user.rvf.meta.* xattrs, whose
 * text carries the value's type (rvf_value_text), so both doors give the
 * same bytes. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common.h"
#include "meta_print.h"
#include "mount.h"
#include "progress.h"

enum format { F_JSONL, F_JSON, F_CSV, F_FVECS, F_NPY };

static void print_record(FILE *f, const rvf_meta_field *m, size_t n,
			 uint64_t id, const float *vec, uint32_t dim)
{
	fprintf(f, "{\"id\":%llu,\"vector\":[", (unsigned long long)id);
	for (uint32_t d = 0; d < dim; d++) {
		if (d)
			fputc(',', f);
		print_float(f, vec[d]);
	}
	fputc(']', f);
	if (n) {
		fputs(",\"metadata\":", f);
		print_meta_object(f, m, n);
	}
	fputc('}', f);
}

/* One record in the chosen format. */
static void put_row(FILE *f, enum format fmt, const rvf_meta_field *m, size_t nm,
		    uint64_t id, const float *vec, uint32_t dim, bool last)
{
	switch (fmt) {
	case F_JSONL:
	case F_JSON:
		print_record(f, m, nm, id, vec, dim);
		fputs(fmt == F_JSON && !last ? ",\n" : "\n", f);
		break;
	case F_CSV:
		fprintf(f, "%llu", (unsigned long long)id);
		for (uint32_t d = 0; d < dim; d++) {
			fputc(',', f);
			print_float(f, vec[d]);
		}
		fputc('\n', f);
		break;
	case F_FVECS: {
		int32_t d32 = (int32_t)dim;
		fwrite(&d32, 4, 1, f);
		fwrite(vec, 4, dim, f);
		break;
	}
	case F_NPY:
		fwrite(vec, 4, dim, f);
		break;
	}
}

/* The .npy header for rows x dim little-endian float32 (version 1.0), padded
 * to 128 bytes so it can be rewritten in place with another row count. */
#define NPY_HEADER 128
static void npy_header(FILE *f, uint64_t rows, uint32_t dim)
{
	char h[NPY_HEADER + 1];
	int n = snprintf(h, sizeof(h), "\x93NUMPY%c%c%c%c{'descr': '<f4', "
			 "'fortran_order': False, 'shape': (%llu, %u), }",
			 1, 0, NPY_HEADER - 10, 0, (unsigned long long)rows, dim);
	memset(h + n, ' ', (size_t)(NPY_HEADER - 1 - n));
	h[NPY_HEADER - 1] = '\n';
	fwrite(h, 1, NPY_HEADER, f);
}

/* Every visible vector of view v. */
static int export_view(ctl_ctx *ctx, rvf_view *v, enum format fmt, FILE *f,
		       FILE *idf, uint64_t *rows)
{
	int rc = 0;
	const rvf_info *info = rvf_view_info(v);
	uint32_t dim = info->dimension;
	float *vec = malloc(4 * (size_t)dim + 4);
	progress bar;
	if (fmt == F_NPY)
		npy_header(f, info->visible, dim);
	progress_begin(&bar, "export", info->visible, false);
	for (size_t i = 0; vec && i < info->visible; i++) {
		uint64_t id = rvf_view_id_at(v, i);
		rvf_view_vector_at(v, i, vec);
		const rvf_meta_field *m;
		size_t nm = rvf_view_metadata(v, id, &m);
		put_row(f, fmt, m, nm, id, vec, dim, i + 1 == info->visible);
		if (idf)
			fprintf(idf, "%llu\n", (unsigned long long)id);
		progress_update(&bar, i + 1);
	}
	progress_end(&bar);
	*rows = vec ? info->visible : 0;
	if (!vec)
		rc = ctl_fail(ctx, EXIT_IO, NULL, "out of memory");
	free(vec);
	return rc;
}

static int export_store(ctl_ctx *ctx, const char *path, enum format fmt,
			FILE *f, FILE *idf, uint64_t *rows)
{
	rvf_store *s;
	int rc = ctl_open(ctx, path, false, &s);
	if (rc)
		return rc;
	rvf_view *v = rvf_store_view(s);
	rc = export_view(ctx, v, fmt, f, idf, rows);
	rvf_view_release(v);
	rvf_store_close(s);
	return rc;
}

/* The fast door through a mount: the store file itself, opened read-only
 * (readers take no lock), after a sync of the mount, when the caller may read it and it is the state the mount shows (same
 * epoch, size and count in `status`).  -1 when it could not be used: the
 * caller then reads the tree. */
static int export_mounted_file(ctl_ctx *ctx, const char *mnt, enum format fmt,
			       FILE *f, FILE *idf, uint64_t *rows)
{
	/* Changes made through the tree become durable (and so in the file)
	 * at fsync of the mount, as after `sync MNT`.  If that fails (the
	 * daemon says why in `errors`), the file and the mount differ below
	 * and the tree is read instead. */
	int dfd = open(mnt, O_RDONLY | O_DIRECTORY);
	if (dfd >= 0) {
		(void)!fsync(dfd);
		close(dfd);
	}
	char *path = mnt_store_path(mnt);
	json_t *st = NULL;
	rvf_store *s = NULL;
	int rc = -1;
	if (path && !mnt_status(ctx, mnt, &st) &&
	    rvf_store_open(path, RVF_OPEN_READ_ONLY, &s, NULL) == RVF_OK) {
		rvf_view *v = rvf_store_view(s);
		const rvf_info *i = rvf_view_info(v);
		if (i->epoch == kv_u64(st, "epoch") && i->visible == kv_u64(st, "vectors") &&
		    i->file_size == kv_u64(st, "file_size") &&
		    i->dimension == kv_u64(st, "dimension"))
			rc = export_view(ctx, v, fmt, f, idf, rows);
		rvf_view_release(v);
		rvf_store_close(s);
	}
	json_decref(st);
	free(path);
	return rc;
}

static int by_id(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The ids listed in MNT/vectors, ascending. */
static uint64_t *list_ids(const char *mnt, size_t *n)
{
	char *dir = NULL;
	*n = 0;
	if (asprintf(&dir, "%s/vectors", mnt) < 0)
		return NULL;
	DIR *d = opendir(dir);
	free(dir);
	if (!d)
		return NULL;
	size_t cap = 1024;
	uint64_t *ids = malloc(cap * sizeof(uint64_t));
	struct dirent *e;
	while (ids && (e = readdir(d))) {
		uint64_t id;
		if (!parse_u64(e->d_name, &id))
			continue;
		if (*n == cap) {
			uint64_t *g = realloc(ids, (cap *= 2) * sizeof(uint64_t));
			if (!g) {
				free(ids);
				ids = NULL;
				break;
			}
			ids = g;
		}
		ids[(*n)++] = id;
	}
	closedir(d);
	if (ids)
		qsort(ids, *n, sizeof(uint64_t), by_id);
	return ids;
}

static int export_mount(ctl_ctx *ctx, const char *mnt, enum format fmt,
			FILE *f, FILE *idf, uint64_t *rows)
{
	uint32_t dim;
	int rc = mnt_dimension(ctx, mnt, &dim);
	if (rc)
		return rc;
	size_t n;
	uint64_t *ids = list_ids(mnt, &n);
	if (!ids)
		return ctl_fail(ctx, EXIT_IO, NULL, "%s/vectors: %s", mnt, strerror(errno));
	float *vec = malloc(4 * (size_t)dim + 4);
	progress bar;
	if (fmt == F_NPY)
		npy_header(f, n, dim);
	progress_begin(&bar, "export", n, false);
	*rows = 0;
	for (size_t i = 0; vec && i < n && !rc; i++) {
		char name[48];
		snprintf(name, sizeof(name), "vectors/%llu", (unsigned long long)ids[i]);
		char *text = mnt_read(mnt, name, NULL);
		if (!text) {
			if (errno == ENOENT)
				continue; /* deleted meanwhile */
			rc = ctl_fail(ctx, EXIT_IO, NULL, "%s/%s: %s", mnt, name, strerror(errno));
			break;
		}
		float *parsed;
		long got = parse_floats(text, &parsed);
		free(text);
		if (got != (long)dim) {
			if (got >= 0)
				free(parsed);
			rc = ctl_fail(ctx, EXIT_REFUSED, NULL, "%s/%s: not %u numbers", mnt,
				      name, dim);
			break;
		}
		memcpy(vec, parsed, 4 * (size_t)dim);
		free(parsed);
		char *path = NULL;
		mnt_meta ml = { 0 };
		if ((fmt == F_JSON || fmt == F_JSONL) &&
		    asprintf(&path, "%s/%s", mnt, name) > 0) {
			mnt_meta_read(path, &ml);
			free(path);
		}
		put_row(f, fmt, ml.fields, ml.n, ids[i], vec, dim, i + 1 == n);
		if (idf)
			fprintf(idf, "%llu\n", (unsigned long long)ids[i]);
		mnt_meta_free(&ml);
		(*rows)++;
		progress_update(&bar, i + 1);
	}
	progress_end(&bar);
	if (!vec && !rc)
		rc = ctl_fail(ctx, EXIT_IO, NULL, "out of memory");
	/* Vectors deleted while we listed: the header's row count is wrong. */
	if (!rc && fmt == F_NPY && *rows != n) {
		if (fseek(f, 0, SEEK_SET) == 0) {
			npy_header(f, *rows, dim);
			fseek(f, 0, SEEK_END);
		} else {
			rc = ctl_fail(ctx, EXIT_IO, NULL, "%zu vectors went away during the npy export; export to a file (-o) or again",
				      n - (size_t)*rows);
		}
	}
	free(vec);
	free(ids);
	return rc;
}

int cmd_export(ctl_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "format", required_argument, NULL, 'f' },
		{ "output", required_argument, NULL, 'o' },
		{ "ids", required_argument, NULL, 'i' },
		{ 0 },
	};
	static const char *names[] = { "jsonl", "json", "csv", "fvecs", "npy" };
	enum format fmt = F_JSONL;
	const char *out_path = NULL, *ids_path = NULL;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "o:", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			if (!strcmp(optarg, "jsonl")) fmt = F_JSONL;
			else if (!strcmp(optarg, "json")) fmt = F_JSON;
			else if (!strcmp(optarg, "csv")) fmt = F_CSV;
			else if (!strcmp(optarg, "fvecs")) fmt = F_FVECS;
			else if (!strcmp(optarg, "npy")) fmt = F_NPY;
			else return ctl_usage_error(ctx, "unknown format '%s' (jsonl, json, csv, fvecs or npy)", optarg);
			break;
		case 'o': out_path = optarg; break;
		case 'i': ids_path = optarg; break;
		default: return EXIT_USAGE;
		}
	}
	if (optind != argc - 1)
		return ctl_usage_error(ctx, "export needs STORE");
	const char *path = argv[optind];
	bool mounted = mnt_detect(path);
	if (fmt == F_NPY && !out_path && isatty(STDOUT_FILENO))
		return ctl_usage_error(ctx, "npy is binary: give -o FILE or redirect stdout");
	FILE *f = out_path ? fopen(out_path, "w+b") : stdout;
	if (!f)
		return ctl_fail(ctx, EXIT_IO, NULL, "%s: %s", out_path, strerror(errno));
	FILE *idf = ids_path ? fopen(ids_path, "w") : NULL;
	if (ids_path && !idf) {
		int e = errno;
		if (out_path) {
			fclose(f);
			unlink(out_path);
		}
		return ctl_fail(ctx, EXIT_IO, NULL, "%s: %s", ids_path, strerror(e));
	}
	if (fmt == F_JSON)
		fputs("[\n", f);
	uint64_t rows = 0;
	int rc = mounted ? export_mounted_file(ctx, path, fmt, f, idf, &rows) :
		 export_store(ctx, path, fmt, f, idf, &rows);
	if (mounted && rc == -1)
		rc = export_mount(ctx, path, fmt, f, idf, &rows);
	if (fmt == F_JSON)
		fputs("]\n", f);
	if (fflush(f) != 0 || (out_path && fclose(f) != 0)) {
		if (!rc)
			rc = ctl_fail(ctx, EXIT_IO, NULL, "%s: %s",
				      out_path ? out_path : "stdout", strerror(errno));
	}
	if (idf && fclose(idf) != 0 && !rc)
		rc = ctl_fail(ctx, EXIT_IO, NULL, "%s: %s", ids_path, strerror(errno));
	if (rc && out_path)
		unlink(out_path); /* no half export left behind */
	if (rc && ids_path)
		unlink(ids_path);
	/* The data is the output; --json adds a summary only when it does
	 * not go to stdout. */
	if (!rc && ctx->json && out_path)
		ctl_print_json(json_pack("{s:I,s:s,s:s,s:b}", "rows", (json_int_t)rows,
					 "format", names[fmt], "output", out_path,
					 "mounted", mounted));
	else if (!rc && out_path)
		printf("%llu vectors written to %s\n", (unsigned long long)rows, out_path);
	return rc;
}
