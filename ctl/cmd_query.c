/* rvfctl query: exact k nearest neighbours of one or several vectors;
 * --meta adds each hit's metadata (a JSON object after the distance, or
 * "metadata" in --json).
 *
 * Several --vector options are several queries, each searched on its own at
 * its own k (a real top-k selection, not cut from a larger k's answer): the
 * same as one rvfctl per vector, in one process.  Results are printed once
 * every query has succeeded, in the order given.
 *
 * On a mount point each request goes to MNT/query as one JSON line and the
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

/* One --vector query and, once searched, its answer. */
typedef struct vquery {
	float *vec;
	long n;
	uint32_t k;
	rvf_hit *hits;
	size_t count;
} vquery;

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

/* Every query's dimension against the store's, before any search. */
static int check_dims(ctl_ctx *ctx, const vquery *qs, size_t nq, uint32_t dim)
{
	for (size_t i = 0; i < nq; i++)
		if ((uint32_t)qs[i].n != qs[i].n || (uint32_t)qs[i].n != dim)
			return ctl_usage_error(ctx, "%squery has %ld numbers, the store's dimension is %u",
					       nq > 1 ? "a " : "", qs[i].n, dim);
	return 0;
}

/* Prints every query's answer: --json one {"results": [...]} line per
 * query; text: groups separated by an empty line. */
static void print_answers(ctl_ctx *ctx, const vquery *qs, size_t nq,
			  const meta_src *ms)
{
	for (size_t i = 0; i < nq; i++) {
		if (i && !ctx->json)
			putchar('\n');
		print_hits(ctx, qs[i].hits, qs[i].count, ms);
	}
}

static int query_store(ctl_ctx *ctx, const char *path, vquery *qs, size_t nq,
		       const rvf_filter *f, uint32_t threads, bool meta)
{
	rvf_store *s;
	int rc = ctl_open(ctx, path, false, &s);
	if (rc)
		return rc;
	rvf_view *v = rvf_store_view(s);
	rvf_error err;
	if ((rc = check_dims(ctx, qs, nq, rvf_view_info(v)->dimension)))
		goto out;
	/* few queries per process: building codes would cost more than it saves */
	rvf_search_options so = { .threads = threads, .filter = f,
				  .accel = RVF_ACCEL_OFF };
	for (size_t i = 0; i < nq && !rc; i++) {
		qs[i].hits = malloc(sizeof(rvf_hit) * qs[i].k);
		if (!qs[i].hits)
			rc = ctl_fail(ctx, EXIT_IO, NULL, "out of memory");
		else if (rvf_view_search(v, qs[i].vec, 1, qs[i].k, &so, qs[i].hits,
					 &qs[i].count, &err) != RVF_OK)
			rc = ctl_report(ctx, path, &err);
	}
	if (!rc) {
		meta_src ms = { .view = v };
		print_answers(ctx, qs, nq, meta ? &ms : NULL);
	}
out:
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

/* One query through MNT/query: its answer into q->hits/count. */
static int mount_one(ctl_ctx *ctx, const char *mnt, vquery *q,
		     const char *filter_json)
{
	int rc = 0;
	json_t *vec = json_array();
	for (long i = 0; i < q->n; i++)
		json_array_append_new(vec, json_float(q->vec[i]));
	json_t *req = json_pack("{s:o,s:i}", "vector", vec, "k", (int)q->k);
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
	if (!e && text) {
		if (!parse_results(text, &q->hits, &q->count))
			e = EBADMSG;
	}
	free(text);
	if (e) {
		char *why = mnt_new_error(mnt, before);
		rc = ctl_fail(ctx, ctl_errno_exit(e), NULL, "%s: %s", path,
			      why ? why : strerror(e));
		free(why);
	}
	free(path);
	return rc;
}

static int query_mount(ctl_ctx *ctx, const char *mnt, vquery *qs, size_t nq,
		       const char *filter_json, bool meta)
{
	uint32_t dim;
	int rc = mnt_dimension(ctx, mnt, &dim);
	if (rc)
		return rc;
	if ((rc = check_dims(ctx, qs, nq, dim)))
		return rc;
	for (size_t i = 0; i < nq && !rc; i++)
		rc = mount_one(ctx, mnt, &qs[i], filter_json);
	if (!rc) {
		meta_src ms = { .mnt = mnt };
		print_answers(ctx, qs, nq, meta ? &ms : NULL);
	}
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

/* The --vector queries: each vector with its --k (one --k for all, or
 * one per --vector in the order given; default 10). */
static int parse_queries(ctl_ctx *ctx, char **vecs, size_t nv,
			 const uint32_t *ks, size_t nk, vquery *qs)
{
	if (nk > 1 && nk != nv)
		return ctl_usage_error(ctx, "give --k once, or once per --vector "
				       "(%zu --vector, %zu --k)", nv, nk);
	for (size_t i = 0; i < nv; i++) {
		qs[i].k = nk == 0 ? 10 : ks[nk == 1 ? 0 : i];
		qs[i].n = parse_floats(vecs[i], &qs[i].vec);
		if (qs[i].n < 0)
			return ctl_usage_error(ctx, "--vector%s: not a list of finite numbers",
					       nv > 1 ? " (one of them)" : "");
	}
	return 0;
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
	const char *filter_json = NULL, *file = NULL;
	/* at most one --vector and one --k per argument */
	char **vecs = calloc((size_t)argc + 1, sizeof(*vecs));
	uint32_t *ks = calloc((size_t)argc + 1, sizeof(*ks));
	vquery *qs = calloc((size_t)argc + 1, sizeof(*qs));
	size_t nv = 0, nk = 0;
	uint32_t threads = 0, ef = 0;
	int c, rc = 0;
	if (!vecs || !ks || !qs) {
		rc = ctl_fail(ctx, EXIT_IO, NULL, "out of memory");
		goto out;
	}
	optind = 1;
	while (!rc && (c = getopt_long(argc, argv, "k:", opts, NULL)) != -1) {
		switch (c) {
		case 'v': vecs[nv++] = optarg; break;
		case 'k':
			if (!parse_u32(optarg, 1u << 30, &ks[nk]) || ks[nk] == 0)
				rc = ctl_usage_error(ctx, "--k must be a positive integer");
			nk++;
			break;
		case 'f': filter_json = optarg; break;
		case 'F': file = optarg; break;
		case 'm': meta = true; break;
		case 'e': /* search is exact: checked, no effect */
			if (!parse_u32(optarg, 1u << 20, &ef) || ef == 0)
				rc = ctl_usage_error(ctx, "--ef must be a positive integer");
			break;
		case 't':
			if (!parse_u32(optarg, 1024, &threads))
				rc = ctl_usage_error(ctx, "--threads must be 0..1024");
			break;
		default: rc = EXIT_USAGE; break;
		}
	}
	if (rc)
		goto out;
	if (optind == argc - 1 && file && !nv && !filter_json && !meta) {
		if (nk > 1)
			rc = ctl_usage_error(ctx, "--file takes one --k (the default k of its queries)");
		else
			rc = query_file(ctx, argv[optind], file, nk ? ks[0] : 10, threads);
		goto out;
	}
	if (file && meta) {
		rc = ctl_usage_error(ctx, "--meta works with --vector, not with --file");
		goto out;
	}
	if (optind != argc - 1 || !nv || file) {
		rc = ctl_usage_error(ctx, "query needs STORE and --vector (one or more), or STORE and --file FILE (one query per line; \"-\": standard input)");
		goto out;
	}
	if ((rc = parse_queries(ctx, vecs, nv, ks, nk, qs)))
		goto out;
	rvf_error err;
	rvf_filter *f = NULL;
	/* Checked here in both modes, so a bad filter fails the same way. */
	if (filter_json && !(f = rvf_filter_parse(filter_json, &err)))
		rc = ctl_report(ctx, "--filter", &err);
	else if (mnt_detect(argv[optind]))
		rc = query_mount(ctx, argv[optind], qs, nv, filter_json, meta);
	else
		rc = query_store(ctx, argv[optind], qs, nv, f, threads, meta);
	rvf_filter_free(f);
out:
	for (size_t i = 0; qs && i < nv; i++) {
		free(qs[i].vec);
		free(qs[i].hits);
	}
	free(qs);
	free(ks);
	free(vecs);
	return rc;
}
