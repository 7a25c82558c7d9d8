/* rvfctl serve: the store over HTTP with upstream's v1 API
 * (crates/rvf/rvf-server/src/http.rs field names): POST /v1/ingest,
 * /v1/query, /v1/delete, GET /v1/status, /v1/health; our GET /v1/segments
 * and /v1/witness feed the page at / (the store's own DASHBOARD when it
 * has one).  libmicrohttpd serves (loaded at serve's start: httpd_loader.h);
 * requests are handled one at a time.
 * On a mount point reads come from the store file (read-only, refreshed)
 * and changes go through the daemon (ingest/ and control). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "httpd_loader.h"
#include "mount.h"
#include "serve_page.h"

#define DEFAULT_MAX_BODY (16u << 20)

static const httpd_api *mhd; /* set by cmd_serve before the server starts */

typedef struct server {
	ctl_ctx *ctx;
	const char *mnt;          /* mount point, or NULL */
	char *file;               /* the store file */
	rvf_store *store;         /* file: read-write; mount: read-only */
	pthread_mutex_t mu;
	size_t max_body;
	unsigned seq;             /* ingest file names through a mount */
} server;

typedef struct body {
	char *data;
	size_t len;
	bool too_large;
} body;

/* ------------------------------------------------------------ replies */

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
			     const void *data, size_t len)
{
	struct MHD_Response *r = mhd->create_response_from_buffer(len, (void *)data,
								 MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	mhd->add_response_header(r, "Content-Type", type);
	mhd->add_response_header(r, "X-Content-Type-Options", "nosniff");
	mhd->add_response_header(r, "Cache-Control", "no-store");
	enum MHD_Result ret = mhd->queue_response(c, status, r);
	mhd->destroy_response(r);
	return ret;
}

static enum MHD_Result reply_json(struct MHD_Connection *c, unsigned status, json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!s)
		return MHD_NO;
	enum MHD_Result r = reply(c, status, "application/json", s, strlen(s));
	free(s);
	return r;
}

/* As upstream's ErrorBody: {"error": message, "code": n}. */
static enum MHD_Result reply_error(struct MHD_Connection *c, unsigned status, const char *msg)
{
	return reply_json(c, status, json_pack("{s:s,s:i}", "error", msg, "code", (int)status));
}

static unsigned http_status(rvf_code code)
{
	switch (code) {
	case RVF_E_DIMENSION_MISMATCH:
	case RVF_E_INVALID_ARGUMENT:
	case RVF_E_FILTER:
		return 400;
	case RVF_E_READ_ONLY:
		return 403;
	case RVF_E_LOCK_HELD:
		return 409;
	case RVF_E_NOT_FOUND:
		return 404;
	default:
		return 500;
	}
}

/* ------------------------------------------------------------ reading */

static rvf_view *current(server *sv)
{
	if (sv->mnt) {
		/* The daemon makes its changes durable at fsync (they may be
		 * deferred); then the file shows them. */
		int fd = open(sv->mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0) {
			fsync(fd);
			close(fd);
		}
		rvf_store_refresh(sv->store, NULL);
	}
	return rvf_store_view(sv->store);
}

static json_t *status_json(server *sv)
{
	rvf_view *v = current(sv);
	const rvf_info *i = rvf_view_info(v);
	json_t *o = json_pack("{s:I,s:i,s:I,s:i,s:i,s:f,s:b,s:i,s:s,s:I}",
			      "total_vectors", (json_int_t)i->visible,
			      "total_segments", (int)i->directory_len,
			      "file_size", (json_int_t)i->file_size,
			      "current_epoch", (int)i->epoch,
			      "profile_id", (int)i->profile,
			      "dead_space_ratio", i->file_size ? (double)i->dead_bytes / (double)i->file_size : 0.0,
			      "read_only", sv->mnt ? 0 : (int)i->read_only, /* a mount: changes go through the daemon */
			      "dimension", (int)i->dimension,
			      "metric", rvf_metric_name(i->metric),
			      "deleted", (json_int_t)i->deleted);
	rvf_view_release(v);
	return o;
}

static json_t *segments_json(server *sv)
{
	rvf_view *v = current(sv);
	json_t *a = json_array();
	for (size_t k = 0; k < rvf_view_segment_count(v); k++) {
		const rvf_segment *s = rvf_view_segment(v, k);
		const char *n = rvf_segment_type_name(s->type);
		char t[16];
		snprintf(t, sizeof(t), "type-%02x", s->type);
		json_array_append_new(a, json_pack("{s:s,s:I,s:I,s:I,s:s,s:b}",
						   "type", s->gap ? "gap" : n ? n : t,
						   "id", (json_int_t)s->id,
						   "offset", (json_int_t)s->offset,
						   "payload_length", (json_int_t)s->payload_length,
						   "content_hash_algo",
						   s->readable ? rvf_hash_algo_name((rvf_hash_algo)s->hash_algo) : "unreadable",
						   "hash_ok", s->hash_ok));
	}
	json_t *o = json_pack("{s:I,s:o}", "file_size", (json_int_t)rvf_view_info(v)->file_size,
			      "segments", a);
	rvf_view_release(v);
	return o;
}

static json_t *witness_json(server *sv)
{
	rvf_view *v = current(sv);
	json_t *a = json_array();
	for (size_t k = 0; k < rvf_view_witness_count(v); k++) {
		const rvf_witness *w = rvf_view_witness(v, k);
		char stamp[RVF_WITNESS_TIME_SIZE];
		rvf_witness_time(w, false, stamp);
		json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:s,s:I}", "time", stamp, "kind",
						   rvf_witness_kind(w->type),
						   "action", w->action,
						   "link", rvf_witness_link(w),
						   "offset", (json_int_t)w->segment->offset));
	}
	rvf_view_release(v);
	return json_pack("{s:o}", "entries", a);
}

/* ------------------------------------------------------------ changes */

static bool json_u64(json_t *j, uint64_t *out)
{
	if (!json_is_integer(j) || json_integer_value(j) < 0)
		return false;
	*out = (uint64_t)json_integer_value(j);
	return true;
}

static enum MHD_Result do_ingest(server *sv, struct MHD_Connection *c, json_t *req)
{
	json_t *vecs = json_object_get(req, "vectors"), *ids = json_object_get(req, "ids");
	if (!json_is_array(vecs) || !json_is_array(ids))
		return reply_error(c, 400, "ingest needs \"vectors\" (arrays of numbers) and \"ids\"");
	if (json_object_get(req, "metadata"))
		return reply_error(c, 400, "metadata by field id is not supported: use rvfctl ingest with .jsonl");
	size_t n = json_array_size(vecs);
	if (n != json_array_size(ids))
		return reply_error(c, 400, "vectors and ids must have the same length");
	rvf_view *v = current(sv);
	uint32_t dim = rvf_view_info(v)->dimension;
	rvf_view_release(v);
	uint64_t *idv = malloc(sizeof(uint64_t) * (n ? n : 1));
	float *fv = malloc(sizeof(float) * (n ? n : 1) * (dim ? dim : 1));
	const char *bad = !idv || !fv ? "out of memory" : NULL;
	for (size_t i = 0; !bad && i < n; i++) {
		json_t *row = json_array_get(vecs, i);
		if (!json_u64(json_array_get(ids, i), &idv[i]))
			bad = "ids must be non-negative integers";
		else if (!json_is_array(row) || json_array_size(row) != dim)
			bad = "a vector does not have the store's dimension";
		for (size_t d = 0; !bad && d < dim; d++) {
			json_t *x = json_array_get(row, d);
			if (!json_is_number(x))
				bad = "vector components must be numbers";
			else
				fv[i * dim + d] = (float)json_number_value(x);
		}
	}
	enum MHD_Result r;
	if (bad) {
		r = reply_error(c, 400, bad);
	} else if (!sv->mnt) {
		rvf_error err;
		rvf_commit_info info = { 0 };
		if (n && rvf_store_ingest(sv->store, n, idv, fv, NULL, NULL, &info, &err) != RVF_OK)
			r = reply_error(c, http_status(err.code), err.message);
		else
			r = reply_json(c, 200, json_pack("{s:I,s:i,s:i}", "accepted", (json_int_t)(n ? info.accepted : 0),
							 "rejected", 0, "epoch", (int)info.epoch));
	} else {
		/* Through the daemon: one .jsonl file in ingest/, committed at close. */
		char *name = NULL;
		json_t *lines = json_array();
		if (asprintf(&name, "%s/ingest/serve-%d-%u.jsonl", sv->mnt, (int)getpid(), sv->seq++) < 0)
			name = NULL;
		FILE *f = name ? fopen(name, "w") : NULL;
		for (size_t i = 0; f && i < n; i++) {
			json_t *o = json_pack("{s:I,s:O}", "id", (json_int_t)idv[i], "vector",
					      json_array_get(vecs, i));
			char *s = json_dumps(o, JSON_COMPACT);
			if (s)
				fprintf(f, "%s\n", s);
			free(s);
			json_decref(o);
		}
		json_decref(lines);
		bool ok = f && !ferror(f);
		if (f && fclose(f) != 0)
			ok = false;
		if (!ok) {
			char *why = mnt_new_error(sv->mnt, 0);
			r = reply_error(c, 400, why ? why : strerror(errno));
			free(why);
		} else {
			json_t *st = status_json(sv);
			r = reply_json(c, 200, json_pack("{s:I,s:i,s:O}", "accepted", (json_int_t)n,
							 "rejected", 0, "epoch",
							 json_object_get(st, "current_epoch")));
			json_decref(st);
		}
		free(name);
	}
	free(idv);
	free(fv);
	return r;
}

static enum MHD_Result do_query(server *sv, struct MHD_Connection *c, json_t *req)
{
	json_t *vec = json_object_get(req, "vector");
	uint64_t k;
	if (!json_is_array(vec) || !json_u64(json_object_get(req, "k"), &k))
		return reply_error(c, 400, "query needs \"vector\" and \"k\"");
	if (k == 0)
		return reply_error(c, 400, "k must be > 0");
	rvf_view *v = current(sv);
	const rvf_info *i = rvf_view_info(v);
	size_t dim = i->dimension;
	if (json_array_size(vec) != dim) {
		rvf_view_release(v);
		return reply_error(c, 400, "DimensionMismatch: the vector does not have the store's dimension");
	}
	if (k > i->visible)
		k = i->visible ? i->visible : 1;
	float *q = malloc(sizeof(float) * (dim ? dim : 1));
	rvf_hit *hits = malloc(sizeof(rvf_hit) * k);
	size_t count = 0;
	enum MHD_Result r;
	const char *bad = !q || !hits ? "out of memory" : NULL;
	for (size_t d = 0; !bad && d < dim; d++) {
		json_t *x = json_array_get(vec, d);
		if (!json_is_number(x))
			bad = "vector components must be numbers";
		else
			q[d] = (float)json_number_value(x);
	}
	rvf_error err;
	if (bad) {
		r = reply_error(c, 400, bad);
	} else if (rvf_view_search(v, q, 1, k, NULL, hits, &count, &err) != RVF_OK) {
		r = reply_error(c, http_status(err.code), err.message);
	} else {
		json_t *a = json_array();
		for (size_t h = 0; h < count; h++)
			json_array_append_new(a, json_pack("{s:o,s:o}", "id", json_id(hits[h].id),
							   "distance", json_float(hits[h].distance)));
		r = reply_json(c, 200, json_pack("{s:o}", "results", a));
	}
	free(q);
	free(hits);
	rvf_view_release(v);
	return r;
}

static enum MHD_Result do_delete(server *sv, struct MHD_Connection *c, json_t *req)
{
	json_t *ids = json_object_get(req, "ids");
	size_t n = json_array_size(ids);
	if (!json_is_array(ids) || n == 0)
		return reply_error(c, 400, "ids must not be empty");
	uint64_t *idv = malloc(sizeof(uint64_t) * n);
	if (!idv)
		return reply_error(c, 500, "out of memory");
	for (size_t i = 0; i < n; i++)
		if (!json_u64(json_array_get(ids, i), &idv[i])) {
			free(idv);
			return reply_error(c, 400, "ids must be non-negative integers");
		}
	enum MHD_Result r;
	if (!sv->mnt) {
		rvf_error err;
		rvf_commit_info info = { 0 };
		if (rvf_store_delete(sv->store, n, idv, &info, &err) != RVF_OK)
			r = reply_error(c, http_status(err.code), err.message);
		else
			r = reply_json(c, 200, json_pack("{s:I,s:i}", "deleted", (json_int_t)info.accepted,
							 "epoch", (int)info.epoch));
	} else {
		json_t *before = status_json(sv);
		char *line = malloc(8 + 21 * n);
		size_t len = line ? (size_t)sprintf(line, "delete") : 0;
		for (size_t i = 0; line && i < n; i++)
			len += (size_t)sprintf(line + len, " %llu", (unsigned long long)idv[i]);
		int rc = line ? mnt_command(sv->ctx, sv->mnt, "delete", line) : EXIT_IO;
		free(line);
		if (rc) {
			r = reply_error(c, 400, "the daemon refused the delete (see the mount's errors file)");
		} else {
			json_t *after = status_json(sv);
			json_int_t b = json_integer_value(json_object_get(before, "total_vectors"));
			json_int_t a = json_integer_value(json_object_get(after, "total_vectors"));
			r = reply_json(c, 200, json_pack("{s:I,s:O}", "deleted", b > a ? b - a : 0,
							 "epoch", json_object_get(after, "current_epoch")));
			json_decref(after);
		}
		json_decref(before);
	}
	free(idv);
	return r;
}

/* ------------------------------------------------------------ pages */

static const char *content_type(const char *path)
{
	static const struct { const char *ext, *type; } types[] = {
		{ ".html", "text/html; charset=utf-8" }, { ".htm", "text/html; charset=utf-8" },
		{ ".js", "text/javascript" }, { ".mjs", "text/javascript" }, { ".css", "text/css" },
		{ ".json", "application/json" }, { ".svg", "image/svg+xml" }, { ".png", "image/png" },
		{ ".jpg", "image/jpeg" }, { ".wasm", "application/wasm" }, { ".txt", "text/plain" },
	};
	const char *dot = strrchr(path, '.');
	for (size_t i = 0; dot && i < sizeof(types) / sizeof(types[0]); i++)
		if (!strcasecmp(dot, types[i].ext))
			return types[i].type;
	return "application/octet-stream";
}

/* GET of / or a dashboard file. */
static enum MHD_Result do_page(server *sv, struct MHD_Connection *c, const char *url)
{
	rvf_view *v = current(sv);
	rvf_dashboard *d = NULL;
	enum MHD_Result r = MHD_NO;
	bool done = false;
	if (rvf_view_dashboard(v, &d, NULL) == RVF_OK) {
		const char *want = !strcmp(url, "/") ? "index.html" : url + 1;
		for (size_t i = 0; i < d->nfiles && !done; i++)
			if (!strcmp(d->files[i].path, want)) {
				r = reply(c, 200, content_type(want), d->files[i].data,
					  (size_t)d->files[i].size);
				done = true;
			}
		rvf_dashboard_free(d);
	}
	rvf_view_release(v);
	if (done)
		return r;
	if (!strcmp(url, "/"))
		return reply(c, 200, "text/html; charset=utf-8", SERVE_PAGE, strlen(SERVE_PAGE));
	return reply_error(c, 404, "not found");
}

/* ------------------------------------------------------------ dispatch */

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *upload,
			      size_t *upload_size, void **con_cls)
{
	(void)version;
	server *sv = cls;
	bool post = !strcmp(method, "POST");
	if (!*con_cls) {
		body *b = calloc(1, sizeof(*b));
		if (!b)
			return MHD_NO;
		*con_cls = b;
		return MHD_YES;
	}
	body *b = *con_cls;
	if (*upload_size) {
		if (!b->too_large && b->len + *upload_size <= sv->max_body) {
			char *n = realloc(b->data, b->len + *upload_size + 1);
			if (n) {
				memcpy(n + b->len, upload, *upload_size);
				b->data = n;
				b->len += *upload_size;
				b->data[b->len] = '\0';
			} else {
				b->too_large = true;
			}
		} else {
			b->too_large = true;
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (b->too_large)
		return reply_error(c, 413, "request body too large");
	enum MHD_Result r;
	pthread_mutex_lock(&sv->mu);
	if (!strcmp(method, "GET") || !strcmp(method, "HEAD")) {
		if (!strcmp(url, "/v1/health"))
			r = reply_json(c, 200, json_pack("{s:s}", "status", "ok"));
		else if (!strcmp(url, "/v1/status"))
			r = reply_json(c, 200, status_json(sv));
		else if (!strcmp(url, "/v1/segments"))
			r = reply_json(c, 200, segments_json(sv));
		else if (!strcmp(url, "/v1/witness"))
			r = reply_json(c, 200, witness_json(sv));
		else if (!strncmp(url, "/v1/", 4))
			r = reply_error(c, 404, "not found");
		else
			r = do_page(sv, c, url);
	} else if (post && (!strcmp(url, "/v1/ingest") || !strcmp(url, "/v1/query") ||
			    !strcmp(url, "/v1/delete"))) {
		json_error_t je;
		json_t *req = b->data ? json_loadb(b->data, b->len, 0, &je) : NULL;
		if (!json_is_object(req))
			r = reply_error(c, 400, "the body must be a JSON object");
		else if (!strcmp(url, "/v1/ingest"))
			r = do_ingest(sv, c, req);
		else if (!strcmp(url, "/v1/query"))
			r = do_query(sv, c, req);
		else
			r = do_delete(sv, c, req);
		json_decref(req);
	} else {
		r = reply_error(c, 405, "method not allowed");
	}
	pthread_mutex_unlock(&sv->mu);
	return r;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
		      enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)c;
	(void)toe;
	body *b = *con_cls;
	if (b) {
		free(b->data);
		free(b);
	}
	*con_cls = NULL;
}

int cmd_serve(ctl_ctx *ctx, int argc, char **argv)
{
	const char *path = NULL, *bind = "127.0.0.1";
	uint32_t port = 8080, max_body = DEFAULT_MAX_BODY;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--port") && i + 1 < argc) {
			if (!parse_u32(argv[++i], 65535, &port))
				return ctl_usage_error(ctx, "--port needs 0..65535");
		} else if (!strcmp(a, "--bind") && i + 1 < argc) {
			bind = argv[++i];
		} else if (!strcmp(a, "--max-body") && i + 1 < argc) {
			if (!parse_u32(argv[++i], 1u << 30, &max_body) || !max_body)
				return ctl_usage_error(ctx, "--max-body needs 1..1073741824 bytes");
		} else if (a[0] == '-' || path) {
			return ctl_usage_error(ctx, "usage: serve STORE [--port N] [--bind ADDR] [--max-body BYTES]");
		} else {
			path = a;
		}
	}
	if (!path)
		return ctl_usage_error(ctx, "serve needs STORE");
	struct sockaddr_storage ss = { 0 };
	unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
	struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, bind, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)port);
	} else if (inet_pton(AF_INET6, bind, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		flags |= MHD_USE_IPv6;
	} else {
		return ctl_usage_error(ctx, "--bind needs a numeric IPv4 or IPv6 address, not '%s'", bind);
	}
	char why[512];
	if (!(mhd = httpd_load(why, sizeof(why))))
		return ctl_fail(ctx, EXIT_OTHER, NULL, "%s", why);
	server sv = { .ctx = ctx, .max_body = max_body };
	pthread_mutex_init(&sv.mu, NULL);
	int rc;
	rvf_error err;
	if (mnt_detect(path)) {
		sv.mnt = path;
		sv.file = mnt_store_path(path);
		if (!sv.file)
			return ctl_fail(ctx, EXIT_OTHER, NULL, "%s: cannot find the mounted store file", path);
		if (rvf_store_open(sv.file, RVF_OPEN_READ_ONLY, &sv.store, &err) != RVF_OK) {
			free(sv.file);
			return ctl_report(ctx, path, &err);
		}
	} else {
		sv.file = strdup(path);
		if ((rc = ctl_open(ctx, path, true, &sv.store))) {
			free(sv.file);
			return rc;
		}
	}
	/* Signals are taken by sigwait below, not by the server's thread. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	struct MHD_Daemon *d = mhd->start_daemon(flags, (uint16_t)port, NULL, NULL, handle, &sv,
						MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
						MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
						MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
						MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
						MHD_OPTION_END);
	if (!d) {
		rvf_store_close(sv.store);
		free(sv.file);
		return ctl_fail(ctx, EXIT_IO, NULL, "cannot listen on %s port %u: %s", bind, port,
				strerror(errno));
	}
	const union MHD_DaemonInfo *di = mhd->get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	unsigned real = di ? di->port : port;
	char url[128];
	snprintf(url, sizeof(url), strchr(bind, ':') ? "http://[%s]:%u/" : "http://%s:%u/", bind, real);
	if (ctx->json)
		ctl_print_json(json_pack("{s:s,s:s,s:i}", "status", "serving", "url", url, "port", (int)real));
	else
		printf("serving %s on %s (Ctrl-C stops)\n", path, url);
	fflush(stdout);
	int sig;
	sigwait(&sigs, &sig);
	mhd->stop_daemon(d);
	rvf_store_close(sv.store);
	free(sv.file);
	pthread_mutex_destroy(&sv.mu);
	return 0;
}
