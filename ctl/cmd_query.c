/* rvfctl query: exact k nearest neighbours of one vector; --meta adds each
 * hit's metadata (a JSON object after the distance, or "metadata" in --json).
 *
 * On a mount point the request goes to MNT/query as one JSON line and the
 * results are read back on the same descriptor, as the query file's
 * protocol wants. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "meta_print.h"
#include "mount.h"

/* Where --meta finds a hit's fields: the store's view, or the vector files
 * of a mount (their xattrs). */
typedef struct meta_src {
	const rvf_view *view;
	const char *mnt;
} meta_src;

static void print_hits(ctl_ctx *ctx, const rvf_hit *hits, size_t count,
		       const meta_src *ms)
{
	json_t *arr = ctx->json ? json_array() : NULL;
	for (size_t i = 0; i < count; i++) {
		const rvf_meta_field *m = NULL;
		size_t nm = 0;
		mnt_meta ml = { 0 };
		char *path = NULL;
		if (ms && ms->view) {
			nm = rvf_view_metadata(ms->view, hits[i].id, &m);
		} else if (ms && asprintf(&path, "%s/vectors/%llu", ms->mnt,
					  (unsigned long long)hits[i].id) > 0) {
			mnt_meta_read(path, &ml);
			m = ml.fields;
			nm = ml.n;
		}
		if (arr) {
			json_t *o = json_pack("{s:o,s:o}", "id", json_id(hits[i].id),
					      "distance", json_float(hits[i].distance));
			if (ms)
				json_object_set_new(o, "metadata", meta_json(m, nm));
			json_array_append_new(arr, o);
		} else {
			printf("%llu ", (unsigned long long)hits[i].id);
			print_float(stdout, hits[i].distance);
			if (ms) {
				putchar(' ');
				print_meta_object(stdout, m, nm);
			}
			putchar('\n');
		}
		mnt_meta_free(&ml);
		free(path);
	}
	if (arr)
		ctl_print_json(json_pack("{s:o}", "results", arr));
}

static int query_store(ctl_ctx *ctx, const char *path, const float *q, long n,
		       uint32_t k, const rvf_filter *f, uint32_t threads, bool meta)
{
	rvf_store *s;
	int rc = ctl_open(ctx, path, false, &s);
	if (rc)
		return rc;
	rvf_view *v = rvf_store_view(s);
	const rvf_info *info = rvf_view_info(v);
	rvf_error err;
	rvf_hit *hits = NULL;
	size_t count = 0;
	if ((uint32_t)n != info->dimension) {
		rc = ctl_usage_error(ctx, "query has %ld numbers, the store's dimension is %u",
				     n, info->dimension);
		goto out;
	}
	hits = malloc(sizeof(rvf_hit) * k);
	/* one query per process: building codes would cost more than it saves */
	rvf_search_options so = { .threads = threads, .filter = f,
				  .accel = RVF_ACCEL_OFF };
	if (!hits) {
		rc = ctl_fail(ctx, EXIT_IO, NULL, "out of memory");
		goto out;
	}
	if (rvf_view_search(v, q, 1, k, &so, hits, &count, &err) != RVF_OK) {
		rc = ctl_report(ctx, path, &err);
		goto out;
	}
	meta_src ms = { .view = v };
	print_hits(ctx, hits, count, meta ? &ms : NULL);
out:
	free(hits);
	rvf_view_release(v);
	rvf_store_close(s);
	return rc;
}

/* "ID DISTANCE" lines into hits; false on anything else. */
static bool parse_results(char *text, rvf_hit **hits, size_t *count)
{
	size_t n = 0, cap = 16;
	rvf_hit *h = malloc(cap * sizeof(*h));
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); h && line;
	     line = strtok_r(NULL, "\n", &save)) {
		char *end;
		errno = 0;
		unsigned long long id = strtoull(line, &end, 10);
		if (end == line || *end != ' ' || errno)
			goto bad;
		char *dend;
		float d = strtof(end + 1, &dend);
		if (dend == end + 1 || *dend)
			goto bad;
		if (n == cap) {
			rvf_hit *g = realloc(h, (cap *= 2) * sizeof(*h));
			if (!g)
				goto bad;
			h = g;
		}
		h[n].id = id;
		h[n++].distance = d;
	}
	*hits = h;
	*count = n;
	return h != NULL;
bad:
	free(h);
	return false;
}

static int query_mount(ctl_ctx *ctx, const char *mnt, const float *q, long n,
		       uint32_t k, const char *filter_json, bool meta)
{
	json_t *st;
	int rc = mnt_status(ctx, mnt, &st);
	if (rc)
		return rc;
	uint32_t dim = (uint32_t)kv_u64(st, "dimension");
	json_decref(st);
	if ((uint32_t)n != dim)
		return ctl_usage_error(ctx, "query has %ld numbers, the store's dimension is %u",
				       n, dim);
	json_t *vec = json_array();
	for (long i = 0; i < n; i++)
		json_array_append_new(vec, json_float(q[i]));
	json_t *req = json_pack("{s:o,s:i}", "vector", vec, "k", (int)k);
	if (filter_json)
		json_object_set_new(req, "filter", json_loads(filter_json, 0, NULL));
	char *line = json_dumps(req, JSON_COMPACT | JSON_REAL_PRECISION(9));
	json_decref(req);
	char *path = NULL;
	if (!line || asprintf(&path, "%s/query", mnt) < 0) {
		free(line);
		return ctl_fail(ctx, EXIT_IO, NULL, "out of memory");
	}
	size_t before = mnt_errors_len(mnt);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	int e = fd < 0 ? errno : 0;
	size_t len = strlen(line);
	char *msg = malloc(len + 1);
	if (msg) {
		memcpy(msg, line, len);
		msg[len] = '\n';
	}
	if (!e && !msg)
		e = ENOMEM;
	if (!e) {
		ssize_t w = write(fd, msg, len + 1);
		if (w < 0)
			e = errno;
		else if ((size_t)w != len + 1)
			e = EIO;
	}
	free(msg);
	free(line);
	/* Results come back on the descriptor that wrote the request. */
	char *text = e ? NULL : read_fd(fd, NULL);
	if (!e && !text)
		e = errno;
	if (fd >= 0 && close(fd) != 0 && !e)
		e = errno;
	rvf_hit *hits = NULL;
	size_t count = 0;
	if (!e && text) {
		if (!parse_results(text, &hits, &count))
			e = EBADMSG;
	}
	free(text);
	if (e) {
		char *why = mnt_new_error(mnt, before);
		rc = ctl_fail(ctx, ctl_errno_exit(e), NULL, "%s: %s", path,
			      why ? why : strerror(e));
		free(why);
	} else {
		meta_src ms = { .mnt = mnt };
		print_hits(ctx, hits, count, meta ? &ms : NULL);
	}
	free(hits);
	free(path);
	return rc;
}

/* Reads all of path ("-": standard input); NULL on error (errno). */
static char *read_all(const char *path, size_t *len)
{
	return strcmp(path, "-") ? (char *)read_file(path, len) : read_fd(0, len);
}

/* Prints the query language's results text (groups split by empty lines);
 * with --json {"groups": [[{"id","distance"}, ...], ...]}. */
static void print_results_text(ctl_ctx *ctx, const char *out)
{
	if (!ctx->json) {
		fputs(out, stdout);
		return;
	}
	json_t *groups = json_array(), *g = json_array();
	const char *p = out;
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		if (n == 0) {
			json_array_append_new(groups, g);
			g = json_array();
		} else {
			unsigned long long id;
			float d;
			if (sscanf(p, "%llu %f", &id, &d) == 2)
				json_array_append_new(g, json_pack("{s:o,s:o}", "id",
					json_id(id), "distance", json_float(d)));
		}
		p += n + (nl ? 1 : 0);
	}
	json_array_append_new(groups, g);
	ctl_print_json(json_pack("{s:o}", "groups", groups));
}

/* --file: a file of queries in the query language (rvffs(1) QUERIES). */
static int query_file(ctl_ctx *ctx, const char *path, const char *file,
		      uint32_t k, uint32_t threads)
{
	size_t len;
	char *req = read_all(file, &len);
	if (!req)
		return ctl_fail(ctx, EXIT_IO, NULL, "%s: %s", file, strerror(errno));
	int rc = 0;
	char *out = NULL;
	if (mnt_detect(path)) {
		/* The mount's query file: write all, read back on one descriptor. */
		char *q = NULL;
		if (asprintf(&q, "%s/query", path) < 0)
			q = NULL;
		int fd = q ? open(q, O_RDWR | O_CLOEXEC) : -1;
		size_t cap = 1 << 16, n = 0;
		bool ok = fd >= 0 && (size_t)write(fd, req, len) == len;
		int e = errno;
		out = ok ? malloc(cap + 1) : NULL;
		for (ssize_t r = 1; out && r > 0;) {
			if (n == cap) {
				char *g = realloc(out, (cap *= 2) + 1);
				if (!g)
					break;
				out = g;
			}
			r = read(fd, out + n, cap - n);
			if (r > 0)
				n += (size_t)r;
		}
		if (out)
			out[n] = '\0';
		if (fd >= 0)
			close(fd);
		free(q);
		if (!ok) {
			rc = ctl_fail(ctx, e == EINVAL ? EXIT_REFUSED : EXIT_IO, NULL,
				      "%s: %s", file, strerror(e));
			free(out);
			out = NULL;
		}
	} else {
		rvf_store *s;
		if ((rc = ctl_open(ctx, path, false, &s)) == 0) {
			rvf_view *v = rvf_store_view(s);
			rvf_request_options opt = {
				.default_k = k,
				.search = { .threads = threads, .accel = RVF_ACCEL_OFF },
			};
			rvf_error err;
			size_t olen;
			if (rvf_request_run(v, req, len, &opt, &out, &olen, &err) != RVF_OK) {
				rc = ctl_fail(ctx, EXIT_REFUSED, NULL, "%s: %s", file,
					      err.message);
				free(out);
				out = NULL;
			}
			rvf_view_release(v);
			rvf_store_close(s);
		}
	}
	if (!rc && out)
		print_results_text(ctx, out);
	free(out);
	free(req);
	return rc;
}

int cmd_query(ctl_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "vector", required_argument, NULL, 'v' },
		{ "k", required_argument, NULL, 'k' },
		{ "filter", required_argument, NULL, 'f' },
		{ "threads", required_argument, NULL, 't' },
		{ "file", required_argument, NULL, 'F' },
		{ "ef", required_argument, NULL, 'e' },
		{ "meta", no_argument, NULL, 'm' },
		{ 0 },
	};
	bool meta = false;
	const char *vec = NULL, *filter_json = NULL, *file = NULL;
	uint32_t k = 10, threads = 0, ef = 0;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "k:", opts, NULL)) != -1) {
		switch (c) {
		case 'v': vec = optarg; break;
		case 'k':
			if (!parse_u32(optarg, 1u << 30, &k) || k == 0)
				return ctl_usage_error(ctx, "--k must be a positive integer");
			break;
		case 'f': filter_json = optarg; break;
		case 'F': file = optarg; break;
		case 'm': meta = true; break;
		case 'e': /* search is exact: checked, no effect */
			if (!parse_u32(optarg, 1u << 20, &ef) || ef == 0)
				return ctl_usage_error(ctx, "--ef must be a positive integer");
			break;
		case 't':
			if (!parse_u32(optarg, 1024, &threads))
				return ctl_usage_error(ctx, "--threads must be 0..1024");
			break;
		default: return EXIT_USAGE;
		}
	}
	if (optind == argc - 1 && file && !vec && !filter_json && !meta)
		return query_file(ctx, argv[optind], file, k, threads);
	if (file && meta)
		return ctl_usage_error(ctx, "--meta works with --vector, not with --file");
	if (optind != argc - 1 || !vec || file)
		return ctl_usage_error(ctx, "query needs STORE and --vector, or STORE and --file FILE (one query per line; \"-\": standard input)");
	float *q;
	long n = parse_floats(vec, &q);
	if (n < 0)
		return ctl_usage_error(ctx, "--vector: not a list of finite numbers");
	rvf_error err;
	rvf_filter *f = NULL;
	int rc;
	/* Checked here in both modes, so a bad filter fails the same way. */
	if (filter_json && !(f = rvf_filter_parse(filter_json, &err)))
		rc = ctl_report(ctx, "--filter", &err);
	else if (mnt_detect(argv[optind]))
		rc = query_mount(ctx, argv[optind], q, n, k, filter_json, meta);
	else
		rc = query_store(ctx, argv[optind], q, n, k, f, threads, meta);
	rvf_filter_free(f);
	free(q);
	return rc;
}
