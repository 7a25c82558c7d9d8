/* rvfctl inspect: segment table, lineage, witness chain; --json gives the
 * same keys as the conformance corpus's .expect.json files. */
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

/* Segment type names as the reference's segments() spells them. */
static void ref_type_name(uint8_t t, char out[24])
{
	static const char *names[] = {
		[0x00] = "invalid", [0x01] = "vec", [0x02] = "index",
		[0x03] = "overlay", [0x04] = "journal", [0x05] = "manifest",
		[0x06] = "quant", [0x07] = "meta", [0x08] = "hot",
		[0x09] = "sketch", [0x0A] = "witness", [0x0B] = "profile",
		[0x0C] = "crypto", [0x0D] = "meta_idx", [0x0E] = "kernel",
		[0x0F] = "ebpf",
	};
	if (t < sizeof(names) / sizeof(names[0]) && names[t])
		snprintf(out, 24, "%s", names[t]);
	else if (t == 0x20)
		snprintf(out, 24, "cow_map");
	else if (t == 0x22)
		snprintf(out, 24, "membership");
	else
		snprintf(out, 24, "unknown(0x%02x)", t);
}

static json_t *json_id(uint64_t id)
{
	/* Ids above 2^53 do not survive a JSON double: give them as text. */
	if (id > (1ull << 53)) {
		char buf[24];
		snprintf(buf, sizeof(buf), "%llu", (unsigned long long)id);
		return json_string(buf);
	}
	return json_integer((json_int_t)id);
}

static json_t *json_hex(const uint8_t *p, size_t n)
{
	char *buf = malloc(2 * n + 1);
	hex_encode(p, n, buf);
	json_t *j = json_string(buf);
	free(buf);
	return j;
}

static json_t *sha256_hex(const void *p, size_t n)
{
	uint8_t h[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(h, p, n);
	return json_hex(h, sizeof(h));
}

static json_t *segment_payload_json(const rvf_view *v, const rvf_segment *seg,
				    size_t header)
{
	const unsigned char *b = rvf_view_segment_bytes(v, seg);
	if (!b || !seg->hash_ok || seg->payload_length < header)
		return json_pack("{s:s}", "error", "segment unreadable or hash mismatch");
	const unsigned char *p = b + RVF_SEGMENT_HEADER_SIZE;
	size_t rest = (size_t)seg->payload_length - header;
	return json_pack("{s:o,s:I,s:o}", "headerHex", json_hex(p, header),
			 "extractedLen", (json_int_t)rest, "extractedSha256",
			 sha256_hex(p + header, rest));
}

static int inspect_json(const char *path)
{
	rvf_store *s;
	rvf_error err;
	rvf_code rc = rvf_store_open(path, RVF_OPEN_READ_ONLY, &s, &err);
	if (rc != RVF_OK) {
		json_t *o = json_object();
		char msg[700];
		snprintf(msg, sizeof(msg), "%s: %s", rvf_code_name(rc), err.message);
		json_object_set_new(o, "openError", json_string(msg));
		json_dumpf(o, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(o);
		return ctl_exit_code(rc);
	}
	rvf_view *v = rvf_store_view(s);
	const rvf_info *i = rvf_view_info(v);
	json_t *o = json_object();
	json_object_set_new(o, "openError", json_null());
	json_object_set_new(o, "dimension", json_integer(i->dimension));
	json_object_set_new(o, "metric", json_string(rvf_metric_name(i->metric)));
	json_object_set_new(o, "fileId", json_hex(i->identity.file_id, 16));
	json_object_set_new(o, "parentId", json_hex(i->identity.parent_id, 16));
	json_object_set_new(o, "parentHash", json_hex(i->identity.parent_hash, 32));
	json_object_set_new(o, "lineageDepth", json_integer(i->identity.lineage_depth));
	json_object_set_new(o, "fileSize", json_integer((json_int_t)i->file_size));
	json_object_set_new(o, "epoch", json_integer(i->epoch));
	json_object_set_new(o, "status", json_pack("{s:I,s:i,s:i,s:I,s:i}",
		"totalVectors", (json_int_t)i->own_live,
		"totalSegments", (int)i->directory_len,
		"currentEpoch", (int)i->epoch,
		"fileSize", (json_int_t)i->file_size,
		"profileId", (int)i->profile));
	json_t *segs = json_array();
	for (size_t k = 0; k < rvf_view_directory_count(v); k++) {
		const rvf_segment *g = rvf_view_directory(v, k);
		char name[24];
		ref_type_name(g->type, name);
		json_array_append_new(segs, json_pack("{s:o,s:I,s:I,s:s}",
			"id", json_id(g->id), "offset", (json_int_t)g->offset,
			"payloadLength", (json_int_t)g->payload_length,
			"segType", name));
	}
	json_object_set_new(o, "segments", segs);
	rvf_kernel_info ki;
	if (rvf_view_kernel(v, &ki)) {
		json_t *kj = segment_payload_json(v, ki.segment, 128);
		unsigned char *img;
		size_t ilen;
		char *cmd;
		if (rvf_view_kernel_image(v, &img, &ilen, &cmd, &err) == RVF_OK) {
			json_object_set_new(kj, "imageLen", json_integer((json_int_t)ilen));
			json_object_set_new(kj, "imageSha256", sha256_hex(img, ilen));
			json_object_set_new(kj, "cmdline", cmd ? json_string(cmd) : json_null());
			free(img);
			free(cmd);
		}
		json_object_set_new(o, "kernel", kj);
	} else {
		json_object_set_new(o, "kernel", json_null());
	}
	rvf_ebpf_info ei;
	if (rvf_view_ebpf(v, &ei))
		json_object_set_new(o, "ebpf", segment_payload_json(v, ei.segment, 64));
	else
		json_object_set_new(o, "ebpf", json_null());

	json_t *live = json_array();
	crypto_hash_sha256_state digest;
	crypto_hash_sha256_init(&digest);
	float *vec = malloc(4 * (size_t)i->dimension);
	for (size_t k = 0; k < i->visible; k++) {
		uint64_t id = rvf_view_id_at(v, k);
		rvf_view_vector_at(v, k, vec);
		unsigned char idb[8];
		for (int b = 0; b < 8; b++)
			idb[b] = (unsigned char)(id >> (8 * b));
		crypto_hash_sha256_update(&digest, idb, 8);
		crypto_hash_sha256_update(&digest, (const unsigned char *)vec,
					  4 * (size_t)i->dimension);
		json_array_append_new(live, json_pack("[o,o]", json_id(id),
			sha256_hex(vec, 4 * (size_t)i->dimension)));
	}
	free(vec);
	uint8_t dh[crypto_hash_sha256_BYTES];
	crypto_hash_sha256_final(&digest, dh);
	json_object_set_new(o, "liveCount", json_integer((json_int_t)i->visible));
	json_object_set_new(o, "vectorsDigest", json_hex(dh, sizeof(dh)));
	json_object_set_new(o, "live", live);
	json_object_set_new(o, "deleted", json_integer((json_int_t)i->deleted));
	json_object_set_new(o, "inherited", json_integer((json_int_t)i->inherited));
	json_object_set_new(o, "branch", json_boolean(i->is_branch));
	json_object_set_new(o, "witnessCount",
			    json_integer((json_int_t)rvf_view_witness_count(v)));
	json_dumpf(o, stdout, JSON_COMPACT);
	putchar('\n');
	json_decref(o);
	rvf_view_release(v);
	rvf_store_close(s);
	return 0;
}

static int inspect_text(const char *path)
{
	rvf_store *s;
	int rc = ctl_open(path, false, &s);
	if (rc)
		return rc;
	rvf_view *v = rvf_store_view(s);
	const rvf_info *i = rvf_view_info(v);
	char fid[33], pid[33], ph[65];
	hex_encode(i->identity.file_id, 16, fid);
	hex_encode(i->identity.parent_id, 16, pid);
	hex_encode(i->identity.parent_hash, 32, ph);
	printf("store        %s\n", path);
	printf("dimension    %u\nmetric       %s\nepoch        %u\n", i->dimension,
	       rvf_metric_name(i->metric), i->epoch);
	printf("vectors      %llu visible (%llu own live, %llu inherited), %llu deleted\n",
	       (unsigned long long)i->visible, (unsigned long long)i->own_live,
	       (unsigned long long)i->inherited, (unsigned long long)i->deleted);
	printf("file size    %llu bytes\n", (unsigned long long)i->file_size);
	printf("\nlineage\n  file id      %s\n  parent id    %s\n  parent hash  %s\n  depth        %u\n",
	       fid, pid, ph, i->identity.lineage_depth);
	if (i->is_branch)
		printf("  branch of    %s%s\n", i->parent_path, i->frozen ? " (frozen)" : "");
	printf("\nsegments (offset order)\n  %-5s %-12s %8s %12s %12s  %s\n", "#",
	       "type", "id", "offset", "payload", "hash");
	for (size_t k = 0; k < rvf_view_segment_count(v); k++) {
		const rvf_segment *g = rvf_view_segment(v, k);
		char name[24];
		ref_type_name(g->type, name);
		printf("  %-5zu %-12s %8llu %12llu %12llu  %s%s\n", k + 1, name,
		       (unsigned long long)g->id, (unsigned long long)g->offset,
		       (unsigned long long)g->payload_length,
		       !g->readable ? "UNREADABLE" : g->hash_ok ? "ok" : "MISMATCH",
		       g->listed ? "" : "  (newest manifest)");
	}
	size_t nw = rvf_view_witness_count(v), linked = 0;
	for (size_t k = 0; k < nw; k++)
		linked += rvf_view_witness(v, k)->links;
	printf("\nwitness chain: %zu entries, %zu linked to their predecessor\n", nw,
	       linked);
	if (nw)
		printf("  last: %s\n", rvf_view_witness(v, nw - 1)->action);
	rvf_view_release(v);
	rvf_store_close(s);
	return 0;
}

int cmd_inspect(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[2], "--json"))
		return inspect_json(argv[1]);
	if (argc == 3 && !strcmp(argv[1], "--json"))
		return inspect_json(argv[2]);
	if (argc != 2)
		return ctl_usage_error("inspect needs STORE");
	return inspect_text(argv[1]);
}
