/* segment.c - segment header codec and type names. */
#include "segment.h"

#include <stdio.h>
#include <string.h>

#include "bytes.h"
#include "error.h"

bool segment_decode(const unsigned char *p, uint64_t offset, rvf_segment *out)
{
	if (ld32(p) != RVF_SEGMENT_MAGIC)
		return false;
	memset(out, 0, sizeof(*out));
	out->offset = offset;
	out->version = p[4];
	out->type = p[5];
	out->flags = ld16(p + 6);
	out->id = ld64(p + 8);
	out->payload_length = ld64(p + 0x10);
	out->timestamp_ns = ld64(p + 0x18);
	out->checksum_algo = p[0x20];
	out->compression = p[0x21];
	memcpy(out->content_hash, p + 0x28, 16);
	return true;
}

void segment_encode(unsigned char out[RVF_SEGMENT_HEADER_SIZE], uint8_t type,
		    uint64_t id, uint64_t payload_length,
		    const uint8_t content_hash[16])
{
	memset(out, 0, RVF_SEGMENT_HEADER_SIZE);
	st32(out, RVF_SEGMENT_MAGIC);
	out[4] = 1;
	out[5] = type;
	st64(out + 8, id);
	st64(out + 0x10, payload_length);
	memcpy(out + 0x28, content_hash, 16);
}

rvf_code segment_at(const unsigned char *map, uint64_t size, uint64_t offset,
		    rvf_segment *out, rvf_error *err)
{
	if (offset > size || size - offset < RVF_SEGMENT_HEADER_SIZE)
		return rvf_fail(err, RVF_E_CORRUPT,
				"segment header at offset %llu lies outside the file (%llu bytes)",
				(unsigned long long)offset, (unsigned long long)size);
	if (!segment_decode(map + offset, offset, out))
		return rvf_fail(err, RVF_E_CORRUPT,
				"no segment magic at offset %llu",
				(unsigned long long)offset);
	if (out->payload_length > RVF_MAX_PAYLOAD ||
	    out->payload_length > size - offset - RVF_SEGMENT_HEADER_SIZE)
		return rvf_fail(err, RVF_E_CORRUPT,
				"segment type 0x%02x id %llu at offset %llu: payload length %llu runs past the end of the file",
				out->type, (unsigned long long)out->id,
				(unsigned long long)offset,
				(unsigned long long)out->payload_length);
	return RVF_OK;
}

const char *rvf_metric_name(rvf_metric m)
{
	switch (m) {
	case RVF_METRIC_INNER_PRODUCT: return "inner_product";
	case RVF_METRIC_COSINE: return "cosine";
	default: return "l2";
	}
}

bool rvf_metric_parse(const char *s, rvf_metric *out)
{
	if (!strcmp(s, "l2") || !strcmp(s, "L2") || !strcmp(s, "euclidean"))
		*out = RVF_METRIC_L2;
	else if (!strcmp(s, "cosine"))
		*out = RVF_METRIC_COSINE;
	else if (!strcmp(s, "ip") || !strcmp(s, "inner_product") ||
		 !strcmp(s, "dot"))
		*out = RVF_METRIC_INNER_PRODUCT;
	else
		return false;
	return true;
}
