/* rvfctl export: every visible vector (with metadata in jsonl/json). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

enum format { F_JSONL, F_JSON, F_CSV, F_FVECS };

static void print_json_string(FILE *f, const char *p, size_t n)
{
	fputc('"', f);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void print_value(FILE *f, const rvf_value *v)
{
	switch (v->type) {
	case RVF_VALUE_STRING:
	case RVF_VALUE_BYTES:
		print_json_string(f, v->u.str.ptr, v->u.str.len);
		break;
	case RVF_VALUE_I64: fprintf(f, "%lld", (long long)v->u.i64); break;
	case RVF_VALUE_U64: fprintf(f, "%llu", (unsigned long long)v->u.u64); break;
	case RVF_VALUE_F64: fprintf(f, "%.17g", v->u.f64); break;
	case RVF_VALUE_BOOL: fputs(v->u.b ? "true" : "false", f); break;
	}
}

static void print_record(FILE *f, const rvf_view *v, uint64_t id,
			 const float *vec, uint32_t dim)
{
	fprintf(f, "{\"id\":%llu,\"vector\":[", (unsigned long long)id);
	for (uint32_t d = 0; d < dim; d++) {
		if (d)
			fputc(',', f);
		print_float(f, vec[d]);
	}
	fputc(']', f);
	const rvf_meta_field *m;
	size_t n = rvf_view_metadata(v, id, &m);
	if (n) {
		fputs(",\"metadata\":{", f);
		for (size_t i = 0; i < n; i++) {
			if (i)
				fputc(',', f);
			print_json_string(f, m[i].name, strlen(m[i].name));
			fputc(':', f);
			print_value(f, &m[i].value);
		}
		fputc('}', f);
	}
	fputc('}', f);
}

int cmd_export(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "format", required_argument, NULL, 'f' },
		{ "output", required_argument, NULL, 'o' },
		{ 0 },
	};
	enum format fmt = F_JSONL;
	const char *out_path = NULL;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "o:", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			if (!strcmp(optarg, "jsonl")) fmt = F_JSONL;
			else if (!strcmp(optarg, "json")) fmt = F_JSON;
			else if (!strcmp(optarg, "csv")) fmt = F_CSV;
			else if (!strcmp(optarg, "fvecs")) fmt = F_FVECS;
			else return ctl_usage_error("unknown format '%s'", optarg);
			break;
		case 'o': out_path = optarg; break;
		default: return EXIT_USAGE;
		}
	}
	if (optind != argc - 1)
		return ctl_usage_error("export needs STORE");
	rvf_store *s;
	int rc = ctl_open(argv[optind], false, &s);
	if (rc)
		return rc;
	FILE *f = out_path ? fopen(out_path, "wb") : stdout;
	if (!f) {
		perror(out_path);
		rvf_store_close(s);
		return EXIT_IO;
	}
	rvf_view *v = rvf_store_view(s);
	const rvf_info *info = rvf_view_info(v);
	uint32_t dim = info->dimension;
	float *vec = malloc(4 * (size_t)dim);
	if (fmt == F_JSON)
		fputs("[\n", f);
	for (size_t i = 0; i < info->visible; i++) {
		uint64_t id = rvf_view_id_at(v, i);
		rvf_view_vector_at(v, i, vec);
		switch (fmt) {
		case F_JSONL:
		case F_JSON:
			print_record(f, v, id, vec, dim);
			fputs(fmt == F_JSON && i + 1 < info->visible ? ",\n" : "\n", f);
			break;
		case F_CSV:
			fprintf(f, "%llu", (unsigned long long)id);
			for (uint32_t d = 0; d < dim; d++) {
				fputc(',', f);
				print_float(f, vec[d]);
			}
			fputc('\n', f);
			break;
		case F_FVECS: {
			int32_t d32 = (int32_t)dim;
			fwrite(&d32, 4, 1, f);
			fwrite(vec, 4, dim, f);
			break;
		}
		}
	}
	if (fmt == F_JSON)
		fputs("]\n", f);
	free(vec);
	rvf_view_release(v);
	if (fflush(f) != 0 || (out_path && fclose(f) != 0)) {
		perror(out_path ? out_path : "stdout");
		rc = EXIT_IO;
	}
	rvf_store_close(s);
	return rc;
}
