/* control_parse.c - the `control` command language (control_parse.h). */
#include "control_parse.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ARGS 16

typedef struct words {
	char *argv[MAX_ARGS];
	int argc;
	const char *rest;      /* the line after the command word */
} words;

static int refuse(control_cmd *c, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int refuse(control_cmd *c, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->error, sizeof(c->error), fmt, ap);
	va_end(ap);
	return rc;
}

/* Splits the line into blank-separated, optionally quoted words into
 * c->buf.  An unquoted cmdline= takes the rest of the line, and so does
 * everything after `delete` and `delete-filter`. */
static int split(const char *line, control_cmd *c, words *w)
{
	size_t len = strlen(line);
	c->buf = malloc(len + 1);
	if (!c->buf)
		return refuse(c, -ENOMEM, "out of memory");
	char *out = c->buf;
	const char *p = line;
	w->argc = 0;
	w->rest = NULL;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			return 0;
		if (w->argc == 1) {
			w->rest = p;
			/* Ids and JSON are not words: theirs is the raw rest. */
			if (!strcmp(w->argv[0], "delete") ||
			    !strcmp(w->argv[0], "delete-filter"))
				return 0;
		}
		if (w->argc == MAX_ARGS)
			return refuse(c, -E2BIG, "too many arguments (at most %d)", MAX_ARGS);
		w->argv[w->argc++] = out;
		if (!strncmp(p, "cmdline=", 8) && p[8] != '"') {
			size_t n = strlen(p);
			memcpy(out, p, n + 1);
			return 0;
		}
		bool quoted = false;
		for (; *p && (quoted || (*p != ' ' && *p != '\t')); p++) {
			if (*p == '"')
				quoted = !quoted;
			else if (quoted && *p == '\\' && p[1])
				*out++ = *++p;
			else
				*out++ = *p;
		}
		if (quoted)
			return refuse(c, -EINVAL, "unbalanced quote");
		*out++ = '\0';
	}
}

/* The value of KEY=VALUE argument a, or NULL when a is not KEY=... */
static const char *opt_value(const char *a, const char *key)
{
	size_t n = strlen(key);
	return !strncmp(a, key, n) && a[n] == '=' ? a + n + 1 : NULL;
}

/* A number (decimal, 0x hex or 0 octal, as strtoull) of at most max. */
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

static int bad_arg(control_cmd *c, const char *arg)
{
	return refuse(c, -EINVAL, "%s: bad argument \"%.80s\"", c->name, arg);
}

static int need_path(control_cmd *c, const words *w, const char *what)
{
	if (w->argc < 2)
		return refuse(c, -EINVAL, "%s needs %s", c->name, what);
	if (w->argv[1][0] != '/')
		return refuse(c, -EINVAL, "%s: %.80s: the path must be absolute",
			      c->name, w->argv[1]);
	c->path = w->argv[1];
	return 0;
}

static int parse_child(control_cmd *c, const words *w)
{
	int rc = need_path(c, w, "CHILD_PATH");
	if (rc)
		return rc;
	c->child.dimension = 0;
	c->child.metric = -1;
	for (int i = 2; i < w->argc; i++) {
		const char *v;
		uint64_t n;
		rvf_metric m;
		if (c->verb == CTL_DERIVE && (v = opt_value(w->argv[i], "dim")) &&
		    parse_num(v, 65535, &n) && n)
			c->child.dimension = (uint32_t)n;
		else if (c->verb == CTL_DERIVE && (v = opt_value(w->argv[i], "metric")) &&
			 rvf_metric_parse(v, &m))
			c->child.metric = (int)m;
		else
			return bad_arg(c, w->argv[i]);
	}
	return 0;
}

static int parse_kernel(control_cmd *c, const words *w)
{
	int rc = need_path(c, w, "IMAGE_PATH");
	if (rc)
		return rc;
	rvf_kernel_spec *k = &c->kernel;
	for (int i = 2; i < w->argc; i++) {
		const char *a = w->argv[i], *v;
		uint64_t n;
		if ((v = opt_value(a, "arch")) && parse_num(v, 255, &n))
			k->arch = (uint8_t)n;
		else if ((v = opt_value(a, "type")) && parse_num(v, 255, &n))
			k->kernel_type = (uint8_t)n;
		else if ((v = opt_value(a, "flags")) && parse_num(v, UINT32_MAX, &n))
			k->flags = (uint32_t)n;
		else if ((v = opt_value(a, "api_port")) && parse_num(v, 65535, &n))
			k->api_port = (uint16_t)n;
		else if ((v = opt_value(a, "cmdline")))
			k->cmdline = v;
		else if (!strcmp(a, "compress"))
			k->compress = true;
		else
			return bad_arg(c, a);
	}
	return 0;
}

static int parse_ebpf(control_cmd *c, const words *w)
{
	int rc = need_path(c, w, "PROG_PATH");
	if (rc)
		return rc;
	for (int i = 2; i < w->argc; i++) {
		const char *a = w->argv[i], *v;
		uint64_t n;
		if ((v = opt_value(a, "btf")) && v[0] == '/')
			c->btf_path = v;
		else if ((v = opt_value(a, "prog_type")) && parse_num(v, 255, &n))
			c->ebpf.program_type = (uint8_t)n;
		else if ((v = opt_value(a, "attach_type")) && parse_num(v, 255, &n))
			c->ebpf.attach_type = (uint8_t)n;
		else if ((v = opt_value(a, "max_dim")) && parse_num(v, 65535, &n))
			c->ebpf.max_dimension = (uint16_t)n;
		else
			return bad_arg(c, a);
	}
	return 0;
}

/* Ids separated by blanks or commas, each in canonical decimal
 * (rvf_parse_id: the one id rule of rvffs and rvfctl). */
static int parse_ids(control_cmd *c, const char *p)
{
	size_t cap = 0;
	while (*p) {
		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		if (!*p)
			break;
		const char *end = p + strcspn(p, " ,\t");
		uint64_t id;
		if (!rvf_parse_id(p, (size_t)(end - p), &id))
			return refuse(c, -EINVAL,
				      "delete: ids are canonical decimal numbers, not \"%.*s\"",
				      (int)(end - p > 40 ? 40 : end - p), p);
		if (c->nids == cap) {
			cap = cap ? 2 * cap : 64;
			uint64_t *g = realloc(c->ids, cap * sizeof(uint64_t));
			if (!g)
				return refuse(c, -ENOMEM, "out of memory");
			c->ids = g;
		}
		c->ids[c->nids++] = id;
		p = end;
	}
	if (!c->nids)
		return refuse(c, -EINVAL, "delete needs at least one id");
	return 0;
}

static const struct {
	const char *name;
	control_verb verb;
	bool bare;              /* takes no arguments */
} verbs[] = {
	{ "compact", CTL_COMPACT, false },
	{ "freeze", CTL_FREEZE, true },
	{ "remove-kernel", CTL_REMOVE_KERNEL, true },
	{ "remove-ebpf", CTL_REMOVE_EBPF, true },
	{ "rebuild-refcounts", CTL_REBUILD_REFCOUNTS, true },
	{ "delete", CTL_DELETE, false },
	{ "delete-filter", CTL_DELETE_FILTER, false },
	{ "derive", CTL_DERIVE, false },
	{ "branch", CTL_BRANCH, false },
	{ "embed-kernel", CTL_EMBED_KERNEL, false },
	{ "embed-ebpf", CTL_EMBED_EBPF, false },
	{ "sign", CTL_SIGN, false },
};

int control_parse(const char *line, control_cmd *c)
{
	memset(c, 0, sizeof(*c));
	words w = { .argc = 0 };
	int rc = split(line, c, &w);
	if (rc)
		return rc;
	if (!w.argc) {
		c->verb = CTL_BLANK;
		return 0;
	}
	c->name = w.argv[0];
	size_t i;
	for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (!strcmp(c->name, verbs[i].name))
			break;
	if (i == sizeof(verbs) / sizeof(verbs[0]) || (verbs[i].bare && w.argc > 1))
		return refuse(c, -EINVAL, "unknown command or arguments: %.120s", line);
	c->verb = verbs[i].verb;
	switch (c->verb) {
	case CTL_COMPACT:
		c->force = w.argc == 2 && !strcmp(w.argv[1], "force");
		if (w.argc > 1 && !c->force)
			return refuse(c, -EINVAL, "unknown command or arguments: %.120s", line);
		return 0;
	case CTL_DELETE:
		return parse_ids(c, w.rest ? w.rest : "");
	case CTL_DELETE_FILTER:
		c->filter = w.rest ? w.rest : "";
		return 0;
	case CTL_DERIVE:
	case CTL_BRANCH:
		return parse_child(c, &w);
	case CTL_EMBED_KERNEL:
		return parse_kernel(c, &w);
	case CTL_EMBED_EBPF:
		return parse_ebpf(c, &w);
	case CTL_SIGN:
		if (w.argc != 2)
			return refuse(c, -EINVAL, "sign needs one absolute KEY_PATH");
		return need_path(c, &w, "KEY_PATH");
	default:
		return 0;
	}
}

void control_cmd_free(control_cmd *c)
{
	free(c->buf);
	free(c->ids);
	c->buf = NULL;
	c->ids = NULL;
}
