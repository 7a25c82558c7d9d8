/* test_format.c - hashes, segment headers, manifests, the tail scan and
 * the lock file, against the test vectors of the format document. */
#include <fcntl.h>
#include <pthread.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bytes.h"
#include "hash.h"
#include "lock.h"
#include "manifest.h"
#include "rvf.h"
#include "segment.h"

#include "check.h"

static void unhex(const char *h, uint8_t *out)
{
	for (size_t i = 0; h[2 * i]; i++) {
		unsigned v;
		sscanf(h + 2 * i, "%2x", &v);
		out[i] = (uint8_t)v;
	}
}

static void test_content_hash(void)
{
	uint8_t h[16], want[16];
	rvf_content_hash("123456789", 9, h);
	unhex("2639f4cbcb2639f4f4cb2639" "39f4cb26", want);
	CHECK(memcmp(h, want, 16) == 0);
	CHECK(crc32_update(0, "123456789", 9) == 0xCBF43926u);
	CHECK(crc32_update(crc32_update(0, "1234", 4), "56789", 5) == 0xCBF43926u);
	rvf_content_hash("", 0, h);
	CHECK(content_hash_is_zero(h));
	CHECK(content_hash_ok(h, "anything", 8)); /* zero = unchecked */
	rvf_content_hash("abc", 3, h);
	CHECK(content_hash_ok(h, "abc", 3));
	CHECK(!content_hash_ok(h, "abd", 3));
}

static void test_simple_hash(void)
{
	uint8_t h[32], want[32] = { 0 };
	rvf_simple_hash256("", 0, h);
	CHECK(memcmp(h, want, 32) == 0);
	rvf_simple_hash256("123456789", 9, h);
	unhex("313233343536373839000000" "0089919" "9a1a9b1b9c1c9", want);
	CHECK(memcmp(h, want, 23) == 0);
	const uint8_t bm[8] = { 0xff, 0x03 };
	rvf_simple_hash256(bm, 8, h);
	CHECK(h[0] == 0xff && h[1] == 0x03 && h[13] == 0xff && h[14] == 0x18);
	CHECK(h[2] == 0 && h[12] == 0 && h[15] == 0);
}

static void test_segment_header(void)
{
	unsigned char hdr[64];
	uint8_t hash[16];
	rvf_content_hash("xyz", 3, hash);
	segment_encode(hdr, RVF_SEG_VEC, 7, 3, hash);
	CHECK(memcmp(hdr, "SFVR", 4) == 0);
	CHECK(hdr[4] == 1 && hdr[5] == 1);
	rvf_segment s;
	CHECK(segment_decode(hdr, 100, &s));
	CHECK(s.type == RVF_SEG_VEC && s.id == 7 && s.payload_length == 3 &&
	      s.offset == 100 && memcmp(s.content_hash, hash, 16) == 0);
	hdr[0] = 'X';
	CHECK(!segment_decode(hdr, 0, &s));
	char label[SEGMENT_LABEL_SIZE];
	segment_type_label(0x37, label);
	CHECK(strcmp(label, "type-37") == 0);
	segment_type_label(0x33, label);
	CHECK(strcmp(label, "federated_manifest") == 0);
	segment_type_label(0x10, label);
	CHECK(strcmp(label, "wasm") == 0);
	segment_type_label(RVF_SEG_COW_MAP, label);
	CHECK(strcmp(label, "cow_map") == 0);
}

static manifest sample_manifest(void)
{
	static dir_entry dir[3] = {
		{ 1, 0, 98, RVF_SEG_MANIFEST },
		{ 2, 162, 54, RVF_SEG_VEC },
		{ 3, 280, 67, RVF_SEG_WITNESS },
	};
	static uint64_t del[2] = { 5, 9 };
	manifest m = { .epoch = 3, .dimension = 4, .total_vectors = 2,
		       .profile = 1, .metric = 2, .dir = dir, .dir_len = 3,
		       .deleted = del, .deleted_len = 2, .has_identity = true };
	memset(m.identity.file_id, 0xab, 16);
	m.identity.lineage_depth = 2;
	return m;
}

static void test_manifest_roundtrip(void)
{
	manifest m = sample_manifest();
	size_t len;
	unsigned char *p = manifest_encode(&m, &len);
	CHECK(p && len == 22 + 75 + 4 + 16 + 72);
	manifest back;
	bool oom;
	CHECK(manifest_parse(p, len, &back, &oom));
	CHECK(back.epoch == 3 && back.dimension == 4 && back.metric == 2 &&
	      back.profile == 1 && back.dir_len == 3 && back.deleted_len == 2);
	CHECK(back.dir[1].offset == 162 && back.dir[2].type == RVF_SEG_WITNESS);
	CHECK(back.deleted[1] == 9 && back.has_identity &&
	      back.identity.lineage_depth == 2 && back.identity.file_id[5] == 0xab);
	manifest_free(&back);
	/* Lenient rules: no deletion list, truncated deletions, no FIDI. */
	CHECK(manifest_parse(p, 22 + 75, &back, &oom) && back.deleted_len == 0 &&
	      !back.has_identity);
	manifest_free(&back);
	CHECK(manifest_parse(p, 22 + 75 + 4 + 8, &back, &oom) &&
	      back.deleted_len == 1 && !back.has_identity);
	manifest_free(&back);
	CHECK(!manifest_parse(p, 21, &back, &oom));
	st32(p + 14, 1000); /* directory overruns the payload */
	CHECK(!manifest_parse(p, len, &back, &oom));
	free(p);
}

/* Builds "file" = [MANIFEST A][junk][MANIFEST B (torn?)]. */
static size_t put_manifest(unsigned char *buf, size_t at, uint32_t epoch,
			   size_t truncate_to)
{
	manifest m = sample_manifest();
	m.epoch = epoch;
	size_t len;
	unsigned char *p = manifest_encode(&m, &len);
	uint8_t h[16];
	rvf_content_hash(p, len, h);
	segment_encode(buf + at, RVF_SEG_MANIFEST, epoch, len, h);
	memcpy(buf + at + 64, p, len);
	free(p);
	return truncate_to ? truncate_to : at + 64 + len;
}

static void test_tail_scan(void)
{
	unsigned char *buf = calloc(1, 300000);
	manifest m;
	rvf_segment seg;
	rvf_error err;
	size_t end = put_manifest(buf, 0, 1, 0);
	end = put_manifest(buf, end + 10, 2, 0);
	CHECK(manifest_locate(buf, end, &m, &seg, &err) == RVF_OK && m.epoch == 2);
	manifest_free(&m);
	/* Torn tail: the newest manifest's payload is cut: fall back. */
	size_t start2 = end;
	size_t full = put_manifest(buf, start2, 3, 0);
	CHECK(manifest_locate(buf, full - 5, &m, &seg, &err) == RVF_OK &&
	      m.epoch == 2);
	manifest_free(&m);
	/* A false candidate (magic + type 5, unparseable payload) after the
	 * newest manifest is skipped. */
	size_t e = put_manifest(buf, 0, 7, 0);
	memcpy(buf + e, "SFVR\x01\x05", 6);
	st64(buf + e + 0x10, 3); /* payload of 3 bytes: < 22, not a manifest */
	CHECK(manifest_locate(buf, e + 67, &m, &seg, &err) == RVF_OK &&
	      m.epoch == 7);
	manifest_free(&m);
	/* A manifest far from the end (beyond the first 64 KiB window). */
	memset(buf, 0, 300000);
	e = put_manifest(buf, 0, 9, 0);
	CHECK(manifest_locate(buf, 200000, &m, &seg, &err) == RVF_OK &&
	      m.epoch == 9 && seg.offset == 0);
	manifest_free(&m);
	/* Empty and junk files. */
	CHECK(manifest_locate(buf, 0, &m, &seg, &err) == RVF_E_MANIFEST_NOT_FOUND);
	memset(buf, 0x55, 1000);
	CHECK(manifest_locate(buf, 1000, &m, &seg, &err) == RVF_E_MANIFEST_NOT_FOUND);
	CHECK(strstr(err.message, "no valid manifest") != NULL);
	/* A 72 KB manifest (9000 deletions) is found whole. */
	manifest big = sample_manifest();
	uint64_t *del = malloc(9000 * sizeof(uint64_t));
	for (int i = 0; i < 9000; i++)
		del[i] = (uint64_t)i;
	big.deleted = del;
	big.deleted_len = 9000;
	size_t len;
	unsigned char *p = manifest_encode(&big, &len);
	unsigned char *file = malloc(64 + len);
	uint8_t h[16];
	rvf_content_hash(p, len, h);
	segment_encode(file, RVF_SEG_MANIFEST, 1, len, h);
	memcpy(file + 64, p, len);
	CHECK(len > 72000);
	CHECK(manifest_locate(file, 64 + len, &m, &seg, &err) == RVF_OK &&
	      m.deleted_len == 9000);
	manifest_free(&m);
	free(file);
	free(p);
	free(del);
	free(buf);
}

static void *release_later(void *arg)
{
	struct timespec ts = { 0, 150 * 1000000L };
	nanosleep(&ts, NULL);
	lock_release(arg);
	return NULL;
}

static void test_lock_layout(void)
{
	/* The captured lock of §12.4: pid 0x1fbc, host "vm". */
	uint8_t wid[16];
	unhex("b9c643c56700fd31d42f3b963955f092", wid);
	unsigned char rec[RVF_LOCK_SIZE];
	lock_encode(rec, 0x1fbc, "vm", 0x18ea3b24f8c0d777ull, wid);
	CHECK(ld32(rec) == RVF_LOCK_MAGIC && memcmp(rec, "FLVR", 4) == 0);
	CHECK(ld32(rec + 4) == 0x1fbc && strcmp((char *)rec + 8, "vm") == 0);
	CHECK(ld32(rec + 0x60) == 1);
	CHECK(ld32(rec + 0x64) == crc32_update(0, rec, 0x64));

	char dir[] = "/tmp/rvf-lock-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char store[256], lockp[256];
	snprintf(store, sizeof(store), "%s/s.rvf", dir);
	snprintf(lockp, sizeof(lockp), "%s/s.rvf.lock", dir);
	rvf_lock a, b;
	rvf_error err;
	CHECK(lock_acquire(store, 0, &a, &err) == RVF_OK);
	CHECK(access(lockp, F_OK) == 0);
	/* Held by us (a live pid): a second writer is refused. */
	CHECK(lock_acquire(store, 0, &b, &err) == RVF_E_LOCK_HELD);
	CHECK(strstr(err.message, "locked") != NULL);
	lock_release(&a);
	CHECK(access(lockp, F_OK) != 0);
	/* A holder that lets go while we wait (an exiting daemon): waited
	 * for instead of refused. */
	CHECK(lock_acquire(store, 0, &a, &err) == RVF_OK);
	pthread_t releaser;
	CHECK(pthread_create(&releaser, NULL, release_later, &a) == 0);
	CHECK(lock_acquire(store, 10000, &b, &err) == RVF_OK);
	pthread_join(releaser, NULL);
	lock_release(&b);
	CHECK(access(lockp, F_OK) != 0);
	/* Junk lock: broken. */
	int fd = open(lockp, O_WRONLY | O_CREAT, 0644);
	CHECK(write(fd, "junk", 4) == 4);
	close(fd);
	CHECK(lock_acquire(store, 0, &a, &err) == RVF_OK);
	lock_release(&a);
	/* A dead pid on this host: broken at once. */
	char host[64] = "";
	const char *env = getenv("HOSTNAME");
	if (env)
		snprintf(host, sizeof(host), "%s", env);
	else {
		FILE *f = fopen("/etc/hostname", "r");
		if (f && fgets(host, sizeof(host), f))
			host[strcspn(host, " \t\r\n")] = '\0';
		else
			gethostname(host, sizeof(host));
		if (f)
			fclose(f);
	}
	lock_encode(rec, 999999, host, 1, wid); /* pid beyond pid_max */
	fd = open(lockp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	CHECK(write(fd, rec, sizeof(rec)) == (ssize_t)sizeof(rec));
	close(fd);
	CHECK(lock_acquire(store, 0, &a, &err) == RVF_OK);
	lock_release(&a);
	/* Another host, fresh: honoured. */
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	lock_encode(rec, 1, "elsewhere-host",
		    (uint64_t)ts.tv_sec * 1000000000ull, wid);
	fd = open(lockp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	CHECK(write(fd, rec, sizeof(rec)) == (ssize_t)sizeof(rec));
	close(fd);
	CHECK(lock_acquire(store, 0, &a, &err) == RVF_E_LOCK_HELD);
	unlink(lockp);
	rmdir(dir);
}

int main(void)
{
	test_content_hash();
	test_simple_hash();
	test_segment_header();
	test_manifest_roundtrip();
	test_tail_scan();
	test_lock_layout();
	if (failures) {
		fprintf(stderr, "test_format: %d check(s) failed\n", failures);
		return 1;
	}
	printf("test_format: all checks passed\n");
	return 0;
}
