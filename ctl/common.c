/* common.c - error reporting, opening and parsing for rvfctl. */
#include "common.h"
#include "mount.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int ctl_exit_code(rvf_code code)
{
	switch (code) {
	case RVF_OK:
		return 0;
	case RVF_E_IO:
	case RVF_E_LOCK_HELD:
	case RVF_E_NO_MEMORY:
		return EXIT_IO;
	case RVF_E_EXISTS:
	case RVF_E_READ_ONLY:
	case RVF_E_NOT_FOUND:
		return EXIT_OTHER;
	default:
		return EXIT_REFUSED;
	}
}

int ctl_errno_exit(int e)
{
	switch (e) {
	case EINVAL:
	case EBADMSG:
	case EFBIG:
	case E2BIG:
	case ERANGE:
		return EXIT_REFUSED;
	case EROFS:
	case ENOENT:
	case EEXIST:
	case EACCES:
	case EPERM:
	case ENOTDIR:
	case EISDIR:
		return EXIT_OTHER;
	default:
		return EXIT_IO;
	}
}

static const char *exit_name(int code)
{
	switch (code) {
	case EXIT_USAGE: return "usage";
	case EXIT_REFUSED: return "refused";
	case EXIT_IO: return "io";
	default: return "other";
	}
}

static int vfail(ctl_ctx *ctx, int code, json_t *extra, const char *rvf_name,
		 const char *fmt, va_list ap)
{
	char msg[1200];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	fprintf(stderr, "rvfctl: %s\n", msg);
	if (ctx && ctx->json) {
		json_t *o = json_pack("{s:s,s:i,s:s}", "error", msg, "exit", code,
				      "kind", exit_name(code));
		if (rvf_name)
			json_object_set_new(o, "code", json_string(rvf_name));
		if (extra)
			json_object_update(o, extra);
		ctl_print_json(o);
	}
	json_decref(extra);
	return code;
}

int ctl_fail(ctl_ctx *ctx, int code, json_t *extra, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = vfail(ctx, code, extra, NULL, fmt, ap);
	va_end(ap);
	return rc;
}

static int fail_named(ctl_ctx *ctx, int code, const char *name,
		      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail_named(ctl_ctx *ctx, int code, const char *name,
		      const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = vfail(ctx, code, NULL, name, fmt, ap);
	va_end(ap);
	return rc;
}

int ctl_error_exit(const rvf_error *err)
{
	if (err->code == RVF_E_IO && ctl_errno_exit(err->sys_errno) == EXIT_OTHER)
		return EXIT_OTHER;
	return ctl_exit_code(err->code);
}

int ctl_report(ctl_ctx *ctx, const char *what, const rvf_error *err)
{
	return fail_named(ctx, ctl_error_exit(err), rvf_code_name(err->code),
			  "%s%s%s (%s)", what ? what : "", what ? ": " : "",
			  err->message, rvf_code_name(err->code));
}

int ctl_usage_error(ctl_ctx *ctx, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = vfail(ctx, EXIT_USAGE, NULL, NULL, fmt, ap);
	va_end(ap);
	return rc;
}

void ctl_print_json(json_t *o)
{
	json_dumpf(o, stdout, JSON_COMPACT | JSON_ENSURE_ASCII);
	putchar('\n');
	fflush(stdout);
	json_decref(o);
}

json_t *json_id(uint64_t id)
{
	if (id > (1ull << 53)) {
		char buf[24];
		snprintf(buf, sizeof(buf), "%llu", (unsigned long long)id);
		return json_string(buf);
	}
	return json_integer((json_int_t)id);
}

json_t *json_hex(const uint8_t *p, size_t n)
{
	char *buf = malloc(2 * n + 1);
	if (!buf)
		return json_null();
	hex_encode(p, n, buf);
	json_t *j = json_string(buf);
	free(buf);
	return j;
}

int ctl_open(ctl_ctx *ctx, const char *path, bool writable, rvf_store **out)
{
	rvf_error err;
	rvf_code rc = rvf_store_open_wait(path, writable ? 0 : RVF_OPEN_READ_ONLY,
					  ctx->wait_ms, out, &err);
	if (rc == RVF_OK) {
		if (writable && !ctx->children_noted) {
			ctl_children_note(ctx, path, "writing to");
			ctx->children_noted = true;
		}
		return 0;
	}
	char *mnt = rc == RVF_E_LOCK_HELD ? mnt_of_store(path) : NULL;
	if (mnt) {
		/* The usual cause: it is mounted.  Say where to go instead. */
		size_t n = strlen(err.message);
		snprintf(err.message + n, sizeof(err.message) - n,
			 "; it is mounted on %s: give rvfctl that path", mnt);
		free(mnt);
	}
	return ctl_report(ctx, path, &err);
}

void ctl_close_written(ctl_ctx *ctx, const char *path, rvf_store *s)
{
	rvf_compact_policy p = { .enabled = ctx->cfg.compact_auto,
				 .ratio = ctx->cfg.compact_ratio,
				 .min_dead = (uint64_t)ctx->cfg.compact_min_mb << 20 };
	rvf_view *v = rvf_store_view(s);
	bool due = !rvf_store_read_only(s) && rvf_view_wants_compaction(v, &p);
	rvf_view_release(v);
	/* Branch children read a prefix of this file: never rewrite it
	 * under them unasked (rvfctl compact --force does). */
	rvf_children ch;
	if (due && rvf_branch_children(path, &ch, NULL) == RVF_OK) {
		due = ch.count == 0;
		rvf_children_free(&ch);
	}
	rvf_error err;
	if (due && rvf_store_compact(s, NULL, &err) != RVF_OK && !ctx->json)
		fprintf(stderr, "rvfctl: %s: automatic compaction failed (the changes are committed): %s\n",
			path, err.message);
	rvf_store_close(s);
}

bool parse_u64(const char *s, uint64_t *out)
{
	return s && rvf_parse_id(s, strlen(s), out); /* librvf's one id rule */
}

bool parse_u32(const char *s, uint32_t max, uint32_t *out)
{
	uint64_t v;
	if (!parse_u64(s, &v) || v > max)
		return false;
	*out = (uint32_t)v;
	return true;
}

long parse_floats(const char *s, float **out)
{
	/* librvf's one float-list rule: count first, then fill. */
	long n = rvf_parse_floats(s, strlen(s), NULL, 0, NULL);
	if (n < 0)
		return -1;
	float *v = malloc((size_t)(n ? n : 1) * sizeof(float));
	if (!v)
		return -1;
	rvf_parse_floats(s, strlen(s), v, (size_t)n, NULL);
	*out = v;
	return n;
}

static bool is_sep(char c)
{
	return c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

long parse_ids(const char *s, uint64_t **out)
{
	size_t n = 0, cap = 16;
	uint64_t *v = malloc(cap * sizeof(uint64_t));
	if (!v)
		return -1;
	const char *p = s;
	for (;;) {
		while (*p && is_sep(*p))
			p++;
		if (!*p)
			break;
		char tok[32];
		size_t len = 0;
		while (p[len] && !is_sep(p[len]))
			len++;
		uint64_t id;
		if (len >= sizeof(tok)) {
			free(v);
			return -1;
		}
		memcpy(tok, p, len);
		tok[len] = '\0';
		if (!parse_u64(tok, &id)) {
			free(v);
			return -1;
		}
		if (n == cap) {
			uint64_t *nv = realloc(v, (cap *= 2) * sizeof(uint64_t));
			if (!nv) {
				free(v);
				return -1;
			}
			v = nv;
		}
		v[n++] = id;
		p += len;
	}
	*out = v;
	return (long)n;
}

void print_float(FILE *f, float v)
{
	char buf[RVF_FLOAT_TEXT_MAX];
	rvf_format_float(v, buf);
	fputs(buf, f);
}

json_t *json_float(float v)
{
	/* jansson prints reals with %.17g: go through the shortest text
	 * that reads back as the same float32. */
	char buf[RVF_FLOAT_TEXT_MAX];
	rvf_format_float(v, buf);
	return json_real(strtod(buf, NULL));
}

void hex_encode(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

char *read_fd(int fd, size_t *len)
{
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);
	while (buf) {
		if (n + 1 >= cap) {
			char *g = realloc(buf, cap *= 2);
			if (!g) {
				free(buf);
				buf = NULL;
				errno = ENOMEM;
				break;
			}
			buf = g;
		}
		ssize_t r = read(fd, buf + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			free(buf);
			buf = NULL;
			errno = e;
			break;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (buf) {
		buf[n] = '\0';
		if (len)
			*len = n;
	}
	return buf;
}

unsigned char *read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	char *buf = read_fd(fd, len);
	int e = errno;
	close(fd);
	errno = e;
	return (unsigned char *)buf;
}

int write_file(ctl_ctx *ctx, const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f) != 0)
		return ctl_fail(ctx, EXIT_IO, NULL, "%s: %s", path, strerror(errno));
	return 0;
}

void ref_type_name(uint8_t t, char out[24])
{
	static const char *names[] = {
		[0x00] = "invalid", [0x01] = "vec", [0x02] = "index",
		[0x03] = "overlay", [0x04] = "journal", [0x05] = "manifest",
		[0x06] = "quant", [0x07] = "meta", [0x08] = "hot",
		[0x09] = "sketch", [0x0A] = "witness", [0x0B] = "profile",
		[0x0C] = "crypto", [0x0D] = "meta_idx", [0x0E] = "kernel",
		[0x0F] = "ebpf",
	};
	if (t < sizeof(names) / sizeof(names[0]) && names[t])
		snprintf(out, 24, "%s", names[t]);
	else if (t == 0x20)
		snprintf(out, 24, "cow_map");
	else if (t == 0x22)
		snprintf(out, 24, "membership");
	else
		snprintf(out, 24, "unknown(0x%02x)", t);
}

char *absolute_path(const char *path)
{
	char buf[PATH_MAX];
	if (realpath(path, buf))
		return strdup(buf);
	char *d = strdup(path), *b = strdup(path), *out = NULL;
	if (d && b && realpath(dirname(d), buf) &&
	    asprintf(&out, "%s/%s", buf, basename(b)) < 0)
		out = NULL;
	free(d);
	free(b);
	return out;
}
