/* jsondoc.c - recognising JSON document payloads (jansson). */
#include "jsondoc.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "rvf.h"

bool payload_is_json(const void *payload, size_t len)
{
	const unsigned char *p = payload;
	size_t i = 0;
	while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' ||
			   p[i] == '\r'))
		i++;
	if (i == len || (p[i] != '{' && p[i] != '['))
		return false;
	json_error_t e;
	json_t *j = json_loadb(payload, len, JSON_DECODE_ANY, &e);
	json_decref(j);
	return j != NULL;
}

bool rvf_segment_is_json(const rvf_view *v, const rvf_segment *seg)
{
	if (!seg->readable)
		return false;
	const unsigned char *b = rvf_view_segment_bytes(v, seg);
	return b && payload_is_json(b + RVF_SEGMENT_HEADER_SIZE,
				    (size_t)seg->payload_length);
}

char *json_one_line(const void *payload, size_t len)
{
	json_error_t e;
	json_t *j = json_loadb(payload, len, JSON_DECODE_ANY, &e);
	if (!j)
		return NULL;
	char *doc = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
	json_decref(j);
	char *out = NULL;
	if (doc && asprintf(&out, "json %s", doc) < 0)
		out = NULL;
	free(doc);
	return out;
}
