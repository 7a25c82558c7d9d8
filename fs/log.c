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

/* Copies in to out (of size n), escaping what could forge or garble a
 * log line: control bytes become \n, \r, \t or \xHH and a backslash
 * \\, so one message is always one line, whatever a user put in it
 * (a file name, a filter value).  Cut short, it stays valid. */
static void escape(const char *in, char *out, size_t n)
{
	size_t o = 0;
	for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
		char e[5];
		size_t len = 1;
		e[0] = (char)*p;
		if (*p == '\\' || *p == '\n' || *p == '\r' || *p == '\t') {
			e[0] = '\\';
			e[1] = *p == '\n' ? 'n' : *p == '\r' ? 'r' : *p == '\t' ? 't' : '\\';
			len = 2;
		} else if (*p < 0x20 || *p == 0x7f) {
			snprintf(e, sizeof(e), "\\x%02x", *p);
			len = 4;
		}
		if (o + len >= n)
			break;
		memcpy(out + o, e, len);
		o += len;
	}
	out[o] = '\0';
}

/* One message, formatted and escaped, into out. */
static void format(char *out, size_t n, const char *fmt, va_list ap)
{
	char raw[1024];
	vsnprintf(raw, sizeof(raw), fmt, ap);
	escape(raw, out, n);
}

static void emit(rvffs *fs, int priority, const char *line)
{
	if (fs->foreground)
		fprintf(stderr, "%s\n", line);
	else
		syslog(priority, "%s", line);
}

void fs_log(rvffs *fs, int priority, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	va_start(ap, fmt);
	format(line, sizeof(line), fmt, ap);
	va_end(ap);
	emit(fs, priority, line);
}

void fs_error(rvffs *fs, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	va_start(ap, fmt);
	format(line, sizeof(line), fmt, ap);
	va_end(ap);
	emit(fs, LOG_ERR, line);

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
