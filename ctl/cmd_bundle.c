/* cmd_bundle.c - extract-wasm and extract-dashboard: take the store's WASM
 * module(s) and dashboard bundle out as ordinary files. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "mount.h"

/* Writes data at REL under the directory dirfd, making the directories on
 * the way; never follows a symbolic link (the bundle's paths come from the
 * store, which may be hostile).  0 or an errno. */
static int write_under(int dirfd, const char *rel, const void *data, size_t n)
{
	char *path = strdup(rel);
	if (!path)
		return ENOMEM;
	int fd = dup(dirfd), e = 0;
	char *save = NULL, *part = strtok_r(path, "/", &save);
	while (part && fd >= 0) {
		char *next = strtok_r(NULL, "/", &save);
		if (!strcmp(part, "..") || !strcmp(part, ".")) {
			e = EINVAL;
			break;
		}
		if (next) {
			if (mkdirat(fd, part, 0755) < 0 && errno != EEXIST) {
				e = errno;
				break;
			}
			int sub = openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0) {
				e = errno;
				break;
			}
			close(fd);
			fd = sub;
		} else {
			int f = openat(fd, part, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
				       0644);
			if (f < 0) {
				e = errno;
				break;
			}
			const char *p = data;
			size_t left = n;
			while (left) {
				ssize_t w = write(f, p, left);
				if (w < 0) {
					if (errno == EINTR)
						continue;
					e = errno;
					break;
				}
				p += w;
				left -= (size_t)w;
			}
			if (close(f) < 0 && !e)
				e = errno;
		}
		part = next;
	}
	if (fd < 0 && !e)
		e = errno;
	if (fd >= 0)
		close(fd);
	free(path);
	return e;
}

static int open_outdir(ctl_ctx *ctx, const char *dir, int *fd)
{
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return ctl_fail(ctx, EXIT_IO, NULL, "%s: %s", dir, strerror(errno));
	*fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*fd < 0)
		return ctl_fail(ctx, EXIT_IO, NULL, "%s: %s", dir, strerror(errno));
	return 0;
}

/* Mount names of dashboard/ back to paths: %2F is '/', %25 is '%'. */
static char *decode_name(const char *n)
{
	char *out = malloc(strlen(n) + 1), *o = out;
	if (!out)
		return NULL;
	for (const char *p = n; *p; p++) {
		if (!strncmp(p, "%2F", 3)) {
			*o++ = '/';
			p += 2;
		} else if (!strncmp(p, "%25", 3)) {
			*o++ = '%';
			p += 2;
		} else {
			*o++ = *p;
		}
	}
	*o = '\0';
	return out;
}

/* One file taken out: name in the store, where it went, its size. */
static void report_add(json_t *files, const char *name, const char *out, size_t n)
{
	json_array_append_new(files, json_pack("{s:s,s:s,s:I}", "name", name, "output", out,
					       "bytes", (json_int_t)n));
}

static int report(ctl_ctx *ctx, json_t *files)
{
	if (ctx->json) {
		ctl_print_json(json_pack("{s:o}", "files", files));
		return 0;
	}
	size_t i;
	json_t *f;
	json_array_foreach(files, i, f)
		printf("%s: %lld bytes written to %s\n",
		       json_string_value(json_object_get(f, "name")),
		       (long long)json_integer_value(json_object_get(f, "bytes")),
		       json_string_value(json_object_get(f, "output")));
	json_decref(files);
	return 0;
}

/* extract-wasm on a mount: MNT/wasm is the module, or a directory of them. */
static int wasm_mount(ctl_ctx *ctx, const char *mnt, const char *out, const char *want,
		      json_t *files)
{
	char *dir;
	if (asprintf(&dir, "%s/wasm", mnt) < 0)
		return ctl_fail(ctx, EXIT_OTHER, NULL, "out of memory");
	struct stat st;
	int rc = 0;
	if (stat(dir, &st) < 0) {
		rc = ctl_fail(ctx, ctl_errno_exit(errno), NULL, errno == ENOENT ?
			      "%s has no WASM module" : "%s: %s", mnt, strerror(errno));
	} else if (!S_ISDIR(st.st_mode)) {
		size_t n;
		char *data = mnt_read(mnt, "wasm", &n);
		if (!data)
			rc = ctl_fail(ctx, ctl_errno_exit(errno), NULL, "%s: %s", dir, strerror(errno));
		else if (!(rc = write_file(ctx, out, data, n)))
			report_add(files, "wasm", out, n);
		free(data);
	} else {
		DIR *d = opendir(dir);
		int ofd = -1;
		struct dirent *e;
		if (!d)
			rc = ctl_fail(ctx, EXIT_IO, NULL, "%s: %s", dir, strerror(errno));
		else if (!want)
			rc = open_outdir(ctx, out, &ofd);
		bool found = false;
		while (!rc && d && (e = readdir(d))) {
			if (e->d_name[0] == '.' || (want && strcmp(want, e->d_name)))
				continue;
			char rel[300];
			snprintf(rel, sizeof(rel), "wasm/%s", e->d_name);
			size_t n;
			char *data = mnt_read(mnt, rel, &n);
			found = true;
			if (!data) {
				rc = ctl_fail(ctx, ctl_errno_exit(errno), NULL, "%s/%s: %s", mnt, rel,
					      strerror(errno));
				break;
			}
			int w = want ? write_file(ctx, out, data, n) : write_under(ofd, e->d_name, data, n);
			if (!want && w)
				rc = ctl_fail(ctx, ctl_errno_exit(w), NULL, "%s/%s: %s", out, e->d_name,
					      strerror(w));
			else
				rc = w;
			if (!rc) {
				char *o = NULL;
				if (!want && asprintf(&o, "%s/%s", out, e->d_name) < 0)
					o = NULL;
				report_add(files, e->d_name, want ? out : o ? o : out, n);
				free(o);
			}
			free(data);
		}
		if (!rc && want && !found)
			rc = ctl_fail(ctx, EXIT_OTHER, NULL, "%s has no WASM module named %s", mnt, want);
		if (d)
			closedir(d);
		if (ofd >= 0)
			close(ofd);
	}
	free(dir);
	return rc;
}

static int wasm_file(ctl_ctx *ctx, const char *path, const char *out, const char *want,
		     json_t *files)
{
	rvf_store *s;
	int rc = ctl_open(ctx, path, false, &s);
	if (rc)
		return rc;
	rvf_view *v = rvf_store_view(s);
	size_t n = rvf_view_wasm_count(v);
	int ofd = -1;
	bool found = false;
	if (n == 0)
		rc = ctl_fail(ctx, EXIT_OTHER, NULL, "%s has no WASM module", path);
	else if (n > 1 && !want)
		rc = open_outdir(ctx, out, &ofd);
	for (size_t i = 0; !rc && i < n; i++) {
		rvf_wasm_info w;
		rvf_view_wasm(v, i, &w);
		if (want && strcmp(want, w.name))
			continue;
		found = true;
		rvf_error err;
		unsigned char *mod;
		size_t mlen;
		if (rvf_view_wasm_module(v, i, &mod, &mlen, &err) != RVF_OK) {
			rc = ctl_report(ctx, path, &err);
			break;
		}
		char *o = NULL;
		if (ofd >= 0) {
			int e = write_under(ofd, w.name, mod, mlen);
			if (e)
				rc = ctl_fail(ctx, ctl_errno_exit(e), NULL, "%s/%s: %s", out, w.name,
					      strerror(e));
			if (asprintf(&o, "%s/%s", out, w.name) < 0)
				o = NULL;
		} else {
			rc = write_file(ctx, out, mod, mlen);
		}
		free(mod);
		if (!rc)
			report_add(files, w.name, o ? o : out, mlen);
		free(o);
	}
	if (!rc && want && !found)
		rc = ctl_fail(ctx, EXIT_OTHER, NULL, "%s has no WASM module named %s", path, want);
	if (ofd >= 0)
		close(ofd);
	rvf_view_release(v);
	rvf_store_close(s);
	return rc;
}

int cmd_extract_wasm(ctl_ctx *ctx, int argc, char **argv)
{
	const char *want = NULL, *pos[2];
	int np = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--name") && i + 1 < argc)
			want = argv[++i];
		else if (argv[i][0] == '-' && argv[i][1])
			return ctl_usage_error(ctx, "extract-wasm: unknown option %s", argv[i]);
		else if (np < 2)
			pos[np++] = argv[i];
		else
			return ctl_usage_error(ctx, "extract-wasm needs STORE and OUT");
	}
	if (np != 2)
		return ctl_usage_error(ctx, "extract-wasm needs STORE and OUT");
	json_t *files = json_array();
	int rc = mnt_detect(pos[0]) ? wasm_mount(ctx, pos[0], pos[1], want, files) :
		 wasm_file(ctx, pos[0], pos[1], want, files);
	if (rc) {
		json_decref(files);
		return rc;
	}
	return report(ctx, files);
}

int cmd_extract_dashboard(ctl_ctx *ctx, int argc, char **argv)
{
	if (argc != 3)
		return ctl_usage_error(ctx, "extract-dashboard needs STORE and OUTDIR");
	const char *path = argv[1], *out = argv[2];
	json_t *files = json_array();
	int ofd = -1, rc;
	if (mnt_detect(path)) {
		char *dir;
		if (asprintf(&dir, "%s/dashboard", path) < 0)
			return ctl_fail(ctx, EXIT_OTHER, NULL, "out of memory");
		DIR *d = opendir(dir);
		rc = !d ? ctl_fail(ctx, ctl_errno_exit(errno), NULL, errno == ENOENT ?
				   "%s has no dashboard" : "%s: %s", path, strerror(errno)) :
		     open_outdir(ctx, out, &ofd);
		struct dirent *e;
		while (!rc && (e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			char rel[300];
			snprintf(rel, sizeof(rel), "dashboard/%s", e->d_name);
			size_t n;
			char *data = mnt_read(path, rel, &n), *name = decode_name(e->d_name);
			int w = !data ? errno : !name ? ENOMEM : write_under(ofd, name, data, n);
			if (w)
				rc = ctl_fail(ctx, ctl_errno_exit(w), NULL, "%s: %s", rel, strerror(w));
			else
				report_add(files, name, out, n);
			free(data);
			free(name);
		}
		if (d)
			closedir(d);
		free(dir);
	} else {
		rvf_store *s;
		if ((rc = ctl_open(ctx, path, false, &s))) {
			json_decref(files);
			return rc;
		}
		rvf_view *v = rvf_store_view(s);
		rvf_dashboard *db;
		rvf_error err;
		if (rvf_view_dashboard(v, &db, &err) != RVF_OK) {
			rc = ctl_report(ctx, path, &err);
		} else {
			rc = open_outdir(ctx, out, &ofd);
			for (size_t i = 0; !rc && i < db->nfiles; i++) {
				const rvf_dashboard_file *f = &db->files[i];
				int w = write_under(ofd, f->path, f->data, (size_t)f->size);
				if (w)
					rc = ctl_fail(ctx, ctl_errno_exit(w), NULL, "%s/%s: %s", out,
						      f->path, strerror(w));
				else
					report_add(files, f->path, out, (size_t)f->size);
			}
			rvf_dashboard_free(db);
		}
		rvf_view_release(v);
		rvf_store_close(s);
	}
	if (ofd >= 0)
		close(ofd);
	if (rc) {
		json_decref(files);
		return rc;
	}
	return report(ctx, files);
}
