/* decompress.c - the compressed payloads upstream writers leave in a store:
 * gzip (zlib: ruvbot's build-rvf.js kernel, dashboard compression 1),
 * zstd (libzstd: rvffs --compress kernels, upstream's compression 2) and
 * brotli (libbrotlidec: dashboard compression 2).  Streaming, so a size
 * field that lies cannot make us allocate more than the caller's bound. */
#include <stdlib.h>
#include <string.h>
#include <brotli/decode.h>
#include <zlib.h>
#include <zstd.h>

#include "decompress.h"
#include "error.h"

const char *decomp_name(decomp_kind k)
{
	switch (k) {
	case DECOMP_GZIP:
		return "gzip";
	case DECOMP_ZSTD:
		return "zstd";
	case DECOMP_BROTLI:
		return "brotli";
	default:
		return "unknown";
	}
}

decomp_kind decomp_sniff(const unsigned char *p, size_t n)
{
	if (n >= 2 && p[0] == 0x1F && p[1] == 0x8B)
		return DECOMP_GZIP;
	if (n >= 4 && p[0] == 0x28 && p[1] == 0xB5 && p[2] == 0x2F && p[3] == 0xFD)
		return DECOMP_ZSTD;
	return DECOMP_UNKNOWN;
}

/* The output buffer: grows by doubling up to max. */
typedef struct {
	unsigned char *p;
	size_t len, cap, max;
} outbuf;

static bool grow(outbuf *o)
{
	if (o->cap >= o->max)
		return false;
	size_t cap = o->cap ? o->cap * 2 : 64 * 1024;
	if (cap > o->max)
		cap = o->max;
	unsigned char *p = realloc(o->p, cap);
	if (!p)
		return false;
	o->p = p;
	o->cap = cap;
	return true;
}

/* Each returns NULL on success, else why. */
static const char *run_gzip(const unsigned char *in, size_t n, outbuf *o)
{
	z_stream z;
	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
		return "zlib cannot start";
	const char *why = NULL;
	size_t used = 0;
	int r = Z_OK;
	while (r != Z_STREAM_END) {
		if (o->len == o->cap && !grow(o)) {
			why = "larger than its size allows";
			break;
		}
		size_t chunk_in = n - used > (1u << 30) ? (1u << 30) : n - used;
		size_t room = o->cap - o->len > (1u << 30) ? (1u << 30) : o->cap - o->len;
		z.next_in = (unsigned char *)in + used;
		z.avail_in = (uInt)chunk_in;
		z.next_out = o->p + o->len;
		z.avail_out = (uInt)room;
		r = inflate(&z, Z_NO_FLUSH);
		used += chunk_in - z.avail_in;
		o->len += room - z.avail_out;
		if (r == Z_BUF_ERROR && used == n) {
			why = "truncated gzip stream";
			break;
		}
		if (r != Z_OK && r != Z_STREAM_END && r != Z_BUF_ERROR) {
			why = z.msg ? z.msg : "bad gzip stream";
			break;
		}
	}
	inflateEnd(&z);
	return why;
}

static const char *run_zstd(const unsigned char *in, size_t n, outbuf *o)
{
	ZSTD_DStream *d = ZSTD_createDStream();
	if (!d)
		return "zstd cannot start";
	ZSTD_inBuffer ib = { in, n, 0 };
	const char *why = NULL;
	size_t r = 1;
	while (r != 0) {
		if (o->len == o->cap && !grow(o)) {
			why = "larger than its size allows";
			break;
		}
		ZSTD_outBuffer ob = { o->p, o->cap, o->len };
		r = ZSTD_decompressStream(d, &ob, &ib);
		o->len = ob.pos;
		if (ZSTD_isError(r)) {
			why = ZSTD_getErrorName(r);
			break;
		}
		if (r != 0 && ib.pos == ib.size && ob.pos < ob.size) {
			why = "truncated zstd stream";
			break;
		}
	}
	ZSTD_freeDStream(d);
	return why;
}

static const char *run_brotli(const unsigned char *in, size_t n, outbuf *o)
{
	BrotliDecoderState *b = BrotliDecoderCreateInstance(NULL, NULL, NULL);
	if (!b)
		return "brotli cannot start";
	const uint8_t *next_in = in;
	size_t avail_in = n;
	const char *why = NULL;
	for (;;) {
		if (o->len == o->cap && !grow(o)) {
			why = "larger than its size allows";
			break;
		}
		uint8_t *next_out = o->p + o->len;
		size_t avail_out = o->cap - o->len;
		BrotliDecoderResult r = BrotliDecoderDecompressStream(
			b, &avail_in, &next_in, &avail_out, &next_out, NULL);
		o->len = (size_t)(next_out - o->p);
		if (r == BROTLI_DECODER_RESULT_SUCCESS)
			break;
		if (r == BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT) {
			why = "truncated brotli stream";
			break;
		}
		if (r == BROTLI_DECODER_RESULT_ERROR) {
			why = BrotliDecoderErrorString(BrotliDecoderGetErrorCode(b));
			break;
		}
	}
	BrotliDecoderDestroyInstance(b);
	return why;
}

rvf_code decomp_run(decomp_kind kind, const unsigned char *in, size_t n,
		    uint64_t want, size_t max, const char *what,
		    unsigned char **out, size_t *out_len, rvf_error *err)
{
	*out = NULL;
	*out_len = 0;
	if (want > max)
		return rvf_fail(err, RVF_E_CORRUPT, "%s claims %llu bytes decompressed (limit %zu)",
				what, (unsigned long long)want, max);
	/* A size field that is there sizes the buffer at once and bounds it;
	 * one byte more lets the stream end (gzip's trailer) or show that it
	 * holds more than the field says. */
	outbuf o = { NULL, 0, 0, want ? (size_t)want + 1 : max };
	if (want) {
		o.p = malloc(o.max);
		if (!o.p)
			return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
		o.cap = o.max;
	}
	const char *why;
	switch (kind) {
	case DECOMP_GZIP:
		why = run_gzip(in, n, &o);
		break;
	case DECOMP_ZSTD:
		why = run_zstd(in, n, &o);
		break;
	case DECOMP_BROTLI:
		why = run_brotli(in, n, &o);
		break;
	default:
		why = "unknown compression";
	}
	if (!why && want && o.len != want)
		why = o.len < want ? "shorter than its size field" : "longer than its size field";
	if (why) {
		free(o.p);
		return rvf_fail(err, RVF_E_CORRUPT, "%s does not decompress (%s): %s", what,
				decomp_name(kind), why);
	}
	*out = o.p ? o.p : malloc(1);
	if (!*out)
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	*out_len = o.len;
	return RVF_OK;
}
