/* write.c - the commit protocol shared by every mutation.
 *
 * A commit appends its segments at the end of the file, fsyncs them, then
 * appends (for a branch child) COW_MAP + MEMBERSHIP and the new MANIFEST
 * and fsyncs again: the reference's order, so a crash leaves either the old
 * or the new manifest as the newest parseable one.  Until the manifest is
 * durable nothing is published; a failure truncates the file back. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "bytes.h"
#include "error.h"
#include "hash.h"
#include "io.h"
#include "segment.h"
#include "store.h"

uint64_t now_ns_wall(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

rvf_code store_check_writable(rvf_store *s, rvf_error *err)
{
	if (s->read_only)
		return rvf_fail(err, RVF_E_READ_ONLY, "%s is open read-only",
				s->path);
	if (s->frozen)
		return rvf_fail(err, RVF_E_READ_ONLY, "%s is frozen", s->path);
	return RVF_OK;
}

static rvf_code grow_dir(commit *c, size_t more, rvf_error *err)
{
	size_t need = c->next.dir_len + more;
	if (need <= c->dir_cap)
		return RVF_OK;
	size_t cap = c->dir_cap ? c->dir_cap * 2 : 16;
	while (cap < need)
		cap *= 2;
	dir_entry *d = realloc(c->next.dir, cap * sizeof(dir_entry));
	if (!d)
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	c->next.dir = d;
	c->dir_cap = cap;
	return RVF_OK;
}

rvf_code commit_begin(rvf_store *s, commit *c, rvf_error *err)
{
	memset(c, 0, sizeof(*c));
	c->s = s;
	pthread_mutex_lock(&s->write_mu);
	rvf_code rc = store_check_writable(s, err);
	if (rc != RVF_OK) {
		pthread_mutex_unlock(&s->write_mu);
		return rc;
	}
	c->base = rvf_store_view(s);
	c->start = s->end;
	/* A branch child's deletes change its MEMBERSHIP bitmap, which only a
	 * durable commit writes: its changes stay durable one by one. */
	c->durable = !s->deferred || c->base->is_branch;
	memcpy(c->saved_prev, s->witness_prev, 32);
	c->saved_started = s->witness_started;
	c->saved_next_id = s->next_seg_id;

	const manifest *bm = &c->base->man;
	c->next = *bm;
	c->next.dir = NULL;
	c->next.dir_len = 0;
	c->next.deleted = NULL;
	c->next.deleted_len = 0;
	c->next.total_vectors = view_total_rows(c->base);
	rc = grow_dir(c, bm->dir_len + s->npending + 8, err);
	if (rc != RVF_OK)
		goto fail;
	if (bm->dir_len)
		memcpy(c->next.dir, bm->dir, bm->dir_len * sizeof(dir_entry));
	if (s->npending)
		memcpy(c->next.dir + bm->dir_len, s->pending,
		       s->npending * sizeof(dir_entry));
	c->next.dir_len = bm->dir_len + (uint32_t)s->npending;
	/* The base's (sorted, unique) list, shared: copied only by a change
	 * that adds to it (merge_deleted) or a view that keeps it. */
	c->next.deleted = c->base->deleted;
	c->next.deleted_len = (uint32_t)c->base->ndeleted;
	c->deleted_owned = false;
	return RVF_OK;
fail:
	commit_abort(c);
	return rc;
}

rvf_code commit_push_entry(commit *c, uint8_t type, uint64_t seg_id,
			   uint64_t offset, uint64_t len, rvf_error *err)
{
	rvf_code rc = grow_dir(c, 1, err);
	if (rc != RVF_OK)
		return rc;
	c->next.dir[c->next.dir_len++] = (dir_entry){
		.seg_id = seg_id, .offset = offset, .payload_length = len,
		.type = type };
	return RVF_OK;
}

rvf_code commit_append(commit *c, uint8_t type, const void *payload,
		       size_t len, rvf_error *err)
{
	rvf_store *s = c->s;
	if (len > RVF_MAX_PAYLOAD)
		return rvf_fail(err, RVF_E_TOO_LARGE,
				"segment payload of %zu bytes exceeds the 256 MiB limit",
				len);
	unsigned char hdr[RVF_SEGMENT_HEADER_SIZE];
	uint8_t hash[16];
	rvf_content_hash(payload, len, hash);
	uint64_t id = s->next_seg_id++;
	segment_encode(hdr, type, id, len, hash);
	if (io_pwrite_all(s->fd, hdr, sizeof(hdr), (off_t)s->end) != 0 ||
	    io_pwrite_all(s->fd, payload, len, (off_t)(s->end + sizeof(hdr))) != 0)
		return rvf_fail_io(err, errno, "cannot append to %s", s->path);
	rvf_code rc = commit_push_entry(c, type, id, s->end, len, err);
	s->end += sizeof(hdr) + len;
	return rc;
}

rvf_code commit_witness(commit *c, uint8_t wtype, const char *action,
			rvf_error *err)
{
	rvf_store *s = c->s;
	size_t alen = strlen(action), len = 13 + alen + 32;
	unsigned char *p = malloc(len);
	if (!p)
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	p[0] = wtype;
	st64(p + 1, now_ns_wall());
	st32(p + 9, (uint32_t)alen);
	memcpy(p + 13, action, alen);
	/* The first witness of a session carries zeros, as the reference's. */
	if (s->witness_started)
		memcpy(p + 13 + alen, s->witness_prev, 32);
	else
		memset(p + 13 + alen, 0, 32);
	rvf_code rc = commit_append(c, RVF_SEG_WITNESS, p, len, err);
	if (rc == RVF_OK) {
		rvf_simple_hash256(p, len, s->witness_prev);
		s->witness_started = true;
	}
	free(p);
	return rc;
}

rvf_code commit_record(commit *c, uint8_t wtype, const char *kind,
		       uint64_t count, rvf_error *err)
{
	rvf_store *s = c->s;
	if (!c->durable) {
		/* One witness per kind at the sync, not one per change: a
		 * change costs its data, not a chain entry. */
		if (wtype)
			s->txn_ingested += count;
		else
			s->txn_deleted += count;
		return RVF_OK;
	}
	char action[96];
	snprintf(action, sizeof(action), "%s:count=%llu,epoch=%u", kind,
		 (unsigned long long)count, c->next.epoch);
	return commit_witness(c, wtype, action, err);
}

/* The witnesses of the deferred changes this durable commit includes. */
static rvf_code append_txn_witnesses(commit *c, rvf_error *err)
{
	rvf_store *s = c->s;
	char action[96];
	rvf_code rc = RVF_OK;
	if (s->txn_ingested) {
		snprintf(action, sizeof(action), "ingest:count=%llu,epoch=%u",
			 (unsigned long long)s->txn_ingested, c->next.epoch);
		rc = commit_witness(c, 1, action, err);
	}
	if (rc == RVF_OK && s->txn_deleted) {
		snprintf(action, sizeof(action), "delete:count=%llu,epoch=%u",
			 (unsigned long long)s->txn_deleted, c->next.epoch);
		rc = commit_witness(c, 0, action, err);
	}
	return rc;
}

void commit_drop_type(commit *c, uint8_t type)
{
	uint32_t w = 0;
	for (uint32_t i = 0; i < c->next.dir_len; i++)
		if (c->next.dir[i].type != type)
			c->next.dir[w++] = c->next.dir[i];
	c->next.dir_len = w;
}

static rvf_code append_branch_state(commit *c, rvf_error *err)
{
	const rvf_view *b = c->base;
	cow_state cow = b->cow;
	if (c->freeze) {
		cow.frozen = true;
		cow.snapshot_epoch = c->next.epoch;
	}
	size_t len;
	unsigned char *p = cow_map_encode(&cow, &len);
	if (!p)
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	rvf_code rc = commit_append(c, RVF_SEG_COW_MAP, p, len, err);
	free(p);
	if (rc != RVF_OK)
		return rc;
	p = membership_encode(c->membership ? c->membership : b->cow.bitmap,
			      b->cow.capacity_bits, &len);
	if (!p)
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	rc = commit_append(c, RVF_SEG_MEMBERSHIP, p, len, err);
	free(p);
	return rc;
}

static void commit_release(commit *c)
{
	free(c->next.dir);
	if (c->deleted_owned)
		free(c->next.deleted);
	c->deleted_owned = false;
	free(c->membership);
	if (c->meta)
		meta_table_unref(c->meta);
	c->meta = NULL;
	c->next.dir = NULL;
	c->next.deleted = NULL;
	c->membership = NULL;
	if (c->base)
		rvf_view_release(c->base);
	c->base = NULL;
}

bool commit_tail_usable(commit *c, uint8_t type)
{
	rvf_store *s = c->s;
	return !c->durable && s->tail.open && s->tail.type == type &&
	       s->tail.offset + RVF_SEGMENT_HEADER_SIZE + s->tail.payload_length == s->end;
}

rvf_code commit_tail_save(commit *c, size_t prefix_len, rvf_error *err)
{
	rvf_store *s = c->s;
	size_t n = RVF_SEGMENT_HEADER_SIZE + prefix_len;
	if (n > sizeof(c->tail_prefix))
		return rvf_fail(err, RVF_E_INVALID_ARGUMENT, "tail prefix too long");
	/* The mapping shows what we wrote (it is larger than the file): no
	 * read per change of a bash loop. */
	if (s->map && s->tail.offset + n <= s->map->capacity)
		memcpy(c->tail_prefix, s->map->base + s->tail.offset, n);
	else if (io_pread_all(s->fd, c->tail_prefix, n, (off_t)s->tail.offset) != 0)
		return rvf_fail_io(err, errno, "cannot read %s", s->path);
	c->tail_grown = true;
	c->tail_offset = s->tail.offset;
	c->tail_prefix_len = n;
	return RVF_OK;
}

void commit_tail_grown(commit *c, uint64_t payload_length)
{
	for (uint32_t i = c->next.dir_len; i-- > 0;)
		if (c->next.dir[i].offset == c->s->tail.offset) {
			c->next.dir[i].payload_length = payload_length;
			break;
		}
}

/* commit_abort without unlocking write_mu. */
static void abort_locked(commit *c)
{
	rvf_store *s = c->s;
	if (c->tail_grown) {
		/* The tail's rows are cut off below: its header must say so
		 * again.  It stays as it was, but is grown no more. */
		if (io_pwrite_all(s->fd, c->tail_prefix, c->tail_prefix_len,
				  (off_t)c->tail_offset) != 0) {
			/* the old state is unreadable now; nothing lists it durably */
		}
		s->tail.open = false;
	}
	/* Nothing after the old manifest is referenced: drop what this
	 * commit wrote (a streaming ingest writes before s->end moves).  If
	 * the file cannot be cut back, leave those bytes alone and append
	 * after them: writing over them could leave this commit's manifest
	 * (written, but its fsync failed) after the next one, and a reader's
	 * backward scan would take it. */
	struct stat st;
	s->end = c->start;
	if (fstat(s->fd, &st) == 0 && (uint64_t)st.st_size != c->start &&
	    io_ftruncate(s->fd, (off_t)c->start) != 0 &&
	    (uint64_t)st.st_size > c->start)
		s->end = (uint64_t)st.st_size;
	memcpy(s->witness_prev, c->saved_prev, 32);
	s->witness_started = c->saved_started;
	s->next_seg_id = c->saved_next_id;
	commit_release(c);
}

void commit_abort(commit *c)
{
	rvf_store *s = c->s;
	abort_locked(c);
	pthread_mutex_unlock(&s->write_mu);
}

void commit_done(commit *c)
{
	rvf_store *s = c->s;
	commit_release(c);
	pthread_mutex_unlock(&s->write_mu);
}

/* Builds the view of the state a commit writes, from the bytes up to end
 * (the mapping grows first when needed), reusing the base view's rows;
 * `pending` (deferred commits) is the manifest no file holds yet. */
static rvf_code build_new_view(commit *c, manifest *pending,
			       uint64_t end, rvf_view **out, rvf_error *err)
{
	rvf_store *s = c->s;
	if (pending && !c->deleted_owned && pending->deleted_len) {
		/* The view keeps the list: give it its own. */
		uint64_t *d = malloc(pending->deleted_len * sizeof(uint64_t));
		if (!d)
			return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
		memcpy(d, pending->deleted, pending->deleted_len * sizeof(uint64_t));
		pending->deleted = d;
		c->deleted_owned = true;
	}
	if (end > s->map->capacity) {
		rvf_map *map = map_file(s->fd, end, err);
		if (!map)
			return err ? err->code : RVF_E_NO_MEMORY;
		map_unref(s->map);
		s->map = map;
	}
	meta_table *meta = c->meta ? c->meta : c->base->meta;
	/* A pending state's segments after the durable end are all ours,
	 * including a tail grown in place (its hash changed). */
	rvf_code rc = pending ?
		view_build_pending(s->map, end, s->path, c->base,
				   s->durable_end < c->start ? s->durable_end : c->start,
				   s->durable_end, meta, pending, c->runs, c->nruns,
				   out, err) :
		view_build_runs(s->map, end, s->path, c->base, c->start, meta,
				c->runs, c->nruns, out, err);
	if (pending) /* the view took (or freed) the arrays */
		c->deleted_owned = false;
	if (rc == RVF_OK)
		(*out)->info.read_only = s->read_only || s->frozen;
	return rc;
}

static rvf_code publish_new_view(commit *c, manifest *pending,
				 rvf_error *err)
{
	rvf_view *v;
	rvf_code rc = build_new_view(c, pending, c->s->end, &v, err);
	if (rc == RVF_OK)
		store_publish(c->s, v);
	return rc;
}

/* Most deferred changes between durable manifests: each deferred commit
 * indexes the directory, so this bounds its cost (and the manifest's
 * size) however long the commit interval. */
#define DEFERRED_MAX_CHANGES 4096

/* A deferred commit: the segments are appended (not fsynced); readers see
 * them at once through a view of the manifest that is not written yet.
 * A crash before the next durable manifest loses them all together. */
static rvf_code commit_defer(commit *c, rvf_commit_info *info,
			     rvf_error *err)
{
	rvf_store *s = c->s;
	rvf_code rc = publish_new_view(c, &c->next, err);
	if (rc != RVF_OK) {
		commit_abort(c);
		return rc;
	}
	/* The new state's directory lists them now. */
	s->npending = 0;
	s->dirty = true;
	s->txn_changes++;
	if (info) {
		info->epoch = c->next.epoch;
		info->bytes = s->end - c->start;
	}
	commit_release(c);
	if (s->txn_changes >= DEFERRED_MAX_CHANGES)
		rc = store_sync_locked(s, NULL, err);
	pthread_mutex_unlock(&s->write_mu);
	return rc;
}

/* The durable commit, write_mu held before and after. */
static rvf_code finish_locked(commit *c, rvf_commit_info *info, rvf_error *err)
{
	/* The commit point is the manifest's fsync; everything that can fail
	 * -- the data's fsync, memory, the new view -- happens before it, so
	 * a failure leaves nothing committed (the file is cut back) and
	 * nothing after it can fail: rvf.h's "on failure nothing is
	 * committed" holds. */
	rvf_store *s = c->s;
	rvf_code rc;
	rvf_view *v = NULL;
	dir_entry *pending = NULL;
	if (s->dirty) {
		rc = append_txn_witnesses(c, err);
		if (rc != RVF_OK)
			goto fail;
	}
	if (s->end != c->start && io_fsync(s->fd) != 0) {
		rc = rvf_fail_io(err, errno, "cannot fsync %s", s->path);
		goto fail;
	}
	if (c->base->is_branch && !c->detach) {
		rc = append_branch_state(c, err);
		if (rc != RVF_OK)
			goto fail;
	}
	size_t len;
	unsigned char *p = manifest_encode(&c->next, &len);
	pending = malloc(sizeof(dir_entry));
	if (!p || !pending) {
		free(p);
		rc = rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
		goto fail;
	}
	uint64_t moff = s->end, mid = s->next_seg_id;
	uint64_t end = moff + RVF_SEGMENT_HEADER_SIZE + len;
	/* The manifest does not list itself: write it without pushing. */
	unsigned char hdr[RVF_SEGMENT_HEADER_SIZE];
	uint8_t hash[16];
	rvf_content_hash(p, len, hash);
	segment_encode(hdr, RVF_SEG_MANIFEST, mid, len, hash);
	int bad = io_pwrite_all(s->fd, hdr, sizeof(hdr), (off_t)moff) ||
		  io_pwrite_all(s->fd, p, len, (off_t)(moff + sizeof(hdr)));
	int e = errno;
	free(p);
	if (bad) {
		rc = rvf_fail_io(err, e, "cannot write the manifest of %s", s->path);
		goto fail;
	}
	rc = build_new_view(c, NULL, end, &v, err);
	if (rc != RVF_OK)
		goto fail;
	if (io_fsync(s->fd) != 0) {
		rc = rvf_fail_io(err, errno, "cannot write the manifest of %s", s->path);
		goto fail;
	}
	/* Committed; nothing below can fail.  The next manifest lists this
	 * one (same session). */
	s->next_seg_id++;
	s->end = end;
	pending[0] = (dir_entry){ .seg_id = mid, .offset = moff,
				  .payload_length = len,
				  .type = RVF_SEG_MANIFEST };
	free(s->pending);
	s->pending = pending;
	s->npending = 1;
	if (info) {
		info->epoch = c->next.epoch;
		info->bytes = s->end - c->start;
	}
	s->durable_end = s->end;
	s->tail.open = false;
	s->dirty = false;
	s->txn_changes = 0;
	s->txn_ingested = s->txn_deleted = 0;
	store_publish(s, v);
	commit_release(c);
	return RVF_OK;
fail:
	if (v)
		rvf_view_release(v);
	free(pending);
	abort_locked(c);
	return rc;
}

rvf_code commit_finish(commit *c, rvf_commit_info *info, rvf_error *err)
{
	rvf_store *s = c->s;
	/* A branch child's membership or frozen flag lives only in the
	 * COW_MAP/MEMBERSHIP pair written with a durable manifest: such a
	 * change is made durable at once (deferring it lost it). */
	bool branch_state = c->base->is_branch && (c->membership || c->freeze);
	if (!c->durable && !branch_state)
		return commit_defer(c, info, err);
	rvf_code rc = finish_locked(c, info, err);
	pthread_mutex_unlock(&s->write_mu);
	return rc;
}

rvf_code store_sync_locked(rvf_store *s, rvf_commit_info *info,
			   rvf_error *err)
{
	if (!s->dirty)
		return RVF_OK;
	/* A commit of nothing new: the manifest of the state readers see. */
	commit c;
	memset(&c, 0, sizeof(c));
	c.s = s;
	c.base = rvf_store_view(s);
	c.start = s->end;
	c.durable = true;
	memcpy(c.saved_prev, s->witness_prev, 32);
	c.saved_started = s->witness_started;
	c.saved_next_id = s->next_seg_id;
	const manifest *bm = &c.base->man;
	c.next = *bm;
	c.next.dir = NULL;
	c.next.deleted = NULL;
	c.next.dir_len = 0;
	c.next.deleted_len = 0;
	rvf_code rc = grow_dir(&c, bm->dir_len + s->npending + 4, err);
	c.next.deleted = bm->deleted; /* shared, as in commit_begin */
	c.next.deleted_len = bm->deleted_len;
	if (rc != RVF_OK) {
		commit_release(&c);
		return rc;
	}
	if (bm->dir_len)
		memcpy(c.next.dir, bm->dir, bm->dir_len * sizeof(dir_entry));
	if (s->npending)
		memcpy(c.next.dir + bm->dir_len, s->pending,
		       s->npending * sizeof(dir_entry));
	c.next.dir_len = bm->dir_len + (uint32_t)s->npending;
	return finish_locked(&c, info, err);
}

rvf_code rvf_store_sync(rvf_store *s, rvf_commit_info *info, rvf_error *err)
{
	if (info)
		memset(info, 0, sizeof(*info));
	pthread_mutex_lock(&s->write_mu);
	rvf_code rc = store_sync_locked(s, info, err);
	pthread_mutex_unlock(&s->write_mu);
	return rc;
}

rvf_code rvf_store_set_deferred(rvf_store *s, bool deferred, rvf_error *err)
{
	pthread_mutex_lock(&s->write_mu);
	rvf_code rc = deferred ? RVF_OK : store_sync_locked(s, NULL, err);
	if (rc == RVF_OK)
		s->deferred = deferred && !s->read_only;
	pthread_mutex_unlock(&s->write_mu);
	return rc;
}

bool rvf_store_dirty(rvf_store *s)
{
	pthread_mutex_lock(&s->write_mu);
	bool d = s->dirty;
	pthread_mutex_unlock(&s->write_mu);
	return d;
}

bool rvf_store_writer_busy(rvf_store *s)
{
	if (pthread_mutex_trylock(&s->write_mu) != 0)
		return true;
	pthread_mutex_unlock(&s->write_mu);
	return false;
}
