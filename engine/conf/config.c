/* config.c - reading rvffs.conf with inih; every unknown key or bad value
 * is an error naming the file and line, never silently ignored. */
#include "config.h"

#include <errno.h>
#include <ini.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct parse_state {
	FILE *f;
	int lineno;             /* Debian's inih passes no line numbers to
				 * callbacks: the reader counts them */
	rvffs_config *cfg;
	const char *file;
	char *why;
	size_t why_len;
	bool failed;
} parse_state;

static bool parse_uint(const char *v, unsigned long max, unsigned long *out)
{
	char *end;
	errno = 0;
	unsigned long n = strtoul(v, &end, 0);
	if (!*v || *end || errno || n > max || v[0] == '-')
		return false;
	*out = n;
	return true;
}

/* A size in bytes, with an optional K, M, G or T suffix (powers of 1024). */
static bool parse_size(const char *v, uint64_t min, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	if (!*v || v[0] < '0' || v[0] > '9' || errno)
		return false;
	const char *units = "KMGT";
	const char *u = *end ? strchr(units, *end) : NULL;
	if (*end && (!u || end[1]))
		return false;
	for (int shift = u ? (int)(u - units) + 1 : 0; shift > 0; shift--) {
		if (n > (1ull << 53))
			return false;
		n <<= 10;
	}
	if (n < min)
		return false;
	*out = n;
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

/* A relative key prefix is taken relative to the configuration file. */
static void set_key(parse_state *st, const char *value)
{
	rvffs_config *c = st->cfg;
	if (value[0] == '/' || value[0] == '~') {
		if (value[0] == '~' && value[1] == '/' && getenv("HOME"))
			snprintf(c->signing_key, sizeof(c->signing_key), "%s%s",
				 getenv("HOME"), value + 1);
		else
			snprintf(c->signing_key, sizeof(c->signing_key), "%s", value);
		return;
	}
	char *copy = strdup(st->file);
	snprintf(c->signing_key, sizeof(c->signing_key), "%s/%s",
		 copy ? dirname(copy) : ".", value);
	free(copy);
}

/* One function per section: NULL when name = value is taken, else why
 * not ("unknown key" for a name the section does not have). */
typedef const char *(*section_fn)(parse_state *st, const char *name, const char *value);

static const char *mount_key(parse_state *st, const char *name, const char *value)
{
	rvffs_config *c = st->cfg;
	unsigned long n;
	if (!strcmp(name, "threads")) {
		if (!parse_uint(value, 1024, &n))
			return "threads must be 0..1024";
		c->threads = (unsigned)n;
		return NULL;
	}
	if (!strcmp(name, "commit")) {
		if (!parse_uint(value, 86400, &n) || !n)
			return "commit must be 1..86400 seconds";
		c->commit_s = (unsigned)n;
		return NULL;
	}
	if (!strcmp(name, "log_level") || !strcmp(name, "caching"))
		return NULL; /* the daemon's */
	return "unknown key";
}

static const char *query_key(parse_state *st, const char *name, const char *value)
{
	rvffs_config *c = st->cfg;
	unsigned long n;
	if (!strcmp(name, "k")) {
		if (!parse_uint(value, 1u << 20, &n) || !n)
			return "k must be a positive integer";
		c->query_k = (unsigned)n;
		return NULL;
	}
	if (!strcmp(name, "codes")) {
		if (strcmp(value, "auto") && strcmp(value, "off"))
			return "codes must be auto or off";
		c->codes_off = !strcmp(value, "off");
		return NULL;
	}
	if (!strcmp(name, "codes_max_mb")) {
		if (!parse_uint(value, 1u << 24, &n))
			return "codes_max_mb must be 0..16777216";
		c->codes_max_mb = (unsigned)n;
		return NULL;
	}
	if (!strcmp(name, "ef"))
		return parse_uint(value, 1u << 20, &n) ? NULL :
		       "ef must be a non-negative integer";
	return "unknown key";
}

static const char *compact_key(parse_state *st, const char *name, const char *value)
{
	rvffs_config *c = st->cfg;
	unsigned long n;
	if (!strcmp(name, "auto")) {
		if (strcmp(value, "on") && strcmp(value, "off"))
			return "auto must be on or off";
		c->compact_auto = !strcmp(value, "on");
		return NULL;
	}
	if (!strcmp(name, "ratio")) {
		char *end;
		double r = strtod(value, &end);
		if (end == value || *end || !(r > 0 && r <= 1))
			return "ratio must be a number above 0 and at most 1";
		c->compact_ratio = r;
		return NULL;
	}
	if (!strcmp(name, "min_dead_mb")) {
		if (!parse_uint(value, 1u << 20, &n))
			return "min_dead_mb must be 0..1048576";
		c->compact_min_mb = (unsigned)n;
		return NULL;
	}
	return "unknown key";
}

static const char *limits_key(parse_state *st, const char *name, const char *value)
{
	rvffs_config *c = st->cfg;
	unsigned long n;
	if (!strcmp(name, "request_max"))
		return parse_size(value, 4096, &c->request_max) ? NULL :
		       "request_max must be a size of at least 4K (e.g. 16M)";
	if (!strcmp(name, "results_max"))
		return parse_size(value, 4096, &c->results_max) ? NULL :
		       "results_max must be a size of at least 4K (e.g. 256M)";
	if (!strcmp(name, "staged_max"))
		return parse_size(value, 0, &c->staged_max) ? NULL :
		       "staged_max must be a size (e.g. 64G)";
	if (!strcmp(name, "query_user_max"))
		return parse_size(value, 4096, &c->query_user_max) ? NULL :
		       "query_user_max must be a size of at least 4K (e.g. 1G)";
	if (!strcmp(name, "slots_max")) {
		if (!parse_uint(value, 1u << 20, &n))
			return "slots_max must be 0..1048576";
		c->slots_max = (unsigned)n;
		return NULL;
	}
	return "unknown key";
}

static const char *create_key(parse_state *st, const char *name, const char *value)
{
	if (!strcmp(name, "metric"))
		return rvf_metric_parse(value, &st->cfg->create_metric) ? NULL :
		       "metric must be l2, cosine or ip";
	return "unknown key";
}

static const char *kernel_key(parse_state *st, const char *name, const char *value)
{
	rvffs_config *c = st->cfg;
	unsigned long n;
	if (!strcmp(name, "arch") || !strcmp(name, "type")) {
		if (!parse_uint(value, 255, &n))
			return "must be 0..255";
		*(name[0] == 'a' ? &c->kernel_arch : &c->kernel_type) = (uint8_t)n;
		return NULL;
	}
	if (!strcmp(name, "api_port")) {
		if (!parse_uint(value, 65535, &n))
			return "api_port must be 0..65535";
		c->kernel_api_port = (uint16_t)n;
		return NULL;
	}
	if (!strcmp(name, "compression")) {
		if (strcmp(value, "none") && strcmp(value, "zstd"))
			return "compression must be none or zstd";
		c->kernel_compress = !strcmp(value, "zstd");
		return NULL;
	}
	return "unknown key";
}

static const char *signing_key(parse_state *st, const char *name, const char *value)
{
	if (!strcmp(name, "key")) {
		if (!*value)
			return "key must name a key prefix";
		set_key(st, value);
		return NULL;
	}
	return "unknown key";
}

static const struct {
	const char *name;
	section_fn fn;
} sections[] = {
	{ "mount", mount_key },     { "query", query_key },
	{ "compact", compact_key }, { "limits", limits_key },
	{ "create", create_key },   { "kernel", kernel_key },
	{ "signing", signing_key },
};

static const char *on_key(parse_state *st, const char *section,
			  const char *name, const char *value)
{
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
		if (!strcmp(section, sections[i].name))
			return sections[i].fn(st, name, value);
	return "unknown section";
}

static int on_entry(void *user, const char *section, const char *name,
		    const char *value)
{
	parse_state *st = user;
	const char *problem = on_key(st, section, name, value);
	if (problem && !st->failed) {
		snprintf(st->why, st->why_len, "%s:%d: [%s] %s = %s: %s", st->file,
			 st->lineno, section, name, value, problem);
		st->failed = true;
	}
	return problem ? 0 : 1;
}

bool config_load(const char *path, rvffs_config *cfg, char *why,
		     size_t why_len)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->query_k = 10;
	cfg->request_max = 16ull << 20;
	cfg->results_max = 256ull << 20;
	cfg->staged_max = 64ull << 30;
	cfg->slots_max = 64;
	cfg->query_user_max = 1ull << 30;
	cfg->commit_s = RVFFS_COMMIT_DEFAULT_S;
	cfg->compact_auto = true;
	cfg->compact_ratio = RVF_COMPACT_DEFAULT_RATIO;
	cfg->compact_min_mb = (unsigned)(RVF_COMPACT_DEFAULT_MIN_DEAD >> 20);
	cfg->create_metric = RVF_METRIC_L2;
	char xdg[PATH_MAX] = "";
	const char *home = getenv("XDG_CONFIG_HOME");
	if (home && *home)
		snprintf(xdg, sizeof(xdg), "%s/rvffs/rvffs.conf", home);
	else if ((home = getenv("HOME")) && *home)
		snprintf(xdg, sizeof(xdg), "%s/.config/rvffs/rvffs.conf", home);
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
	parse_state st = { .cfg = cfg, .file = file, .why = why,
			   .why_len = why_len };
	st.f = fopen(file, "re");
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

bool config_parse_wait(const char *v, unsigned *ms)
{
	if (!v || !*v)
		return false;
	char *end;
	errno = 0;
	double sec = strtod(v, &end);
	if (errno || *end || !(sec >= 0 && sec <= 3600))
		return false;
	*ms = (unsigned)(sec * 1000 + 0.5);
	return true;
}
