/* control.c - the `control` file: store-wide operations through the daemon.
 *
 * Each write(2) is one command line; it runs, and commits, before the
 * write returns, which then reports 0 or the errno of the failure (the
 * reason goes to `errors`).  This is how rvfctl changes a mounted store
 * (the daemon holds the writer lock, so nobody else may) and why the mount
 * shows the change at once.  Commands:
 *
 *   compact | freeze | remove-kernel | remove-ebpf
 *   delete ID...                     (one commit; ids space or comma separated)
 *   delete-filter JSON               (the rest of the line)
 *   derive CHILD_PATH [dim=N] [metric=M]
 *   branch CHILD_PATH
 *   embed-kernel IMAGE_PATH [arch=N] [type=N] [flags=N] [api_port=N] [compress] [cmdline=...]
 *   embed-ebpf PROG_PATH [btf=PATH] [prog_type=N] [attach_type=N] [max_dim=N]
 *   sign KEY_PATH
 *
 * Arguments are separated by blanks; "..." quotes one (with \" and \\).
 * Paths are read by the daemon, so they must be absolute; only the user
 * that mounted the store (or root) may write commands, since a path makes
 * the daemon read a file with its rights. */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rvffs.h"

#define CONTROL_MAX (64u * 1024u) /* well under max_write: one request */
#define MAX_ARGS 16
#define IMAGE_MAX (256u << 20)

typedef struct command {
	char *argv[MAX_ARGS];
	int argc;
	const char *rest;      /* the line after the command word */
	char *buf;             /* token storage */
} command;

/* Splits the line into blank-separated, optionally quoted words.  An
 * unquoted cmdline= takes the rest of the line, and so does everything
 * after `delete` and `delete-filter`. */
static int split(const char *line, command *c)
{
	size_t len = strlen(line);
	c->buf = malloc(len + 1);
	if (!c->buf)
		return -ENOMEM;
	char *out = c->buf;
	const char *p = line;
	c->argc = 0;
	c->rest = NULL;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			return 0;
		if (c->argc == 1) {
			c->rest = p;
			/* Ids and JSON are not words: theirs is the raw rest. */
			if (!strcmp(c->argv[0], "delete") ||
			    !strcmp(c->argv[0], "delete-filter"))
				return 0;
		}
		if (c->argc == MAX_ARGS)
			return -E2BIG;
		c->argv[c->argc++] = out;
		bool quoted = false;
		if (!strncmp(p, "cmdline=", 8) && p[8] != '"') {
			size_t n = strlen(p);
			memcpy(out, p, n + 1);
			out += n + 1;
			return 0;
		}
		for (; *p && (quoted || (*p != ' ' && *p != '\t')); p++) {
			if (*p == '"') {
				quoted = !quoted;
			} else if (quoted && *p == '\\' && p[1]) {
				*out++ = *++p;
			} else {
				*out++ = *p;
			}
		}
		if (quoted)
			return -EINVAL;
		*out++ = '\0';
	}
}

/* The value of KEY=VALUE argument a, or NULL when a is not KEY=... */
static const char *opt_value(const char *a, const char *key)
{
	size_t n = strlen(key);
	return !strncmp(a, key, n) && a[n] == '=' ? a + n + 1 : NULL;
}

static bool parse_num(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	if (!s || *s < '0' || *s > '9')
		return false;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || *end || v > max)
		return false;
	*out = v;
	return true;
}

/* Reads a whole file the command names; -errno with the reason logged. */
static int read_path(rvffs *fs, const char *what, const char *path,
		     unsigned char **out, size_t *len)
{
	if (path[0] != '/') {
		fs_error(fs, "control: %s: %s: the path must be absolute", what, path);
		return -EINVAL;
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		int e = errno;
		fs_error(fs, "control: %s: %s: %s", what, path, strerror(e));
		if (fd >= 0)
			close(fd);
		return -e;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > IMAGE_MAX) {
		fs_error(fs, "control: %s: %s: not a regular file of at most 256 MiB",
			 what, path);
		close(fd);
		return -EINVAL;
	}
	size_t n = (size_t)st.st_size, got = 0;
	unsigned char *buf = malloc(n ? n : 1);
	while (buf && got < n) {
		ssize_t r = read(fd, buf + got, n - got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	if (!buf || got != n) {
		free(buf);
		fs_error(fs, "control: %s: %s: cannot read it whole", what, path);
		return buf ? -EIO : -ENOMEM;
	}
	*out = buf;
	*len = n;
	return 0;
}

static int bad_arg(rvffs *fs, const char *cmd, const char *arg)
{
	fs_error(fs, "control: %s: bad argument \"%s\"", cmd, arg);
	return -EINVAL;
}

static int do_child(rvffs *fs, command *c, bool branch)
{
	const char *cmd = c->argv[0];
	if (c->argc < 2) {
		fs_error(fs, "control: %s needs CHILD_PATH", cmd);
		return -EINVAL;
	}
	if (c->argv[1][0] != '/') {
		fs_error(fs, "control: %s: %s: the path must be absolute", cmd, c->argv[1]);
		return -EINVAL;
	}
	rvf_child_options o = { .dimension = 0, .metric = -1 };
	for (int i = 2; i < c->argc; i++) {
		const char *v;
		uint64_t n;
		rvf_metric m;
		if (!branch && (v = opt_value(c->argv[i], "dim")) &&
		    parse_num(v, 65535, &n) && n)
			o.dimension = (uint32_t)n;
		else if (!branch && (v = opt_value(c->argv[i], "metric")) &&
			 rvf_metric_parse(v, &m))
			o.metric = (int)m;
		else
			return bad_arg(fs, cmd, c->argv[i]);
	}
	rvf_store *child;
	rvf_error err;
	rvf_code rc = branch ? rvf_store_branch(fs->store, c->argv[1], &child, &err) :
		      rvf_store_derive(fs->store, c->argv[1], &o, &child, &err);
	if (rc != RVF_OK)
		return -fs_rvf_errno(fs, cmd, &err);
	rvf_store_close(child);
	return 0;
}

static int do_kernel(rvffs *fs, command *c)
{
	rvf_kernel_spec spec = { 0 };
	for (int i = 2; i < c->argc; i++) {
		const char *a = c->argv[i], *v;
		uint64_t n;
		if ((v = opt_value(a, "arch")) && parse_num(v, 255, &n))
			spec.arch = (uint8_t)n;
		else if ((v = opt_value(a, "type")) && parse_num(v, 255, &n))
			spec.kernel_type = (uint8_t)n;
		else if ((v = opt_value(a, "flags")) && parse_num(v, UINT32_MAX, &n))
			spec.flags = (uint32_t)n;
		else if ((v = opt_value(a, "api_port")) && parse_num(v, 65535, &n))
			spec.api_port = (uint16_t)n;
		else if ((v = opt_value(a, "cmdline")))
			spec.cmdline = v;
		else if (!strcmp(a, "compress"))
			spec.compress = true;
		else
			return bad_arg(fs, c->argv[0], a);
	}
	if (c->argc < 2) {
		fs_error(fs, "control: embed-kernel needs IMAGE_PATH");
		return -EINVAL;
	}
	unsigned char *img;
	size_t len;
	int rc = read_path(fs, "embed-kernel", c->argv[1], &img, &len);
	if (rc)
		return rc;
	rvf_error err;
	if (rvf_store_embed_kernel(fs->store, &spec, img, len, NULL, &err) != RVF_OK)
		rc = -fs_rvf_errno(fs, "embed-kernel", &err);
	free(img);
	return rc;
}

static int do_ebpf(rvffs *fs, command *c)
{
	rvf_ebpf_spec spec = { 0 };
	const char *btf_path = NULL;
	for (int i = 2; i < c->argc; i++) {
		const char *a = c->argv[i], *v;
		uint64_t n;
		if ((v = opt_value(a, "btf")))
			btf_path = v;
		else if ((v = opt_value(a, "prog_type")) && parse_num(v, 255, &n))
			spec.program_type = (uint8_t)n;
		else if ((v = opt_value(a, "attach_type")) && parse_num(v, 255, &n))
			spec.attach_type = (uint8_t)n;
		else if ((v = opt_value(a, "max_dim")) && parse_num(v, 65535, &n))
			spec.max_dimension = (uint16_t)n;
		else
			return bad_arg(fs, c->argv[0], a);
	}
	if (c->argc < 2) {
		fs_error(fs, "control: embed-ebpf needs PROG_PATH");
		return -EINVAL;
	}
	unsigned char *prog, *btf = NULL;
	size_t len, blen = 0;
	int rc = read_path(fs, "embed-ebpf", c->argv[1], &prog, &len);
	if (rc)
		return rc;
	if (btf_path && (rc = read_path(fs, "embed-ebpf", btf_path, &btf, &blen))) {
		free(prog);
		return rc;
	}
	rvf_error err;
	if (rvf_store_embed_ebpf(fs->store, &spec, prog, len, btf, blen, NULL,
				 &err) != RVF_OK)
		rc = -fs_rvf_errno(fs, "embed-ebpf", &err);
	free(prog);
	free(btf);
	return rc;
}

static int do_delete(rvffs *fs, command *c)
{
	size_t n = 0, cap = 64;
	uint64_t *ids = malloc(cap * sizeof(uint64_t));
	if (!ids)
		return -ENOMEM;
	const char *p = c->rest ? c->rest : "";
	int rc = 0;
	while (*p && !rc) {
		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		if (!*p)
			break;
		const char *end = p + strcspn(p, " ,\t");
		uint64_t id;
		if (!rvf_parse_id(p, (size_t)(end - p), &id)) {
			fs_error(fs, "control: delete: ids are canonical decimal numbers, not \"%.*s\"",
				 (int)(end - p > 40 ? 40 : end - p), p);
			rc = -EINVAL;
			break;
		}
		if (n == cap) {
			uint64_t *g = realloc(ids, (cap *= 2) * sizeof(uint64_t));
			if (!g) {
				rc = -ENOMEM;
				break;
			}
			ids = g;
		}
		ids[n++] = id;
		p = end;
	}
	if (!rc && !n) {
		fs_error(fs, "control: delete needs at least one id");
		rc = -EINVAL;
	}
	rvf_error err;
	rvf_commit_info info;
	if (!rc && rvf_store_delete(fs->store, n, ids, &info, &err) != RVF_OK)
		rc = -fs_rvf_errno(fs, "delete", &err);
	free(ids);
	return rc;
}

static int do_delete_filter(rvffs *fs, command *c)
{
	rvf_error err;
	rvf_filter *f = rvf_filter_parse(c->rest ? c->rest : "", &err);
	if (!f)
		return -fs_rvf_errno(fs, "delete-filter", &err);
	rvf_commit_info info;
	int rc = 0;
	if (rvf_store_delete_filter(fs->store, f, &info, &err) != RVF_OK)
		rc = -fs_rvf_errno(fs, "delete-filter", &err);
	rvf_filter_free(f);
	return rc;
}

static int do_sign(rvffs *fs, command *c)
{
	if (c->argc != 2 || c->argv[1][0] != '/') {
		fs_error(fs, "control: sign needs an absolute KEY_PATH");
		return -EINVAL;
	}
	uint8_t sk[RVF_SIGN_SECRET_KEY_BYTES], pk[RVF_SIGN_PUBLIC_KEY_BYTES];
	rvf_error err;
	int rc = 0;
	if (rvf_sign_read_key(c->argv[1], sk, pk, &err) != RVF_OK ||
	    rvf_store_sign(fs->store, sk, pk, NULL, &err) != RVF_OK)
		rc = -fs_rvf_errno(fs, "sign", &err);
	sodium_memzero(sk, sizeof(sk));
	return rc;
}

/* Runs one command line; 0 or -errno. */
static int run(rvffs *fs, const char *line, bool *compacted)
{
	command c;
	int rc = split(line, &c);
	if (rc) {
		free(c.buf);
		fs_error(fs, "control: %s", rc == -E2BIG ? "too many arguments" :
			 rc == -EINVAL ? "unbalanced quote" : "out of memory");
		return rc;
	}
	if (!c.argc) {
		free(c.buf);
		return 0; /* a blank line does nothing */
	}
	const char *cmd = c.argv[0];
	rvf_error err;
	rvf_code code = RVF_OK;
	bool bare = c.argc == 1;
	if (!strcmp(cmd, "compact") && bare) {
		code = rvf_store_compact(fs->store, NULL, &err);
		*compacted = code == RVF_OK;
	} else if (!strcmp(cmd, "freeze") && bare) {
		rvf_view *v = rvf_store_view(fs->store);
		bool branch = rvf_view_info(v)->is_branch;
		rvf_view_release(v);
		if (branch) {
			code = rvf_store_freeze(fs->store, NULL, &err);
		} else {
			/* Only a branch child's COW_MAP can record it: a root
			 * store would be "frozen" until unmount.  Never claim it. */
			fs_error(fs, "control: freeze: %s is not a branch child, and the format records a freeze only in a branch child's COW_MAP; it would not last past this mount. Make the store read-only instead (chmod a-w STORE, or mount -o ro)",
				 fs->store_path);
			return -EINVAL;
		}
	} else if (!strcmp(cmd, "remove-kernel") && bare) {
		code = rvf_store_remove_kernel(fs->store, NULL, &err);
	} else if (!strcmp(cmd, "remove-ebpf") && bare) {
		code = rvf_store_remove_ebpf(fs->store, NULL, &err);
	} else if (!strcmp(cmd, "delete")) {
		rc = do_delete(fs, &c);
	} else if (!strcmp(cmd, "delete-filter")) {
		rc = do_delete_filter(fs, &c);
	} else if (!strcmp(cmd, "derive") || !strcmp(cmd, "branch")) {
		rc = do_child(fs, &c, cmd[0] == 'b');
	} else if (!strcmp(cmd, "embed-kernel")) {
		rc = do_kernel(fs, &c);
	} else if (!strcmp(cmd, "embed-ebpf")) {
		rc = do_ebpf(fs, &c);
	} else if (!strcmp(cmd, "sign")) {
		rc = do_sign(fs, &c);
	} else {
		fs_error(fs, "control: unknown command or arguments: %.200s", line);
		rc = -EINVAL;
	}
	if (code != RVF_OK)
		rc = -fs_rvf_errno(fs, cmd, &err);
	free(c.buf);
	return rc;
}

void control_write(fuse_req_t req, const char *buf, size_t size)
{
	rvffs *fs = fs_of(req);
	uid_t uid = fuse_req_ctx(req)->uid;
	if (uid != 0 && uid != getuid()) {
		fs_error(fs, "control: uid %u may not send commands (only the mounting user)",
			 (unsigned)uid);
		fuse_reply_err(req, EACCES);
		return;
	}
	if (size > CONTROL_MAX) {
		fs_error(fs, "control: a command is at most %u bytes", CONTROL_MAX);
		fuse_reply_err(req, E2BIG);
		return;
	}
	if (memchr(buf, '\0', size)) {
		fs_error(fs, "control: a command is text (found a NUL byte)");
		fuse_reply_err(req, EINVAL);
		return;
	}
	char *line = strndup(buf, size);
	if (!line) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	size_t n = strlen(line);
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	int rc;
	bool compacted = false;
	if (strchr(line, '\n')) {
		fs_error(fs, "control: one command per write");
		rc = -EINVAL;
	} else {
		rc = run(fs, line, &compacted);
		/* Views and names changed with the commit (after a failure
		 * nothing changed, and an invalidation is harmless); a write
		 * to `control` holds no directory lock, so it can wait until
		 * the kernel was told. */
		(void)compacted;
		fs_invalidate(fs, true);
	}
	free(line);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_write(req, size);
}
