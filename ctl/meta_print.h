/* meta_print.h - metadata in rvfctl's output (meta_print.c). */
#ifndef CTL_META_PRINT_H
#define CTL_META_PRINT_H

#include <jansson.h>
#include <stdio.h>

#include "rvf.h"

/* {"name":value,...}: strings as JSON strings, numbers and booleans as
 * JSON (a float keeps its decimal point). */
void print_meta_object(FILE *f, const rvf_meta_field *m, size_t n);
json_t *meta_json(const rvf_meta_field *m, size_t n);

/* The metadata of one vector file of a mount, read from its xattrs. */
typedef struct mnt_meta {
	char *names;            /* listxattr's buffer: fields point into it */
	char **values;          /* value texts, one per field */
	char **owned;           /* decoded JSON strings, one per field */
	rvf_meta_field *fields;
	size_t n;
} mnt_meta;

void mnt_meta_read(const char *path, mnt_meta *l);
void mnt_meta_free(mnt_meta *l);

#endif
