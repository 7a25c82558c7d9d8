/* config.c - reading rvffs.conf with inih; every unknown key or bad value
 * is an error naming the file and line, never silently ignored. */
#include "config.h"

#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct parse_state {
	FILE *f;
	int lineno;             /* line inih is handling (Debian's inih has no
				 * line numbers in callbacks: we count them) */
	rvffs_config *cfg;
	char *why;
	size_t why_len;
	const char *file;
	bool failed;
} parse_state;

static bool parse_uint(const char *v, unsigned max, unsigned *out)
{
	char *end;
	errno = 0;
	unsigned long n = strtoul(v, &end, 10);
	if (!*v || *end || errno || n > max || v[0] == '-')
		return false;
	*out = (unsigned)n;
	return true;
}

static char *read_line(char *str, int num, void *stream)
{
	parse_state *st = stream;
	char *r = fgets(str, num, st->f);
	if (r)
		st->lineno++;
	return r;
}

static int on_entry(void *user, const char *section, const char *name,
		    const char *value)
{
	parse_state *st = user;
	int lineno = st->lineno;
	rvffs_config *c = st->cfg;
	const char *problem = NULL;
	if (!strcmp(section, "mount")) {
		if (!strcmp(name, "threads")) {
			if (!parse_uint(value, 1024, &c->threads))
				problem = "threads must be 0..1024";
		} else if (!strcmp(name, "log_level") || !strcmp(name, "caching")) {
			/* accepted; see rvffs.conf(5) */
		} else {
			problem = "unknown key";
		}
	} else if (!strcmp(section, "query")) {
		if (!strcmp(name, "k")) {
			if (!parse_uint(value, 1u << 20, &c->query_k) || !c->query_k)
				problem = "k must be a positive integer";
		} else if (!strcmp(name, "ef")) {
			unsigned ef;
			if (!parse_uint(value, 1u << 20, &ef))
				problem = "ef must be a non-negative integer";
		} else {
			problem = "unknown key";
		}
	} else if (!strcmp(section, "create")) {
		if (!strcmp(name, "metric")) {
			if (!rvf_metric_parse(value, &c->create_metric))
				problem = "metric must be l2, cosine or ip";
		} else {
			problem = "unknown key";
		}
	} else if (!strcmp(section, "kernel") || !strcmp(section, "signing")) {
		/* read by rvfctl */
	} else {
		problem = "unknown section";
	}
	if (problem && !st->failed) {
		snprintf(st->why, st->why_len, "%s:%d: [%s] %s = %s: %s", st->file,
			 lineno, section, name, value, problem);
		st->failed = true;
	}
	return problem ? 0 : 1;
}

bool config_load(const char *path, rvffs_config *cfg, char *why, size_t why_len)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->query_k = 10;
	cfg->create_metric = RVF_METRIC_L2;
	char xdg[512] = "";
	const char *home = getenv("XDG_CONFIG_HOME");
	if (home && *home)
		snprintf(xdg, sizeof(xdg), "%s/rvffs/rvffs.conf", home);
	const char *file = path;
	if (!file) {
		if (xdg[0] && access(xdg, R_OK) == 0)
			file = xdg;
		else if (access("/etc/rvffs.conf", R_OK) == 0)
			file = "/etc/rvffs.conf";
		else
			return true;
	}
	snprintf(cfg->source, sizeof(cfg->source), "%s", file);
	parse_state st = { .cfg = cfg, .why = why, .why_len = why_len,
			   .file = file };
	st.f = fopen(file, "r");
	if (!st.f) {
		snprintf(why, why_len, "%s: cannot read: %s", file, strerror(errno));
		return false;
	}
	int rc = ini_parse_stream(read_line, &st, on_entry, &st);
	fclose(st.f);
	if (rc > 0 && !st.failed)
		snprintf(why, why_len, "%s:%d: syntax error", file, rc);
	return rc == 0;
}
