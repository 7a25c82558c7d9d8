/* meta_print.c - metadata in rvfctl's output: a JSON object of a vector's
 * fields (export, query --meta), and the fields of a vector file of a mount
 * read from its user.rvf.meta.* xattrs, whose text carries the type
 * (rvf_value_text). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "meta_print.h"

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
	case RVF_VALUE_F64: {
		/* 2.0, not 2: it reads back as a float */
		size_t n;
		char *s = rvf_value_text(v, &n);
		fputs(s ? s : "null", f);
		free(s);
		break;
	}
	case RVF_VALUE_BOOL: fputs(v->u.b ? "true" : "false", f); break;
	}
}

void print_meta_object(FILE *f, const rvf_meta_field *m, size_t n)
{
	fputc('{', f);
	for (size_t i = 0; i < n; i++) {
		if (i)
			fputc(',', f);
		print_json_string(f, m[i].name, strlen(m[i].name));
		fputc(':', f);
		print_value(f, &m[i].value);
	}
	fputc('}', f);
}

json_t *meta_json(const rvf_meta_field *m, size_t n)
{
	json_t *o = json_object();
	for (size_t i = 0; o && i < n; i++) {
		const rvf_value *v = &m[i].value;
		json_t *j = NULL;
		switch (v->type) {
		case RVF_VALUE_STRING:
		case RVF_VALUE_BYTES:
			j = json_stringn_nocheck(v->u.str.ptr, v->u.str.len);
			break;
		case RVF_VALUE_I64: j = json_integer(v->u.i64); break;
		case RVF_VALUE_U64: /* above INT64_MAX: a decimal string */
			if (v->u.u64 > INT64_MAX) {
				char buf[24];
				snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v->u.u64);
				j = json_string(buf);
			} else {
				j = json_integer((json_int_t)v->u.u64);
			}
			break;
		case RVF_VALUE_F64: j = json_real(v->u.f64); break;
		case RVF_VALUE_BOOL: j = json_boolean(v->u.b); break;
		}
		json_object_set_new(o, m[i].name, j ? j : json_null());
	}
	return o ? o : json_object();
}

#define META_PREFIX "user.rvf.meta."

void mnt_meta_free(mnt_meta *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->values[i]);
		free(l->owned[i]);
	}
	free(l->values);
	free(l->owned);
	free(l->fields);
	free(l->names);
	memset(l, 0, sizeof(*l));
}

void mnt_meta_read(const char *path, mnt_meta *l)
{
	memset(l, 0, sizeof(*l));
	ssize_t ln = listxattr(path, NULL, 0);
	if (ln <= 0 || !(l->names = malloc((size_t)ln)) ||
	    (ln = listxattr(path, l->names, (size_t)ln)) <= 0)
		return;
	size_t count = 0, plen = strlen(META_PREFIX);
	for (char *p = l->names; p < l->names + ln; p += strlen(p) + 1)
		count += !strncmp(p, META_PREFIX, plen);
	l->values = calloc(count + 1, sizeof(char *));
	l->owned = calloc(count + 1, sizeof(char *));
	l->fields = calloc(count + 1, sizeof(rvf_meta_field));
	if (!l->values || !l->owned || !l->fields)
		return;
	for (char *p = l->names; p < l->names + ln && l->n < count; p += strlen(p) + 1) {
		if (strncmp(p, META_PREFIX, plen))
			continue;
		ssize_t vl = getxattr(path, p, NULL, 0);
		char *val = vl >= 0 ? malloc((size_t)vl + 1) : NULL;
		if (!val || (vl = getxattr(path, p, val, (size_t)vl)) < 0) {
			free(val);
			continue;
		}
		val[vl] = '\0';
		/* The text says the type (rvf_value_text); one the daemon
		 * would never write is exported as the string it is. */
		rvf_value *out = &l->fields[l->n].value;
		if (rvf_value_parse(val, (size_t)vl, 0, out, &l->owned[l->n], NULL) != RVF_OK)
			*out = (rvf_value){ .type = RVF_VALUE_STRING,
					    .u.str = { val, (size_t)vl } };
		l->values[l->n] = val;
		l->fields[l->n].name = p + plen;
		l->n++;
	}
}

