/* sign.c - Ed25519 signatures over a store's committed content.
 *
 * A SIGNATURE segment (0x53, which the reference ignores) signs the state
 * the store was in when it was made: the SHA-256 of every segment the
 * directory of that state's manifest lists (SIGNATURE segments excepted),
 * each as its u64 LE file offset followed by its header and payload bytes.
 * The state is found again at verification as the newest manifest before
 * the signature (the manifest tail scan run on the file up to there), so
 * the payload needs no copy of the directory.  Layout and rationale:
 * docs/format-signature.md. */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bytes.h"
#include "error.h"
#include "io.h"
#include "manifest.h"
#include "segment.h"
#include "store.h"

#define SIG_MAGIC "RVFSIG1\0"
#define SIG_ALGO_ED25519 1
/* magic 8, algo 2, epoch 4, public key 32, digest 32, signature 64 */
#define SIG_PAYLOAD (8 + 2 + 4 + 32 + 32 + 64)
#define SIG_OFF_EPOCH 10
#define SIG_OFF_KEY 14
#define SIG_OFF_DIGEST 46
#define SIG_OFF_SIG 78

#define KEY_TAG_SECRET "rvffs-ed25519-secret"
#define KEY_TAG_PUBLIC "rvffs-ed25519-public"

/* ------------------------------------------------------------ key files */

static rvf_code write_key_file(const char *path, mode_t mode, const char *tag,
			       const uint8_t *key, size_t n, rvf_error *err)
{
	char line[200];
	int len = snprintf(line, sizeof(line), "%s ", tag);
	sodium_bin2hex(line + len, sizeof(line) - (size_t)len, key, n);
	len += (int)(2 * n);
	line[len++] = '\n';
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return errno == EEXIST ?
		       rvf_fail(err, RVF_E_EXISTS, "%s already exists; not overwriting a key", path) :
		       rvf_fail_io(err, errno, "cannot create %s", path);
	int bad = io_pwrite_all(fd, line, (size_t)len, 0) || io_fsync(fd);
	int e = errno;
	sodium_memzero(line, sizeof(line));
	close(fd);
	if (bad) {
		unlink(path);
		return rvf_fail_io(err, e, "cannot write %s", path);
	}
	return RVF_OK;
}

rvf_code rvf_sign_keygen(const char *prefix, uint8_t public_key[32],
			 rvf_error *err)
{
	if (sodium_init() < 0)
		return rvf_fail(err, RVF_E_IO, "libsodium failed to initialise");
	uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
	crypto_sign_keypair(pk, sk);
	char *pub = NULL;
	if (asprintf(&pub, "%s.pub", prefix) < 0)
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	rvf_code rc = RVF_OK;
	if (access(pub, F_OK) == 0)
		rc = rvf_fail(err, RVF_E_EXISTS, "%s already exists; not overwriting a key", pub);
	if (rc == RVF_OK)
		rc = write_key_file(prefix, 0600, KEY_TAG_SECRET, sk, sizeof(sk), err);
	if (rc == RVF_OK) {
		rc = write_key_file(pub, 0644, KEY_TAG_PUBLIC, pk, sizeof(pk), err);
		if (rc != RVF_OK)
			unlink(prefix);
	}
	if (rc == RVF_OK && public_key)
		memcpy(public_key, pk, sizeof(pk));
	sodium_memzero(sk, sizeof(sk));
	free(pub);
	return rc;
}

rvf_code rvf_sign_read_key(const char *path, uint8_t secret_key[64],
			   uint8_t public_key[32], rvf_error *err)
{
	if (sodium_init() < 0)
		return rvf_fail(err, RVF_E_IO, "libsodium failed to initialise");
	char text[300];
	bool other;
	int fd = io_open_regular(path, O_RDONLY, &other);
	if (fd < 0 && other)
		return rvf_fail(err, RVF_E_INVALID_ARGUMENT,
				"key file %s is not a regular file", path);
	if (fd < 0)
		return rvf_fail_io(err, errno, "cannot open key file %s", path);
	ssize_t n = read(fd, text, sizeof(text) - 1);
	int e = errno;
	close(fd);
	if (n < 0)
		return rvf_fail_io(err, e, "cannot read key file %s", path);
	text[n] = '\0';
	while (n && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
		text[--n] = '\0';
	bool secret = !strncmp(text, KEY_TAG_SECRET " ", sizeof(KEY_TAG_SECRET));
	bool public = !strncmp(text, KEY_TAG_PUBLIC " ", sizeof(KEY_TAG_PUBLIC));
	const char *hex = text + sizeof(KEY_TAG_SECRET); /* both tags are as long */
	size_t want = secret ? crypto_sign_SECRETKEYBYTES : crypto_sign_PUBLICKEYBYTES;
	uint8_t key[crypto_sign_SECRETKEYBYTES];
	size_t got = 0;
	const char *end = NULL;
	rvf_code rc = RVF_OK;
	if ((!secret && !public) || (secret_key && !secret))
		rc = rvf_fail(err, RVF_E_INVALID_ARGUMENT,
			      "%s is not an rvffs %s key file (rvfctl keygen writes them)",
			      path, secret_key ? "secret" : "Ed25519");
	else if (sodium_hex2bin(key, sizeof(key), hex, strlen(hex), NULL, &got, &end) != 0 ||
		 got != want || *end)
		rc = rvf_fail(err, RVF_E_INVALID_ARGUMENT,
			      "%s: the key is not %zu hex bytes", path, want);
	if (rc == RVF_OK) {
		if (secret) {
			if (secret_key)
				memcpy(secret_key, key, crypto_sign_SECRETKEYBYTES);
			crypto_sign_ed25519_sk_to_pk(public_key, key);
		} else {
			memcpy(public_key, key, crypto_sign_PUBLICKEYBYTES);
		}
	}
	sodium_memzero(key, sizeof(key));
	sodium_memzero(text, sizeof(text));
	return rc;
}

/* ------------------------------------------------------------ digests */

/* SHA-256 of the segments of directory `dir` (SIGNATURE excepted) in the
 * first `size` bytes of `map`; *covered = how many.  Fails naming a
 * segment that is not there. */
static rvf_code content_digest(const unsigned char *map, uint64_t size,
			       const dir_entry *dir, uint32_t dir_len,
			       uint8_t out[32], uint32_t *covered,
			       rvf_error *err)
{
	crypto_hash_sha256_state st;
	crypto_hash_sha256_init(&st);
	*covered = 0;
	for (uint32_t i = 0; i < dir_len; i++) {
		if (dir[i].type == RVF_SEG_SIGNATURE)
			continue;
		rvf_segment seg;
		rvf_code rc = segment_at(map, size, dir[i].offset, &seg, err);
		if (rc != RVF_OK)
			return rc;
		if (seg.type != dir[i].type)
			return rvf_fail(err, RVF_E_CORRUPT,
					"directory entry %u names a type 0x%02x segment at offset %llu, found type 0x%02x",
					i + 1, dir[i].type,
					(unsigned long long)dir[i].offset, seg.type);
		uint8_t off[8];
		st64(off, dir[i].offset);
		crypto_hash_sha256_update(&st, off, 8);
		crypto_hash_sha256_update(&st, map + dir[i].offset,
					  RVF_SEGMENT_HEADER_SIZE + seg.payload_length);
		(*covered)++;
	}
	crypto_hash_sha256_final(&st, out);
	return RVF_OK;
}

static bool is_signature_by(const rvf_view *v, const rvf_segment *s,
			    const uint8_t pk[32])
{
	if (s->type != RVF_SEG_SIGNATURE || !s->readable ||
	    s->payload_length < SIG_PAYLOAD)
		return false;
	const unsigned char *p = v->map->base + s->offset + RVF_SEGMENT_HEADER_SIZE;
	return !memcmp(p, SIG_MAGIC, 8) && !memcmp(p + SIG_OFF_KEY, pk, 32);
}

/* ------------------------------------------------------------ signing */

rvf_code rvf_store_sign(rvf_store *s, const uint8_t secret_key[64],
			const uint8_t public_key[32], rvf_commit_info *info,
			rvf_error *err)
{
	if (sodium_init() < 0)
		return rvf_fail(err, RVF_E_IO, "libsodium failed to initialise");
	/* The signed state is a manifest on disk: deferred changes first. */
	if (!rvf_store_read_only(s)) {
		rvf_code src = rvf_store_sync(s, NULL, err);
		if (src != RVF_OK)
			return src;
	}
	uint8_t derived[32];
	crypto_sign_ed25519_sk_to_pk(derived, secret_key);
	if (sodium_memcmp(derived, public_key, 32) != 0)
		return rvf_fail(err, RVF_E_INVALID_ARGUMENT,
				"the public key does not belong to the secret key");
	commit c;
	rvf_code rc = commit_begin(s, &c, err);
	if (rc != RVF_OK)
		return rc;
	const rvf_view *b = c.base;
	/* Never vouch for damaged bytes. */
	rc = rvf_view_verify_hashes(b, err);
	if (rc != RVF_OK) {
		commit_abort(&c);
		return rc;
	}
	unsigned char p[SIG_PAYLOAD];
	uint32_t covered;
	memcpy(p, SIG_MAGIC, 8);
	st16(p + 8, SIG_ALGO_ED25519);
	st32(p + SIG_OFF_EPOCH, b->info.epoch);
	memcpy(p + SIG_OFF_KEY, public_key, 32);
	rc = content_digest(b->map->base, b->info.file_size, b->man.dir,
			    b->man.dir_len, p + SIG_OFF_DIGEST, &covered, err);
	if (rc != RVF_OK) {
		commit_abort(&c);
		return rc;
	}
	crypto_sign_detached(p + SIG_OFF_SIG, NULL, p + SIG_OFF_DIGEST, 32,
			     secret_key);
	/* One signature per key: a re-sign supersedes the older one. */
	uint32_t w = 0;
	for (uint32_t i = 0; i < c.next.dir_len; i++) {
		const dir_entry *d = &c.next.dir[i];
		bool drop = false;
		if (d->type == RVF_SEG_SIGNATURE)
			for (uint32_t k = 0; k < b->man.dir_len; k++)
				if (b->dir[k].offset == d->offset)
					drop = is_signature_by(b, &b->dir[k], public_key);
		if (!drop)
			c.next.dir[w++] = *d;
	}
	c.next.dir_len = w;
	c.next.epoch = b->info.epoch + 1;
	rc = commit_append(&c, RVF_SEG_SIGNATURE, p, sizeof(p), err);
	if (rc != RVF_OK) {
		commit_abort(&c);
		return rc;
	}
	if (info)
		info->accepted = covered;
	c.durable = true; /* a signature is over durable content */
	return commit_finish(&c, info, err);
}

/* ------------------------------------------------------------ verifying */

static void check_one(const rvf_view *v, uint32_t index,
		      rvf_signature_check *out)
{
	const rvf_segment *s = &v->dir[index];
	const unsigned char *base = v->map->base;
	out->offset = s->offset;
	/* An unreadable entry's offset may lie anywhere: no pointer to it. */
	const unsigned char *p = s->readable ?
		base + s->offset + RVF_SEGMENT_HEADER_SIZE : NULL;
	if (!s->readable || !s->hash_ok || s->payload_length < SIG_PAYLOAD ||
	    memcmp(p, SIG_MAGIC, 8) || ld16(p + 8) != SIG_ALGO_ED25519) {
		snprintf(out->problem, sizeof(out->problem),
			 "the SIGNATURE segment at offset %llu is damaged or of an unknown kind",
			 (unsigned long long)s->offset);
		return;
	}
	out->epoch = ld32(p + SIG_OFF_EPOCH);
	memcpy(out->public_key, p + SIG_OFF_KEY, 32);
	for (uint32_t i = index + 1; i < v->man.dir_len; i++)
		if (v->dir[i].type != RVF_SEG_MANIFEST &&
		    v->dir[i].type != RVF_SEG_SIGNATURE)
			out->uncovered++;
	/* The signed state: what a reader found before the signature. */
	manifest m;
	rvf_segment mseg;
	rvf_error e;
	if (manifest_locate(base, s->offset, &m, &mseg, &e) != RVF_OK) {
		snprintf(out->problem, sizeof(out->problem),
			 "the state signed at epoch %u is no longer in the file (was it compacted after signing?)",
			 out->epoch);
		return;
	}
	uint8_t digest[32];
	uint32_t found_epoch = m.epoch;
	rvf_code rc = m.epoch == out->epoch ?
		content_digest(base, s->offset, m.dir, m.dir_len, digest,
			       &out->covered, &e) : RVF_E_SIGNATURE;
	manifest_free(&m);
	if (rc == RVF_E_SIGNATURE)
		snprintf(out->problem, sizeof(out->problem),
			 "signed epoch %u, but the manifest before the signature has epoch %u",
			 out->epoch, found_epoch);
	else if (rc != RVF_OK)
		snprintf(out->problem, sizeof(out->problem), "signed content: %.150s",
			 e.message);
	else if (sodium_memcmp(digest, p + SIG_OFF_DIGEST, 32) != 0)
		snprintf(out->problem, sizeof(out->problem),
			 "the signed content changed since signing (digest mismatch)");
	else if (crypto_sign_verify_detached(p + SIG_OFF_SIG, p + SIG_OFF_DIGEST,
					     32, out->public_key) != 0)
		snprintf(out->problem, sizeof(out->problem),
			 "the Ed25519 signature does not verify");
	else
		out->ok = true;
}

rvf_code rvf_view_verify_signatures(const rvf_view *v,
				    const uint8_t *public_key,
				    rvf_signature_check **checks, size_t *n,
				    rvf_error *err)
{
	*checks = NULL;
	*n = 0;
	if (sodium_init() < 0)
		return rvf_fail(err, RVF_E_IO, "libsodium failed to initialise");
	size_t count = 0;
	for (uint32_t i = 0; i < v->man.dir_len; i++)
		count += v->dir[i].type == RVF_SEG_SIGNATURE;
	rvf_signature_check *out = count ? calloc(count, sizeof(*out)) : NULL;
	if (count && !out)
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	rvf_code rc = RVF_OK;
	bool any_trusted = false;
	size_t k = 0;
	for (uint32_t i = 0; i < v->man.dir_len; i++) {
		if (v->dir[i].type != RVF_SEG_SIGNATURE)
			continue;
		rvf_signature_check *c = &out[k++];
		check_one(v, i, c);
		c->trusted = public_key && !memcmp(c->public_key, public_key, 32);
		any_trusted |= c->trusted && c->ok;
		if (!c->ok && rc == RVF_OK)
			rc = rvf_fail(err, RVF_E_SIGNATURE, "signature at offset %llu: %.200s",
				      (unsigned long long)c->offset, c->problem);
	}
	if (rc == RVF_OK && public_key && !any_trusted)
		rc = rvf_fail(err, RVF_E_SIGNATURE,
			      count ? "no valid signature was made with the given public key" :
				      "the store is not signed");
	*checks = out;
	*n = count;
	return rc;
}
