/* store.h - the store and view structures shared by the engine's files. */
#ifndef RVF_STORE_H
#define RVF_STORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "lock.h"
#include "manifest.h"
#include "meta.h"
#include "rvf.h"
#include "search.h"

/* A read-only mapping of a store file, shared by the views that read it.
 * It is made larger than the file so that appends need no new mapping
 * (pages past EOF are never touched). */
typedef struct rvf_map {
	atomic_int refs;
	unsigned char *base;
	size_t capacity;
	dev_t dev;
	ino_t ino;
} rvf_map;

/* VEC segments whose rows the writer knows without reading them back:
 * `count` rows of ids first_id, first_id + 1, ... (a stream's). */
typedef struct row_run {
	uint64_t offset;              /* of the segment's header */
	uint64_t first_id;
	uint32_t count;
} row_run;

/* Branch state decoded from the last COW_MAP and MEMBERSHIP entries. */
typedef struct cow_state {
	uint32_t cluster_size;
	uint32_t vectors_per_cluster;
	uint8_t base_file_id[16];
	uint8_t base_file_hash[32];
	uint32_t bytes_per_vector;
	bool frozen;
	uint32_t snapshot_epoch;
	char *parent_path;             /* as stored */
	const unsigned char *map_bytes; /* cluster map, in the mapping */
	uint32_t map_len;
	uint64_t capacity_bits;        /* membership vector_count */
	const unsigned char *bitmap;   /* in the mapping, capacity_bits bits */
} cow_state;

struct rvf_view {
	atomic_int refs;
	rvf_map *map;
	rvf_info info;
	manifest man;                 /* the newest manifest (directory, deletions) */
	rvf_segment *dir;             /* decoded headers, directory order */
	rvf_segment *sorted;          /* dir + the manifest itself, by offset */
	size_t nsorted;

	search_row *own;              /* own rows, ascending id, latest data */
	float **converted;            /* f32 copies of non-f32 VEC rows (dtype.c) */
	size_t nconverted;
	size_t nown;
	rvf_view *own_owner;          /* the view whose `own` array this one
				       * shares (held), or NULL: ours */
	/* Of an array we own: its capacity, and how many rows of it the
	 * newest view sharing it uses.  A view that only adds ids above
	 * every own id appends them in place when it is built on that
	 * newest view (older views never read past their nown), so a bash
	 * loop's write costs its row, not a copy of every row. */
	size_t own_cap;
	atomic_size_t own_used;
	uint64_t *deleted;            /* sorted, unique */
	size_t ndeleted;
	bool deleted_is_man;          /* deleted aliases man.deleted */
	search_row *visible;          /* what queries see, ascending id (NULL
				       * in an overlay: use view_rows) */
	size_t nvisible;
	bool visible_is_own;          /* visible aliases own (no deletes, no parent) */
	/* An overlay: a view that only deleted ids since `vis_base` (held,
	 * whose `visible` is an array) shows the base's rows minus those at
	 * hide_pos (ascending) instead of copying them, so a delete costs
	 * what it deletes.  vis_rows is its own copy, made the first time a
	 * search needs one array (view_rows). */
	rvf_view *vis_base;
	size_t *hide_pos;
	size_t nhide;
	pthread_mutex_t vis_mu;
	search_row *vis_rows;
	bool own_has_max;
	uint64_t own_max;             /* largest own row id */

	long kernel_index;            /* into dir, or -1 */
	long ebpf_index;
	rvf_witness *witness;
	size_t nwitness;
	meta_table *meta;

	/* 8-bit codes of the visible rows for faster exact search, built
	 * on demand or inherited from the previous view (view_accel.c) */
	pthread_mutex_t accel_mu;
	int accel_state;
	struct accel_index *accel;
	const char *accel_why;
	rvf_view *accel_from;         /* an earlier view whose codes are being
				       * built: carried here once ready */

	/* The commit's row runs (see row_run), sorted by offset: which ids
	 * its new VEC segments hold, for rvf_view_changed_ids. */
	row_run *runs;
	size_t nruns;

	bool is_branch;
	cow_state cow;
	rvf_view *parent;             /* branch parent (read-only) */
	char *parent_resolved;
};

/* A segment the writer appended that no manifest lists yet (the witness
 * compaction writes after its manifest). */
struct rvf_store {
	char *path;
	int fd;
	bool read_only;
	bool frozen;
	rvf_lock lock;
	pthread_mutex_t write_mu;     /* one writer at a time */
	pthread_mutex_t view_mu;      /* guards `current` */
	rvf_view *current;
	rvf_map *map;                 /* mapping new views use */

	/* writer state (under write_mu) */
	uint64_t next_seg_id;
	uint64_t end;                 /* committed end of file: appends go here */
	uint64_t generation;          /* rvf_info.generation of new views */
	uint8_t witness_prev[32];     /* H(previous witness payload) */
	bool witness_started;         /* a witness was written this session */
	atomic_int streams;           /* open rvf_streams (stream.c): their
				       * unlisted segments need this file */
	bool have_stream_ids;         /* while streams are open: */
	uint64_t stream_next_id;      /* the next id none of them reserved
				       * (stream.c reserves a segment's ids
				       * at a time; ingest.c's auto ids
				       * start above them) */
	dir_entry *pending;           /* appended, listed by the next manifest */
	size_t npending;

	/* Deferred durability (rvf_store_set_deferred): mutations append
	 * their segments and publish a view of an in-memory manifest; one
	 * manifest makes them durable together at rvf_store_sync. */
	bool deferred;
	bool dirty;                   /* published changes not yet durable */
	uint32_t txn_changes;         /* mutations since the last durable manifest */
	uint64_t txn_ingested;        /* rows ingested since then (for its witness) */
	uint64_t txn_deleted;         /* ids deleted since then */
	uint64_t durable_end;         /* bytes before it were there at the last
				       * durable manifest; after it, ours */
	/* The newest VEC or JOURNAL segment of the deferred changes: while it
	 * ends the file, the next deferred change of its kind grows it in
	 * place (header rewritten, rows appended) instead of adding a
	 * directory entry, so a bash loop of small changes keeps the
	 * directory short.  No durable manifest lists it yet. */
	struct {
		bool open;
		uint8_t type;
		uint64_t offset;          /* of its header */
		uint64_t seg_id;
		uint64_t payload_length;
		uint32_t count;           /* rows (VEC) or entries (JOURNAL) */
		uint32_t crc;             /* CRC of the payload after its prefix */
	} tail;
};

/* The stores whose opening led to the one being opened, nearest first:
 * a branch child names its parent, which may name its own... A parent that
 * is one of them is a cycle, refused before it is followed. */
typedef struct view_chain {
	dev_t dev;
	ino_t ino;
	unsigned depth;                 /* 1 for the child opened first */
	const struct view_chain *child; /* the store that named this one */
} view_chain;

/* view_accel.c */
struct accel_index *view_accel(rvf_view *v, const rvf_search_options *opt,
			       bool *start_build);
void view_accel_start(rvf_view *v);
/* Gives v (about to be published) the codes of old, the view it replaces,
 * updated for the rows the commit added and removed. */
void view_accel_inherit(rvf_view *v, rvf_view *old);
void view_accel_free(rvf_view *v);

/* view.c */
rvf_map *map_file(int fd, uint64_t size, rvf_error *err);
rvf_map *map_ref(rvf_map *m);
void map_unref(rvf_map *m);
/* Builds a view of the committed file state (size bytes of map). `prev`
 * (may be NULL) lets rows of VEC segments it already indexed be reused:
 * only directory entries past prev's are read.  `trusted_from` = offset
 * from which segments were just written by us (hashes not re-checked).
 * `meta` (may be NULL: replay the META segments) is the metadata table of
 * the new state, when the writer already has it.  `chain` is NULL, or for
 * a branch parent the children that led to it. */
rvf_code view_build(rvf_map *map, uint64_t size, const char *path,
		    const rvf_view *prev, uint64_t trusted_from,
		    const view_chain *chain, meta_table *meta, rvf_view **out,
		    rvf_error *err);
/* The same for a state no manifest on disk describes yet (a deferred
 * commit): `pending` is the manifest it would write; the view takes its
 * arrays (they are NULL afterwards, whatever the outcome). */
rvf_code view_build_pending(rvf_map *map, uint64_t size, const char *path,
			    const rvf_view *prev, uint64_t trusted_from,
			    uint64_t pending_from, meta_table *meta,
			    manifest *pending, const row_run *runs, size_t nruns,
			    rvf_view **out, rvf_error *err);
/* view_build of a commit's durable state, with its row runs (may be
 * NULL): their rows are indexed without reading the mapping. */
rvf_code view_build_runs(rvf_map *map, uint64_t size, const char *path,
			 const rvf_view *prev, uint64_t trusted_from,
			 meta_table *meta, const row_run *runs, size_t nruns,
			 rvf_view **out, rvf_error *err);
void view_free(rvf_view *v);
/* Visible rows copied into new arrays so far (for the tests: a delete
 * should cost what it deletes, not a copy of every row). */
extern atomic_size_t view_rows_copied;
/* Own rows copied from the previous view into a new array (the same for
 * writes: a bash loop's write should cost its row). */
extern atomic_size_t view_own_rows_copied;
/* The visible rows as one array (v->nvisible of them); NULL when an
 * overlay's copy cannot be made (out of memory). */
const search_row *view_rows(rvf_view *v);
/* True when id is in v's (sorted) deletion list. */
bool view_is_deleted(const rvf_view *v, uint64_t id);
/* Own row with this id (deleted or not), or NULL. */
const search_row *view_own_row(const rvf_view *v, uint64_t id);
/* The metadata table that holds id's record: a branch child's own, or
 * for an inherited row without a record of the child's, the parent's. */
const meta_table *view_meta_of(const rvf_view *v, uint64_t id);
/* Number of distinct own ids (incl. deleted): the manifest total. */
uint64_t view_total_rows(const rvf_view *v);

/* open.c */
void store_publish(rvf_store *s, rvf_view *v);
/* Writes MANIFEST#1 of a new, empty file open at s->fd and its view. */
rvf_code store_write_first_manifest(rvf_store *s, const manifest *m,
				    rvf_error *err);
rvf_store *store_alloc(const char *path);
void store_discard(rvf_store *s);
/* Opens the branch parent (at path) of the stores in chain read-only;
 * refuses a parent that is one of them (a cycle).  With `as_of` (a
 * parent_hash), the view is of the prefix of the file whose tail hash it
 * is, when the whole file's is not and such a prefix exists (the parent
 * grew since the branch was made); else of the whole file.  *size_now
 * (may be NULL) gets the file's size. */
rvf_code open_view_readonly(const char *path, const view_chain *chain,
			    const uint8_t *as_of, rvf_view **out,
			    uint64_t *size_now, rvf_error *err);

/* write.c: appending segments and committing manifests (under write_mu). */
typedef struct commit {
	rvf_store *s;
	rvf_view *base;               /* view the commit starts from */
	uint64_t start;               /* s->end at begin: abort truncates here */
	size_t dir_cap;               /* allocated entries of next.dir */
	manifest next;                /* new manifest being prepared */
	bool deleted_owned;           /* next.deleted is ours (else the base
				       * view's list, shared until changed) */
	uint8_t saved_prev[32];       /* witness chain state, for abort */
	bool saved_started;
	uint64_t saved_next_id;
	unsigned char *membership;    /* branch child: bitmap to write, or NULL = base's */
	bool freeze;                  /* branch child: record frozen in COW_MAP */
	bool detach;                  /* branch child: write no branch state (detach.c) */
	meta_table *meta;             /* metadata after the commit; NULL = base's */
	bool durable;                 /* write the manifest now (else deferred) */
	/* a grown tail segment: its prefix as it was, restored on abort */
	bool tail_grown;
	uint64_t tail_offset;
	unsigned char tail_prefix[RVF_SEGMENT_HEADER_SIZE + 16];
	size_t tail_prefix_len;
	/* rows the commit lists that its writer knows (stream.c): the new
	 * view indexes them without reading them back */
	const row_run *runs;
	size_t nruns;
} commit;

rvf_code commit_begin(rvf_store *s, commit *c, rvf_error *err);
/* The commit an ingest writes into (detach.c adds to it). */
commit *ingest_commit(rvf_ingest *t);
/* Appends one whole segment (header + payload) at the end. */
rvf_code commit_append(commit *c, uint8_t type, const void *payload,
		       size_t len, rvf_error *err);
/* Appends a witness with `action`, chaining to the session's previous. */
rvf_code commit_witness(commit *c, uint8_t wtype, const char *action,
			rvf_error *err);
/* The witness of an ingest (wtype 1, "ingest") or delete (wtype 0,
 * "delete") of `count` rows: written now by a durable commit, else counted
 * and written by the sync that makes it durable. */
rvf_code commit_record(commit *c, uint8_t wtype, const char *kind,
		       uint64_t count, rvf_error *err);
/* Makes the store's deferred changes durable (caller holds write_mu). */
rvf_code store_sync_locked(rvf_store *s, rvf_commit_info *info,
			   rvf_error *err);
/* The deferred tail segment of `type` the commit may grow, or false. */
bool commit_tail_usable(commit *c, uint8_t type);
/* Before rewriting the tail's header: saves it for abort. */
rvf_code commit_tail_save(commit *c, size_t prefix_len, rvf_error *err);
/* The tail grew to payload_length: its entry in the new D follows. */
void commit_tail_grown(commit *c, uint64_t payload_length);
/* Records a segment written by the caller at `offset` in the new D. */
rvf_code commit_push_entry(commit *c, uint8_t type, uint64_t seg_id,
			   uint64_t offset, uint64_t len, rvf_error *err);
/* fsync data, append branch state + manifest (epoch as set in c->next),
 * fsync, publish the new view.  On failure truncates back. */
rvf_code commit_finish(commit *c, rvf_commit_info *info, rvf_error *err);
void commit_abort(commit *c);
/* Ends a commit whose work is already durable: frees it, unlocks. */
void commit_done(commit *c);
/* Drops directory entries of `type` from the new manifest's directory. */
void commit_drop_type(commit *c, uint8_t type);
/* Checks the store can be written. */
rvf_code store_check_writable(rvf_store *s, rvf_error *err);
uint64_t now_ns_wall(void);

/* parent_state.c: the parent as it was when a branch was made. */
/* H(last min(64 KiB, size) bytes): a child's parent_hash (§4.2). */
void parent_tail_hash(const unsigned char *base, uint64_t size, uint8_t out[32]);
/* The longest prefix ending a commit whose tail hash is `want`. */
bool parent_prefix_find(const unsigned char *base, uint64_t size,
			const uint8_t want[32], uint64_t *len);

/* lineage.c: branch state payloads. */
unsigned char *cow_map_encode(const cow_state *c, size_t *len);
unsigned char *membership_encode(const unsigned char *bitmap,
				 uint64_t capacity_bits, size_t *len);

#endif
