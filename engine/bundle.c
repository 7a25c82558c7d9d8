/* bundle.c - what a user takes out of a store besides vectors: WASM
 * modules (0x10) and the dashboard bundle (0x11), in the layouts of
 * upstream's rvf-types wasm_bootstrap.rs and dashboard.rs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "decompress.h"
#include "error.h"
#include "store.h"

#define WASM_MAGIC 0x5256574Du      /* "RVWM" */
#define DASHBOARD_MAGIC 0x52564442u /* "RVDB" */
#define BUNDLE_HEADER 64
#define BUNDLE_MAX (256u << 20) /* decompressed module or dashboard bundle */

static const char *role_name(uint8_t role)
{
	static const char *const names[] = { "microkernel", "interpreter", "combined",
					     "extension", "control_plane" };
	return role < 5 ? names[role] : "module";
}

size_t rvf_view_wasm_count(const rvf_view *v)
{
	size_t n = 0;
	for (uint32_t i = 0; i < v->man.dir_len; i++)
		n += v->dir[i].type == RVF_SEG_WASM;
	return n;
}

/* How a compressed module is stored: gzip and zstd by their magic (the
 * header's byte is upstream's segment enum, 1 LZ4 2 zstd, but the only
 * upstream writer of compressed payloads, build-rvf.js, means gzip by 1);
 * 2 without a magic is brotli (the dashboard's enum); 1 without one is
 * LZ4, which we do not read (DECOMP_UNKNOWN). */
static decomp_kind wasm_kind(const rvf_wasm_info *w)
{
	decomp_kind k = decomp_sniff(w->bytecode, w->bytecode_len);
	if (k == DECOMP_UNKNOWN && w->compression == 2)
		k = DECOMP_BROTLI;
	return k;
}

/* Fills out for directory entry d, without the name. */
static void wasm_decode(const rvf_view *v, const rvf_segment *s,
			rvf_wasm_info *out)
{
	memset(out, 0, sizeof(*out));
	out->segment = s;
	out->compression_name = "none";
	out->hash_ok = s->readable && s->hash_ok;
	if (!s->readable)
		return;
	const unsigned char *p = v->map->base + s->offset + RVF_SEGMENT_HEADER_SIZE;
	size_t len = (size_t)s->payload_length;
	out->bytecode = p;
	out->bytecode_len = len;
	if (len < BUNDLE_HEADER || ld32(p) != WASM_MAGIC)
		return;
	out->has_header = true;
	out->role = p[6];
	out->target = p[7];
	out->required_features = ld16(p + 8);
	out->export_count = ld16(p + 0x0A);
	out->bytecode_size = ld32(p + 0x0C);
	out->compressed_size = ld32(p + 0x10);
	out->compression = p[0x14];
	memcpy(out->bytecode_hash, p + 0x1C, 32);
	out->bytecode = p + BUNDLE_HEADER;
	out->bytecode_len = len - BUNDLE_HEADER;
	out->module_len = out->bytecode_len;
	if (out->compression) {
		if (out->compressed_size && out->compressed_size <= out->bytecode_len)
			out->bytecode_len = out->compressed_size;
		out->module_len = out->bytecode_size;
		out->compression_name = wasm_kind(out) == DECOMP_UNKNOWN ? "lz4" :
					decomp_name(wasm_kind(out));
		return;
	}
	/* The header's size wins when it fits (slack after the module). */
	if (out->bytecode_size && out->bytecode_size <= out->bytecode_len)
		out->bytecode_len = out->module_len = out->bytecode_size;
}

bool rvf_view_wasm(const rvf_view *v, size_t want, rvf_wasm_info *out)
{
	size_t k = 0;
	const rvf_segment *found = NULL;
	for (uint32_t i = 0; i < v->man.dir_len && !found; i++)
		if (v->dir[i].type == RVF_SEG_WASM && k++ == want)
			found = &v->dir[i];
	if (!found)
		return false;
	wasm_decode(v, found, out);
	/* Name: the role, numbered from the second module of that role. */
	const char *base = out->has_header ? role_name(out->role) : "module";
	unsigned same = 0;
	for (uint32_t i = 0; i < v->man.dir_len && &v->dir[i] != found; i++) {
		if (v->dir[i].type != RVF_SEG_WASM)
			continue;
		rvf_wasm_info o;
		wasm_decode(v, &v->dir[i], &o);
		if (!strcmp(o.has_header ? role_name(o.role) : "module", base))
			same++;
	}
	if (same)
		snprintf(out->name, sizeof(out->name), "%s-%u", base, same + 1);
	else
		snprintf(out->name, sizeof(out->name), "%s", base);
	return true;
}

rvf_code rvf_view_wasm_module(const rvf_view *v, size_t i, unsigned char **bytes,
			      size_t *len, rvf_error *err)
{
	*bytes = NULL;
	*len = 0;
	rvf_wasm_info w;
	if (!rvf_view_wasm(v, i, &w))
		return rvf_fail(err, RVF_E_NOT_FOUND, "the store has no WASM module %zu", i);
	if (!w.hash_ok)
		return rvf_fail(err, w.segment->readable ? RVF_E_INVALID_CHECKSUM : RVF_E_CORRUPT,
				"WASM segment id %llu at offset %llu: %s",
				(unsigned long long)w.segment->id,
				(unsigned long long)w.segment->offset,
				w.segment->readable ? "content hash mismatch" : "unreadable");
	if (w.compression) {
		decomp_kind k = wasm_kind(&w);
		if (k == DECOMP_UNKNOWN)
			return rvf_fail(err, RVF_E_CORRUPT,
					"WASM module %s: LZ4 (compression 1 without a gzip magic) is not supported",
					w.name);
		char what[64];
		snprintf(what, sizeof(what), "WASM module %s", w.name);
		return decomp_run(k, w.bytecode, w.bytecode_len, w.bytecode_size, BUNDLE_MAX,
				  what, bytes, len, err);
	}
	*bytes = malloc(w.bytecode_len ? w.bytecode_len : 1);
	if (!*bytes)
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	memcpy(*bytes, w.bytecode, w.bytecode_len);
	*len = w.bytecode_len;
	return RVF_OK;
}

/* A bundle path we are willing to write under a directory: relative,
 * '/'-separated, no empty, "." or ".." components, no NUL or backslash. */
static bool path_ok(const unsigned char *p, size_t n)
{
	if (n == 0 || n > 1024 || p[0] == '/' || p[n - 1] == '/')
		return false;
	size_t start = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && (p[i] == 0 || p[i] == '\\'))
			return false;
		if (i == n || p[i] == '/') {
			size_t len = i - start;
			if (len == 0 || (len == 1 && p[start] == '.') ||
			    (len == 2 && p[start] == '.' && p[start + 1] == '.'))
				return false;
			start = i + 1;
		}
	}
	return true;
}

void rvf_dashboard_free(rvf_dashboard *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->nfiles; i++)
		free(d->files[i].path);
	free(d->files);
	free(d->owned);
	free(d);
}

static bool add_file(rvf_dashboard *d, const char *path, size_t plen,
		     const unsigned char *data, uint64_t size)
{
	rvf_dashboard_file *f = realloc(d->files, (d->nfiles + 1) * sizeof(*f));
	if (!f)
		return false;
	d->files = f;
	f[d->nfiles].path = strndup(path, plen);
	f[d->nfiles].data = data;
	f[d->nfiles].size = size;
	if (!f[d->nfiles].path)
		return false;
	d->nfiles++;
	return true;
}

/* Splits a bundle with a file table: entry path, then file_count entries
 * (u16 path length, u64 offset, u64 size, path), offsets from the start
 * of the bundle.  False (and no files) when it does not parse. */
static bool split_table(rvf_dashboard *d, const unsigned char *b, uint64_t n,
			uint32_t count, uint16_t entry_len)
{
	uint64_t pos = entry_len;
	if (pos > n || count > n / 18)
		return false;
	for (uint32_t i = 0; i < count; i++) {
		if (n - pos < 18)
			return false;
		uint16_t pl = ld16(b + pos);
		uint64_t off = ld64(b + pos + 2), size = ld64(b + pos + 10);
		pos += 18;
		if (n - pos < pl || off > n || size > n - off ||
		    !path_ok(b + pos, pl))
			return false;
		for (size_t k = 0; k < d->nfiles; k++)
			if (strlen(d->files[k].path) == pl &&
			    !memcmp(d->files[k].path, b + pos, pl))
				return false; /* one name, one file */
		if (!add_file(d, (const char *)b + pos, pl, b + off, size))
			return false;
		pos += pl;
	}
	return true;
}

rvf_code rvf_view_dashboard(const rvf_view *v, rvf_dashboard **out,
			    rvf_error *err)
{
	*out = NULL;
	const rvf_segment *s = NULL;
	for (uint32_t i = 0; i < v->man.dir_len && !s; i++)
		if (v->dir[i].type == RVF_SEG_DASHBOARD)
			s = &v->dir[i];
	if (!s)
		return rvf_fail(err, RVF_E_NOT_FOUND, "the store has no dashboard");
	if (!s->readable || !s->hash_ok)
		return rvf_fail(err, s->readable ? RVF_E_INVALID_CHECKSUM : RVF_E_CORRUPT,
				"DASHBOARD segment id %llu at offset %llu: %s",
				(unsigned long long)s->id, (unsigned long long)s->offset,
				s->readable ? "content hash mismatch" : "unreadable");
	const unsigned char *p = v->map->base + s->offset + RVF_SEGMENT_HEADER_SIZE;
	uint64_t len = s->payload_length;
	if (len < BUNDLE_HEADER || ld32(p) != DASHBOARD_MAGIC)
		return rvf_fail(err, RVF_E_CORRUPT,
				"DASHBOARD segment id %llu at offset %llu: no RVDB header",
				(unsigned long long)s->id, (unsigned long long)s->offset);
	rvf_dashboard *d = calloc(1, sizeof(*d));
	if (!d)
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	d->segment = s;
	d->hash_ok = true;
	d->ui_framework = p[6];
	d->compression = p[7];
	d->bundle_size = ld64(p + 8);
	d->file_count = ld32(p + 0x10);
	d->build_timestamp = ld64(p + 0x18);
	const unsigned char *b = p + BUNDLE_HEADER;
	uint64_t n = len - BUNDLE_HEADER;
	if (d->compression == 1 || d->compression == 2) {
		/* gzip / brotli (dashboard.rs); bundle_size is the size unpacked */
		size_t got;
		rvf_code rc = decomp_run(d->compression == 1 ? DECOMP_GZIP : DECOMP_BROTLI,
					 b, (size_t)n, d->bundle_size, BUNDLE_MAX,
					 "dashboard bundle", &d->owned, &got, err);
		if (rc != RVF_OK) {
			rvf_dashboard_free(d);
			return rc;
		}
		b = d->owned;
		n = got;
	}
	bool raw = d->compression > 2;
	bool split = !raw && d->file_count > 0 &&
		     split_table(d, b, n, d->file_count, ld16(p + 0x14));
	if (!split) {
		for (size_t i = 0; i < d->nfiles; i++)
			free(d->files[i].path);
		d->nfiles = 0;
		const char *name = raw ? "bundle.bin" : "index.html";
		if (!add_file(d, name, strlen(name), b, n)) {
			rvf_dashboard_free(d);
			return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
		}
	}
	*out = d;
	return RVF_OK;
}
