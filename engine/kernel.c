/* kernel.c - KERNEL and EBPF segments: embed, replace, remove, extract.
 *
 * The reference reads the FIRST kernel / eBPF entry of the directory, so
 * embedding a new one drops the older entries from the directory.  We write
 * the 128-byte header, the image, then the cmdline (after the image,
 * although the header says cmdline_offset = 128), as rvf-node does; we read
 * that and upstream's two other layouts (rvf.h, rvf_kernel_layout). */
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "bytes.h"
#include "decompress.h"
#include "error.h"
#include "hash.h"
#include "store.h"

#define KERNEL_HEADER 128
#define KERNEL_BINDING 128
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

/* Upstream's ruvbot build-rvf.js: cmdline_offset 128 as a u32 at 0x6C
 * (reserved_0 elsewhere, always 0), cmdline_length as a u32 at 0x70, the
 * gzip'd image of compressed_size bytes, then the cmdline; nothing else. */
static bool build_rvf_layout(const unsigned char *p, uint64_t body)
{
	uint64_t csize = ld64(p + 0x20);
	uint32_t clen = ld32(p + 0x70);
	return ld32(p + 0x6C) == KERNEL_HEADER && ld32(p + 0x74) == 0 &&
	       ld32(p + 0x78) == 0 && csize <= body && body - csize == clen;
}

/* Upstream's embed_kernel_with_binding: cmdline_offset 256, the binding
 * and the cmdline fit. */
static bool binding_layout(uint64_t cmd_off, uint32_t clen, uint64_t body)
{
	return cmd_off == KERNEL_HEADER + KERNEL_BINDING && body >= KERNEL_BINDING &&
	       body - KERNEL_BINDING >= clen;
}

static void place(rvf_kernel_info *k, const unsigned char *p, uint64_t body)
{
	static const char *const names[] = { "plain", "binding", "build-rvf.js" };
	if (build_rvf_layout(p, body)) {
		k->layout = RVF_KERNEL_BUILD_RVF;
		k->api_port = ld16(p + 0x2A);
		k->api_version = ld16(p + 0x2C);
		k->vcpu_count = p[0x68];
		k->cmdline_offset = ld32(p + 0x6C);
		k->cmdline_length = ld32(p + 0x70);
		k->image_at = KERNEL_HEADER;
		k->image_stored = k->compressed_size;
		k->cmdline_at = KERNEL_HEADER + k->compressed_size;
		k->cmdline_stored = k->cmdline_length;
	} else if (binding_layout(k->cmdline_offset, k->cmdline_length, body)) {
		k->layout = RVF_KERNEL_BINDING;
		k->has_binding = true;
		k->binding = p + KERNEL_HEADER;
		k->cmdline_at = k->cmdline_offset;
		k->cmdline_stored = k->cmdline_length;
		k->image_at = k->cmdline_at + k->cmdline_length;
		k->image_stored = body - KERNEL_BINDING - k->cmdline_length;
	} else {
		k->layout = RVF_KERNEL_PLAIN;
		k->cmdline_stored = k->cmdline_length <= body ? k->cmdline_length : 0;
		k->image_at = KERNEL_HEADER;
		k->image_stored = body - k->cmdline_stored;
		k->cmdline_at = KERNEL_HEADER + k->image_stored;
	}
	k->layout_name = names[k->layout];
	k->compression_name = "none";
	if (k->compression) {
		decomp_kind d = decomp_sniff(p + k->image_at, (size_t)k->image_stored);
		k->compression_name = decomp_name(d);
	}
	k->image_length = k->compression ? k->image_size : k->image_stored;
}

bool rvf_view_kernel(const rvf_view *v, rvf_kernel_info *out)
{
	if (v->kernel_index < 0)
		return false;
	const rvf_segment *seg = &v->dir[v->kernel_index];
	memset(out, 0, sizeof(*out));
	out->segment = seg;
	out->layout_name = "plain";
	out->compression_name = "none";
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
	memcpy(out->build_id, p + 0x50, 16);
	out->build_timestamp = ld64(p + 0x60);
	out->vcpu_count = ld32(p + 0x68);
	out->cmdline_offset = ld64(p + 0x70);
	out->cmdline_length = ld32(p + 0x78);
	out->stored_length = seg->payload_length - KERNEL_HEADER;
	place(out, p, out->stored_length);
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
	const unsigned char *stored = p + k.image_at;
	unsigned char *out;
	size_t n;
	if (k.compression) {
		decomp_kind d = decomp_sniff(stored, (size_t)k.image_stored);
		if (d == DECOMP_UNKNOWN)
			return rvf_fail(err, RVF_E_CORRUPT,
					"kernel image: compression %u is neither zstd nor gzip",
					k.compression);
		rvf_code rc = decomp_run(d, stored, (size_t)k.image_stored, k.image_size,
					 KERNEL_MAX_IMAGE, "kernel image", &out, &n, err);
		if (rc != RVF_OK)
			return rc;
	} else {
		out = malloc(k.image_stored ? (size_t)k.image_stored : 1);
		if (!out)
			return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
		memcpy(out, stored, (size_t)k.image_stored);
		n = (size_t)k.image_stored;
	}
	if (cmdline && k.cmdline_stored) {
		*cmdline = strndup((const char *)p + k.cmdline_at, k.cmdline_stored);
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
