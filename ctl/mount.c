/* mount.c - finding an rvffs mount and talking to its daemon. */
#include "mount.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *join(const char *dir, const char *name)
{
	char *p = NULL;
	if (asprintf(&p, "%s/%s", dir, name) < 0)
		return NULL;
	return p;
}

char *mnt_read(const char *mnt, const char *name, size_t *len)
{
	char *path = join(mnt, name);
	if (!path) {
		errno = ENOMEM;
		return NULL;
	}
	/* Read to the end: generated files have no reliable size before. */
	char *buf = (char *)read_file(path, len);
	int e = errno;
	free(path);
	errno = e;
	return buf;
}

bool mnt_detect(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
		return false;
	char *control = join(path, "control");
	bool has_control = control && stat(control, &st) == 0 && S_ISREG(st.st_mode);
	free(control);
	if (!has_control)
		return false;
	char *status = mnt_read(path, "status", NULL);
	bool has_pid = status && (!strncmp(status, "pid:", 4) || strstr(status, "\npid:"));
	free(status);
	return has_pid;
}

json_t *mnt_parse_kv(const char *text)
{
	json_t *o = json_object();
	const char *p = text;
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		const char *colon = memchr(p, ':', len);
		if (colon && colon > p) {
			char *key = strndup(p, (size_t)(colon - p));
			const char *v = colon + 1;
			while (v < p + len && *v == ' ')
				v++;
			json_t *val = json_stringn(v, (size_t)(p + len - v));
			if (key && val)
				json_object_set_new(o, key, val);
			else
				json_decref(val);
			free(key);
		}
		p += len + (nl ? 1 : 0);
	}
	return o;
}

int mnt_status(ctl_ctx *ctx, const char *mnt, json_t **out)
{
	char *text = mnt_read(mnt, "status", NULL);
	if (!text)
		return ctl_fail(ctx, ctl_errno_exit(errno), NULL, "%s/status: %s", mnt,
				strerror(errno));
	*out = mnt_parse_kv(text);
	free(text);
	return 0;
}

int mnt_dimension(ctl_ctx *ctx, const char *mnt, uint32_t *dim)
{
	json_t *st = NULL;
	int rc = mnt_status(ctx, mnt, &st);
	if (rc)
		return rc;
	*dim = (uint32_t)kv_u64(st, "dimension");
	json_decref(st);
	return 0;
}

uint64_t kv_u64(json_t *kv, const char *key)
{
	const char *s = kv_str(kv, key);
	return s ? strtoull(s, NULL, 10) : 0;
}

const char *kv_str(json_t *kv, const char *key)
{
	return json_string_value(json_object_get(kv, key));
}

size_t mnt_errors_len(const char *mnt)
{
	size_t len = 0;
	free(mnt_read(mnt, "errors", &len));
	return len;
}

char *mnt_new_error(const char *mnt, size_t errors_before)
{
	size_t len = 0;
	char *text = mnt_read(mnt, "errors", &len);
	if (!text)
		return NULL;
	/* `errors` keeps the newest 64 KiB: when it was trimmed, the newest
	 * line is still the one we caused. */
	if (len == errors_before) {
		free(text);
		return NULL;
	}
	while (len && text[len - 1] == '\n')
		text[--len] = '\0';
	char *line = strrchr(text, '\n');
	line = line ? line + 1 : text;
	/* Drop the timestamp the daemon puts first. */
	char *sp = strchr(line, ' ');
	if (sp && sp > line && sp[-1] == 'Z')
		line = sp + 1;
	char *out = strdup(line);
	free(text);
	return out;
}

int mnt_command(ctl_ctx *ctx, const char *mnt, const char *what,
		const char *line)
{
	size_t before = mnt_errors_len(mnt);
	char *path = join(mnt, "control");
	char *cmd = NULL;
	if (!path || asprintf(&cmd, "%s\n", line) < 0) {
		free(path);
		return ctl_fail(ctx, EXIT_IO, NULL, "out of memory");
	}
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	int e = 0;
	if (fd < 0) {
		e = errno;
	} else {
		ssize_t w = write(fd, cmd, strlen(cmd));
		if (w < 0)
			e = errno;
		else if ((size_t)w != strlen(cmd))
			e = EIO;
		if (close(fd) != 0 && !e)
			e = errno;
	}
	free(path);
	free(cmd);
	if (!e)
		return 0;
	char *why = mnt_new_error(mnt, before);
	int rc = ctl_fail(ctx, ctl_errno_exit(e), json_pack("{s:s}", "mount", mnt),
			  "%s: %s: %s", mnt, what, why ? why : strerror(e));
	free(why);
	return rc;
}

char *mnt_quote(const char *s)
{
	char *out = malloc(2 * strlen(s) + 3), *o = out;
	if (!out)
		return NULL;
	*o++ = '"';
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			*o++ = '\\';
		*o++ = *s;
	}
	*o++ = '"';
	*o = '\0';
	return out;
}

/* Undoes mountinfo's octal escapes (\040 for a space, ...) in place. */
static void unescape(char *s)
{
	char *o = s;
	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' &&
		    s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

/* Walks /proc/self/mountinfo's rvffs mounts; returns the malloc'd
 * mount point (want_source) or source (want_mount) of the last match. */
static char *find_mount(const char *want_mount, const char *want_source)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return NULL;
	char *line = NULL, *found = NULL;
	size_t cap = 0;
	while (getline(&line, &cap, f) > 0) {
		/* id parent dev root MOUNTPOINT opts [optional...] - TYPE SOURCE superopts */
		char *fields[5], *save = NULL, *tok = strtok_r(line, " \n", &save);
		int n = 0;
		while (tok && n < 5) {
			fields[n++] = tok;
			tok = strtok_r(NULL, " \n", &save);
		}
		while (tok && strcmp(tok, "-"))
			tok = strtok_r(NULL, " \n", &save);
		char *type = tok ? strtok_r(NULL, " \n", &save) : NULL;
		char *source = type ? strtok_r(NULL, " \n", &save) : NULL;
		if (n < 5 || !source || strcmp(type, "fuse.rvffs"))
			continue;
		unescape(fields[4]);
		unescape(source);
		if (want_mount && !strcmp(fields[4], want_mount)) {
			free(found); /* the last line is the mount on top */
			found = strdup(source);
		} else if (want_source && !strcmp(source, want_source)) {
			free(found);
			found = strdup(fields[4]);
		}
	}
	free(line);
	fclose(f);
	return found;
}

int mnt_open_file_read_only(ctl_ctx *ctx, const char *path, rvf_store **out,
			    char **file)
{
	char *f = mnt_detect(path) ? mnt_store_path(path) : strdup(path);
	if (!f)
		return ctl_fail(ctx, EXIT_OTHER, NULL, "%s: cannot find the store file", path);
	rvf_error err;
	if (rvf_store_open(f, RVF_OPEN_READ_ONLY, out, &err) != RVF_OK) {
		free(f);
		return ctl_report(ctx, path, &err);
	}
	if (file)
		*file = f;
	else
		free(f);
	return 0;
}

char *mnt_store_path(const char *mnt)
{
	char want[PATH_MAX];
	return realpath(mnt, want) ? find_mount(want, NULL) : NULL;
}

char *mnt_of_store(const char *store)
{
	char want[PATH_MAX];
	return realpath(store, want) ? find_mount(NULL, want) : NULL;
}
