/* kernel.c - KERNEL and EBPF segments: embed, replace, remove, extract.
 *
 * The reference reads the FIRST kernel / eBPF entry of the directory, so
 * embedding a new one drops the older entries from the directory.  A kernel
 * payload is the 128-byte header, the image, then the cmdline (after the
 * image, although the header says cmdline_offset = 128). */
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "bytes.h"
#include "error.h"
#include "hash.h"
#include "store.h"

#define KERNEL_HEADER 128
#define EBPF_HEADER 64
#define KERNEL_MAX_IMAGE (128u << 20)
#define EBPF_MAX_PROGRAM (16u << 20)

static rvf_code embed(rvf_store *s, uint8_t type, const unsigned char *payload,
		      size_t len, rvf_commit_info *info, rvf_error *err)
{
	commit c;
	rvf_code rc = commit_begin(s, &c, err);
	if (rc != RVF_OK)
		return rc;
	c.next.epoch = c.base->info.epoch + 1;
	commit_drop_type(&c, type);
	rc = commit_append(&c, type, payload, len, err);
	if (rc != RVF_OK) {
		commit_abort(&c);
		return rc;
	}
	return commit_finish(&c, info, err); /* no witness, as the reference */
}

rvf_code rvf_store_embed_kernel(rvf_store *s, const rvf_kernel_spec *spec,
				const unsigned char *image, size_t image_len,
				rvf_commit_info *info, rvf_error *err)
{
	if (image_len > KERNEL_MAX_IMAGE)
		return rvf_fail(err, RVF_E_TOO_LARGE,
				"kernel image of %zu bytes exceeds the 128 MiB limit",
				image_len);
	const char *cmdline = spec->cmdline ? spec->cmdline : "";
	size_t clen = strlen(cmdline);
	void *packed = NULL;
	size_t stored = image_len;
	if (spec->compress) {
		size_t bound = ZSTD_compressBound(image_len);
		packed = malloc(bound ? bound : 1);
		if (!packed)
			return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
		stored = ZSTD_compress(packed, bound, image, image_len, 19);
		if (ZSTD_isError(stored)) {
			free(packed);
			return rvf_fail(err, RVF_E_INVALID_ARGUMENT,
					"zstd compression failed: %s",
					ZSTD_getErrorName(stored));
		}
	}
	size_t len = KERNEL_HEADER + stored + clen;
	unsigned char *p = calloc(1, len);
	if (!p) {
		free(packed);
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	}
	st32(p, 0x52564B4Eu);
	st16(p + 4, 1);
	p[6] = spec->arch;
	p[7] = spec->kernel_type;
	st32(p + 8, spec->flags);
	st64(p + 0x18, image_len);
	st64(p + 0x20, stored);
	p[0x28] = spec->compress ? 1 : 0;
	p[0x2A] = (uint8_t)(spec->api_port >> 8); /* big-endian, as the reference */
	p[0x2B] = (uint8_t)spec->api_port;
	st32(p + 0x2C, 1);
	rvf_simple_hash256(image, image_len, p + 0x30);
	st64(p + 0x70, KERNEL_HEADER);
	st32(p + 0x78, (uint32_t)clen);
	if (stored)
		memcpy(p + KERNEL_HEADER, packed ? packed : image, stored);
	memcpy(p + KERNEL_HEADER + stored, cmdline, clen);
	free(packed);
	rvf_code rc = embed(s, RVF_SEG_KERNEL, p, len, info, err);
	free(p);
	return rc;
}

rvf_code rvf_store_embed_ebpf(rvf_store *s, const rvf_ebpf_spec *spec,
			      const unsigned char *bytecode, size_t blen,
			      const unsigned char *btf, size_t btf_len,
			      rvf_commit_info *info, rvf_error *err)
{
	if (blen + btf_len > EBPF_MAX_PROGRAM)
		return rvf_fail(err, RVF_E_TOO_LARGE,
				"eBPF bytecode + BTF of %zu bytes exceed the 16 MiB limit",
				blen + btf_len);
	size_t len = EBPF_HEADER + blen + btf_len;
	unsigned char *p = calloc(1, len);
	if (!p)
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	st32(p, 0x52564250u);
	st16(p + 4, 1);
	p[6] = spec->program_type;
	p[7] = spec->attach_type;
	st16(p + 0x0C, (uint16_t)(blen / 8));
	st16(p + 0x0E, spec->max_dimension);
	st64(p + 0x10, blen);
	st32(p + 0x1C, (uint32_t)btf_len);
	rvf_simple_hash256(bytecode, blen, p + 0x20);
	if (blen)
		memcpy(p + EBPF_HEADER, bytecode, blen);
	if (btf_len)
		memcpy(p + EBPF_HEADER + blen, btf, btf_len);
	rvf_code rc = embed(s, RVF_SEG_EBPF, p, len, info, err);
	free(p);
	return rc;
}

static rvf_code remove_type(rvf_store *s, uint8_t type, const char *what,
			    rvf_commit_info *info, rvf_error *err)
{
	commit c;
	rvf_code rc = commit_begin(s, &c, err);
	if (rc != RVF_OK)
		return rc;
	uint32_t before = c.next.dir_len;
	commit_drop_type(&c, type);
	if (c.next.dir_len == before) {
		commit_abort(&c);
		return rvf_fail(err, RVF_E_NOT_FOUND, "%s has no %s", s->path, what);
	}
	c.next.epoch = c.base->info.epoch + 1;
	return commit_finish(&c, info, err);
}

rvf_code rvf_store_remove_kernel(rvf_store *s, rvf_commit_info *info,
				 rvf_error *err)
{
	return remove_type(s, RVF_SEG_KERNEL, "kernel", info, err);
}

rvf_code rvf_store_remove_ebpf(rvf_store *s, rvf_commit_info *info,
			       rvf_error *err)
{
	return remove_type(s, RVF_SEG_EBPF, "eBPF program", info, err);
}

/* The first kernel entry's payload, checked; NULL with err set. */
static const unsigned char *payload_of(const rvf_view *v, long index,
				       const char *what, size_t min,
				       rvf_error *err)
{
	const rvf_segment *seg = &v->dir[index];
	if (!seg->readable || !seg->hash_ok) {
		rvf_fail(err, seg->readable ? RVF_E_INVALID_CHECKSUM : RVF_E_CORRUPT,
			 "%s segment id %llu at offset %llu: %s", what,
			 (unsigned long long)seg->id, (unsigned long long)seg->offset,
			 seg->readable ? "content hash mismatch" : "unreadable");
		return NULL;
	}
	if (seg->payload_length < min) {
		rvf_fail(err, RVF_E_CORRUPT,
			 "%s segment id %llu at offset %llu: payload shorter than its header",
			 what, (unsigned long long)seg->id,
			 (unsigned long long)seg->offset);
		return NULL;
	}
	return v->map->base + seg->offset + RVF_SEGMENT_HEADER_SIZE;
}

bool rvf_view_kernel(const rvf_view *v, rvf_kernel_info *out)
{
	if (v->kernel_index < 0)
		return false;
	const rvf_segment *seg = &v->dir[v->kernel_index];
	memset(out, 0, sizeof(*out));
	out->segment = seg;
	if (!seg->readable || seg->payload_length < KERNEL_HEADER)
		return true;
	const unsigned char *p = v->map->base + seg->offset + RVF_SEGMENT_HEADER_SIZE;
	out->arch = p[6];
	out->kernel_type = p[7];
	out->flags = ld32(p + 8);
	out->min_memory_mb = ld32(p + 0x0C);
	out->entry_point = ld64(p + 0x10);
	out->image_size = ld64(p + 0x18);
	out->compressed_size = ld64(p + 0x20);
	out->compression = p[0x28];
	out->api_transport = p[0x29];
	out->api_port = (uint16_t)(p[0x2A] << 8 | p[0x2B]);
	out->api_version = ld32(p + 0x2C);
	memcpy(out->image_hash, p + 0x30, 32);
	out->cmdline_offset = ld64(p + 0x70);
	out->cmdline_length = ld32(p + 0x78);
	out->stored_length = seg->payload_length - KERNEL_HEADER;
	return true;
}

rvf_code rvf_view_kernel_image(const rvf_view *v, unsigned char **image,
			       size_t *image_len, char **cmdline,
			       rvf_error *err)
{
	*image = NULL;
	*image_len = 0;
	if (cmdline)
		*cmdline = NULL;
	rvf_kernel_info k;
	if (!rvf_view_kernel(v, &k))
		return rvf_fail(err, RVF_E_NOT_FOUND, "the store has no kernel");
	const unsigned char *p = payload_of(v, v->kernel_index, "KERNEL",
					    KERNEL_HEADER, err);
	if (!p)
		return err ? err->code : RVF_E_CORRUPT;
	const unsigned char *body = p + KERNEL_HEADER;
	uint64_t avail = k.stored_length;
	uint64_t clen = k.cmdline_length <= avail ? k.cmdline_length : 0;
	uint64_t stored = avail - clen;
	unsigned char *out;
	size_t n;
	if (k.compression == 1) {
		if (k.image_size > KERNEL_MAX_IMAGE)
			return rvf_fail(err, RVF_E_CORRUPT,
					"compressed kernel claims %llu bytes",
					(unsigned long long)k.image_size);
		out = malloc(k.image_size ? (size_t)k.image_size : 1);
		if (!out)
			return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
		size_t got = ZSTD_decompress(out, (size_t)k.image_size, body, (size_t)stored);
		if (ZSTD_isError(got) || got != k.image_size) {
			free(out);
			return rvf_fail(err, RVF_E_CORRUPT,
					"kernel image does not decompress: %s",
					ZSTD_isError(got) ? ZSTD_getErrorName(got) :
					"wrong size");
		}
		n = got;
	} else {
		out = malloc(stored ? (size_t)stored : 1);
		if (!out)
			return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
		memcpy(out, body, (size_t)stored);
		n = (size_t)stored;
	}
	if (cmdline && clen) {
		*cmdline = strndup((const char *)body + stored, (size_t)clen);
		if (!*cmdline) {
			free(out);
			return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
		}
	}
	*image = out;
	*image_len = n;
	return RVF_OK;
}

bool rvf_view_ebpf(const rvf_view *v, rvf_ebpf_info *out)
{
	if (v->ebpf_index < 0)
		return false;
	const rvf_segment *seg = &v->dir[v->ebpf_index];
	memset(out, 0, sizeof(*out));
	out->segment = seg;
	if (!seg->readable || !seg->hash_ok || seg->payload_length < EBPF_HEADER)
		return true;
	const unsigned char *p = v->map->base + seg->offset + RVF_SEGMENT_HEADER_SIZE;
	out->program_type = p[6];
	out->attach_type = p[7];
	out->program_flags = ld32(p + 8);
	out->insn_count = ld16(p + 0x0C);
	out->max_dimension = ld16(p + 0x0E);
	out->program_size = ld64(p + 0x10);
	out->map_count = ld32(p + 0x18);
	out->btf_size = ld32(p + 0x1C);
	memcpy(out->program_hash, p + 0x20, 32);
	uint64_t body = seg->payload_length - EBPF_HEADER;
	/* Clamp lying sizes to the payload. */
	if (out->program_size > body)
		out->program_size = body;
	if (out->btf_size > body - out->program_size)
		out->btf_size = (uint32_t)(body - out->program_size);
	out->bytecode = p + EBPF_HEADER;
	out->btf = p + EBPF_HEADER + out->program_size;
	return true;
}
