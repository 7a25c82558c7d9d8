/* limits.c - what one descriptor or one user may make the daemon hold.
 *
 * Any user may write the query file, and the daemon (usually root) must
 * not grow without bound on their behalf: a request is at most
 * request_max bytes (per descriptor, no holes), the results of one batch
 * at most results_max bytes, a user stages at most staged_max bytes in
 * ingest/ and makes at most slots_max query slots.  Each refusal is an
 * errno (EFBIG, E2BIG, EDQUOT) and a line in `errors` saying which limit
 * of rvffs.conf(5) to raise. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "rvffs.h"

/* What one hit costs while a batch runs: the engine's per-thread heaps,
 * the merged output, and its "ID DISTANCE" line. */
#define HIT_BYTES (2 * sizeof(rvf_hit) + 20 + 1 + RVF_FLOAT_TEXT_MAX + 1)

void limits_init(rvffs *fs, uint64_t request_max, uint64_t results_max,
		 uint64_t staged_max, unsigned slots_max)
{
	fs->lim.request_max = request_max;
	fs->lim.results_max = results_max;
	fs->lim.staged_max = staged_max;
	fs->lim.slots_max = slots_max;
}

int limits_request(rvffs *fs, const char *what, uint64_t end)
{
	if (end <= fs->lim.request_max)
		return 0;
	fs_error(fs, "%s: a request is at most %" PRIu64 " bytes (request_max in rvffs.conf); it was dropped",
		 what, fs->lim.request_max);
	return -EFBIG;
}

int limits_results(rvffs *fs, uint64_t hits, char **msg)
{
	uint64_t bytes = hits > UINT64_MAX / HIT_BYTES ? UINT64_MAX : hits * HIT_BYTES;
	if (bytes <= fs->lim.results_max)
		return 0;
	if (asprintf(msg, "the results would take %" PRIu64 " bytes (%" PRIu64
		     " hits: k times queries), more than results_max (%" PRIu64
		     "): ask fewer queries at a time or a smaller k",
		     bytes, hits,
		     fs->lim.results_max) < 0)
		*msg = NULL;
	return -E2BIG;
}

int limits_held(rvffs *fs, uint64_t bytes)
{
	if (bytes <= fs->lim.results_max)
		return 0;
	fs_error(fs, "query: results not read yet would take %" PRIu64
		 " bytes, more than results_max (%" PRIu64
		 "): read them before writing more; the new results were dropped",
		 bytes, fs->lim.results_max);
	return -E2BIG;
}

int limits_stage(rvffs *fs, staged *s, uint64_t end)
{
	pthread_mutex_lock(&fs->mu);
	if (end <= s->charged) {
		pthread_mutex_unlock(&fs->mu);
		return 0;
	}
	uint64_t used = 0;
	for (staged *o = fs->staged; o; o = o->next)
		if (o->uid == s->uid)
			used += o->charged;
	uint64_t more = end - s->charged;
	bool ok = used + more >= used && used + more <= fs->lim.staged_max;
	if (ok)
		s->charged = end;
	uid_t uid = s->uid;
	char name[256]; /* s->name changes with a rename: copy it here */
	snprintf(name, sizeof(name), "%s", s->name);
	pthread_mutex_unlock(&fs->mu);
	if (ok)
		return 0;
	fs_error(fs, "ingest/%s: uid %u may stage at most %" PRIu64
		 " bytes in ingest/ (staged_max in rvffs.conf; hidden files count too); this write was refused",
		 name, (unsigned)uid, fs->lim.staged_max);
	return -EFBIG;
}

void limits_unstage(staged *s, uint64_t size)
{
	if (s->charged > size)
		s->charged = size;
}

bool limits_slot_allowed(rvffs *fs, uid_t uid)
{
	unsigned n = 0;
	for (slot *q = fs->slots; q; q = q->next)
		n += q->uid == uid;
	return n < fs->lim.slots_max;
}
