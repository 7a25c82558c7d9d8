/* test_faults.c - every write path of librvf under injected I/O faults.
 *
 * engine/io.c fails the n-th write / fsync / rename / truncate of a process
 * when RVF_FAULT="op:n:errno" is set ("write:n:short" writes half, then
 * fails with ENOSPC).  For each operation (create, ingest, streaming ingest
 * + abort, ingest with metadata, delete, delete by filter, compact, embed /
 * remove kernel, embed eBPF, freeze, derive, branch) and each fault kind,
 * this test fails the 1st, 2nd, ... such call up to the last one the
 * operation makes (counted in a run without a fault: io_fault_calls), each
 * time in a forked child (the call counters are per process) working on a
 * fresh copy of a baseline store:
 *
 *   - the operation fails with RVF_E_IO, the injected errno, and a message
 *     naming the file and the OS error (or succeeds, when the failed call
 *     was one whose failure is harmless, like fsync of the directory);
 *   - the file stays valid: it reopens, every segment hash verifies, and it
 *     shows exactly the state before the operation (failure) or after it
 *     (success) - never a mix; no lock file or .compact.tmp is left behind;
 *   - the same handle keeps working once the fault clears (a marker row is
 *     ingested through it and is there after reopening).
 *
 * The "no truncate" scenarios add a second fault: ftruncate(2) itself fails
 * (a seccomp filter in the child), so a failed commit cannot take back
 * what it appended - a manifest included, when its fsync failed.  The
 * store must still show the old state and, after the next commit, the new
 * one, never the failed commit.
 *
 * Prints how many faults were injected.  Runs in a few seconds. */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io.h"
#include "rvf.h"

static char context[256]; /* the case being run, for messages */
#define CHECK_CONTEXT context
#include "check.h"
#define OK(call)                                                               \
	do {                                                                   \
		rvf_code rc_ = (call);                                         \
		if (rc_ != RVF_OK) {                                           \
			fprintf(stderr, "%s:%d: [%s] %s failed: %s (%s)\n",    \
				__FILE__, __LINE__, context, #call, err.message, \
				rvf_code_name(rc_));                           \
			failures++;                                            \
		}                                                              \
	} while (0)

static char dir[96];
static rvf_error err;

static char *path_in(const char *name)
{
	static char buf[8][512];
	static int next;
	char *p = buf[next++ % 8];
	snprintf(p, 512, "%s/%s", dir, name);
	return p;
}

/* A compaction's temporary file (random name, "*.compact.tmp") in dir. */
static bool compact_tmp_left(const char *d)
{
	DIR *dp = opendir(d);
	bool found = false;
	struct dirent *e;
	while (dp && !found && (e = readdir(dp))) {
		size_t n = strlen(e->d_name);
		found = n > 12 && !strcmp(e->d_name + n - 12, ".compact.tmp");
	}
	if (dp)
		closedir(dp);
	return found;
}

static bool exists(const char *p)
{
	return access(p, F_OK) == 0;
}

static long long file_size(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 ? (long long)st.st_size : -1;
}

static void copy_file(const char *from, const char *to)
{
	int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	char buf[1 << 16];
	ssize_t n;
	if (in < 0 || out < 0) {
		fprintf(stderr, "cannot copy %s to %s: %s\n", from, to, strerror(errno));
		exit(2);
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n) {
			perror("write");
			exit(2);
		}
	close(in);
	close(out);
}

/* FNV-1a over the whole file: "not modified" checks. */
static uint64_t file_hash(const char *p)
{
	uint64_t h = 1469598103934665603ull;
	int fd = open(p, O_RDONLY);
	if (fd < 0)
		return 0;
	unsigned char buf[1 << 16];
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		for (ssize_t i = 0; i < n; i++)
			h = (h ^ buf[i]) * 1099511628211ull;
	close(fd);
	return h;
}

/* ------------------------------------------------------------------ */
/* Data                                                                */
/* ------------------------------------------------------------------ */

#define MARKER_ID 900000001ull

static float component(uint64_t id, uint32_t j)
{
	return (float)((id * 31 + j * 7) % 1000) / 8.0f - 60.0f;
}

static float *rows_for(const uint64_t *ids, size_t n, uint32_t dim)
{
	float *v = malloc(n * dim * sizeof(float) + 1);
	for (size_t i = 0; i < n; i++)
		for (uint32_t j = 0; j < dim; j++)
			v[i * dim + j] = component(ids[i], j);
	return v;
}

static rvf_code ingest_range(rvf_store *s, uint64_t first, size_t n,
			     rvf_error *e)
{
	rvf_view *v = rvf_store_view(s);
	uint32_t dim = rvf_view_info(v)->dimension;
	rvf_view_release(v);
	uint64_t *ids = malloc(n * sizeof(uint64_t) + 1);
	for (size_t i = 0; i < n; i++)
		ids[i] = first + i;
	float *vec = rows_for(ids, n, dim);
	rvf_commit_info info;
	rvf_code rc = rvf_store_ingest(s, n, ids, vec, NULL, NULL, &info, e);
	free(ids);
	free(vec);
	return rc;
}

/* ------------------------------------------------------------------ */
/* State digest: everything a reader can observe, canonically          */
/* ------------------------------------------------------------------ */

typedef struct digest {
	uint64_t h;
	uint64_t visible;
	bool marker;      /* MARKER_ID is visible with its vector */
	bool hashes_ok;   /* every listed segment's hash verifies */
} digest;

static void mix(uint64_t *h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		*h = (*h ^ b[i]) * 1099511628211ull;
}

static void mix_value(uint64_t *h, const rvf_value *v)
{
	mix(h, &v->type, sizeof(v->type));
	switch (v->type) {
	case RVF_VALUE_STRING:
	case RVF_VALUE_BYTES:
		mix(h, v->u.str.ptr, v->u.str.len);
		break;
	case RVF_VALUE_BOOL:
		mix(h, &v->u.b, 1);
		break;
	default:
		mix(h, &v->u.u64, 8);
	}
}

/* Digest of a view; MARKER_ID is left out (reported in .marker). */
static digest view_digest(rvf_view *v)
{
	digest d = { .h = 1469598103934665603ull };
	const rvf_info *in = rvf_view_info(v);
	uint32_t dim = in->dimension;
	float *buf = malloc(4 * (size_t)dim + 4);
	mix(&d.h, &dim, 4);
	mix(&d.h, &in->metric_byte, 1);
	mix(&d.h, &in->is_branch, 1);
	mix(&d.h, &in->frozen, 1);
	for (size_t i = 0; i < in->visible; i++) {
		uint64_t id = rvf_view_id_at(v, i);
		rvf_view_vector_at(v, i, buf);
		if (id == MARKER_ID) {
			bool same = true;
			for (uint32_t j = 0; j < dim; j++)
				same = same && buf[j] == component(id, j);
			d.marker = same;
			continue;
		}
		d.visible++;
		mix(&d.h, &id, 8);
		mix(&d.h, buf, 4 * (size_t)dim);
		const rvf_meta_field *f;
		size_t nf = rvf_view_metadata(v, id, &f);
		for (size_t k = 0; k < nf; k++) {
			mix(&d.h, f[k].name, strlen(f[k].name));
			mix_value(&d.h, &f[k].value);
		}
	}
	/* The deletion list (a compaction empties it). */
	for (size_t i = 0; i < rvf_view_deleted_count(v); i++) {
		uint64_t id = rvf_view_deleted_at(v, i);
		mix(&d.h, "D", 1);
		mix(&d.h, &id, 8);
	}
	rvf_kernel_info ki;
	if (rvf_view_kernel(v, &ki)) {
		unsigned char *img = NULL;
		size_t len = 0;
		char *cmd = NULL;
		mix(&d.h, "K", 1);
		if (rvf_view_kernel_image(v, &img, &len, &cmd, NULL) == RVF_OK) {
			mix(&d.h, img, len);
			if (cmd)
				mix(&d.h, cmd, strlen(cmd));
		}
		free(img);
		free(cmd);
	}
	rvf_ebpf_info ei;
	if (rvf_view_ebpf(v, &ei)) {
		mix(&d.h, "E", 1);
		mix(&d.h, ei.bytecode, (size_t)ei.program_size);
	}
	free(buf);
	d.hashes_ok = rvf_view_verify_hashes(v, NULL) == RVF_OK;
	return d;
}

/* Digest of the file at p, opened read-only; false if it does not open. */
static bool file_digest(const char *p, digest *out, char *why, size_t why_len)
{
	rvf_store *s;
	rvf_error e;
	if (rvf_store_open(p, RVF_OPEN_READ_ONLY, &s, &e) != RVF_OK) {
		snprintf(why, why_len, "%s (%s)", e.message, rvf_code_name(e.code));
		return false;
	}
	rvf_view *v = rvf_store_view(s);
	*out = view_digest(v);
	rvf_view_release(v);
	rvf_store_close(s);
	return true;
}

static bool same_state(digest a, digest b)
{
	return a.h == b.h && a.visible == b.visible;
}

/* ------------------------------------------------------------------ */
/* Scenarios                                                           */
/* ------------------------------------------------------------------ */

/* One operation under test.  `base` is the baseline store file (copied
 * to `work` for each run); `target` is the file the operation creates
 * (create/derive/branch) or NULL when it changes `work` itself. */
typedef struct scenario {
	const char *name;
	const char *base;
	bool creates;            /* the operation makes a new file (target) */
	/* Runs the operation on the open store s (NULL for create);
	 * *made receives a store it created.  Returns the code. */
	rvf_code (*run)(rvf_store *s, const char *target, rvf_store **made,
			rvf_error *e);
	bool no_truncate;        /* ftruncate(2) fails too (seccomp) */
} scenario;

#define BIG_ROWS 20000 /* dim 64: 5 MiB, more than one write buffer */

static rvf_code op_ingest_big(rvf_store *s, const char *t, rvf_store **m,
			      rvf_error *e)
{
	(void)t;
	(void)m;
	rvf_ingest *in;
	rvf_code rc = rvf_ingest_begin(s, &in, e);
	if (rc != RVF_OK)
		return rc;
	for (uint64_t first = 10000; first < 10000 + BIG_ROWS && rc == RVF_OK;
	     first += 1000) {
		uint64_t ids[1000];
		for (int i = 0; i < 1000; i++)
			ids[i] = first + (uint64_t)i;
		float *vec = rows_for(ids, 1000, 64);
		rc = rvf_ingest_add(in, 1000, ids, vec, NULL, NULL, e);
		free(vec);
	}
	if (rc != RVF_OK) {
		rvf_ingest_abort(in);
		return rc;
	}
	rvf_commit_info info;
	return rvf_ingest_commit(in, &info, e);
}

/* Rows streamed to the file, then the batch is abandoned (as the daemon
 * does with a file that fails to parse half-way): only the truncate of
 * the abort can fail, silently; nothing may become visible. */
static rvf_code op_ingest_abort(rvf_store *s, const char *t, rvf_store **m,
				rvf_error *e)
{
	(void)t;
	(void)m;
	rvf_ingest *in;
	rvf_code rc = rvf_ingest_begin(s, &in, e);
	if (rc != RVF_OK)
		return rc;
	for (uint64_t first = 50000; first < 50000 + BIG_ROWS && rc == RVF_OK;
	     first += 1000) {
		uint64_t ids[1000];
		for (int i = 0; i < 1000; i++)
			ids[i] = first + (uint64_t)i;
		float *vec = rows_for(ids, 1000, 64);
		rc = rvf_ingest_add(in, 1000, ids, vec, NULL, NULL, e);
		free(vec);
	}
	rvf_ingest_abort(in);
	return rc;
}

static rvf_code op_ingest_meta(rvf_store *s, const char *t, rvf_store **m,
			       rvf_error *e)
{
	(void)t;
	(void)m;
	uint64_t ids[3] = { 701, 702, 3 }; /* 3 replaces an existing row */
	float *vec = rows_for(ids, 3, 8);
	rvf_meta_field f[4] = {
		{ "color", { .type = RVF_VALUE_STRING, .u.str = { "green", 5 } } },
		{ "size", { .type = RVF_VALUE_I64, .u.i64 = -7 } },
		{ "color", { .type = RVF_VALUE_STRING, .u.str = { "red", 3 } } },
		{ "ok", { .type = RVF_VALUE_BOOL, .u.b = true } },
	};
	size_t start[4] = { 0, 2, 3, 4 };
	rvf_commit_info info;
	rvf_code rc = rvf_store_ingest(s, 3, ids, vec, f, start, &info, e);
	free(vec);
	return rc;
}

static rvf_code op_delete(rvf_store *s, const char *t, rvf_store **m,
			  rvf_error *e)
{
	(void)t;
	(void)m;
	uint64_t ids[4] = { 3, 4, 5, 424242 };
	rvf_commit_info info;
	return rvf_store_delete(s, 4, ids, &info, e);
}

static rvf_code op_delete_filter(rvf_store *s, const char *t, rvf_store **m,
				 rvf_error *e)
{
	(void)t;
	(void)m;
	rvf_filter *f = rvf_filter_parse("{\"op\":\"eq\",\"field\":\"color\",\"value\":\"red\"}", e);
	if (!f)
		return e->code;
	rvf_commit_info info;
	rvf_code rc = rvf_store_delete_filter(s, f, &info, e);
	rvf_filter_free(f);
	return rc;
}

static rvf_code op_compact(rvf_store *s, const char *t, rvf_store **m,
			   rvf_error *e)
{
	(void)t;
	(void)m;
	rvf_commit_info info;
	return rvf_store_compact(s, &info, e);
}

static rvf_code op_embed_kernel(rvf_store *s, const char *t, rvf_store **m,
				rvf_error *e)
{
	(void)t;
	(void)m;
	unsigned char img[9000];
	for (size_t i = 0; i < sizeof(img); i++)
		img[i] = (unsigned char)(i * 13 + 5);
	rvf_kernel_spec k = { .arch = 1, .kernel_type = 1, .api_port = 9000,
			      .cmdline = "console=ttyS0 quiet" };
	rvf_commit_info info;
	return rvf_store_embed_kernel(s, &k, img, sizeof(img), &info, e);
}

static rvf_code op_remove_kernel(rvf_store *s, const char *t, rvf_store **m,
				 rvf_error *e)
{
	(void)t;
	(void)m;
	rvf_commit_info info;
	return rvf_store_remove_kernel(s, &info, e);
}

static rvf_code op_embed_ebpf(rvf_store *s, const char *t, rvf_store **m,
			      rvf_error *e)
{
	(void)t;
	(void)m;
	unsigned char prog[128], btf[40];
	for (size_t i = 0; i < sizeof(prog); i++)
		prog[i] = (unsigned char)(i * 3);
	memset(btf, 0x42, sizeof(btf));
	rvf_ebpf_spec sp = { .program_type = 1, .attach_type = 2, .max_dimension = 8 };
	rvf_commit_info info;
	return rvf_store_embed_ebpf(s, &sp, prog, sizeof(prog), btf, sizeof(btf),
				    &info, e);
}

static rvf_code op_freeze(rvf_store *s, const char *t, rvf_store **m,
			  rvf_error *e)
{
	(void)t;
	(void)m;
	rvf_commit_info info;
	return rvf_store_freeze(s, &info, e);
}

static rvf_code op_create(rvf_store *s, const char *t, rvf_store **m,
			  rvf_error *e)
{
	(void)s;
	rvf_create_options o = { .dimension = 8, .metric = RVF_METRIC_COSINE };
	return rvf_store_create(t, &o, m, e);
}

static rvf_code op_derive(rvf_store *s, const char *t, rvf_store **m,
			  rvf_error *e)
{
	return rvf_store_derive(s, t, NULL, m, e);
}

static rvf_code op_branch(rvf_store *s, const char *t, rvf_store **m,
			  rvf_error *e)
{
	return rvf_store_branch(s, t, m, e);
}

/* ------------------------------------------------------------------ */
/* Running one case in a child                                         */
/* ------------------------------------------------------------------ */

/* From now on ftruncate(2) fails with EIO in this process. */
static void deny_ftruncate(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_ftruncate, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EIO & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
		perror("seccomp");
		_exit(4);
	}
}

/* The calls RVF_FAULT can fail, by name (io.c's). */
static const char *const fault_ops[] = { "write", "fsync", "rename", "truncate" };
#define N_FAULT_OPS (sizeof(fault_ops) / sizeof(fault_ops[0]))

typedef struct outcome {
	int rc;
	unsigned long calls[N_FAULT_OPS]; /* made by the operation, per op */
	int sys_errno;
	int follow_rc;       /* the marker ingest after the fault cleared */
	bool state_known;    /* the child's own view after the operation */
	long long size;      /* file size right after the operation */
	digest state;
	char message[600];
	char follow_message[600];
} outcome;

static const char *spec_op(const char *spec)
{
	static char op[16];
	sscanf(spec, "%15[a-z]", op);
	return op;
}

/* The errno a spec injects. */
static int spec_errno(const char *spec)
{
	const char *w = strrchr(spec, ':') + 1;
	if (!strcmp(w, "short"))
		return strcmp(spec_op(spec), "write") == 0 ? ENOSPC : EIO;
	return atoi(w);
}

static void child(const scenario *sc, const char *work, const char *target,
		  const char *spec, int fd)
{
	outcome o = { 0 };
	rvf_error e = { 0 };
	rvf_store *s = NULL, *made = NULL;
	if (sc->base) {
		/* Derive and branch only read their parent. */
		unsigned flags = sc->creates ? RVF_OPEN_READ_ONLY : 0;
		if (rvf_store_open(work, flags, &s, &e) != RVF_OK) {
			snprintf(o.message, sizeof(o.message), "setup: open: %s",
				 e.message);
			o.rc = -1;
			goto out;
		}
	}
	if (sc->no_truncate)
		deny_ftruncate();
	setenv("RVF_FAULT", spec, 1);
	o.rc = sc->run(s, target, &made, &e);
	for (size_t i = 0; i < N_FAULT_OPS; i++)
		o.calls[i] = io_fault_calls(fault_ops[i]);
	unsetenv("RVF_FAULT");
	o.sys_errno = e.sys_errno;
	o.size = file_size(sc->creates ? target : work);
	snprintf(o.message, sizeof(o.message), "%s", o.rc ? e.message : "");
	rvf_store *w = sc->creates ? made : s;
	if (w) {
		rvf_view *v = rvf_store_view(w);
		o.state = view_digest(v);
		o.state_known = true;
		rvf_view_release(v);
	}
	/* The fault has cleared: the same handle works again.  For the
	 * operations that make a file, retry them first. */
	if (sc->creates && !w) {
		o.follow_rc = sc->run(s, target, &made, &e);
		w = made;
	}
	if (o.follow_rc == RVF_OK && w && !rvf_store_read_only(w))
		o.follow_rc = ingest_range(w, MARKER_ID, 1, &e);
	else if (o.follow_rc == RVF_OK && w)
		o.follow_rc = -2; /* frozen: checked by the parent */
	if (o.follow_rc > 0)
		snprintf(o.follow_message, sizeof(o.follow_message), "%s", e.message);
	if (made)
		rvf_store_close(made);
out:
	if (s)
		rvf_store_close(s);
	if (write(fd, &o, sizeof(o)) != (ssize_t)sizeof(o))
		_exit(3);
	_exit(0);
}

static int faults_reported, faults_harmless, runs;

/* Runs the scenario with fault `spec`; returns true when the operation
 * reported the fault (false: it completed).  calls[] receives how many
 * calls of each op the operation made (zeros if the child failed). */
static bool run_case(const scenario *sc, const char *spec, digest before,
		     digest after, uint64_t parent_hash,
		     unsigned long calls[N_FAULT_OPS])
{
	const char *work = path_in("work.rvf");
	const char *target = path_in("target.rvf");
	char lock[600], tlock[600];
	snprintf(context, sizeof(context), "%s RVF_FAULT=%s", sc->name, spec);
	unlink(work);
	unlink(target);
	if (sc->base)
		copy_file(sc->base, work);
	long long size0 = file_size(work);
	snprintf(lock, sizeof(lock), "%s.lock", work);
	snprintf(tlock, sizeof(tlock), "%s.lock", target);

	int p[2];
	if (pipe(p) != 0) {
		perror("pipe");
		exit(2);
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		child(sc, work, target, spec, p[1]);
	}
	close(p[1]);
	outcome o;
	ssize_t got = read(p[0], &o, sizeof(o));
	close(p[0]);
	int status;
	waitpid(pid, &status, 0);
	runs++;
	CHECK(got == (ssize_t)sizeof(o));
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	if (got != (ssize_t)sizeof(o))
		return false;
	memcpy(calls, o.calls, sizeof(o.calls));
	if (o.rc == -1) {
		fprintf(stderr, "[%s] %s\n", context, o.message);
		failures++;
		return false;
	}
	bool failed = o.rc != RVF_OK;
	const char *subject = sc->creates ? target : work;
	const char *base = strrchr(subject, '/') + 1;
	if (failed) {
		int want = spec_errno(spec);
		faults_reported++;
		/* A clear I/O error: the code, the errno, the file, the OS text. */
		CHECK(o.rc == RVF_E_IO);
		CHECK(o.sys_errno == want);
		CHECK(strstr(o.message, base) != NULL || strstr(o.message, "work.rvf") != NULL);
		CHECK(strstr(o.message, strerror(want)) != NULL);
		if (o.rc != RVF_E_IO || !strstr(o.message, strerror(want)))
			fprintf(stderr, "[%s]   message: %s\n", context, o.message);
	}
	/* The handle saw exactly the old or the new state. */
	if (o.state_known) {
		digest want = failed ? before : after;
		CHECK(same_state(o.state, want));
		CHECK(o.state.hashes_ok);
	} else {
		CHECK(failed && sc->creates);
	}
	/* Nothing left behind. */
	CHECK(!exists(lock));
	CHECK(!exists(tlock));
	CHECK(!compact_tmp_left(dir));
	if (sc->creates && failed) {
		/* A failed create leaves no file (the retry then made it). */
		CHECK(o.follow_rc == RVF_OK);
	}
	if (sc->creates && sc->base)
		CHECK(file_hash(work) == parent_hash); /* the parent is untouched */
	/* A failed operation took back what it had appended. */
	if (failed && !sc->creates && strcmp(spec_op(spec), "truncate") != 0 &&
	    !sc->no_truncate)
		CHECK(o.size == size0);
	if (failed && sc->creates)
		CHECK(o.size == -1);
	/* The store keeps working after the fault: the marker row. */
	if (o.follow_rc == -2) {
		CHECK(!failed && strstr(sc->name, "freeze") != NULL);
	} else {
		CHECK(o.follow_rc == RVF_OK);
		if (o.follow_rc != RVF_OK)
			fprintf(stderr, "[%s]   after the fault: %s\n", context,
				o.follow_message);
	}
	/* Reopen: a valid file with the old/new state (+ the marker). */
	digest now;
	char why[600];
	if (!file_digest(subject, &now, why, sizeof(why))) {
		fprintf(stderr, "[%s] the file no longer opens: %s\n", context, why);
		failures++;
		return failed;
	}
	CHECK(now.hashes_ok);
	digest want = failed && !sc->creates ? before : after;
	CHECK(same_state(now, want));
	if (o.follow_rc != -2)
		CHECK(now.marker);
	/* And read-write again (the lock is free, the tail is usable). */
	rvf_store *s;
	if (o.follow_rc != -2 && !strstr(sc->name, "freeze")) {
		rvf_code r = rvf_store_open(subject, 0, &s, &err);
		OK(r);
		if (r == RVF_OK) {
			OK(ingest_range(s, MARKER_ID + 1, 1, &err));
			rvf_store_close(s);
			digest again;
			CHECK(file_digest(subject, &again, why, sizeof(why)));
			CHECK(again.visible == want.visible + 1);
		}
	}
	return failed;
}

/* The expected state after the operation, from a run without a fault. */
static digest expected_after(const scenario *sc)
{
	const char *work = path_in("work.rvf");
	const char *target = path_in("target.rvf");
	unlink(work);
	unlink(target);
	if (sc->base)
		copy_file(sc->base, work);
	rvf_store *s = NULL, *made = NULL;
	snprintf(context, sizeof(context), "%s (no fault)", sc->name);
	if (sc->base)
		OK(rvf_store_open(work, sc->creates ? RVF_OPEN_READ_ONLY : 0, &s, &err));
	OK(sc->run(s, target, &made, &err));
	rvf_store *w = sc->creates ? made : s;
	digest d = { 0 };
	if (w) {
		rvf_view *v = rvf_store_view(w);
		d = view_digest(v);
		rvf_view_release(v);
	}
	if (made)
		rvf_store_close(made);
	if (s)
		rvf_store_close(s);
	return d;
}

static const char *const specs_write[] = { "5", "28", "short" };
static const char *const specs_other[] = { "5", "28" };

static void run_scenario(const scenario *sc)
{
	digest before = { 0 };
	char why[600];
	snprintf(context, sizeof(context), "%s (baseline)", sc->name);
	if (sc->base && !sc->creates)
		CHECK(file_digest(sc->base, &before, why, sizeof(why)));
	digest after = expected_after(sc);
	uint64_t ph = sc->base ? file_hash(sc->base) : 0;
	int injected0 = faults_reported;
	/* A run where no call fails (no op is named "none"), with every
	 * check, counts the calls.  Until its n-th call of an op, a run
	 * failing that call does exactly what this one does, so it reaches
	 * the fault for every n up to this count and for no n beyond. */
	unsigned long total[N_FAULT_OPS] = { 0 }, calls[N_FAULT_OPS];
	CHECK(!run_case(sc, "none:0:0", before, after, ph, total));
	for (size_t o = 0; o < N_FAULT_OPS; o++) {
		bool is_write = o == 0;
		size_t nk = is_write ? 3 : 2;
		CHECK(total[o] <= 200);
		for (size_t k = 0; k < nk; k++) {
			const char *what = is_write ? specs_write[k] : specs_other[k];
			/* Fail the n-th call for every n (a failed call whose
			 * failure is harmless lets the operation complete). */
			for (unsigned long n = 1; n <= total[o] && n <= 200; n++) {
				char spec[64];
				snprintf(spec, sizeof(spec), "%s:%lu:%s", fault_ops[o], n, what);
				run_case(sc, spec, before, after, ph, calls);
				/* (the fault was reached: the same calls as above) */
				CHECK(calls[o] >= n);
			}
		}
	}
	printf("  %-16s %3d faults reported\n", sc->name, faults_reported - injected0);
	fflush(stdout);
}

/* ------------------------------------------------------------------ */
/* Baselines                                                           */
/* ------------------------------------------------------------------ */

static void make_baselines(void)
{
	snprintf(context, sizeof(context), "baselines");
	rvf_store *s;
	rvf_commit_info info;
	rvf_create_options o = { .dimension = 8, .metric = RVF_METRIC_L2 };
	/* plain: dim 8, rows 1..60, with metadata on some, 2 deletions, a
	 * kernel and an eBPF program. */
	OK(rvf_store_create(path_in("plain.rvf"), &o, &s, &err));
	OK(ingest_range(s, 1, 40, &err));
	uint64_t ids[3] = { 41, 42, 43 };
	float *vec = rows_for(ids, 3, 8);
	rvf_meta_field f[3] = {
		{ "color", { .type = RVF_VALUE_STRING, .u.str = { "red", 3 } } },
		{ "color", { .type = RVF_VALUE_STRING, .u.str = { "blue", 4 } } },
		{ "color", { .type = RVF_VALUE_STRING, .u.str = { "red", 3 } } },
	};
	size_t start[4] = { 0, 1, 2, 3 };
	OK(rvf_store_ingest(s, 3, ids, vec, f, start, &info, &err));
	free(vec);
	OK(ingest_range(s, 44, 17, &err));
	uint64_t del[2] = { 7, 8 };
	OK(rvf_store_delete(s, 2, del, &info, &err));
	unsigned char img[3000];
	for (size_t i = 0; i < sizeof(img); i++)
		img[i] = (unsigned char)(i % 251);
	rvf_kernel_spec k = { .arch = 2, .kernel_type = 1, .cmdline = "x" };
	OK(rvf_store_embed_kernel(s, &k, img, sizeof(img), &info, &err));
	unsigned char prog[16] = { 0x95 };
	rvf_ebpf_spec sp = { .program_type = 1 };
	OK(rvf_store_embed_ebpf(s, &sp, prog, sizeof(prog), NULL, 0, &info, &err));
	rvf_store_close(s);

	/* big: dim 64, a few rows (the big ingest appends 5 MiB). */
	o.dimension = 64;
	OK(rvf_store_create(path_in("big.rvf"), &o, &s, &err));
	OK(ingest_range(s, 1, 100, &err));
	rvf_store_close(s);
	/* bigdel: 5 MiB of rows with deletions, so that a compaction
	 * writes more than one buffer of rows. */
	OK(rvf_store_create(path_in("bigdel.rvf"), &o, &s, &err));
	OK(ingest_range(s, 1, BIG_ROWS, &err));
	uint64_t bdel[100];
	for (int i = 0; i < 100; i++)
		bdel[i] = 1 + (uint64_t)i * 97;
	OK(rvf_store_delete(s, 100, bdel, &info, &err));
	rvf_store_close(s);

	/* branch: a child of plain (branch ops run on the child). */
	OK(rvf_store_open(path_in("plain.rvf"), RVF_OPEN_READ_ONLY, &s, &err));
	rvf_store *c;
	OK(rvf_store_branch(s, path_in("child.rvf"), &c, &err));
	uint64_t cdel = 9;
	OK(rvf_store_delete(c, 1, &cdel, &info, &err));
	OK(ingest_range(c, 100, 5, &err));
	rvf_store_close(c);
	rvf_store_close(s);
}

int main(void)
{
	/* tmpfs when there is one: hundreds of runs, each with fsyncs. */
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(dir, sizeof(dir), "%s/rvf-faults-XXXXXX", base);
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	unsetenv("RVF_FAULT");
	make_baselines();
	/* (path_in's buffers rotate: keep copies of the base paths.) */
	static char plain[512], big[512], bigdel[512], childp[512];
	snprintf(plain, sizeof(plain), "%s", path_in("plain.rvf"));
	snprintf(big, sizeof(big), "%s", path_in("big.rvf"));
	snprintf(childp, sizeof(childp), "%s", path_in("child.rvf"));
	snprintf(bigdel, sizeof(bigdel), "%s", path_in("bigdel.rvf"));
	const scenario sc[] = {
		{ "create", NULL, true, op_create, false },
		{ "ingest", big, false, op_ingest_big, false },
		{ "ingest+abort", big, false, op_ingest_abort, false },
		{ "ingest+meta", plain, false, op_ingest_meta, false },
		{ "delete", plain, false, op_delete, false },
		{ "delete-filter", plain, false, op_delete_filter, false },
		{ "compact", plain, false, op_compact, false },
		{ "compact-big", bigdel, false, op_compact, false },
		{ "embed-kernel", plain, false, op_embed_kernel, false },
		{ "remove-kernel", plain, false, op_remove_kernel, false },
		{ "embed-ebpf", plain, false, op_embed_ebpf, false },
		{ "freeze", plain, false, op_freeze, false },
		{ "derive", plain, true, op_derive, false },
		{ "branch", plain, true, op_branch, false },
		/* On a branch child, commits append COW_MAP and MEMBERSHIP
		 * too; compacting one keeps them. */
		{ "child-ingest", childp, false, op_ingest_meta, false },
		{ "child-delete", childp, false, op_delete, false },
		{ "child-compact", childp, false, op_compact, false },
		{ "child-freeze", childp, false, op_freeze, false },
		/* Two faults: the commit's and then the truncate taking it back. */
		{ "ingest/notrunc", big, false, op_ingest_big, true },
		{ "delete/notrunc", plain, false, op_delete, true },
		{ "kernel/notrunc", plain, false, op_embed_kernel, true },
		{ "child-ing/notrunc", childp, false, op_ingest_meta, true },
	};
	size_t nsc = sizeof(sc) / sizeof(sc[0]);
	if (failures) {
		fprintf(stderr, "test_faults: baselines failed\n");
		return 1;
	}
	printf("test_faults: fault injection through RVF_FAULT (forked child per case)\n");
	for (size_t i = 0; i < nsc; i++)
		run_scenario(&sc[i]);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	printf("test_faults: %d runs, %d faults injected and reported, %d check failure(s)\n",
	       runs, faults_reported, failures);
	(void)faults_harmless;
	return failures ? 1 : 0;
}
