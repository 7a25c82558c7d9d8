/* verify.c - the manifest chain and the witness chain of a view.
 *
 * Content hashes are checked by rvf_view_verify_hashes (view.c) and
 * signatures by sign.c; this file checks what links commits together:
 * older manifests the directory still lists must parse and be no newer
 * than the newest, and each witness must carry the hash of the witness
 * before it, except where a writer session began (zeros, as the
 * reference writes them). */
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "error.h"
#include "manifest.h"
#include "store.h"

/* The witness payload: type, timestamp, action length, action, then the
 * 32-byte hash of the previous witness payload (see write.c). */
#define WITNESS_FIXED 45

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static rvf_code check_manifests(const rvf_view *v, rvf_chain_report *r,
				rvf_error *err)
{
	rvf_code rc = RVF_OK;
	for (uint32_t i = 0; i < v->man.dir_len; i++) {
		const rvf_segment *s = &v->dir[i];
		if (s->type != RVF_SEG_MANIFEST)
			continue;
		r->manifests++;
		manifest m;
		bool oom = false, parsed = s->readable &&
			manifest_parse(v->map->base + s->offset + RVF_SEGMENT_HEADER_SIZE,
				       (size_t)s->payload_length, &m, &oom);
		if (oom)
			return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
		if (parsed && m.epoch <= v->info.epoch) {
			manifest_free(&m);
			continue;
		}
		r->manifests_bad++;
		if (rc == RVF_OK)
			rc = parsed ?
			     rvf_fail(err, RVF_E_SIGNATURE,
				      "manifest id %llu at offset %llu has epoch %u, newer than the newest manifest's %u",
				      (unsigned long long)s->id,
				      (unsigned long long)s->offset, m.epoch,
				      v->info.epoch) :
			     rvf_fail(err, RVF_E_SIGNATURE,
				      "manifest id %llu at offset %llu does not parse",
				      (unsigned long long)s->id,
				      (unsigned long long)s->offset);
		if (parsed)
			manifest_free(&m);
	}
	return rc;
}

static rvf_code check_witnesses(const rvf_view *v, rvf_chain_report *r,
				rvf_error *err)
{
	rvf_code rc = RVF_OK;
	const unsigned char *prev = NULL;
	size_t prev_len = 0;
	for (uint32_t i = 0; i < v->man.dir_len; i++) {
		const rvf_segment *s = &v->dir[i];
		if (s->type != RVF_SEG_WITNESS)
			continue;
		r->witnesses++;
		const unsigned char *p = s->readable ?
			v->map->base + s->offset + RVF_SEGMENT_HEADER_SIZE : NULL;
		size_t len = (size_t)s->payload_length;
		const char *why = NULL;
		if (!p || len < WITNESS_FIXED || ld32(p + 9) > len - WITNESS_FIXED) {
			why = "is malformed";
		} else {
			const uint8_t *link = p + 13 + ld32(p + 9);
			uint8_t h[32];
			if (all_zero(link, 32)) {
				r->witness_sessions++;
			} else if (!prev) {
				why = "names a predecessor but is the first witness listed";
			} else {
				rvf_simple_hash256(prev, prev_len, h);
				if (memcmp(h, link, 32))
					why = "does not carry the hash of the witness before it";
			}
		}
		if (why) {
			r->witness_breaks++;
			if (rc == RVF_OK)
				rc = rvf_fail(err, RVF_E_SIGNATURE,
					      "witness id %llu at offset %llu %s",
					      (unsigned long long)s->id,
					      (unsigned long long)s->offset, why);
		}
		prev = p;
		prev_len = p ? len : 0;
	}
	return rc;
}

rvf_code rvf_view_verify_chains(const rvf_view *v, rvf_chain_report *report,
				rvf_error *err)
{
	rvf_chain_report local;
	rvf_chain_report *r = report ? report : &local;
	memset(r, 0, sizeof(*r));
	rvf_error first;
	rvf_code rc = check_manifests(v, r, &first);
	rvf_code wrc = check_witnesses(v, r, rc == RVF_OK ? &first : NULL);
	if (rc == RVF_OK)
		rc = wrc;
	if (rc != RVF_OK && err)
		*err = first;
	return rc;
}
