/* test_import.c - rvf_import_fd and the format helpers, on temp files and
 * pipes.  Exits 0 when every CHECK holds. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "rvf.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

/* The import must have failed with InvalidArgument and this exact text. */
#define CHECK_ERR(r, text)                                                  \
	do {                                                                \
		if ((r)->rc != RVF_E_INVALID_ARGUMENT ||                    \
		    strcmp((r)->err.message, (text))) {                     \
			fprintf(stderr, "%s:%d: expected error \"%s\", got " \
				"%d \"%s\"\n", __FILE__, __LINE__, (text),  \
				(int)(r)->rc, (r)->rc ? (r)->err.message : ""); \
			failures++;                                         \
		}                                                           \
	} while (0)

/* As CHECK_ERR, for messages that end in jansson's wording. */
#define CHECK_ERR_PREFIX(r, text)                                           \
	do {                                                                \
		if ((r)->rc != RVF_E_INVALID_ARGUMENT ||                    \
		    strncmp((r)->err.message, (text), strlen(text))) {      \
			fprintf(stderr, "%s:%d: expected error \"%s...\", " \
				"got %d \"%s\"\n", __FILE__, __LINE__,      \
				(text), (int)(r)->rc,                       \
				(r)->rc ? (r)->err.message : "");           \
			failures++;                                         \
		}                                                           \
	} while (0)

#define CHECK_OK(r)                                                         \
	do {                                                                \
		if ((r)->rc != RVF_OK) {                                    \
			fprintf(stderr, "%s:%d: import failed: %s\n",       \
				__FILE__, __LINE__, (r)->err.message);      \
			failures++;                                         \
		}                                                           \
	} while (0)

static char tmpdir[64];

/* ------------------------------------------------------------------ */
/* A growable byte string                                              */
/* ------------------------------------------------------------------ */

struct buf {
	char *p;
	size_t n, cap;
};

static void buf_add(struct buf *b, const void *d, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		b->cap = (b->n + n + 1) * 2;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			abort();
	}
	memcpy(b->p + b->n, d, n);
	b->n += n;
	b->p[b->n] = '\0';
}

static void buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void buf_printf(struct buf *b, const char *fmt, ...)
{
	char tmp[4096];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		abort();
	buf_add(b, tmp, (size_t)n);
}

static void buf_free(struct buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* ------------------------------------------------------------------ */
/* A sink that copies everything                                       */
/* ------------------------------------------------------------------ */

struct field {
	char *name;
	rvf_value v;
	char *str;	/* copy of a string value */
};

struct got {
	uint32_t dim;
	size_t n, cap;
	uint64_t *ids;
	float *vec;
	size_t *mstart;		/* n + 1 entries into meta */
	struct field *meta;
	size_t nmeta, capmeta;
	size_t calls, max_batch;
	bool ids_null, ids_present, meta_ok;
	size_t fail_on_call;	/* 1-based call that returns an error; 0 none */
};

static rvf_code sink(void *ctx, size_t n, const uint64_t *ids,
		     const float *vectors, const rvf_meta_field *meta,
		     const size_t *meta_start, rvf_error *err)
{
	struct got *g = ctx;
	size_t i, j;

	g->calls++;
	if (g->fail_on_call && g->calls == g->fail_on_call) {
		snprintf(err->message, sizeof(err->message), "sink says no");
		err->code = RVF_E_IO;
		err->sys_errno = ENOSPC;
		return RVF_E_IO;
	}
	if (n == 0)
		g->meta_ok = false; /* never called empty */
	if (n > g->max_batch)
		g->max_batch = n;
	if (ids)
		g->ids_present = true;
	else
		g->ids_null = true;
	if (meta && !meta_start)
		g->meta_ok = false;
	if (g->n + n > g->cap) {
		g->cap = (g->n + n) * 2;
		g->ids = realloc(g->ids, g->cap * sizeof(*g->ids));
		g->vec = realloc(g->vec, g->cap * g->dim * sizeof(float));
		g->mstart = realloc(g->mstart, (g->cap + 1) * sizeof(size_t));
		if (!g->ids || !g->vec || !g->mstart)
			abort();
	}
	memcpy(g->vec + g->n * g->dim, vectors, n * g->dim * sizeof(float));
	for (i = 0; i < n; i++) {
		size_t a = meta ? meta_start[i] : 0, b = meta ? meta_start[i + 1] : 0;

		if (a > b)
			g->meta_ok = false;
		g->ids[g->n + i] = ids ? ids[i] : UINT64_MAX;
		g->mstart[g->n + i] = g->nmeta;
		for (j = a; j < b; j++) {
			struct field *f;

			if (g->nmeta == g->capmeta) {
				g->capmeta = g->capmeta ? g->capmeta * 2 : 64;
				g->meta = realloc(g->meta,
						  g->capmeta * sizeof(*g->meta));
				if (!g->meta)
					abort();
			}
			f = &g->meta[g->nmeta++];
			f->name = strdup(meta[j].name);
			f->v = meta[j].value;
			f->str = NULL;
			if (f->v.type == RVF_VALUE_STRING) {
				f->str = malloc(f->v.u.str.len + 1);
				memcpy(f->str, f->v.u.str.ptr, f->v.u.str.len);
				f->str[f->v.u.str.len] = '\0';
			}
		}
	}
	g->n += n;
	g->mstart[g->n] = g->nmeta;
	return RVF_OK;
}

static void got_free(struct got *g)
{
	size_t i;

	for (i = 0; i < g->nmeta; i++) {
		free(g->meta[i].name);
		free(g->meta[i].str);
	}
	free(g->meta);
	free(g->ids);
	free(g->vec);
	free(g->mstart);
	memset(g, 0, sizeof(*g));
}

/* Row i's field called name, or NULL. */
static const struct field *field(const struct got *g, size_t row,
				 const char *name)
{
	size_t j;

	for (j = g->mstart[row]; j < g->mstart[row + 1]; j++)
		if (!strcmp(g->meta[j].name, name))
			return &g->meta[j];
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Running imports                                                     */
/* ------------------------------------------------------------------ */

struct res {
	rvf_code rc;
	rvf_error err;
	uint64_t rows;
	struct got g;
};

static void res_init(struct res *r, uint32_t dim)
{
	memset(r, 0, sizeof(*r));
	r->g.dim = dim;
	r->g.meta_ok = true;
}

/* Imports data written to a regular file; the sink fails on call number
 * fail_on_call (0: never). */
static void run_fail(struct res *r, size_t fail_on_call, const char *name,
		     rvf_import_format fmt, uint32_t dim, const void *data,
		     size_t len)
{
	char path[128];
	int fd;

	res_init(r, dim);
	r->g.fail_on_call = fail_on_call;
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, data, len) != (ssize_t)len ||
	    lseek(fd, 0, SEEK_SET) != 0)
		abort();
	r->rc = rvf_import_fd(fd, name, fmt, dim, sink, &r->g, &r->rows,
			      &r->err);
	close(fd);
	unlink(path);
	CHECK(r->g.meta_ok);
	if (r->rc == RVF_OK)
		CHECK(r->rows == r->g.n);
}

static void run(struct res *r, const char *name, rvf_import_format fmt,
		uint32_t dim, const void *data, size_t len)
{
	run_fail(r, 0, name, fmt, dim, data, len);
}

/* The same through a pipe fed by a child process. */
static void run_pipe(struct res *r, const char *name, rvf_import_format fmt,
		     uint32_t dim, const void *data, size_t len)
{
	int p[2], status;
	pid_t pid;

	res_init(r, dim);
	if (pipe(p))
		abort();
	pid = fork();
	if (pid < 0)
		abort();
	if (pid == 0) {
		const char *s = data;

		close(p[0]);
		while (len) {
			/* Odd-sized writes, so reads split rows oddly. */
			size_t chunk = len < 40000 ? len : 40000 - (len % 7);
			ssize_t k = write(p[1], s, chunk);

			if (k <= 0)
				_exit(1);
			s += k;
			len -= (size_t)k;
		}
		_exit(0);
	}
	close(p[1]);
	r->rc = rvf_import_fd(p[0], name, fmt, dim, sink, &r->g, &r->rows,
			      &r->err);
	close(p[0]);
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(r->g.meta_ok);
}

static void run_str(struct res *r, const char *name, rvf_import_format fmt,
		    uint32_t dim, const char *s)
{
	run(r, name, fmt, dim, s, strlen(s));
}

/* want ending in '*' matches any message starting with the rest. */
static bool msg_is(const char *got, const char *want)
{
	size_t n = strlen(want);

	if (n && want[n - 1] == '*')
		return !strncmp(got, want, n - 1);
	return !strcmp(got, want);
}

static bool same_float(float a, float b)
{
	return !memcmp(&a, &b, sizeof(a));
}

/* Row i of the result equals strtof of each string. */
static bool row_is(const struct got *g, size_t i, const char *const *comp)
{
	uint32_t k;

	for (k = 0; k < g->dim; k++)
		if (!same_float(g->vec[i * g->dim + k], strtof(comp[k], NULL)))
			return false;
	return true;
}

/* ------------------------------------------------------------------ */
/* Names                                                               */
/* ------------------------------------------------------------------ */

static void test_names(void)
{
	static const struct {
		const char *name;
		int fmt; /* -1: unknown */
	} cases[] = {
		{ "a.csv", RVF_IMPORT_CSV }, { "A.CSV", RVF_IMPORT_CSV },
		{ "x.tsv", RVF_IMPORT_CSV }, { "x.Txt", RVF_IMPORT_CSV },
		{ "v.jsonl", RVF_IMPORT_JSONL }, { "v.NDJSON", RVF_IMPORT_JSONL },
		{ "v.json", RVF_IMPORT_JSON }, { "a.b.JSON", RVF_IMPORT_JSON },
		{ "d/sift.fvecs", RVF_IMPORT_FVECS }, { "x.npy", RVF_IMPORT_NPY },
		{ "x.F32", RVF_IMPORT_F32 }, { "/a.dir/x.f32", RVF_IMPORT_F32 },
		{ "noext", -1 }, { "x.csv.gz", -1 }, { "dir.csv/file", -1 },
		{ ".csv", -1 }, { "x.", -1 }, { "x.f64", -1 }, { "", -1 },
	};
	size_t i;
	rvf_import_format f;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool ok = rvf_import_format_from_name(cases[i].name, &f);

		if (ok != (cases[i].fmt >= 0) || (ok && (int)f != cases[i].fmt)) {
			fprintf(stderr, "%s:%d: format of \"%s\"\n", __FILE__,
				__LINE__, cases[i].name);
			failures++;
		}
	}
	CHECK(!rvf_import_format_from_name(NULL, &f));
	CHECK(rvf_import_format_from_name("x.csv", NULL));
	CHECK(!strcmp(rvf_import_format_name(RVF_IMPORT_CSV), "csv"));
	CHECK(!strcmp(rvf_import_format_name(RVF_IMPORT_JSONL), "jsonl"));
	CHECK(!strcmp(rvf_import_format_name(RVF_IMPORT_JSON), "json"));
	CHECK(!strcmp(rvf_import_format_name(RVF_IMPORT_FVECS), "fvecs"));
	CHECK(!strcmp(rvf_import_format_name(RVF_IMPORT_NPY), "npy"));
	CHECK(!strcmp(rvf_import_format_name(RVF_IMPORT_F32), "f32"));
}

/* ------------------------------------------------------------------ */
/* CSV                                                                 */
/* ------------------------------------------------------------------ */

static void test_csv_basic(void)
{
	static const char *const r0[] = { "0.5", "-2", "3e-2" };
	static const char *const r1[] = { "1", "2", "3" };
	static const char *const r2[] = { "4", "5", "6.25" };
	static const char *const r3[] = { "0.1", "0.2", "-0.3" };
	static const char *const r4[] = { "+7", "1E3", "0x1p-3" };
	static const char *const r5[] = { "-0", ".5", "5." };
	struct res r;

	run_str(&r, "a.csv", RVF_IMPORT_CSV, 3,
		"\xEF\xBB\xBF" "1,0.5,-2,3e-2\n"
		"2\t1 2 3\n"
		"  3 , 4 ,5,\t6.25  \r\n"
		"# a comment, 1,2,3\n"
		"\n"
		"   \t# indented comment\n"
		"\r\n"
		"   \n"
		"7\t\t0.1 ,\t0.2\t,-0.3\r\n"
		"18446744073709551615 +7 1E3 0.125\n"
		"5,-0,.5,5.");
	CHECK_OK(&r);
	CHECK(r.rows == 6 && r.g.n == 6);
	CHECK(r.g.ids_present && !r.g.ids_null);
	CHECK(r.g.n == 6 && r.g.ids[0] == 1 && r.g.ids[1] == 2 &&
	      r.g.ids[2] == 3 && r.g.ids[3] == 7 &&
	      r.g.ids[4] == UINT64_MAX && r.g.ids[5] == 5);
	CHECK(r.g.n == 6 && row_is(&r.g, 0, r0) && row_is(&r.g, 1, r1) &&
	      row_is(&r.g, 2, r2) && row_is(&r.g, 3, r3) &&
	      row_is(&r.g, 4, r4) && row_is(&r.g, 5, r5));
	CHECK(r.g.n == 6 && signbit(r.g.vec[15]));
	CHECK(r.g.nmeta == 0);
	got_free(&r.g);

	/* Empty and comment-only inputs hold no rows; that is fine. */
	run_str(&r, "e.csv", RVF_IMPORT_CSV, 3, "");
	CHECK_OK(&r);
	CHECK(r.rows == 0 && r.g.calls == 0);
	got_free(&r.g);
	run_str(&r, "e.csv", RVF_IMPORT_CSV, 3, "# nothing\n\n  \r\n");
	CHECK_OK(&r);
	CHECK(r.rows == 0 && r.g.calls == 0);
	got_free(&r.g);

	/* Subnormals and the largest float are numbers too. */
	run_str(&r, "s.csv", RVF_IMPORT_CSV, 3,
		"1 1e-40 1.4e-45 3.4028235e38\n");
	CHECK_OK(&r);
	CHECK(r.g.n == 1 && same_float(r.g.vec[0], strtof("1e-40", NULL)) &&
	      same_float(r.g.vec[1], strtof("1.4e-45", NULL)) &&
	      r.g.vec[2] == FLT_MAX);
	got_free(&r.g);
}

static void test_csv_errors(void)
{
	struct res r;
	struct buf b = { 0 };
	int i;

	/* A first line without numbers is a header: skipped when it has
	 * dimension + 1 fields, refused otherwise. */
	run_str(&r, "a.csv", RVF_IMPORT_CSV, 2, "id,x,y\n1,2,3\n");
	CHECK_OK(&r);
	CHECK(r.rows == 1 && r.g.n == 1 && r.g.ids[0] == 1);
	got_free(&r.g);
	run_str(&r, "a.csv", RVF_IMPORT_CSV, 2, "id,x\n1,2,3\n");
	CHECK_ERR(&r, "a.csv: line 1: the header has 2 fields; expected 3 (an id, then one per component)");
	got_free(&r.g);
	run_str(&r, "a.csv", RVF_IMPORT_CSV, 2, "1,2,3\nid,x,y\n");
	CHECK_ERR(&r, "a.csv: line 2: id \"id\" is not an id (decimal digits, no sign, no leading zero)");
	got_free(&r.g);
	run_str(&r, "a.csv", RVF_IMPORT_CSV, 2, "07,1,2\n");
	CHECK_ERR(&r, "a.csv: line 1: id \"07\" is not an id (decimal digits, no sign, no leading zero)");
	got_free(&r.g);
	run_str(&r, "a.csv", RVF_IMPORT_CSV, 2, "1,0x1p-3,2\n");
	CHECK_ERR(&r, "a.csv: line 1: component 1 \"0x1p-3\" is not a number");
	got_free(&r.g);
	run_str(&r, "a.csv", RVF_IMPORT_CSV, 2, "1,2,3\n-3,1,2\n");
	CHECK_ERR(&r, "a.csv: line 2: id \"-3\" is not an id (decimal digits, no sign, no leading zero)");
	got_free(&r.g);
	run_str(&r, "a.csv", RVF_IMPORT_CSV, 2, "\n\n+3,1,2\n");
	CHECK_ERR(&r, "a.csv: line 3: id \"+3\" is not an id (decimal digits, no sign, no leading zero)");
	got_free(&r.g);
	run_str(&r, "a.csv", RVF_IMPORT_CSV, 2, "1.5,1,2\n");
	CHECK_ERR(&r, "a.csv: line 1: id \"1.5\" is not an id (decimal digits, no sign, no leading zero)");
	got_free(&r.g);
	run_str(&r, "a.csv", RVF_IMPORT_CSV, 2, "18446744073709551616,1,2\n");
	CHECK_ERR(&r, "a.csv: line 1: id \"18446744073709551616\" is larger "
		  "than 18446744073709551615");
	got_free(&r.g);

	/* line 7: one component short, for a dimension of 128 */
	for (i = 1; i <= 6; i++) {
		int k;

		buf_printf(&b, "%d", i);
		for (k = 0; k < 128; k++)
			buf_printf(&b, ",%d.5", k);
		buf_printf(&b, "\n");
	}
	buf_printf(&b, "7");
	for (i = 0; i < 127; i++)
		buf_printf(&b, ",%d", i);
	buf_printf(&b, "\n");
	run(&r, "data.csv", RVF_IMPORT_CSV, 128, b.p, b.n);
	CHECK_ERR(&r, "data.csv: line 7: expected 128 components, found 127");
	got_free(&r.g);
	buf_free(&b);

	run_str(&r, "a.csv", RVF_IMPORT_CSV, 2, "1,2,3,4\n");
	CHECK_ERR(&r, "a.csv: line 1: expected 2 components, found 3");
	got_free(&r.g);
	run_str(&r, "a.csv", RVF_IMPORT_CSV, 2, "1\n");
	CHECK_ERR(&r, "a.csv: line 1: expected 2 components, found 0");
	got_free(&r.g);
	run_str(&r, "a.csv", RVF_IMPORT_CSV, 6,
		"1,1,2,3,4,5,6\n# c\n\n4,1,2,3,4,abc,6\n");
	CHECK_ERR(&r, "a.csv: line 4: component 5 \"abc\" is not a number");
	got_free(&r.g);
	run_str(&r, "a.csv", RVF_IMPORT_CSV, 3, "1,1,2,nan\n");
	CHECK_ERR(&r, "a.csv: line 1: component 3 \"nan\" is not a number");
	got_free(&r.g);
	run_str(&r, "a.csv", RVF_IMPORT_CSV, 3, "1,1,-inf,2\n");
	CHECK_ERR(&r, "a.csv: line 1: component 2 \"-inf\" is not a number");
	got_free(&r.g);
	run_str(&r, "a.csv", RVF_IMPORT_CSV, 3, "1,1e39,1,2\n");
	CHECK_ERR(&r, "a.csv: line 1: component 1 \"1e39\" is not finite");
	got_free(&r.g);
	run_str(&r, "a.csv", RVF_IMPORT_CSV, 3, "1,1,2,3.4028236e38\n");
	CHECK_ERR(&r, "a.csv: line 1: component 3 \"3.4028236e38\" is not "
		  "finite");
	got_free(&r.g);
	run_str(&r, "a.csv", RVF_IMPORT_CSV, 3, "1,1,,2\n");
	CHECK_ERR(&r, "a.csv: line 1: component 2 is empty");
	got_free(&r.g);
	run_str(&r, "a.csv", RVF_IMPORT_CSV, 3, "1,1,2,3,\n");
	CHECK_ERR(&r, "a.csv: line 1: component 4 is empty");
	got_free(&r.g);
	run_str(&r, "a.csv", RVF_IMPORT_CSV, 3, "1,1,2,3e\n");
	CHECK_ERR(&r, "a.csv: line 1: component 3 \"3e\" is not a number");
	got_free(&r.g);
	run_str(&r, "a.csv", RVF_IMPORT_CSV, 3, "1,1,2,3;4\n");
	CHECK_ERR(&r, "a.csv: line 1: component 3 \"3;4\" is not a number");
	got_free(&r.g);
	run_str(&r, "a.csv", RVF_IMPORT_CSV, 3, "1,1,2,3 # no trailing comments\n");
	CHECK_ERR(&r, "a.csv: line 1: component 4 \"#\" is not a number");
	got_free(&r.g);
	run_str(&r, "a.csv", RVF_IMPORT_CSV, 3,
		"1,1,2,1234567890123456789012345678901234567890123456789x\n");
	CHECK_ERR(&r, "a.csv: line 1: component 3 \"1234567890123456789012345"
		  "678901234567...\" is not a number");
	got_free(&r.g);

	/* Dimension 0 is refused before reading. */
	run_str(&r, "a.csv", RVF_IMPORT_CSV, 0, "1\n");
	CHECK(r.rc == RVF_E_INVALID_ARGUMENT);
	got_free(&r.g);
}

/* Component strings drawn to hit the fast path, its fallbacks, long
 * mantissas, big exponents, subnormals and near-halfway cases. */
static void rand_component(char *out, size_t cap, unsigned *seed)
{
	int kind = rand_r(seed) % 10;
	float f;
	double d;

	switch (kind) {
	case 0: /* shortest-ish float repr */
		f = (float)rand_r(seed) / (float)RAND_MAX * 2 - 1;
		snprintf(out, cap, "%.9g", f);
		break;
	case 1: /* numpy savetxt default */
		d = ((double)rand_r(seed) / RAND_MAX - 0.5) * 1000;
		snprintf(out, cap, "%.18e", d);
		break;
	case 2:
		d = (double)rand_r(seed) / RAND_MAX;
		snprintf(out, cap, "%.17fe%d", d, rand_r(seed) % 60 - 30);
		break;
	case 3: { /* random digits, point and exponent */
		size_t k = 0;
		int nd = 1 + rand_r(seed) % 30, dot = rand_r(seed) % (nd + 1), i;

		if (rand_r(seed) % 2)
			out[k++] = '-';
		for (i = 0; i < nd; i++) {
			if (i == dot)
				out[k++] = '.';
			out[k++] = (char)('0' + rand_r(seed) % 10);
		}
		snprintf(out + k, cap - k, "e%d", rand_r(seed) % 58 - 50);
		break;
	}
	case 4: { /* exactly between two floats, and one digit off */
		float a = (float)rand_r(seed) / (float)RAND_MAX * 100, c;
		uint32_t u;

		memcpy(&u, &a, 4);
		u++; /* the next float up (a is positive and finite) */
		memcpy(&c, &u, 4);
		d = ((double)a + (double)c) / 2;
		if (rand_r(seed) % 2)
			snprintf(out, cap, "%.40g", d);
		else
			snprintf(out, cap, "%.16g", d);
		break;
	}
	case 5: /* subnormal and tiny */
		snprintf(out, cap, "%.9g",
			 (double)rand_r(seed) / RAND_MAX * 1e-39);
		break;
	case 6: /* short decimals */
		snprintf(out, cap, "%d.%d", rand_r(seed) % 1000 - 500,
			 rand_r(seed) % 1000);
		break;
	case 7: /* leading zeros */
		snprintf(out, cap, "0.000000%05d", rand_r(seed) % 100000);
		break;
	case 8: /* integers, some beyond 2^24 */
		snprintf(out, cap, "%d", rand_r(seed) - RAND_MAX / 2);
		break;
	default: /* large magnitudes */
		snprintf(out, cap, "%.7e",
			 (double)rand_r(seed) / RAND_MAX * 3e38);
		break;
	}
}

/* Many rows across read chunks, values compared with strtof bit for bit. */
static void test_csv_big(void)
{
	const uint32_t dim = 16;
	const size_t rows = 50000;
	struct buf b = { 0 };
	char (*toks)[64] = malloc(rows * dim * sizeof(*toks));
	unsigned seed = 12345;
	size_t i, bad = 0;
	uint32_t k;
	struct res r;

	if (!toks)
		abort();
	for (i = 0; i < rows; i++) {
		buf_printf(&b, "%zu", i * 3);
		for (k = 0; k < dim; k++) {
			char *t = toks[i * dim + k];

			rand_component(t, 64, &seed);
			buf_printf(&b, "%s%s", (i + k) % 3 == 0 ? ", " :
				   (i + k) % 3 == 1 ? "\t" : " ", t);
		}
		buf_printf(&b, i % 5 ? "\n" : "\r\n");
	}
	CHECK(b.n > 3 * 1024 * 1024);
	run(&r, "big.csv", RVF_IMPORT_CSV, dim, b.p, b.n);
	CHECK_OK(&r);
	CHECK(r.rows == rows && r.g.n == rows);
	CHECK(r.g.max_batch <= 4096 && r.g.calls >= rows / 4096);
	for (i = 0; i < r.g.n && i < rows; i++) {
		if (r.g.ids[i] != i * 3)
			bad++;
		for (k = 0; k < dim; k++) {
			const char *t = toks[i * dim + k];

			if (!same_float(r.g.vec[i * dim + k], strtof(t, NULL))) {
				if (bad++ < 5)
					fprintf(stderr, "mismatch on \"%s\"\n", t);
			}
		}
	}
	CHECK(bad == 0);
	got_free(&r.g);

	/* The same through a pipe. */
	run_pipe(&r, "big.csv", RVF_IMPORT_CSV, dim, b.p, b.n);
	CHECK_OK(&r);
	CHECK(r.rows == rows && r.g.n == rows);
	CHECK(r.g.n == rows && r.g.ids[rows - 1] == (rows - 1) * 3 &&
	      same_float(r.g.vec[rows * dim - 1],
			 strtof(toks[rows * dim - 1], NULL)));
	got_free(&r.g);
	buf_free(&b);
	free(toks);
}

/* One line longer than the first read buffer. */
static void test_csv_long_line(void)
{
	const uint32_t dim = 200000;
	struct buf b = { 0 };
	struct res r;
	uint32_t k;
	bool ok = true;

	buf_printf(&b, "# first\n42");
	for (k = 0; k < dim; k++)
		buf_printf(&b, ",%u.25", k % 1000);
	buf_printf(&b, "\n");
	CHECK(b.n > (1u << 20) + 100000);
	run(&r, "long.csv", RVF_IMPORT_CSV, dim, b.p, b.n);
	CHECK_OK(&r);
	CHECK(r.g.n == 1 && r.g.ids[0] == 42);
	for (k = 0; r.g.n == 1 && k < dim; k++)
		ok &= r.g.vec[k] == (float)(k % 1000) + 0.25f;
	CHECK(ok);
	got_free(&r.g);
	buf_free(&b);
}

/* The C locale is used whatever setlocale says. */
static void test_csv_locale(void)
{
	static const char *const locales[] = {
		"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "ru_RU.UTF-8",
	};
	struct res r;
	size_t i;

	for (i = 0; i < sizeof(locales) / sizeof(locales[0]); i++)
		if (setlocale(LC_NUMERIC, locales[i]))
			break;
	if (i == sizeof(locales) / sizeof(locales[0]))
		return; /* no comma-decimal locale installed */
	run_str(&r, "l.csv", RVF_IMPORT_CSV, 2,
		"1 1.5 0.12345678901234567890123e-3\n");
	setlocale(LC_NUMERIC, "C");
	CHECK_OK(&r);
	CHECK(r.g.n == 1 && r.g.vec[0] == 1.5f &&
	      same_float(r.g.vec[1], strtof("0.12345678901234567890123e-3",
					    NULL)));
	got_free(&r.g);
}

/* ------------------------------------------------------------------ */
/* JSON Lines and JSON arrays                                          */
/* ------------------------------------------------------------------ */

static void test_jsonl(void)
{
	struct res r;
	const struct field *f;

	run_str(&r, "v.jsonl", RVF_IMPORT_JSONL, 3,
		"{\"id\": 1, \"vector\": [0.1, -2, 3e-2], \"metadata\": "
		"{\"s\": \"a\\\"b\\\\c\\u00e9\\n\", \"i\": -9223372036854775808, "
		"\"j\": 9223372036854775807, \"r\": 1.5, \"t\": true, "
		"\"f\": false, \"z\": \"nul\\u0000in\"}}\n"
		"\n"
		"  \r\n"
		"{\"vector\":[1,2,3],\"id\":18446744073709551615}\r\n"
		"{\"id\":0,\"vector\":[ 1e0 , 2.5E+1 ,-0.0 ],\"metadata\":{},"
		"\"other\":\"]\"}\n"
		"{\"\\u0069d\":5,\"vec\\u0074or\":[4,5,6],\"metadata\":null}");
	CHECK_OK(&r);
	CHECK(r.rows == 4);
	if (r.g.n == 4) {
		CHECK(r.g.ids[0] == 1 && r.g.ids[1] == UINT64_MAX &&
		      r.g.ids[2] == 0 && r.g.ids[3] == 5);
		CHECK(same_float(r.g.vec[0], strtof("0.1", NULL)) &&
		      r.g.vec[1] == -2 &&
		      same_float(r.g.vec[2], strtof("3e-2", NULL)));
		CHECK(r.g.vec[6] == 1 && r.g.vec[7] == 25 &&
		      signbit(r.g.vec[8]) && r.g.vec[11] == 6);
		CHECK(r.g.mstart[1] - r.g.mstart[0] == 7);
		/* rows 1 and 3: none; row 2 a top-level field */
		CHECK(r.g.mstart[2] == r.g.mstart[1]);
		CHECK(r.g.mstart[3] - r.g.mstart[2] == 1 &&
		      r.g.mstart[4] == r.g.mstart[3]);
		f = field(&r.g, 2, "other");
		CHECK(f && f->v.type == RVF_VALUE_STRING && !strcmp(f->str, "]"));
		f = field(&r.g, 0, "s");
		CHECK(f && f->v.type == RVF_VALUE_STRING &&
		      f->v.u.str.len == 8 && !strcmp(f->str, "a\"b\\c\xc3\xa9\n"));
		f = field(&r.g, 0, "i");
		CHECK(f && f->v.type == RVF_VALUE_I64 && f->v.u.i64 == INT64_MIN);
		f = field(&r.g, 0, "j");
		CHECK(f && f->v.type == RVF_VALUE_I64 && f->v.u.i64 == INT64_MAX);
		f = field(&r.g, 0, "r");
		CHECK(f && f->v.type == RVF_VALUE_F64 && f->v.u.f64 == 1.5);
		f = field(&r.g, 0, "t");
		CHECK(f && f->v.type == RVF_VALUE_BOOL && f->v.u.b);
		f = field(&r.g, 0, "f");
		CHECK(f && f->v.type == RVF_VALUE_BOOL && !f->v.u.b);
		f = field(&r.g, 0, "z");
		CHECK(f && f->v.type == RVF_VALUE_STRING &&
		      f->v.u.str.len == 6 && !memcmp(f->str, "nul\0in", 6));
	}
	got_free(&r.g);

	run_str(&r, "e.jsonl", RVF_IMPORT_JSONL, 3, "\n\n");
	CHECK_OK(&r);
	CHECK(r.rows == 0 && r.g.calls == 0);
	got_free(&r.g);
}

/* Issue 11 item 11: top-level fields are metadata, ids may be strings of
 * digits, rows without ids take the store's next ones (ids NULL, in
 * batches of their own). */
static void test_jsonl_people(void)
{
	struct res r;
	const struct field *f;

	run_str(&r, "p.jsonl", RVF_IMPORT_JSONL, 2,
		"{\"id\":\"42\",\"vector\":[1,2],\"color\":\"green\",\"n\":17}\n"
		"{\"vector\":[3,4],\"zip\":\"02134\"}\n"
		"{\"vector\":[5,6]}\n"
		"{\"id\":7,\"vector\":[7,8]}\n");
	CHECK_OK(&r);
	CHECK(r.rows == 4 && r.g.n == 4);
	CHECK(r.g.calls == 3, "%zu sink calls", (size_t)r.g.calls);
	CHECK(r.g.ids_null && r.g.ids_present);
	if (r.g.n == 4) {
		CHECK(r.g.ids[0] == 42 && r.g.ids[1] == UINT64_MAX &&
		      r.g.ids[2] == UINT64_MAX && r.g.ids[3] == 7);
		CHECK(r.g.vec[2] == 3 && r.g.vec[4] == 5 && r.g.vec[7] == 8);
		f = field(&r.g, 0, "color");
		CHECK(f && f->v.type == RVF_VALUE_STRING && !strcmp(f->str, "green"));
		f = field(&r.g, 0, "n");
		CHECK(f && f->v.type == RVF_VALUE_I64 && f->v.u.i64 == 17);
		CHECK(!field(&r.g, 0, "id") && !field(&r.g, 0, "vector"));
		f = field(&r.g, 1, "zip");
		CHECK(f && f->v.type == RVF_VALUE_STRING && !strcmp(f->str, "02134"));
		CHECK(r.g.mstart[3] == r.g.mstart[2] && r.g.mstart[4] == r.g.mstart[3]);
	}
	got_free(&r.g);
}

#define GOOD "{\"id\":1,\"vector\":[1,2]}\n"

static void test_jsonl_errors(void)
{
	static const struct {
		const char *in, *msg; /* msg ending in '*': a prefix */
	} cases[] = {
		{ GOOD GOOD "{\"id\":3.7,\"vector\":[1,2]}\n",
		  "d.jsonl: line 3: id 3.7 is not a non-negative integer" },
		{ "{\"id\":3.0,\"vector\":[1,2]}",
		  "d.jsonl: line 1: id 3.0 is not a non-negative integer" },
		{ "{\"id\":1e3,\"vector\":[1,2]}",
		  "d.jsonl: line 1: id 1e3 is not a non-negative integer" },
		{ "\n{\"id\":-1,\"vector\":[1,2]}",
		  "d.jsonl: line 2: id -1 is not a non-negative integer" },
		{ "{\"id\":\"05\",\"vector\":[1,2]}",
		  "d.jsonl: line 1: id \"05\" is not a non-negative integer" },
		{ "{\"id\":\"5x\",\"vector\":[1,2]}",
		  "d.jsonl: line 1: id \"5x\" is not a non-negative integer" },
		{ "{\"id\":\" 5\",\"vector\":[1,2]}",
		  "d.jsonl: line 1: id \" 5\" is not a non-negative integer" },
		{ "{\"id\":007,\"vector\":[1,2]}",
		  "d.jsonl: line 1: id 007 is not a non-negative integer" },
		{ "{\"id\":null,\"vector\":[1,2]}",
		  "d.jsonl: line 1: id null is not a non-negative integer" },
		{ "{\"id\":18446744073709551616,\"vector\":[1,2]}",
		  "d.jsonl: line 1: id 18446744073709551616 is larger than "
		  "18446744073709551615" },
		{ GOOD "{\"vector\":[1,2],\"tags\":[1]}",
		  "d.jsonl: line 2: metadata \"tags\" is an array (expected a "
		  "string, number or boolean)" },
		{ "{\"id\":1,\"vector\":[1,2],\"a\":1,\"metadata\":{\"a\":2}}",
		  "d.jsonl: line 1: \"a\" is both a top-level field and in "
		  "\"metadata\"" },
		{ GOOD GOOD GOOD "{\"id\":4}",
		  "d.jsonl: line 4: missing \"vector\"" },
		{ "{}", "d.jsonl: line 1: missing \"vector\"" },
		{ GOOD GOOD "{\"id\": 1, \"vector\": [1,2], }\n",
		  "d.jsonl: line 3: bad JSON: *" },
		{ GOOD "{\"id\": 1, \"vector\": [1,2]\n",
		  "d.jsonl: line 2: bad JSON: *" },
		{ "{\"id\": 1, \"vector\": [1,2]} x\n",
		  "d.jsonl: line 1: bad JSON: *" },
		{ "{\"id\": 1, \"id\": 2, \"vector\": [1,2]}\n",
		  "d.jsonl: line 1: bad JSON: duplicate object key*" },
		{ "[1,2]\n", "d.jsonl: line 1: expected a JSON object" },
		{ "{\"id\":1,\"vector\":[1,2],\"metadata\":{\"a\":null}}",
		  "d.jsonl: line 1: metadata \"a\" is null (expected a string, "
		  "number or boolean)" },
		{ "{\"id\":1,\"vector\":[1,2],\"metadata\":{\"a\":1,\"b\":[1]}}",
		  "d.jsonl: line 1: metadata \"b\" is an array (expected a "
		  "string, number or boolean)" },
		{ "{\"id\":1,\"vector\":[1,2],\"metadata\":{\"c\":{}}}",
		  "d.jsonl: line 1: metadata \"c\" is an object (expected a "
		  "string, number or boolean)" },
		{ "{\"id\":1,\"vector\":[1,2],\"metadata\":[1]}",
		  "d.jsonl: line 1: \"metadata\" is not an object" },
		{ "{\"id\":1,\"vector\":[1,2],\"metadata\":{\"n\":"
		  "9223372036854775808}}",
		  "d.jsonl: line 1: bad JSON: too big integer*" },
		{ "{\"id\":1,\"vector\":[1,2,3]}",
		  "d.jsonl: line 1: expected 2 components, found 3" },
		{ "{\"id\":1,\"vector\":[]}",
		  "d.jsonl: line 1: expected 2 components, found 0" },
		{ "{\"id\":1,\"vector\":[1,\"a\"]}",
		  "d.jsonl: line 1: component 2 is not a number: \"a\"" },
		{ "{\"id\":1,\"vector\":[1,null]}",
		  "d.jsonl: line 1: component 2 is not a number: null" },
		{ "{\"id\":1,\"vector\":[[1],2]}",
		  "d.jsonl: line 1: component 1 is not a number: [1]" },
		{ "{\"id\":1,\"vector\":[1,01]}",
		  "d.jsonl: line 1: component 2 is not a number: 01" },
		{ "{\"id\":1,\"vector\":[1,NaN]}",
		  "d.jsonl: line 1: component 2 is not a number: NaN" },
		{ "{\"id\":1,\"vector\":[1e39,1]}",
		  "d.jsonl: line 1: component 1 \"1e39\" is not finite" },
		{ "{\"id\":1,\"vector\":[1 2]}",
		  "d.jsonl: line 1: bad JSON: expected ',' or ']' after "
		  "component 1 of \"vector\"" },
		{ "{\"id\":1,\"vector\":\"1,2\"}",
		  "d.jsonl: line 1: \"vector\" is not an array" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct res r;

		run_str(&r, "d.jsonl", RVF_IMPORT_JSONL, 2, cases[i].in);
		if (r.rc != RVF_E_INVALID_ARGUMENT ||
		    !msg_is(r.err.message, cases[i].msg)) {
			fprintf(stderr, "%s:%d: case %zu: expected \"%s\", got "
				"%d \"%s\"\n", __FILE__, __LINE__, i,
				cases[i].msg, (int)r.rc,
				r.rc ? r.err.message : "");
			failures++;
		}
		got_free(&r.g);
	}
}

static void test_json_array(void)
{
	const size_t rows = 20000;
	static const char *const tricky = "br]ack}ets [{ \\\"quoted\\\" "
		"back\\\\slash \\\\\\\" ,\\n\\u005d end";
	struct buf b = { 0 };
	struct res r;
	size_t i, bad = 0;

	buf_printf(&b, "\xEF\xBB\xBF[\n");
	for (i = 0; i < rows; i++) {
		/* Pretty-printed over several lines, keys in varying order. */
		if (i % 2)
			buf_printf(&b, "  {\n    \"metadata\": {\"tag\": \"%s\", "
				   "\"n\": %zu, \"nested\": \"{[\"},\n"
				   "    \"vector\": [%zu.5,\n      -1e-3],\n"
				   "    \"id\": %zu\n  }", tricky, i, i, i + 100);
		else
			buf_printf(&b, "  {\"id\": %zu, \"vector\": [%zu.5, "
				   "-1e-3]}", i + 100, i);
		buf_printf(&b, i + 1 < rows ? ",\n" : "\n");
	}
	buf_printf(&b, "]\n\n");
	CHECK(b.n > 2 * 1024 * 1024);
	run(&r, "big.json", RVF_IMPORT_JSON, 2, b.p, b.n);
	CHECK_OK(&r);
	CHECK(r.rows == rows && r.g.n == rows);
	for (i = 0; i < r.g.n; i++) {
		const struct field *f = field(&r.g, i, "tag");
		const struct field *n = field(&r.g, i, "n");

		if (r.g.ids[i] != i + 100 || r.g.vec[2 * i] != (float)i + 0.5f ||
		    !same_float(r.g.vec[2 * i + 1], strtof("-1e-3", NULL)))
			bad++;
		if (i % 2 && (!f || strcmp(f->str, "br]ack}ets [{ \"quoted\" "
					   "back\\slash \\\" ,\n] end") ||
			      !n || n->v.type != RVF_VALUE_I64 ||
			      n->v.u.i64 != (int64_t)i))
			bad++;
		if (!(i % 2) && r.g.mstart[i] != r.g.mstart[i + 1])
			bad++;
	}
	CHECK(bad == 0);
	got_free(&r.g);

	run_pipe(&r, "big.json", RVF_IMPORT_JSON, 2, b.p, b.n);
	CHECK_OK(&r);
	CHECK(r.rows == rows && r.g.n == rows);
	got_free(&r.g);
	buf_free(&b);

	/* Empty inputs. */
	run_str(&r, "e.json", RVF_IMPORT_JSON, 2, "");
	CHECK_OK(&r);
	CHECK(r.rows == 0);
	got_free(&r.g);
	run_str(&r, "e.json", RVF_IMPORT_JSON, 2, " [ \n ] \n");
	CHECK_OK(&r);
	CHECK(r.rows == 0 && r.g.calls == 0);
	got_free(&r.g);
	run_str(&r, "o.json", RVF_IMPORT_JSON, 2,
		"[{\"id\":18446744073709551615,\"vector\":[1,2]}]");
	CHECK_OK(&r);
	CHECK(r.g.n == 1 && r.g.ids[0] == UINT64_MAX);
	got_free(&r.g);
}

static void test_json_errors(void)
{
	static const struct {
		const char *in, *msg; /* msg ending in '*': a prefix */
	} cases[] = {
		{ "{\"id\":1,\"vector\":[1,2]}",
		  "a.json: line 1: expected a JSON array of objects" },
		{ "\n\n  [1]", "a.json: line 3: element 1: expected an object" },
		{ "[{\"id\":1,\"vector\":[1,2]},\n]",
		  "a.json: line 2: trailing comma after element 1" },
		{ "[{\"id\":1,\"vector\":[1,2]}",
		  "a.json: line 1: unexpected end of file after element 1" },
		{ "[{\"id\":1,\"vector\":[1,2]} {\"id\":2}]",
		  "a.json: line 1: expected ',' or ']' after element 1" },
		{ "[{\"id\":1,\"vector\":[1,2]},\n{\"id\":2,\n\"vector\":[1,2",
		  "a.json: line 2: element 2: unexpected end of file inside "
		  "the element" },
		{ "[\n", "a.json: line 2: unexpected end of file in the array" },
		{ "[{\"id\":1,\"vector\":[1,2]}]\n\n]",
		  "a.json: line 3: data after the end of the array" },
		{ "[\n {\"id\":1,\"vector\":[1,2]},\n {\"id\":2,\"vector\":[1,2]},\n"
		  " {\"id\":3,\n  \"vectr\":[1,2]}]",
		  "a.json: line 4: element 3: missing \"vector\"" },
		{ "[\n {\"id\":1,\"vector\":[1,2]},\n {\"id\":2,\n  \"vector\":[1,2],"
		  "\n  \"metadata\": {\"a\": tru}}]",
		  "a.json: line 5: element 2: bad JSON: *" },
		{ "[{\"id\":1,\"vector\":[1,2]},{\"id\":-4,\"vector\":[1,2]}]",
		  "a.json: line 1: element 2: id -4 is not a non-negative "
		  "integer" },
		{ "[{\"id\":1,\"vector\":[1,2],\"metadata\":{\"x\":[\"]\"]}}]",
		  "a.json: line 1: element 1: metadata \"x\" is an array "
		  "(expected a string, number or boolean)" },
		{ "[{\"id\":1,\"vector\":[1,2]}]\n{",
		  "a.json: line 2: data after the end of the array" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct res r;

		run_str(&r, "a.json", RVF_IMPORT_JSON, 2, cases[i].in);
		if (r.rc != RVF_E_INVALID_ARGUMENT ||
		    !msg_is(r.err.message, cases[i].msg)) {
			fprintf(stderr, "%s:%d: case %zu: expected \"%s\", got "
				"%d \"%s\"\n", __FILE__, __LINE__, i,
				cases[i].msg, (int)r.rc,
				r.rc ? r.err.message : "");
			failures++;
		}
		got_free(&r.g);
	}
}

/* ------------------------------------------------------------------ */
/* Binary formats                                                      */
/* ------------------------------------------------------------------ */

static void put_le32(struct buf *b, uint32_t v)
{
	unsigned char p[4] = { (unsigned char)v, (unsigned char)(v >> 8),
			       (unsigned char)(v >> 16),
			       (unsigned char)(v >> 24) };

	buf_add(b, p, 4);
}

static void put_f32(struct buf *b, float f)
{
	uint32_t u;

	memcpy(&u, &f, 4);
	put_le32(b, u);
}

static float val(size_t row, uint32_t k)
{
	return (float)row * 0.25f - (float)k / 3.0f;
}

static bool rows_are_val(const struct got *g, size_t n)
{
	size_t i;
	uint32_t k;

	if (g->n != n || (n && (!g->ids_null || g->ids_present)))
		return false;
	for (i = 0; i < n; i++)
		for (k = 0; k < g->dim; k++)
			if (!same_float(g->vec[i * g->dim + k], val(i, k)))
				return false;
	return true;
}

static void make_fvecs(struct buf *b, size_t rows, uint32_t dim)
{
	size_t i;
	uint32_t k;

	for (i = 0; i < rows; i++) {
		put_le32(b, dim);
		for (k = 0; k < dim; k++)
			put_f32(b, val(i, k));
	}
}

static void test_fvecs(void)
{
	struct buf b = { 0 };
	struct res r;
	size_t i;

	make_fvecs(&b, 3, 4);
	run(&r, "x.fvecs", RVF_IMPORT_FVECS, 4, b.p, b.n);
	CHECK_OK(&r);
	CHECK(r.rows == 3 && rows_are_val(&r.g, 3));
	got_free(&r.g);
	buf_free(&b);

	/* Spans many reads, through a file and a pipe. */
	make_fvecs(&b, 100000, 8);
	run(&r, "x.fvecs", RVF_IMPORT_FVECS, 8, b.p, b.n);
	CHECK_OK(&r);
	CHECK(r.rows == 100000 && rows_are_val(&r.g, 100000));
	CHECK(r.g.max_batch <= 4096);
	got_free(&r.g);
	run_pipe(&r, "x.fvecs", RVF_IMPORT_FVECS, 8, b.p, b.n);
	CHECK_OK(&r);
	CHECK(r.rows == 100000 && rows_are_val(&r.g, 100000));
	got_free(&r.g);
	buf_free(&b);

	/* Row 12 declares another dimension. */
	make_fvecs(&b, 11, 4);
	put_le32(&b, 3);
	for (i = 0; i < 3; i++)
		put_f32(&b, 1);
	make_fvecs(&b, 3, 4);
	run(&r, "x.fvecs", RVF_IMPORT_FVECS, 4, b.p, b.n);
	CHECK_ERR(&r, "x.fvecs: row 12: dimension 3, expected 4");
	got_free(&r.g);
	buf_free(&b);

	make_fvecs(&b, 2, 4);
	put_le32(&b, 0xffffffffu);
	run(&r, "x.fvecs", RVF_IMPORT_FVECS, 4, b.p, b.n);
	CHECK_ERR(&r, "x.fvecs: row 3: truncated: 4 of 20 bytes");
	got_free(&r.g);
	buf_free(&b);

	make_fvecs(&b, 2, 4);
	put_le32(&b, 0xffffffffu);
	for (i = 0; i < 4; i++)
		put_f32(&b, 1);
	run(&r, "x.fvecs", RVF_IMPORT_FVECS, 4, b.p, b.n);
	CHECK_ERR(&r, "x.fvecs: row 3: dimension -1, expected 4");
	got_free(&r.g);
	buf_free(&b);

	make_fvecs(&b, 5000, 4);
	memcpy(b.p + 4999 * 20 + 4 + 2 * 4, &(float){ NAN }, 4);
	run(&r, "x.fvecs", RVF_IMPORT_FVECS, 4, b.p, b.n);
	CHECK_ERR(&r, "x.fvecs: row 5000: component 3 is not finite");
	got_free(&r.g);
	buf_free(&b);

	run(&r, "x.fvecs", RVF_IMPORT_FVECS, 4, "", 0);
	CHECK_OK(&r);
	CHECK(r.rows == 0 && r.g.calls == 0);
	got_free(&r.g);
}

static void make_f32(struct buf *b, size_t rows, uint32_t dim)
{
	size_t i;
	uint32_t k;

	for (i = 0; i < rows; i++)
		for (k = 0; k < dim; k++)
			put_f32(b, val(i, k));
}

static void test_f32(void)
{
	struct buf b = { 0 };
	struct res r;

	make_f32(&b, 100, 3);
	run(&r, "x.f32", RVF_IMPORT_F32, 3, b.p, b.n);
	CHECK_OK(&r);
	CHECK(r.rows == 100 && rows_are_val(&r.g, 100));
	got_free(&r.g);
	buf_free(&b);

	make_f32(&b, 99, 128);
	buf_add(&b, "123456789012", 12);
	run(&r, "x.f32", RVF_IMPORT_F32, 128, b.p, b.n);
	CHECK_ERR(&r, "x.f32: truncated: 12 bytes after row 99");
	got_free(&r.g);
	buf_free(&b);

	run(&r, "x.f32", RVF_IMPORT_F32, 128, "123456789012", 12);
	CHECK_ERR(&r, "x.f32: truncated: 12 bytes, less than one row "
		  "(512 bytes)");
	got_free(&r.g);

	/* Whole batches and a partial one, through a pipe. */
	make_f32(&b, 10000, 5);
	run_pipe(&r, "x.f32", RVF_IMPORT_F32, 5, b.p, b.n);
	CHECK_OK(&r);
	CHECK(r.rows == 10000 && rows_are_val(&r.g, 10000));
	CHECK(r.g.max_batch <= 4096 && r.g.calls == 3);
	got_free(&r.g);
	memcpy(b.p + (9000 * 5 + 4) * 4, &(float){ -INFINITY }, 4);
	run(&r, "x.f32", RVF_IMPORT_F32, 5, b.p, b.n);
	CHECK_ERR(&r, "x.f32: row 9001: component 5 is not finite");
	got_free(&r.g);
	buf_free(&b);

	run(&r, "x.f32", RVF_IMPORT_F32, 5, "", 0);
	CHECK_OK(&r);
	CHECK(r.rows == 0 && r.g.calls == 0);
	got_free(&r.g);
}

/* An npy file as numpy writes it: header padded to 64 bytes with '\n'. */
static void make_npy_header(struct buf *b, int major, const char *dict)
{
	size_t pre = major == 1 ? 10 : 12, hlen = strlen(dict) + 1;
	unsigned char v[2] = { (unsigned char)major, 0 };
	size_t i;

	while ((pre + hlen) % 64)
		hlen++;
	buf_add(b, "\x93NUMPY", 6);
	buf_add(b, v, 2);
	if (major == 1) {
		unsigned char l[2] = { (unsigned char)hlen,
				       (unsigned char)(hlen >> 8) };

		buf_add(b, l, 2);
	} else {
		put_le32(b, (uint32_t)hlen);
	}
	buf_add(b, dict, strlen(dict));
	for (i = strlen(dict) + 1; i < hlen; i++)
		buf_add(b, " ", 1);
	buf_add(b, "\n", 1);
}

static void make_npy(struct buf *b, int major, const char *dict,
		     size_t rows, uint32_t dim)
{
	make_npy_header(b, major, dict);
	make_f32(b, rows, dim);
}

/* float64 .npy (issue 11 item 11): converted to float32; a value that does
 * not fit float32 is refused with its row. */
static void test_npy_f64(void)
{
	static const double rows[3][2] = { { 0.1, -2.5 }, { 1e-3, 3e38 }, { 7, 8 } };
	struct buf b = { 0 };
	struct res r;

	make_npy_header(&b, 1, "{'descr': '<f8', 'fortran_order': False, "
			"'shape': (3, 2), }");
	for (int i = 0; i < 3; i++)
		for (int c = 0; c < 2; c++) {
			uint64_t u;

			memcpy(&u, &rows[i][c], 8);
			for (int k = 0; k < 8; k++) {
				unsigned char x = (unsigned char)(u >> (8 * k));
				buf_add(&b, &x, 1);
			}
		}
	run(&r, "d.npy", RVF_IMPORT_NPY, 2, b.p, b.n);
	CHECK_OK(&r);
	CHECK(r.rows == 3 && r.g.n == 3);
	if (r.g.n == 3)
		for (int i = 0; i < 3; i++)
			for (int c = 0; c < 2; c++)
				CHECK(r.g.vec[i * 2 + c] == (float)rows[i][c],
				      "row %d component %d", i, c);
	got_free(&r.g);

	/* 1e39 does not fit: refused, with its row and component */
	double big = 1e39;
	uint64_t u;
	memcpy(&u, &big, 8);
	for (int k = 0; k < 8; k++)
		b.p[b.n - 8 * 3 + k] = (unsigned char)(u >> (8 * k)); /* row 2, c 2 */
	run(&r, "d.npy", RVF_IMPORT_NPY, 2, b.p, b.n);
	CHECK(r.rc == RVF_E_INVALID_ARGUMENT &&
	      !strcmp(r.err.message, "d.npy: row 2: component 2 "
		      "(1e+39) does not fit float32"),
	      "got %s", r.err.message);
	got_free(&r.g);
	buf_free(&b);
}

static void test_npy(void)
{
	static const struct {
		const char *dict;
		const char *msg;
	} bad_headers[] = {
		{ "{'descr': '>f4', 'fortran_order': False, 'shape': (3, 4), }",
		  "x.npy: npy header: dtype '>f4' is not little-endian float32 "
		  "('<f4') or float64 ('<f8')" },
		{ "{'descr': '<f2', 'fortran_order': False, 'shape': (3, 4), }",
		  "x.npy: npy header: dtype '<f2' is not little-endian float32 "
		  "('<f4') or float64 ('<f8')" },
		{ "{'descr': '<f4', 'fortran_order': True, 'shape': (3, 4), }",
		  "x.npy: npy header: fortran_order arrays are not supported "
		  "(save in C order)" },
		{ "{'descr': '<f4', 'fortran_order': False, 'shape': (12,), }",
		  "x.npy: npy header: shape has 1 dimensions, expected 2 (rows, 4)" },
		{ "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2, 2), }",
		  "x.npy: npy header: shape has 3 dimensions, expected 2 (rows, 4)" },
		{ "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3), }",
		  "x.npy: npy header: shape (4, 3) has 3 columns, expected 4" },
		{ "{'descr': '<f4', 'shape': (3, 4), }",
		  "x.npy: npy header: missing 'fortran_order'" },
		{ "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), "
		  "'x': 1}", "x.npy: npy header: unexpected key 'x'" },
		{ "[1]", "x.npy: npy header: not a dictionary" },
	};
	struct buf b = { 0 };
	struct res r;
	size_t i;

	make_npy(&b, 1, "{'descr': '<f4', 'fortran_order': False, "
		 "'shape': (3, 4), }", 3, 4);
	run(&r, "x.npy", RVF_IMPORT_NPY, 4, b.p, b.n);
	CHECK_OK(&r);
	CHECK(r.rows == 3 && rows_are_val(&r.g, 3));
	got_free(&r.g);
	buf_free(&b);

	make_npy(&b, 2, "{\"descr\":\"|f4\",\"shape\":(7000L,5L),"
		 "\"fortran_order\":False}", 7000, 5);
	run_pipe(&r, "x.npy", RVF_IMPORT_NPY, 5, b.p, b.n);
	CHECK_OK(&r);
	CHECK(r.rows == 7000 && rows_are_val(&r.g, 7000));
	got_free(&r.g);
	buf_free(&b);

	make_npy(&b, 3, "{'descr': 'f4', 'fortran_order': False, "
		 "'shape': (0, 4), }", 0, 4);
	run(&r, "x.npy", RVF_IMPORT_NPY, 4, b.p, b.n);
	CHECK_OK(&r);
	CHECK(r.rows == 0 && r.g.calls == 0);
	got_free(&r.g);
	buf_free(&b);

	for (i = 0; i < sizeof(bad_headers) / sizeof(bad_headers[0]); i++) {
		make_npy(&b, 1, bad_headers[i].dict, 3, 4);
		run(&r, "x.npy", RVF_IMPORT_NPY, 4, b.p, b.n);
		if (r.rc != RVF_E_INVALID_ARGUMENT ||
		    strcmp(r.err.message, bad_headers[i].msg)) {
			fprintf(stderr, "%s:%d: case %zu: got \"%s\"\n",
				__FILE__, __LINE__, i, r.err.message);
			failures++;
		}
		got_free(&r.g);
		buf_free(&b);
	}

	/* Fewer rows than declared, more, a bad magic, a cut header. */
	make_npy(&b, 1, "{'descr': '<f4', 'fortran_order': False, "
		 "'shape': (5, 4), }", 4, 4);
	buf_add(&b, "abc", 3);
	run(&r, "x.npy", RVF_IMPORT_NPY, 4, b.p, b.n);
	CHECK_ERR(&r, "x.npy: truncated: the header declares 5 rows, the "
		  "data holds 4 and 3 bytes");
	got_free(&r.g);
	buf_free(&b);

	make_npy(&b, 1, "{'descr': '<f4', 'fortran_order': False, "
		 "'shape': (5, 4), }", 6, 4);
	run(&r, "x.npy", RVF_IMPORT_NPY, 4, b.p, b.n);
	CHECK_ERR(&r, "x.npy: data after the 5 rows the header declares");
	got_free(&r.g);
	buf_free(&b);

	run(&r, "x.npy", RVF_IMPORT_NPY, 4, "PK\3\4 not numpy", 15);
	CHECK_ERR(&r, "x.npy: not an npy file (bad magic)");
	got_free(&r.g);

	make_npy(&b, 1, "{'descr': '<f4', 'fortran_order': False, "
		 "'shape': (5, 4), }", 0, 4);
	run(&r, "x.npy", RVF_IMPORT_NPY, 4, b.p, 40);
	CHECK_ERR(&r, "x.npy: npy header truncated (40 of 128 bytes)");
	got_free(&r.g);
	buf_free(&b);

	run(&r, "x.npy", RVF_IMPORT_NPY, 4, "", 0);
	CHECK_OK(&r);
	CHECK(r.rows == 0);
	got_free(&r.g);
}

/* The header parser rvffs's ingest/ feeds a write at a time: every
 * prefix of a good header asks for more (never refuses), the whole one
 * parses; a prefix that ends the file is refused with the message the
 * whole-file import gives for the same bytes; a bad magic is refused at
 * its first byte. */
static void test_npy_header_incremental(void)
{
	static const char *dicts[] = {
		"{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }",
		"{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }",
	};
	struct buf b = { 0 };
	struct res r;

	for (int major = 1; major <= 3; major++)
		for (size_t d = 0; d < 2; d++) {
			make_npy_header(&b, major, dicts[d]);
			size_t hlen = b.n;

			for (size_t k = 0; k < hlen; k++) {
				rvf_npy_header h;
				size_t need = 0;
				rvf_error err;
				rvf_code rc = rvf_npy_read_header(b.p, k, false, "x.npy",
								  4, &h, &need, &err);

				CHECK(rc == RVF_OK && need > k && need <= hlen);
				rc = rvf_npy_read_header(b.p, k, true, "x.npy", 4, &h,
							 &need, &err);
				run(&r, "x.npy", RVF_IMPORT_NPY, 4, b.p, k);
				CHECK(rc == r.rc);
				if (k)
					CHECK_ERR(&r, err.message);
				got_free(&r.g);
			}
			rvf_npy_header h;
			size_t need = 1;
			rvf_error err;
			CHECK(rvf_npy_read_header(b.p, hlen, false, "x.npy", 4, &h, &need,
						  &err) == RVF_OK);
			CHECK(need == 0 && h.rows == 3 && h.width == (d ? 8u : 4u) &&
			      h.data_offset == hlen && hlen % 64 == 0);
			buf_free(&b);
		}
	rvf_npy_header h;
	size_t need;
	rvf_error err;
	CHECK(rvf_npy_read_header("PK", 1, false, "x.npy", 4, &h, &need, &err) ==
	      RVF_E_INVALID_ARGUMENT);
	CHECK(!strcmp(err.message, "x.npy: not an npy file (bad magic)"));
	/* a bad dictionary, refused once its bytes are there */
	make_npy_header(&b, 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (3, 4), }");
	CHECK(rvf_npy_read_header(b.p, b.n, false, "x.npy", 4, &h, &need, &err) ==
	      RVF_E_INVALID_ARGUMENT);
	CHECK(!strncmp(err.message, "x.npy: npy header: dtype '>f4'", 30));
	buf_free(&b);
}

/* ------------------------------------------------------------------ */
/* The sink's verdict                                                  */
/* ------------------------------------------------------------------ */

static void test_sink_error(void)
{
	static const char jl[] =
		"{\"id\":1,\"vector\":[1],\"metadata\":{\"a\":\"b\"}}";
	struct buf b = { 0 };
	struct res r;
	size_t i;

	for (i = 0; i < 10000; i++)
		buf_printf(&b, "%zu 1 2\n", i);
	run_fail(&r, 2, "s.csv", RVF_IMPORT_CSV, 2, b.p, b.n);
	CHECK(r.rc == RVF_E_IO);
	CHECK(!strcmp(r.err.message, "sink says no") &&
	      r.err.sys_errno == ENOSPC);
	CHECK(r.rows == 4096 && r.g.calls == 2);
	got_free(&r.g);
	buf_free(&b);

	make_f32(&b, 10, 2);
	run_fail(&r, 1, "s.f32", RVF_IMPORT_F32, 2, b.p, b.n);
	CHECK(r.rc == RVF_E_IO && !strcmp(r.err.message, "sink says no"));
	CHECK(r.rows == 0);
	got_free(&r.g);
	buf_free(&b);

	run_fail(&r, 1, "s.jsonl", RVF_IMPORT_JSONL, 1, jl, strlen(jl));
	CHECK(r.rc == RVF_E_IO && !strcmp(r.err.message, "sink says no"));
	got_free(&r.g);

	/* Other argument checks. */
	CHECK(rvf_import_fd(0, "x", RVF_IMPORT_CSV, 2, NULL, NULL, NULL,
			    &r.err) == RVF_E_INVALID_ARGUMENT);
	CHECK(rvf_import_fd(-1, "x", RVF_IMPORT_CSV, 2, sink, &r.g, NULL,
			    &r.err) == RVF_E_INVALID_ARGUMENT);
	CHECK(rvf_import_fd(0, "x", (rvf_import_format)99, 2, sink, &r.g,
			    NULL, NULL) == RVF_E_INVALID_ARGUMENT);
}

int main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_import.XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	test_names();
	test_csv_basic();
	test_csv_errors();
	test_csv_big();
	test_csv_long_line();
	test_csv_locale();
	test_jsonl();
	test_jsonl_errors();
	test_jsonl_people();
	test_npy_f64();
	test_json_array();
	test_json_errors();
	test_fvecs();
	test_f32();
	test_npy();
	test_npy_header_incremental();
	test_sink_error();
	rmdir(tmpdir);
	if (failures) {
		fprintf(stderr, "test_import: %d failure(s)\n", failures);
		return 1;
	}
	printf("test_import: ok\n");
	return 0;
}
