/* log.c - the daemon's log: syslog in the background, stderr in the
 * foreground; errors are also kept for the `errors` file. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "rvffs.h"

#define ERRORS_KEPT (64u * 1024u) /* bytes of recent errors in `errors` */

static void vlog(rvffs *fs, int priority, const char *fmt, va_list ap)
{
	if (fs->foreground) {
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
	} else {
		vsyslog(priority, fmt, ap);
	}
}

void fs_log(rvffs *fs, int priority, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(fs, priority, fmt, ap);
	va_end(ap);
}

void fs_error(rvffs *fs, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fs_log(fs, LOG_ERR, "%s", line);

	time_t now = time(NULL);
	struct tm tm;
	char stamp[32];
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	size_t add = strlen(stamp) + 1 + strlen(line) + 1;
	pthread_mutex_lock(&fs->mu);
	/* Keep the newest lines: drop whole lines from the front. */
	while (fs->errors_len && fs->errors_len + add > ERRORS_KEPT) {
		char *nl = memchr(fs->errors, '\n', fs->errors_len);
		size_t cut = nl ? (size_t)(nl - fs->errors) + 1 : fs->errors_len;
		memmove(fs->errors, fs->errors + cut, fs->errors_len - cut);
		fs->errors_len -= cut;
	}
	char *grown = realloc(fs->errors, fs->errors_len + add + 1);
	if (grown) {
		fs->errors = grown;
		fs->errors_len += (size_t)snprintf(fs->errors + fs->errors_len,
						   add + 1, "%s %s\n", stamp, line);
	}
	pthread_mutex_unlock(&fs->mu);
}

int fs_rvf_errno(rvffs *fs, const char *what, const rvf_error *err)
{
	fs_error(fs, "%s: %s (%s)", what, err->message, rvf_code_name(err->code));
	return rvf_code_errno(err->code, err->sys_errno);
}
