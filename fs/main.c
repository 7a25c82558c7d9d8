/* rvffs - mount an RVF store as a directory tree.
 *
 *   rvffs [-o OPTIONS] STORE.rvf MOUNTPOINT
 *
 * Returns to the shell once the mount is ready (or with one line saying
 * why it could not mount); -f stays in the foreground. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "rvffs.h"

struct options {
	char *store;
	int read_only;
	int create;
	unsigned dim;
	char *metric;
	char *config;
	unsigned threads;
	unsigned k;
	char *codes;
	unsigned commit;
	char *wait;
	int sync;
	int show_help;
	int show_version;
};

#define OPT(t, p) { t, offsetof(struct options, p), 1 }
enum { KEY_RO = 100 };
static const struct fuse_opt option_spec[] = {
	FUSE_OPT_KEY("ro", KEY_RO),
	OPT("create", create),
	OPT("dim=%u", dim),
	OPT("metric=%s", metric),
	OPT("config=%s", config),
	OPT("threads=%u", threads),
	OPT("k=%u", k),
	OPT("codes=%s", codes),
	OPT("commit=%u", commit),
	OPT("wait=%s", wait),
	OPT("sync", sync),
	OPT("-h", show_help),
	OPT("--help", show_help),
	OPT("-V", show_version),
	OPT("--version", show_version),
	FUSE_OPT_END
};

/* libfuse's own messages: while `capturing`, they are kept (the last line
 * is folded into our one-line reason) instead of printed. */
static bool capturing;
static char captured[1024];

static void fuse_log_handler(enum fuse_log_level level, const char *fmt,
			     va_list ap)
{
	(void)level;
	if (!capturing) {
		vfprintf(stderr, fmt, ap);
		return;
	}
	size_t used = strlen(captured);
	if (used < sizeof(captured) - 1)
		vsnprintf(captured + used, sizeof(captured) - used, fmt, ap);
}

/* The last line libfuse said, without its "fuse: " prefix, or dflt. */
static const char *fuse_said(const char *dflt)
{
	size_t n = strlen(captured);
	while (n && (captured[n - 1] == '\n' || captured[n - 1] == ' '))
		captured[--n] = '\0';
	char *line = strrchr(captured, '\n');
	line = line ? line + 1 : captured;
	if (!strncmp(line, "fuse: ", 6))
		line += 6;
	return *line ? line : dflt;
}

/* The first non-option argument is the store; the rest go to FUSE. */
static int opt_proc(void *data, const char *arg, int key,
		    struct fuse_args *outargs)
{
	(void)outargs;
	struct options *o = data;
	if (key == FUSE_OPT_KEY_NONOPT && !o->store) {
		o->store = strdup(arg);
		return 0;
	}
	if (key == KEY_RO) {
		/* Not passed to the kernel: it would refuse writes to the query
		 * file too.  The daemon refuses every change with EROFS. */
		o->read_only = 1;
		return 0;
	}
	return 1;
}

static void usage(const char *prog)
{
	printf("usage: %s [-o OPTIONS] STORE.rvf MOUNTPOINT\n\n"
	       "rvffs options:\n"
	       "    -o ro                  read-only: no lock, nothing written\n"
	       "    -o create,dim=N[,metric=l2|cosine|ip]\n"
	       "                           create STORE if it does not exist\n"
	       "    -o config=FILE         configuration file (rvffs.conf(5))\n"
	       "    -o threads=N           search threads (0 = one per CPU)\n"
	       "    -o k=N                 default k of the query file (10)\n"
	       "    -o codes=auto|off      8-bit search codes for faster exact L2 queries\n"
	       "    -o commit=SECONDS      make changes durable at least this often (5)\n"
	       "    -o sync                make each change durable before its call returns\n"
	       "    -o wait=SECONDS        wait this long for another writer's lock (5)\n"
	       "    -f                     stay in the foreground\n"
	       "    -d                     debug output (implies -f)\n"
	       "    -s                     single-threaded\n\n", prog);
	fuse_cmdline_help();
	fuse_lowlevel_help();
}

/* Absolute path of STORE (which may not exist yet, with create). */
static char *absolute_store(const char *path)
{
	char buf[PATH_MAX];
	if (realpath(path, buf))
		return strdup(buf);
	char *copy = strdup(path), *copy2 = strdup(path);
	char *out = NULL;
	if (copy && copy2 && realpath(dirname(copy), buf)) {
		const char *base = basename(copy2);
		if (asprintf(&out, "%s/%s", buf, base) < 0)
			out = NULL;
	}
	free(copy);
	free(copy2);
	return out;
}

/* Requests of up to 1 MiB (libfuse asks the kernel for the pages): a
 * `cp` into ingest/ or a read of a segment takes an eighth of the round
 * trips of the 128 KiB default. */
static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	conn->max_write = 1u << 20;
	conn->max_readahead = 1u << 20;
}

static const struct fuse_lowlevel_ops ops = {
	.init = op_init,
	.lookup = op_lookup,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.mkdir = op_mkdir,
	.rmdir = op_rmdir,
	.open = op_open,
	.create = op_create,
	.read = op_read,
	.write = op_write,
	.flush = op_flush,
	.fsync = op_fsync,
	.fsyncdir = op_fsyncdir,
	.release = op_release,
	.unlink = op_unlink,
	.rename = op_rename,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.setxattr = op_setxattr,
	.removexattr = op_removexattr,
	.statfs = op_statfs,
	.access = op_access,
};

/* True when the store file exists but may not be written: no write
 * permission bit at all, or none for us, or a read-only filesystem. */
static bool store_not_writable(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
		return false; /* the open says why */
	if ((st.st_mode & 0222) == 0)
		return true;
	return access(path, W_OK) != 0 &&
	       (errno == EACCES || errno == EPERM || errno == EROFS);
}

/* Opens (or creates) the store; false with the reason in why. */
static bool open_store(rvffs *fs, struct options *o, const rvffs_config *cfg,
		       char *why, size_t why_len)
{
	rvf_error err;
	rvf_code rc;
	unsigned wait_ms = RVF_LOCK_WAIT_DEFAULT_MS;
	if (o->wait && !config_parse_wait(o->wait, &wait_ms)) {
		snprintf(why, why_len, "wait=%s: not a number of seconds from 0 to 3600",
			 o->wait);
		return false;
	}
	if (o->create && access(o->store, F_OK) != 0) {
		rvf_create_options co = { .dimension = o->dim,
					  .metric = cfg->create_metric };
		if (o->metric && !rvf_metric_parse(o->metric, &co.metric)) {
			snprintf(why, why_len, "unknown metric '%s' (l2, cosine or ip)",
				 o->metric);
			return false;
		}
		if (!o->dim) {
			snprintf(why, why_len, "-o create needs dim=N");
			return false;
		}
		rc = rvf_store_create(o->store, &co, &fs->store, &err);
	} else {
		if (!o->read_only && store_not_writable(o->store)) {
			/* A store without write permission (root included:
			 * the mode says so) or on a read-only filesystem is
			 * mounted read-only; writes get EROFS. */
			o->read_only = 1;
			fs->read_only = true;
			fs_log(fs, LOG_NOTICE, "%s is not writable: mounted read-only",
			       o->store);
		}
		rc = rvf_store_open_wait(o->store, o->read_only ? RVF_OPEN_READ_ONLY : 0,
					 wait_ms, &fs->store, &err);
	}
	if (rc != RVF_OK) {
		snprintf(why, why_len, "%s (%s)", err.message, rvf_code_name(rc));
		return false;
	}
	return true;
}

/* Runs the mounted filesystem until unmounted. */
static int serve(rvffs *fs, struct fuse_cmdline_opts *copts)
{
	int rc;
	if (copts->singlethread) {
		rc = fuse_session_loop(fs->se);
	} else if (!copts->clone_fd) {
		rc = fs_loop(fs, copts->max_threads);
	} else {
		struct fuse_loop_config *lc = fuse_loop_cfg_create();
		fuse_loop_cfg_set_clone_fd(lc, copts->clone_fd);
		fuse_loop_cfg_set_max_threads(lc, copts->max_threads);
		rc = fuse_session_loop_mt(fs->se, lc);
		fuse_loop_cfg_destroy(lc);
	}
	return rc;
}

/* What main() gathers before the daemon runs. */
typedef struct launch {
	struct fuse_args args;
	struct options o;
	struct fuse_cmdline_opts copts;
	rvffs_config cfg;
	int report_fd;          /* the pipe to the waiting parent, or -1 */
	bool mounted;
} launch;

/* The one report of a mount that failed: "rvffs: cannot mount ...",
 * through the pipe to the waiting parent (which prints it), or on stderr
 * when there is none (the foreground, or before the fork). */
static void report_failure(const launch *l, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void report_failure(const launch *l, const char *fmt, ...)
{
	char line[1100] = "-rvffs: cannot mount ";
	size_t n = strlen(line);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	if (l->report_fd < 0)
		fprintf(stderr, "%s\n", line + 1);
	else if (write(l->report_fd, line, strlen(line)) < 0)
		return; /* the parent is gone: nobody to tell */
}

static void free_options(launch *l)
{
	free(l->o.store);
	free(l->o.metric);
	free(l->o.codes);
	free(l->o.wait);
	free(l->o.config);
	free(l->copts.mountpoint);
	fuse_opt_free_args(&l->args);
}

/* Leaves before the daemon started, freeing what the options hold. */
static int bail(int rc, launch *l)
{
	free_options(l);
	return rc;
}

/* libfuse's own parsers, its messages folded into ours: 0 or -1. */
static int parse_fuse_options(launch *l)
{
	capturing = true;
	int rc = fuse_opt_parse(&l->args, &l->o, option_spec, opt_proc);
	capturing = false;
	if (rc == 0 && (l->o.show_help || l->o.show_version))
		return 0;
	if (rc == 0) {
		captured[0] = '\0';
		capturing = true;
		rc = fuse_parse_cmdline(&l->args, &l->copts);
		capturing = false;
	}
	if (rc != 0)
		fprintf(stderr, "rvffs: %s\n", fuse_said("bad options"));
	return rc ? -1 : 0;
}

/* The command line and rvffs.conf: -1 to go on, or the exit status. */
static int read_options(launch *l, const char *prog)
{
	char why[1024];
	if (parse_fuse_options(l) != 0)
		return 2;
	if (l->o.show_help) {
		usage(prog);
		return 0;
	}
	if (l->o.show_version) {
		printf("rvffs 0.1.0 (FUSE %s)\n", fuse_pkgversion());
		return 0;
	}
	if (!l->o.store || !l->copts.mountpoint) {
		fprintf(stderr, "rvffs: usage: rvffs [-o OPTIONS] STORE.rvf MOUNTPOINT (see --help)\n");
		return 2;
	}
	if (l->o.codes && strcmp(l->o.codes, "auto") && strcmp(l->o.codes, "off")) {
		fprintf(stderr, "rvffs: -o codes must be auto or off, not '%s'\n",
			l->o.codes);
		return 2;
	}
	if (!config_load(l->o.config, &l->cfg, why, sizeof(why))) {
		fprintf(stderr, "rvffs: %s\n", why);
		return 2;
	}
	char *store = absolute_store(l->o.store);
	if (!store) {
		report_failure(l, "%s: %s", l->o.store, strerror(errno));
		return 1;
	}
	free(l->o.store);
	l->o.store = store;
	return -1;
}

/* The daemon's settings, from the options over rvffs.conf. */
static void configure(rvffs *fs, launch *l)
{
	const struct options *o = &l->o;
	const rvffs_config *cfg = &l->cfg;
	/* Name the mount after the store in /proc/mounts and df. */
	char *fsname = NULL;
	if (asprintf(&fsname, "-ofsname=%s,subtype=rvffs", o->store) > 0 &&
	    !strchr(o->store, ','))
		fuse_opt_add_arg(&l->args, fsname);
	free(fsname);
	fs->store_path = o->store;
	fs->read_only = o->read_only;
	fs->foreground = l->copts.foreground;
	fs->search_threads = o->threads ? o->threads : cfg->threads;
	fs->default_k = o->k ? o->k : cfg->query_k;
	fs->codes = cfg->codes_off ? RVF_ACCEL_OFF : RVF_ACCEL_AUTO;
	fs->codes_max_bytes = (uint64_t)cfg->codes_max_mb << 20;
	if (o->codes)
		fs->codes = strcmp(o->codes, "off") ? RVF_ACCEL_AUTO : RVF_ACCEL_OFF;
	limits_init(fs, cfg->request_max, cfg->results_max, cfg->staged_max,
		    cfg->slots_max, cfg->query_user_max);
	fs->commit_s = o->commit ? o->commit : cfg->commit_s;
	fs->sync_mode = o->sync;
	fs->compact = (rvf_compact_policy){ .enabled = cfg->compact_auto,
					    .ratio = cfg->compact_ratio,
					    .min_dead = (uint64_t)cfg->compact_min_mb << 20 };
	fs->next_dyn = INO_DYN_BASE;
	pthread_mutex_init(&fs->mu, NULL);
	clock_gettime(CLOCK_REALTIME, &fs->mount_time);
	/* asked once: every stat shows them (two syscalls per request) */
	fs->uid = getuid();
	fs->gid = getgid();
}

/* The parent only relays the daemon's verdict (its exit status is the
 * mount's).  It leaves with _exit, as fuse_daemonize does: its heap is the
 * daemon's (which frees it), and exit handlers (LeakSanitizer's included)
 * would see it as leaked. */
static void relay_verdict(int fd, pid_t pid)
{
	char msg[1100];
	ssize_t n = read(fd, msg, sizeof(msg) - 1);
	if (n > 0 && msg[0] == '+')
		_exit(0);
	int status;
	waitpid(pid, &status, WNOHANG);
	if (n > 1)
		fprintf(stderr, "%.*s\n", (int)n - 1, msg + 1);
	else
		fprintf(stderr, "rvffs: the daemon exited before the mount was ready\n");
	fflush(stderr);
	_exit(1);
}

/* In the background, the child does the work and tells the parent through
 * a pipe whether the mount is ready; the writer lock is held by the
 * daemon's pid.  Returns in the child: 0, or -1 when it cannot fork. */
static int go_background(launch *l)
{
	int pipefd[2];
	if (pipe(pipefd) != 0) {
		perror("rvffs: pipe");
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		perror("rvffs: fork");
		return -1;
	}
	if (pid > 0) {
		close(pipefd[1]);
		relay_verdict(pipefd[0], pid);
	}
	close(pipefd[0]);
	l->report_fd = pipefd[1];
	setsid();
	openlog("rvffs", LOG_PID, LOG_DAEMON);
	return 0;
}

/* The FUSE session, the store, the mount: 0, or 1 (reported). */
static int mount_store(rvffs *fs, launch *l)
{
	char why[1024];
	captured[0] = '\0';
	capturing = true;
	fs->se = fuse_session_new(&l->args, &ops, sizeof(ops), fs);
	capturing = false;
	if (!fs->se) {
		report_failure(l, "%s: %s", l->o.store, fuse_said("bad FUSE options"));
		return 1;
	}
	if (!open_store(fs, &l->o, &l->cfg, why, sizeof(why))) {
		report_failure(l, "%s: %s", l->o.store, why);
		return 1;
	}
	captured[0] = '\0';
	capturing = true;
	l->mounted = fuse_set_signal_handlers(fs->se) == 0 &&
		     fuse_session_mount(fs->se, l->copts.mountpoint) == 0;
	capturing = false;
	if (!l->mounted) {
		report_failure(l, "%s on %s: %s", l->o.store, l->copts.mountpoint,
			       fuse_said("is the mount point an empty directory?"));
		return 1;
	}
	return 0;
}

/* Ready: release the shell, detach from the terminal. */
static void detach(rvffs *fs, launch *l)
{
	if (l->report_fd < 0)
		return;
	if (write(l->report_fd, "+", 1) < 0)
		fs_log(fs, LOG_WARNING, "could not notify the parent");
	close(l->report_fd);
	l->report_fd = -1;
	if (chdir("/") != 0)
		fs_log(fs, LOG_WARNING, "chdir /: %s", strerror(errno));
	int null = open("/dev/null", O_RDWR);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		if (null > 2)
			close(null);
	}
}

/* Runs the mounted filesystem until unmounted: the exit status. */
static int run_mounted(rvffs *fs, launch *l)
{
	/* A store truncated under the mount must cost EIO, not the daemon. */
	if (rvf_guard_install() != 0)
		fs_log(fs, LOG_WARNING, "cannot install the SIGBUS guard: %s", strerror(errno));
	if (fs_invalidator_start(fs) != 0)
		return 1;
	if (fs_committer_start(fs) != 0) {
		fs_invalidator_stop(fs);
		return 1;
	}
	fs_log(fs, LOG_INFO, "mounted %s on %s (%s)", l->o.store, l->copts.mountpoint,
	       fs->read_only ? "read-only" : "read-write");
	detach(fs, l);
	int ret = serve(fs, &l->copts) ? 1 : 0;
	fs_committer_stop(fs);
	fs_invalidator_stop(fs);
	fs_log(fs, LOG_INFO, "unmounted %s", l->o.store);
	return ret;
}

/* The session is over: unmount, and free what the kernel never released. */
static void finish(rvffs *fs, launch *l)
{
	if (l->mounted) {
		fuse_session_unmount(fs->se);
		fuse_remove_signal_handlers(fs->se);
	}
	if (fs->se)
		fuse_session_destroy(fs->se);
	fs_handles_free(fs);
	fs_listings_free();
	text_sizes_free(fs);
	if (l->report_fd >= 0)
		close(l->report_fd);
	while (fs->staged)
		staged_remove(fs, fs->staged);
	while (fs->slots)
		slot_remove(fs, fs->slots);
	results_free(fs);
	free(fs->errors);
	free(fs->heap_text);
	free(fs->bigids);
	free(fs->bighash);
	free_options(l);
	/* Last: the lock goes with the store, so a command run right after
	 * `fusermount3 -u` finds nothing left of us but the lock. */
	if (fs->store)
		rvf_store_close(fs->store);
}

int main(int argc, char **argv)
{
	launch l = { .args = FUSE_ARGS_INIT(argc, argv), .report_fd = -1 };
	rvffs fs = { 0 };
	fuse_set_log_func(fuse_log_handler);
	int rc = read_options(&l, argv[0]);
	if (rc >= 0)
		return bail(rc, &l);
	configure(&fs, &l);
	if (!l.copts.foreground && go_background(&l) != 0)
		return bail(1, &l);
	rc = mount_store(&fs, &l);
	if (!rc)
		rc = run_mounted(&fs, &l);
	finish(&fs, &l);
	return rc;
}
