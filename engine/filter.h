/* filter.h - evaluating parsed metadata filters (rvf_filter_parse). */
#ifndef RVF_FILTER_H
#define RVF_FILTER_H

#include <stdbool.h>
#include <stdint.h>

#include "meta.h"

/* True when the metadata of `id` in t satisfies f.  A NULL filter matches
 * everything; a NULL table holds no metadata.  Safe from any thread. */
bool filter_match(const rvf_filter *f, const meta_table *t, uint64_t id);

#endif
