/* rvfctl inspect: segment table, lineage, witness chain; --json gives the
 * same keys as the conformance corpus's .expect.json files.  On a mount
 * point it reads the mount's status, manifest, lineage, witness and
 * segments/ (with their xattrs): what the daemon shows.  Several STOREs:
 * one after the other (--json: one line each), a refused one does not stop
 * the rest. */
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/xattr.h>

#include "common.h"
#include "mount.h"

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

/* The store refused: the one-line reason as openError, exit code kept. */
static int inspect_open_error(const char *path, rvf_code rc, const rvf_error *err)
{
	json_t *o = json_object();
	char msg[700];
	snprintf(msg, sizeof(msg), "%s: %s", rvf_code_name(rc), err->message);
	json_object_set_new(o, "store", json_string(path));
	json_object_set_new(o, "openError", json_string(msg));
	json_object_set_new(o, "error", json_string(msg));
	json_object_set_new(o, "exit", json_integer(ctl_error_exit(err)));
	fprintf(stderr, "rvfctl: %s: %s\n", path, msg);
	ctl_print_json(o);
	return ctl_error_exit(err);
}

/* Identity, sizes and the corpus's "status" object. */
static void inspect_info_json(json_t *o, const rvf_info *i)
{
	json_object_set_new(o, "openError", json_null());
	json_object_set_new(o, "dimension", json_integer(i->dimension));
	json_object_set_new(o, "metric", json_string(rvf_metric_name(i->metric)));
	json_object_set_new(o, "fileId", json_hex(i->identity.file_id, 16));
	json_object_set_new(o, "parentId", json_hex(i->identity.parent_id, 16));
	json_object_set_new(o, "parentHash", json_hex(i->identity.parent_hash, 32));
	json_object_set_new(o, "lineageDepth", json_integer(i->identity.lineage_depth));
	if (i->is_branch) {
		json_object_set_new(o, "parentSize", json_integer((json_int_t)i->parent_size));
		json_object_set_new(o, "parentAsOf", json_integer((json_int_t)i->parent_as_of));
	}
	json_object_set_new(o, "fileSize", json_integer((json_int_t)i->file_size));
	json_object_set_new(o, "epoch", json_integer(i->epoch));
	json_object_set_new(o, "status", json_pack("{s:I,s:i,s:i,s:I,s:i}",
		"totalVectors", (json_int_t)i->own_live,
		"totalSegments", (int)i->directory_len,
		"currentEpoch", (int)i->epoch,
		"fileSize", (json_int_t)i->file_size,
		"profileId", (int)i->profile));
}

static json_t *inspect_segments_json(const rvf_view *v)
{
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
	return segs;
}

/* The kernel and eBPF segments (null when absent). */
static void inspect_images_json(json_t *o, const rvf_view *v)
{
	rvf_kernel_info ki;
	if (rvf_view_kernel(v, &ki)) {
		json_t *kj = segment_payload_json(v, ki.segment, 128);
		unsigned char *img;
		size_t ilen;
		char *cmd;
		rvf_error err;
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
}

/* Every visible vector as [id, sha256 of its floats], and one digest over
 * (id little-endian, floats) of them all. */
static void inspect_live_json(json_t *o, const rvf_view *v, const rvf_info *i)
{
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
}

static int inspect_json(ctl_ctx *ctx, const char *path)
{
	(void)ctx;
	rvf_store *s;
	rvf_error err;
	rvf_code rc = rvf_store_open(path, RVF_OPEN_READ_ONLY, &s, &err);
	if (rc != RVF_OK)
		return inspect_open_error(path, rc, &err);
	rvf_view *v = rvf_store_view(s);
	const rvf_info *i = rvf_view_info(v);
	json_t *o = json_object();
	json_object_set_new(o, "store", json_string(path));
	inspect_info_json(o, i);
	json_object_set_new(o, "segments", inspect_segments_json(v));
	inspect_images_json(o, v);
	inspect_live_json(o, v, i);
	json_object_set_new(o, "deleted", json_integer((json_int_t)i->deleted));
	json_object_set_new(o, "inherited", json_integer((json_int_t)i->inherited));
	json_object_set_new(o, "branch", json_boolean(i->is_branch));
	json_object_set_new(o, "witnessCount",
			    json_integer((json_int_t)rvf_view_witness_count(v)));
	json_object_set_new(o, "mounted", json_false());
	ctl_print_json(o);
	rvf_view_release(v);
	rvf_store_close(s);
	return 0;
}

static int inspect_text(ctl_ctx *ctx, const char *path)
{
	rvf_store *s;
	int rc = ctl_open(ctx, path, false, &s);
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
	if (i->is_branch && i->parent_as_of < i->parent_size)
		printf("  parent as of byte %llu of %llu: the parent changed since the branch was made; this child reads it as it was then\n",
		       (unsigned long long)i->parent_as_of,
		       (unsigned long long)i->parent_size);
	printf("\nsegments (offset order)\n  %-5s %-12s %8s %12s %12s  %s\n", "#",
	       "type", "id", "offset", "payload", "hash");
	for (size_t k = 0; k < rvf_view_segment_count(v); k++) {
		const rvf_segment *g = rvf_view_segment(v, k);
		char name[24];
		ref_type_name(g->type, name);
		if (g->type == RVF_SEG_SIGNATURE) /* ours: the reference has no name */
			snprintf(name, sizeof(name), "signature");
		if (g->gap) {
			printf("  %-5zu %-12s %8s %12llu %12llu  (bytes that are no segment)\n",
			       k + 1, "gap", "-", (unsigned long long)g->offset,
			       (unsigned long long)g->payload_length);
			continue;
		}
		printf("  %-5zu %-12s %8llu %12llu %12llu  %s%s\n", k + 1, name,
		       (unsigned long long)g->id, (unsigned long long)g->offset,
		       (unsigned long long)g->payload_length,
		       !g->readable ? "UNREADABLE" : g->hash_ok ? "ok" : "MISMATCH",
		       g->listed ? "" : g->offset == i->manifest_offset ?
		       "  (newest manifest)" : "  (unlisted)");
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

/* ---------------------------------------------------------------- mounts */

/* Type code of a name the tree uses ("vec", "type-53"); -1 if unknown. */
static int type_code(const char *name)
{
	unsigned v;
	if (sscanf(name, "type-%x", &v) == 1 && v < 256)
		return (int)v;
	for (int t = 0; t < 256; t++) {
		const char *n = rvf_segment_type_name((uint8_t)t);
		if (n && !strcmp(n, name))
			return t;
	}
	return -1;
}

static char *xattr_text(const char *path, const char *name)
{
	char buf[256];
	ssize_t n = getxattr(path, name, buf, sizeof(buf) - 1);
	if (n < 0)
		return NULL;
	buf[n] = '\0';
	return strdup(buf);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in MNT/segments, sorted (by offset: names start with the
 * position in file order). */
static char **segment_names(const char *mnt, size_t *n)
{
	char *dir = NULL;
	*n = 0;
	if (asprintf(&dir, "%s/segments", mnt) < 0)
		return NULL;
	DIR *d = opendir(dir);
	free(dir);
	if (!d)
		return NULL;
	char **names = NULL;
	size_t cap = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		if (*n == cap) {
			char **g = realloc(names, (cap = cap ? 2 * cap : 64) * sizeof(char *));
			if (!g)
				break;
			names = g;
		}
		if (!(names[*n] = strdup(e->d_name)))
			break;
		(*n)++;
	}
	closedir(d);
	if (names)
		qsort(names, *n, sizeof(char *), by_name);
	return names;
}

typedef struct witness_summary {
	size_t entries, linked;
	char *last;
} witness_summary;

static void summarize_witness(char *text, witness_summary *w)
{
	memset(w, 0, sizeof(*w));
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '#')
			continue;
		w->entries++;
		size_t len = strlen(line);
		if (len >= 7 && !strcmp(line + len - 7, " linked"))
			w->linked++;
		w->last = line;
	}
}

/* The segments of the mount's manifest file, in manifest order, with the
 * keys of file mode's --json (man_text is cut up). */
static json_t *mount_segments_json(char *man_text)
{
	json_t *segs = json_array();
	char *save = NULL;
	for (char *line = man_text ? strtok_r(man_text, "\n", &save) : NULL;
	     line; line = strtok_r(NULL, "\n", &save)) {
		unsigned long long pos, id, off, len;
		char type[32];
		if (sscanf(line, "entry: %llu %llu %31s %llu %llu", &pos, &id,
			   type, &off, &len) != 5)
			continue;
		char name[24];
		int code = type_code(type);
		if (code >= 0)
			ref_type_name((uint8_t)code, name);
		else
			snprintf(name, sizeof(name), "%.23s", type);
		json_array_append_new(segs, json_pack("{s:o,s:I,s:I,s:s}",
			"id", json_id(id), "offset", (json_int_t)off,
			"payloadLength", (json_int_t)len, "segType", name));
	}
	return segs;
}

static const char *kv_str_or_empty(json_t *kv, const char *key)
{
	const char *s = kv_str(kv, key);
	return s ? s : "";
}

static void inspect_mount_json(const char *mnt, json_t *st, json_t *lin, char *man_text,
			       const witness_summary *ws)
{
	json_t *o = json_object();
	const char *kind = kv_str(lin, "kind");
	json_object_set_new(o, "dimension", json_integer((json_int_t)kv_u64(st, "dimension")));
	json_object_set_new(o, "metric", json_string(kv_str_or_empty(st, "metric")));
	json_object_set_new(o, "fileId", json_string(kv_str_or_empty(lin, "file_id")));
	json_object_set_new(o, "parentId", json_string(kv_str_or_empty(lin, "parent_id")));
	json_object_set_new(o, "parentHash", json_string(kv_str_or_empty(lin, "parent_hash")));
	json_object_set_new(o, "lineageDepth", json_integer((json_int_t)kv_u64(lin, "lineage_depth")));
	json_object_set_new(o, "fileSize", json_integer((json_int_t)kv_u64(st, "file_size")));
	json_object_set_new(o, "epoch", json_integer((json_int_t)kv_u64(st, "epoch")));
	json_object_set_new(o, "segments", mount_segments_json(man_text));
	json_object_set_new(o, "liveCount", json_integer((json_int_t)kv_u64(st, "vectors")));
	json_object_set_new(o, "deleted", json_integer((json_int_t)kv_u64(st, "deleted")));
	json_object_set_new(o, "inherited", json_integer((json_int_t)kv_u64(lin, "inherited_vectors")));
	json_object_set_new(o, "branch", json_boolean(kind && !strcmp(kind, "branch")));
	json_object_set_new(o, "witnessCount", json_integer((json_int_t)ws->entries));
	json_object_set_new(o, "mounted", json_true());
	json_object_set_new(o, "mountPoint", json_string(mnt));
	json_object_set_new(o, "pid", json_integer((json_int_t)kv_u64(st, "pid")));
	ctl_print_json(o);
}

/* One line of the segment table from a segments/ file's xattrs. */
static void print_mount_segment(const char *mnt, const char *file, size_t k)
{
	char *path = NULL;
	if (asprintf(&path, "%s/segments/%s", mnt, file) < 0)
		return;
	char *type = xattr_text(path, "user.rvf.type");
	char *id = xattr_text(path, "user.rvf.id");
	char *off = xattr_text(path, "user.rvf.offset");
	char *len = xattr_text(path, "user.rvf.payload_length");
	char *ok = xattr_text(path, "user.rvf.hash_ok");
	char name[24] = "?";
	int code = type ? type_code(type) : -1;
	if (code == RVF_SEG_SIGNATURE)
		snprintf(name, sizeof(name), "signature");
	else if (code >= 0)
		ref_type_name((uint8_t)code, name);
	else if (type)
		snprintf(name, sizeof(name), "%.23s", type);
	printf("  %-5zu %-12s %8s %12s %12s  %s\n", k + 1, name, id ? id : "?",
	       off ? off : "?", len ? len : "?",
	       !ok ? "?" : !strcmp(ok, "true") || !strcmp(ok, "1") ? "ok" : "MISMATCH");
	free(type);
	free(id);
	free(off);
	free(len);
	free(ok);
	free(path);
}

static void inspect_mount_text(const char *mnt, json_t *st, json_t *lin,
			       const witness_summary *ws)
{
	printf("mount        %s (daemon pid %llu)\n", mnt,
	       (unsigned long long)kv_u64(st, "pid"));
	printf("dimension    %llu\nmetric       %s\nepoch        %llu\n",
	       (unsigned long long)kv_u64(st, "dimension"), kv_str(st, "metric"),
	       (unsigned long long)kv_u64(st, "epoch"));
	printf("vectors      %llu visible, %llu deleted\n",
	       (unsigned long long)kv_u64(st, "vectors"),
	       (unsigned long long)kv_u64(st, "deleted"));
	printf("file size    %llu bytes\n", (unsigned long long)kv_u64(st, "file_size"));
	printf("\nlineage\n");
	const char *key;
	json_t *val;
	json_object_foreach(lin, key, val)
		printf("  %-17s %s\n", key, json_string_value(val));
	printf("\nsegments (offset order)\n  %-5s %-12s %8s %12s %12s  %s\n", "#",
	       "type", "id", "offset", "payload", "hash");
	size_t n;
	char **names = segment_names(mnt, &n);
	for (size_t k = 0; k < n; k++) {
		print_mount_segment(mnt, names[k], k);
		free(names[k]);
	}
	free(names);
	printf("\nwitness chain: %zu entries, %zu linked to their predecessor\n",
	       ws->entries, ws->linked);
	if (ws->last)
		printf("  last: %s\n", ws->last);
}

static int inspect_mount(ctl_ctx *ctx, const char *mnt)
{
	json_t *st;
	int rc = mnt_status(ctx, mnt, &st);
	if (rc)
		return rc;
	char *lin_text = mnt_read(mnt, "lineage", NULL);
	char *man_text = mnt_read(mnt, "manifest", NULL);
	char *wit_text = mnt_read(mnt, "witness", NULL);
	json_t *lin = mnt_parse_kv(lin_text ? lin_text : "");
	witness_summary ws;
	summarize_witness(wit_text ? wit_text : (char *)"", &ws);
	if (ctx->json)
		inspect_mount_json(mnt, st, lin, man_text, &ws);
	else
		inspect_mount_text(mnt, st, lin, &ws);
	json_decref(st);
	json_decref(lin);
	free(lin_text);
	free(man_text);
	free(wit_text);
	return 0;
}

static int inspect_one(ctl_ctx *ctx, const char *path)
{
	if (mnt_detect(path))
		return inspect_mount(ctx, path);
	return ctx->json ? inspect_json(ctx, path) : inspect_text(ctx, path);
}

/* The exit code is the first non-zero one of the STOREs. */
int cmd_inspect(ctl_ctx *ctx, int argc, char **argv)
{
	if (argc < 2)
		return ctl_usage_error(ctx, "inspect needs STORE");
	int rc = 0;
	for (int k = 1; k < argc; k++) {
		if (k > 1 && !ctx->json)
			putchar('\n');
		int r = inspect_one(ctx, argv[k]);
		if (!rc)
			rc = r;
	}
	return rc;
}
