/* jsondoc.h - segments whose payload is a JSON document.
 *
 * Upstream tools (npm/packages/ruvbot/scripts/build-rvf.js) write META,
 * PROFILE and WITNESS payloads as JSON objects rather than the binary
 * layouts; a reader shows them as documents and does not take them for
 * vector metadata or witness entries. */
#ifndef RVF_JSONDOC_H
#define RVF_JSONDOC_H

#include <stdbool.h>
#include <stddef.h>

/* True when the payload is one complete JSON object or array. */
bool payload_is_json(const void *payload, size_t len);

/* "json " and the document on one line (malloc'd; NULL when out of
 * memory or not JSON). */
char *json_one_line(const void *payload, size_t len);

#endif
