/* attest.c - kernel attestation as upstream's `rvf verify-attestation`
 * checks it (rvf-cli/src/cmd/verify_attestation.rs, rvf-crypto
 * attestation.rs and witness.rs), from the documented layouts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "checksum.h"
#include "error.h"
#include "store.h"

#define KERNEL_MAGIC 0x52564B4Eu
#define KERNEL_HEADER 128
#define BINDING_SIZE 128
#define ENTRY_SIZE 73 /* prev_hash 32, action_hash 32, timestamp 8, type 1 */

static void problem(rvf_attestation *a, const char *fmt, const char *what)
{
	if (!a->problem[0])
		snprintf(a->problem, sizeof(a->problem), fmt, what);
}

static void check_image(const unsigned char *img, size_t n, const unsigned char *after_hdr,
			size_t after_len, rvf_attestation *a)
{
	uint8_t h[32];
	a->image_size = n;
	checksum_shake256(img, n, a->shake_hash, 32);
	a->image_hash_ok = true;
	if (!memcmp(a->shake_hash, a->stored_hash, 32)) {
		a->image_hash_algo = "shake256-256";
		return;
	}
	checksum_shake256(after_hdr, after_len, h, 32);
	if (!memcmp(h, a->stored_hash, 32)) {
		a->image_hash_algo = "shake256-256 (payload after header)";
		return;
	}
	rvf_simple_hash256(img, n, h);
	if (!memcmp(h, a->stored_hash, 32)) {
		a->image_hash_algo = "simple_hash256";
		return;
	}
	checksum_sha256(img, n, h);
	if (!memcmp(h, a->stored_hash, 32)) {
		a->image_hash_algo = "sha256";
		return;
	}
	a->image_hash_ok = false;
	a->image_hash_algo = "mismatch";
	problem(a, "%s", "kernel image hash mismatch");
}

static void check_kernel(const rvf_view *v, rvf_attestation *a)
{
	if (v->kernel_index < 0)
		return;
	const rvf_segment *s = &v->dir[v->kernel_index];
	a->has_kernel = true;
	if (!s->readable || !s->hash_ok || s->payload_length < KERNEL_HEADER) {
		problem(a, "%s", "KERNEL segment damaged (content hash) or too short");
		a->image_hash_algo = "mismatch";
		return;
	}
	const unsigned char *p = v->map->base + s->offset + RVF_SEGMENT_HEADER_SIZE;
	size_t len = (size_t)s->payload_length;
	a->magic_ok = ld32(p) == KERNEL_MAGIC;
	if (!a->magic_ok)
		problem(a, "%s", "KERNEL header magic is not RVKN");
	a->arch = p[6];
	memcpy(a->stored_hash, p + 0x30, 32);
	uint64_t cmd_off = ld64(p + 0x70);
	uint32_t cmd_len = ld32(p + 0x78);
	const unsigned char *after = p + KERNEL_HEADER;
	size_t after_len = len - KERNEL_HEADER;
	if (cmd_off == KERNEL_HEADER + BINDING_SIZE && len >= KERNEL_HEADER + BINDING_SIZE) {
		/* header, binding, cmdline, image */
		const unsigned char *b = p + KERNEL_HEADER;
		a->has_binding = true;
		memcpy(a->manifest_root_hash, b, 32);
		memcpy(a->policy_hash, b + 32, 32);
		a->binding_version = ld16(b + 0x40);
		a->min_runtime_version = ld16(b + 0x42);
		a->allowed_segment_mask = ld64(b + 0x48);
		bool zero = ld32(b + 0x44) == 0;
		for (int i = 0x50; i < BINDING_SIZE; i++)
			zero = zero && b[i] == 0;
		a->binding_ok = a->binding_version > 0 && zero;
		if (!a->binding_ok)
			problem(a, "%s", "KernelBinding invalid (version 0, or padding/reserved bytes set)");
		size_t rest = len - KERNEL_HEADER - BINDING_SIZE;
		size_t c = cmd_len <= rest ? cmd_len : 0;
		check_image(b + BINDING_SIZE + c, rest - c, after, after_len, a);
		return;
	}
	/* header, image, cmdline (rvf-node's order) */
	unsigned char *img = NULL;
	size_t n = 0;
	/* (gzip'd build-rvf.js and zstd images come out unpacked) */
	if (rvf_view_kernel_image(v, &img, &n, NULL, NULL) != RVF_OK) {
		problem(a, "%s", "the kernel image cannot be read (compression)");
		a->image_hash_algo = "mismatch";
		return;
	}
	check_image(img, n, after, after_len, a);
	free(img);
}

/* A WITNESS payload in rvf-node's layout (type, time, action, hash). */
static bool reference_witness(const unsigned char *p, size_t len)
{
	return len >= 45 && p[0] <= 1 && ld32(p + 9) == len - 45;
}

/* Verifies an attestation witness payload: count, offsets, chain,
 * records.  NULL when it verifies, else why. */
static const char *verify_payload(const unsigned char *p, size_t len, uint32_t *entries)
{
	uint32_t count = ld32(p);
	size_t chain = 4 + (size_t)count * 8, end = chain + (size_t)count * ENTRY_SIZE;
	uint8_t expect[32] = { 0 }, h[32];
	for (uint32_t i = 0; i < count; i++) {
		const unsigned char *e = p + chain + (size_t)i * ENTRY_SIZE;
		if (memcmp(e, expect, 32))
			return "witness chain broken (prev_hash)";
		checksum_shake256(e, ENTRY_SIZE, expect, 32);
		uint64_t start = ld64(p + 4 + (size_t)i * 8);
		uint64_t stop = i + 1 < count ? ld64(p + 4 + (size_t)(i + 1) * 8) : len - end;
		if (start > stop || stop > len - end)
			return "attestation record out of range";
		checksum_shake256(p + end + start, (size_t)(stop - start), h, 32);
		if (memcmp(h, e + 32, 32))
			return "attestation record does not match its action hash";
	}
	*entries += count;
	return NULL;
}

static void check_witnesses(const rvf_view *v, rvf_attestation *a)
{
	for (uint32_t i = 0; i < v->man.dir_len; i++) {
		const rvf_segment *s = &v->dir[i];
		if (s->type != RVF_SEG_WITNESS || !s->readable || s->payload_length < 4)
			continue;
		const unsigned char *p = v->map->base + s->offset + RVF_SEGMENT_HEADER_SIZE;
		size_t len = (size_t)s->payload_length;
		uint32_t count = ld32(p);
		if (reference_witness(p, len) || count == 0 || count >= 10000 ||
		    len < 4 + (size_t)count * (8 + ENTRY_SIZE))
			continue; /* not an attestation payload */
		a->witnesses++;
		const char *why = verify_payload(p, len, &a->entries);
		if (why)
			problem(a, "attestation witness: %s", why);
		else
			a->witnesses_ok++;
	}
}

rvf_code rvf_view_verify_attestation(const rvf_view *v, rvf_attestation *out,
				     rvf_error *err)
{
	memset(out, 0, sizeof(*out));
	out->image_hash_algo = "none";
	check_kernel(v, out);
	check_witnesses(v, out);
	if (out->problem[0])
		return rvf_fail(err, RVF_E_SIGNATURE, "%s", out->problem);
	return RVF_OK;
}
