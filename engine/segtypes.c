/* segtypes.c - names of segment types, as upstream's
 * rvf-types/src/segment_type.rs defines them (snake_case of its enum), plus
 * our own SIGNATURE segment.  rvf-node 0.2.3 names only the first sixteen
 * and lists the rest as unknown(0xNN); we name every one.  Also how a
 * witness entry is shown: its kind, its link and its time. */
#include <stdio.h>
#include <time.h>

#include "rvf.h"
#include "segment.h"

const char *rvf_segment_type_name(uint8_t type)
{
	static const char *const names[256] = {
		[0x00] = "invalid",
		[RVF_SEG_VEC] = "vec",
		[RVF_SEG_INDEX] = "index",
		[0x03] = "overlay",
		[RVF_SEG_JOURNAL] = "journal",
		[RVF_SEG_MANIFEST] = "manifest",
		[0x06] = "quant",
		[RVF_SEG_META] = "meta",
		[0x08] = "hot",
		[0x09] = "sketch",
		[RVF_SEG_WITNESS] = "witness",
		[RVF_SEG_PROFILE] = "profile",
		[0x0C] = "crypto",
		[0x0D] = "meta_idx",
		[RVF_SEG_KERNEL] = "kernel",
		[RVF_SEG_EBPF] = "ebpf",
		[RVF_SEG_WASM] = "wasm",
		[RVF_SEG_DASHBOARD] = "dashboard",
		[RVF_SEG_COW_MAP] = "cow_map",
		[RVF_SEG_REFCOUNT] = "refcount",
		[RVF_SEG_MEMBERSHIP] = "membership",
		[0x23] = "delta",
		[0x30] = "transfer_prior",
		[0x31] = "policy_kernel",
		[0x32] = "cost_curve",
		[0x33] = "federated_manifest",
		[0x34] = "diff_privacy_proof",
		[0x35] = "redaction_log",
		[0x36] = "aggregate_weights",
		[RVF_SEG_SIGNATURE] = "signature",
	};
	return names[type];
}

void segment_type_label(uint8_t type, char out[SEGMENT_LABEL_SIZE])
{
	const char *n = rvf_segment_type_name(type);
	if (n)
		snprintf(out, SEGMENT_LABEL_SIZE, "%s", n);
	else
		snprintf(out, SEGMENT_LABEL_SIZE, "type-%02x", type);
}

const char *rvf_witness_kind(uint8_t type)
{
	return type == 1 ? "computation" : type == 0 ? "provenance" :
	       type == 0xFF ? "document" : "other";
}

const char *rvf_witness_link(const rvf_witness *w)
{
	if (w->links)
		return "linked";
	for (int b = 0; b < 32; b++)
		if (w->prev_hash[b])
			return "unlinked";
	return "session-start";
}

void rvf_witness_time(const rvf_witness *w, bool nanos,
		      char out[RVF_WITNESS_TIME_SIZE])
{
	time_t secs = (time_t)(w->timestamp_ns / 1000000000ull);
	struct tm tm;
	char stamp[32];
	if (!gmtime_r(&secs, &tm) ||
	    !strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm))
		snprintf(stamp, sizeof(stamp), "@%llu", (unsigned long long)secs);
	if (nanos)
		snprintf(out, RVF_WITNESS_TIME_SIZE, "%s.%09lluZ", stamp,
			 (unsigned long long)(w->timestamp_ns % 1000000000ull));
	else
		snprintf(out, RVF_WITNESS_TIME_SIZE, "%sZ", stamp);
}
