/* rvfctl ingest: add vectors from files; each file is one atomic commit,
 * in order, stopping at the first that fails.  "-" is standard input
 * (--format names its format).
 *
 * On a mount point each file is checked here first (so bad input is
 * reported with its line, and the row count is known), then copied into
 * MNT/ingest/ under its own name: the daemon commits it when the copy is
 * closed, and close() returns the commit's result. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "mount.h"
#include "progress.h"

typedef struct feed {
	rvf_ingest *t;          /* NULL: only count (mount mode's check) */
	int fd;
	progress *bar;
} feed;

static rvf_code sink(void *ctx, size_t n, const uint64_t *ids,
		     const float *vectors, const rvf_meta_field *meta,
		     const size_t *meta_start, rvf_error *err)
{
	feed *f = ctx;
	off_t pos = lseek(f->fd, 0, SEEK_CUR);
	if (pos > 0)
		progress_update(f->bar, (uint64_t)pos);
	if (!f->t)
		return RVF_OK;
	return rvf_ingest_add(f->t, n, ids, vectors, meta, meta_start, err);
}

static uint64_t file_size(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
}

/* Parses fd, feeding t (or only counting); returns the library code. */
static rvf_code parse(int fd, const char *name, rvf_import_format fmt,
		      uint32_t dim, rvf_ingest *t, const char *label,
		      uint64_t *rows, rvf_error *err)
{
	progress bar;
	progress_begin(&bar, label, file_size(fd), true);
	feed f = { .t = t, .fd = fd, .bar = &bar };
	rvf_code c = rvf_import_fd(fd, name, fmt, dim, sink, &f, rows, err);
	progress_end(&bar);
	return c;
}

/* --format: the format of every FILE (and of "-"), else their extensions. */
static bool have_format;
static rvf_import_format forced_format;

static rvf_import_format format_of(const char *file)
{
	rvf_import_format fmt = RVF_IMPORT_CSV;
	if (have_format)
		return forced_format;
	rvf_import_format_from_name(file, &fmt);
	return fmt;
}

/* FILE opened for reading; "-" is standard input, spooled into an
 * unlinked temporary file when it must be read twice (a mount: checked,
 * then copied). */
static int open_input(const char *file, bool twice)
{
	if (strcmp(file, "-"))
		return open(file, O_RDONLY | O_CLOEXEC);
	if (!twice)
		return dup(STDIN_FILENO);
	FILE *tmp = tmpfile();
	if (!tmp)
		return -1;
	char buf[1 << 16];
	ssize_t r;
	while ((r = read(STDIN_FILENO, buf, sizeof(buf))) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 || fwrite(buf, 1, (size_t)r, tmp) != (size_t)r) {
			int e = errno;
			fclose(tmp);
			errno = e;
			return -1;
		}
	}
	int fd = fflush(tmp) == 0 ? dup(fileno(tmp)) : -1;
	fclose(tmp);
	if (fd >= 0)
		lseek(fd, 0, SEEK_SET);
	return fd;
}

/* The name shown for FILE and given to MNT/ingest/: stdin.FORMAT for "-". */
static const char *display_name(const char *file, char buf[32])
{
	if (strcmp(file, "-"))
		return file;
	snprintf(buf, 32, "stdin.%s", rvf_import_format_name(format_of(file)));
	return buf;
}

static int ingest_store(ctl_ctx *ctx, const char *path, int nfiles,
			char **files, json_t *done)
{
	rvf_store *s;
	int rc = ctl_open(ctx, path, true, &s);
	if (rc)
		return rc;
	rvf_view *v0 = rvf_store_view(s);
	uint32_t dim = rvf_view_info(v0)->dimension;
	rvf_view_release(v0);
	for (int i = 0; i < nfiles && !rc; i++) {
		char nb[32];
		const char *file = display_name(files[i], nb);
		rvf_import_format fmt = format_of(files[i]);
		int fd = open_input(files[i], false);
		if (fd < 0) {
			rc = ctl_fail(ctx, EXIT_IO, json_pack("{s:s,s:O}", "file", file,
							      "committed", done),
				      "%s: %s", file, strerror(errno));
			break;
		}
		rvf_error err;
		rvf_ingest *t;
		rvf_commit_info info;
		uint64_t rows = 0;
		rvf_code c = rvf_ingest_begin(s, &t, &err);
		if (c == RVF_OK) {
			c = parse(fd, file, fmt, dim, t, "ingest", &rows, &err);
			if (c == RVF_OK)
				c = rvf_ingest_commit(t, &info, &err);
			else
				rvf_ingest_abort(t);
		}
		close(fd);
		if (c != RVF_OK) {
			if (!ctx->json)
				fprintf(stderr, "rvfctl: %s: nothing committed\n", file);
			rc = ctl_fail(ctx, ctl_exit_code(c),
				      json_pack("{s:s,s:O}", "file", file, "committed", done),
				      "%s (%s)", err.message, rvf_code_name(c));
			break;
		}
		json_array_append_new(done, json_pack("{s:s,s:I,s:i}", "file", file,
			"rows", (json_int_t)rows, "epoch", (int)info.epoch));
		if (!ctx->json)
			printf("%s: %llu vectors committed (epoch %u)\n", file,
			       (unsigned long long)rows, info.epoch);
	}
	ctl_close_written(ctx, path, s);
	return rc;
}

/* Copies fd into MNT/ingest/NAME; close() reports the daemon's commit. */
static int copy_into(ctl_ctx *ctx, const char *mnt, const char *file, int fd,
		     json_t *done)
{
	char *base = strdup(file), *dst = NULL;
	if (!base || asprintf(&dst, "%s/ingest/%s", mnt, basename(base)) < 0) {
		free(base);
		return ctl_fail(ctx, EXIT_IO, NULL, "out of memory");
	}
	size_t before = mnt_errors_len(mnt);
	int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int e = out < 0 ? errno : 0;
	progress bar;
	progress_begin(&bar, "copy", file_size(fd), true);
	size_t cap = 1 << 20;
	char *buf = malloc(cap);
	uint64_t total = 0;
	if (!buf && !e)
		e = ENOMEM;
	lseek(fd, 0, SEEK_SET);
	while (!e) {
		ssize_t r = read(fd, buf, cap);
		if (r < 0) {
			e = errno;
			break;
		}
		if (r == 0)
			break;
		for (ssize_t off = 0; off < r && !e;) {
			ssize_t w = write(out, buf + off, (size_t)(r - off));
			if (w < 0)
				e = errno;
			else
				off += w;
		}
		total += (uint64_t)r;
		progress_update(&bar, total);
	}
	progress_end(&bar);
	free(buf);
	if (out >= 0 && close(out) != 0 && !e)
		e = errno;
	int rc = 0;
	if (e) {
		char *why = mnt_new_error(mnt, before);
		if (!ctx->json)
			fprintf(stderr, "rvfctl: %s: nothing committed\n", file);
		rc = ctl_fail(ctx, ctl_errno_exit(e),
			      json_pack("{s:s,s:O}", "file", file, "committed", done),
			      "%s: %s", dst, why ? why : strerror(e));
		free(why);
	}
	free(dst);
	free(base);
	return rc;
}

static int ingest_mount(ctl_ctx *ctx, const char *mnt, int nfiles,
			char **files, json_t *done)
{
	uint32_t dim;
	int rc = mnt_dimension(ctx, mnt, &dim);
	if (rc)
		return rc;
	for (int i = 0; i < nfiles && !rc; i++) {
		char nb[32];
		const char *file = display_name(files[i], nb);
		rvf_import_format fmt = format_of(files[i]);
		int fd = open_input(files[i], true);
		if (fd < 0) {
			rc = ctl_fail(ctx, EXIT_IO, json_pack("{s:s,s:O}", "file", file,
							      "committed", done),
				      "%s: %s", file, strerror(errno));
			break;
		}
		rvf_error err;
		uint64_t rows = 0;
		rvf_code c = parse(fd, file, fmt, dim, NULL, "check", &rows, &err);
		if (c != RVF_OK) {
			if (!ctx->json)
				fprintf(stderr, "rvfctl: %s: nothing committed\n", file);
			rc = ctl_fail(ctx, ctl_exit_code(c),
				      json_pack("{s:s,s:O}", "file", file, "committed", done),
				      "%s (%s)", err.message, rvf_code_name(c));
		} else {
			rc = copy_into(ctx, mnt, file, fd, done);
		}
		close(fd);
		json_t *st;
		if (rc || (rc = mnt_status(ctx, mnt, &st)))
			break;
		uint32_t epoch = (uint32_t)kv_u64(st, "epoch");
		json_decref(st);
		json_array_append_new(done, json_pack("{s:s,s:I,s:i}", "file", file,
			"rows", (json_int_t)rows, "epoch", (int)epoch));
		if (!ctx->json)
			printf("%s: %llu vectors committed (epoch %u)\n", file,
			       (unsigned long long)rows, epoch);
	}
	return rc;
}

/* After a failure: which files are in the store and which are not. */
static void report_stop(json_t *done, int nfiles, char **files)
{
	size_t ok = json_array_size(done), i;
	json_t *f;
	if (!ok && nfiles == 1)
		return; /* "nothing committed" said it all */
	fprintf(stderr, "rvfctl: committed: ");
	if (!ok)
		fprintf(stderr, "none");
	json_array_foreach(done, i, f)
		fprintf(stderr, "%s%s (%lld vectors)", i ? ", " : "",
			json_string_value(json_object_get(f, "file")),
			(long long)json_integer_value(json_object_get(f, "rows")));
	fprintf(stderr, "; not committed: ");
	for (int k = (int)ok; k < nfiles; k++) {
		char nb[32];
		fprintf(stderr, "%s%s%s", k > (int)ok ? ", " : "",
			display_name(files[k], nb), k == (int)ok ? " (failed)" : " (not tried)");
	}
	fputc('\n', stderr);
}

int cmd_ingest(ctl_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "format", required_argument, NULL, 'f' },
		{ 0 },
	};
	int c, nstdin = 0;
	have_format = false;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		char name[40];
		switch (c) {
		case 'f':
			snprintf(name, sizeof(name), "x.%s", optarg);
			if (strlen(optarg) > 8 ||
			    !rvf_import_format_from_name(name, &forced_format))
				return ctl_usage_error(ctx, "--format %s: unknown (csv tsv txt jsonl ndjson json fvecs npy f32)",
						       optarg);
			have_format = true;
			break;
		default: return EXIT_USAGE;
		}
	}
	if (argc - optind < 2)
		return ctl_usage_error(ctx, "ingest needs STORE and at least one FILE (\"-\": standard input, with --format)");
	char *store = argv[optind];
	char **files = argv + optind + 1;
	int nfiles = argc - optind - 1;
	for (int i = 0; i < nfiles; i++) {
		rvf_import_format fmt;
		nstdin += !strcmp(files[i], "-");
		if (!strcmp(files[i], "-") && !have_format)
			return ctl_usage_error(ctx, "-: standard input needs --format (csv tsv txt jsonl ndjson json fvecs npy f32)");
		if (!have_format && !rvf_import_format_from_name(files[i], &fmt))
			return ctl_usage_error(ctx, "%s: unknown file type (use .csv .tsv .txt .jsonl .ndjson .json .fvecs .npy .f32, or --format)",
					       files[i]);
	}
	if (nstdin > 1)
		return ctl_usage_error(ctx, "standard input (\"-\") can be given once");
	json_t *done = json_array();
	bool mounted = mnt_detect(store);
	int rc = mounted ? ingest_mount(ctx, store, nfiles, files, done) :
		 ingest_store(ctx, store, nfiles, files, done);
	if (rc && !ctx->json)
		report_stop(done, nfiles, files);
	if (!rc && ctx->json) {
		json_int_t rows = 0;
		size_t i;
		json_t *f;
		json_array_foreach(done, i, f)
			rows += json_integer_value(json_object_get(f, "rows"));
		json_t *last = json_array_get(done, json_array_size(done) - 1);
		ctl_print_json(json_pack("{s:O,s:I,s:O,s:b}", "files", done, "rows", rows,
					 "epoch", json_object_get(last, "epoch"),
					 "mounted", mounted));
	}
	json_decref(done);
	return rc;
}
