/* rvffs.h - the daemon's state and the pieces of the tree.
 *
 * rvffs is a thin layer over librvf: every handler takes a view (an
 * immutable snapshot) of the store, answers from it, and releases it; every
 * change goes through one librvf commit, visible at once and durable at
 * the next fsync, unmount or commit interval (commit.c). */
#ifndef RVFFS_H
#define RVFFS_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <syslog.h>

#include "rvf.h"

/* Inode numbers, derived from what they name so they are stable across
 * mounts (the squashfuse way): fixed entries, then dynamic objects (ingest
 * staging files, query slots), then segments (from their file offset and
 * the mount's compaction generation), then vectors (from their id). */
enum {
	INO_ROOT = 1,
	INO_STATUS,
	INO_MANIFEST,
	INO_LINEAGE,
	INO_WITNESS,
	INO_ERRORS,
	INO_QUERY,
	INO_KERNEL,
	INO_EBPF,
	INO_SEGMENTS,
	INO_VECTORS,
	INO_INGEST,
	INO_QUERIES,
	INO_CONTROL,     /* after the others: inode numbers stay stable */
	INO_WASM,        /* bundles.c */
	INO_DASHBOARD,
	INO_FIXED_END,
};
/* wasm/NAME and dashboard/FILE: by index (bundles.c) */
#define BUNDLE_MAX_FILES (1u << 20)
#define INO_WASM_FILE (1ull << 24)
#define INO_DASH_FILE (1ull << 25)
#define INO_DYN_BASE (1ull << 32)
#define INO_BIGID_BASE (1ull << 61) /* vectors with ids >= 2^63 */
#define INO_SEG_BASE (1ull << 62)
#define INO_VEC_BASE (1ull << 63)
#define SEG_OFFSET_BITS 41

struct staged;
struct slot;

/* rvffs.conf [limits] (limits.c) */
typedef struct rvffs_limits {
	uint64_t request_max;   /* bytes of one request, per descriptor */
	uint64_t results_max;   /* bytes of the results of one batch */
	uint64_t staged_max;    /* bytes one user stages in ingest/ */
	uint64_t query_user_max; /* query-file bytes one user holds, all fds */
	unsigned slots_max;     /* query slots per user */
} rvffs_limits;

typedef struct rvffs {
	rvf_store *store;
	const char *store_path;
	bool read_only;
	bool foreground;
	unsigned search_threads;
	uint32_t default_k;
	rvf_accel_mode codes;       /* search codes: auto or off */
	uint64_t codes_max_bytes;   /* 0 = librvf's default */
	rvffs_limits lim;
	struct fuse_session *se;
	struct timespec mount_time;
	uid_t uid;                 /* the daemon's: owner of every node */
	gid_t gid;

	pthread_mutex_t mu;        /* guards everything below */
	uint64_t next_dyn;         /* next dynamic inode */
	struct staged *staged;     /* ingest/ entries */
	struct slot *slots;        /* queries/ entries */
	char *errors;              /* recent error lines, newest last */
	size_t errors_len;
	uint64_t seg_gen;          /* librvf's file generation of the current view */
	uint64_t *bigids;          /* ids >= 2^63, index = ino - INO_BIGID_BASE */
	size_t nbigids, bigcap;
	size_t *bighash;           /* id -> index + 1 (inode.c) */
	size_t bighash_cap;
	struct timespec last_refresh;
	struct timespec mtime;     /* the store's mtime for (epoch, size) below */
	uint32_t mtime_epoch;
	uint64_t mtime_size;
	bool mtime_valid;
	char *heap_text;           /* status without its heap line (heap.c) */
	size_t heap_text_len;
	unsigned long long heap_shown; /* heap_bytes shown with that text */
	pthread_t inval_thread;    /* sends kernel cache invalidations */
	pthread_cond_t inval_cond;
	bool inval_pending, inval_stop;
	uint64_t inval_asked, inval_sent; /* passes requested / completed */
	rvf_view *inval_shown;     /* the state the kernel's names come from */
	bool inval_urgent;         /* a waiter: no coalescing delay */
	bool inval_idle;           /* the invalidator waits for work (not in its gap) */
	/* ids removed by our own unlink: the kernel dropped those names
	 * itself, so the next pass need not tell it (fs_unlinked_by_us) */
	uint64_t self_gone[64];
	size_t nself_gone;
	atomic_bool segs_shown;    /* a segment inode was handed to the kernel */
	struct rewrite *writers;   /* vector/kernel/eBPF files being written (rewrite.c) */
	rvf_view *sizes_view;      /* the view whose vector text lengths... */
	uint32_t *sizes;           /* ...are kept here (text.c) */

	/* commit.c: durable commits every commit_s seconds (-o sync: each
	 * change), automatic compaction */
	unsigned commit_s;
	bool sync_mode;
	rvf_compact_policy compact;
	pthread_t commit_thread;
	pthread_mutex_t commit_mu;
	pthread_cond_t commit_cond;
	bool commit_stop, commit_running;
	bool children_warned;      /* first change seen (fs_invalidate, under mu) */
	bool children_held;        /* children.c: automatic compaction held off (logged) */
} rvffs;

/* The daemon state of a request. */
static inline rvffs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* children.c: branch children beside the store */
size_t fs_children_count(rvffs *fs);
/* The mount's first change (fs_invalidate): warn about children. */
void fs_children_written(rvffs *fs);
/* -EBUSY (logged, naming them and `what`) when children would lose their
 * parent state to a compaction; else 0. */
int fs_children_block(rvffs *fs, const char *what);

/* log.c */
void fs_log(rvffs *fs, int priority, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Logs an error and keeps it for the `errors` file. */
void fs_error(rvffs *fs, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* errno for a librvf failure, logging it. */
int fs_rvf_errno(rvffs *fs, const char *what, const rvf_error *err);

/* view.c: the current snapshot (refreshing a read-only mount now and then). */
rvf_view *fs_view(rvffs *fs);
/* After a commit: the kernel forgets every name and directory content the
 * commit changed (every segment name when librvf's file generation moved,
 * removed vectors, ...).  With `wait` (only from a request that holds no
 * directory lock, e.g. a write to `control`) it returns once the kernel
 * was told (at most a second); else the notices follow within a few
 * milliseconds (a burst of commits shares one pass). */
void fs_invalidate(rvffs *fs, bool wait);
/* The same, without the coalescing delay: for a change of what the kernel
 * may have cached under an existing name (a vector rewritten). */
void fs_invalidate_now(rvffs *fs);
/* Vector `id` was removed by an unlink through the mount. */
void fs_unlinked_by_us(rvffs *fs, uint64_t id);
/* 0, or -EIO when the store file shrank under the mount (a SIGBUS was
 * absorbed, or it is shorter than the view): what was read from it cannot
 * be trusted.  Logged (and put in `errors`) once. */
int fs_store_check(rvffs *fs);
int fs_invalidator_start(rvffs *fs);
void fs_invalidator_stop(rvffs *fs);

/* loop.c: serves requests until unmounted (0 or -errno); up to
 * max_threads workers take what the reading thread does not answer. */
int fs_loop(rvffs *fs, unsigned max_threads);

/* commit.c */
/* Makes every change so far durable; 0 or -errno (logged). */
int fs_sync(rvffs *fs);
int fs_committer_start(rvffs *fs);
/* Stops the thread, then commits and (if due) compacts: at unmount. */
void fs_committer_stop(rvffs *fs);

/* inode.c: inode numbers */
uint64_t seg_ino(rvffs *fs, uint64_t offset);
uint64_t vec_ino(rvffs *fs, uint64_t id);
/* Vector id of a vector inode; false if unknown. */
bool vec_id_of(rvffs *fs, uint64_t ino, uint64_t *id);
/* node.c: fills st for ino from view v (by its kind, node.h); false when
 * it does not exist. */
bool fs_stat(rvffs *fs, rvf_view *v, uint64_t ino, struct stat *st);

/* access.c: the caller of a request against the owner and mode shown
 * (the daemon's own checks, with or without default_permissions). */
/* 0 or -EACCES for R_OK / W_OK / X_OK on a node with attributes st. */
int access_check(fuse_req_t req, const struct stat *st, int mask);
/* The same for ino in view v (its attributes into st when not NULL);
 * -ENOENT when it does not exist. */
int access_ino(fuse_req_t req, rvffs *fs, rvf_view *v, uint64_t ino,
	       int mask, struct stat *st);
/* May the caller add, remove or rename entries of directory dir? */
int access_dir(fuse_req_t req, rvffs *fs, uint64_t dir);
/* The R_OK/W_OK mask an open with these flags needs. */
int access_open_mask(int flags);
/* The owner or root: may change attributes (chmod, utimes). */
bool access_owner(fuse_req_t req, const struct stat *st);
/* The mode of a file in ingest/: never writable by group or others, as
 * its bytes become the store's. */
mode_t staged_mode(mode_t mode);
void op_access(fuse_req_t req, fuse_ino_t ino, int mask);

/* limits.c: refusals say which rvffs.conf limit to raise (in `errors`). */
void limits_init(rvffs *fs, uint64_t request_max, uint64_t results_max,
		 uint64_t staged_max, unsigned slots_max, uint64_t query_user_max);
/* The query-file bytes one descriptor holds for uid go from *held to
 * `now`: growing past query_user_max (over all the user's descriptors)
 * is -ENOMEM (logged) when `may_fail`; else it is counted anyway. */
int limits_user_hold(rvffs *fs, uid_t uid, uint64_t *held, uint64_t now,
		     bool may_fail);
/* A request (query file, slot request) reaching `end` bytes: 0 or -EFBIG. */
int limits_request(rvffs *fs, const char *what, uint64_t end);
/* A batch of `hits` results: 0, or -E2BIG with the reason in *msg. */
int limits_results(rvffs *fs, uint64_t hits, char **msg);
/* Results held for reading on one descriptor reaching `bytes`: 0 or
 * -E2BIG (logged). */
int limits_held(rvffs *fs, uint64_t bytes);
/* Staged file s growing to `end` bytes (counted for its owner): 0 or
 * -EFBIG.  Takes fs->mu. */
int limits_stage(rvffs *fs, struct staged *s, uint64_t end);
/* s shrank to size (holds fs->mu). */
void limits_unstage(struct staged *s, uint64_t size);
/* May uid make another query slot? (holds fs->mu) */
bool limits_slot_allowed(rvffs *fs, uid_t uid);

/* image.c: the decompressed kernel, one copy shared by its readers. */
struct image;
/* A counted reference to the kernel of view v: 0 or -errno (logged). */
int image_kernel(rvffs *fs, rvf_view *v, struct image **out);
const unsigned char *image_bytes(const struct image *im, size_t *len);
const char *image_cmdline(const struct image *im); /* or NULL */
void image_put(struct image *im);

/* bundles.c: wasm, wasm/NAME, dashboard/, dashboard/FILE */
bool bundle_node(uint64_t ino);
/* Mode and size of a bundle node; false when it does not exist. */
bool bundle_stat(rvf_view *v, uint64_t ino, mode_t *mode, uint64_t *size);
uint64_t bundle_lookup(rvf_view *v, uint64_t parent, const char *name);
void bundle_list(rvf_view *v, uint64_t dir,
		 void (*add)(void *ctx, const char *name, uint64_t ino), void *ctx);
/* The file's bytes (malloc'd) for an open; -errno on failure. */
int bundle_read(rvffs *fs, rvf_view *v, uint64_t ino, char **text, size_t *len);

/* text.c: generated files, complete at open. */
char *text_status(rvffs *fs, rvf_view *v, size_t *len);
/* heap.c: bytes the daemon has allocated and not freed, as status shows
 * them after `text` (the rest of the status) */
unsigned long long fs_heap_bytes_shown(rvffs *fs, const char *text, size_t len);
char *text_manifest(rvf_view *v, size_t *len);
char *text_lineage(rvf_view *v, size_t *len);
char *text_witness(rvf_view *v, size_t *len);
/* Text of a vector file: components on one line. */
char *text_vector(rvf_view *v, size_t index, size_t *len);
/* Length of a vector's text (cached per snapshot). */
size_t text_vector_size(rvffs *fs, rvf_view *v, size_t index);
/* Sizes the vectors at indexes first..first+n-1 at once, on all CPUs (a
 * listing's batch), so that text_vector_size finds them. */
void text_vector_sizes(rvffs *fs, rvf_view *v, size_t first, size_t n);
void text_sizes_free(rvffs *fs);

/* segfiles.c */
/* Name of segment index i of v ("0001-vec"): a rank of up to 20 digits,
 * "-" and a type label of up to 23 characters (segfiles.c). */
#define SEG_NAME_MAX 48
void seg_name(rvf_view *v, size_t i, char out[SEG_NAME_MAX]);
/* Segment index for a name, or -1. */
long seg_find(rvf_view *v, const char *name);
/* Segment index for an inode, or -1. */
long seg_find_ino(rvffs *fs, rvf_view *v, uint64_t ino);
/* Value of a segment xattr into buf; returns length or -errno. */
long seg_xattr(rvf_view *v, size_t i, const char *name, char *buf, size_t size);
extern const char *const seg_xattr_names[];
struct timespec seg_mtime(rvf_view *v, size_t i);

/* query.c */
/* Runs the request text; returns the result text (malloc'd) and 0, or
 * -EINVAL with *out an "error: ..." text. */
int query_run(rvffs *fs, rvf_view *v, const char *req, size_t len,
	      char **out, size_t *out_len);

/* results.c: the query file's results, per reader. */
typedef struct reader_id {
	uid_t uid;
	pid_t tgid, ppid, sid;  /* sid may be 0: a leader outside our pid namespace */
	bool known;             /* false: /proc could not tell (matched by uid) */
} reader_id;
void reader_of(fuse_req_t req, reader_id *c);
/* The process (thread group) of the thread that made a request. */
pid_t caller_tgid(fuse_req_t req);
/* Whether req comes from the process of the thread `opener`. */
bool caller_same_process(fuse_req_t req, pid_t opener);
/* Keeps TEXT as the newest result written by c. */
void results_put(rvffs *fs, const reader_id *c, const char *text, size_t len);
/* A copy of the result reader r may see (NULL, *len 0: none). */
char *results_get(rvffs *fs, const reader_id *r, size_t *len);
/* The length and time of that result; false when there is none. */
bool results_stat(rvffs *fs, const reader_id *r, size_t *len, struct timespec *when);
void results_free(rvffs *fs);

/* staging.c: files in ingest/ */
/* A user.rvf.meta.* xattr set on an rsync temporary of vectors/ before it
 * becomes a vector (committed with it at the rename). */
typedef struct staged_xattr {
	char *name;             /* the field name, after user.rvf.meta. */
	char *value;
	size_t len;
} staged_xattr;

typedef struct ingest_stream ingest_stream;

typedef struct staged {
	struct staged *next;
	uint64_t ino;
	char *name;
	int fd;                 /* O_TMPFILE holding the bytes */
	uint64_t size;
	int opens;
	bool dirty;             /* written since the last commit attempt */
	bool gone;              /* left ingest/: freed at the last release */
	uint64_t checked;       /* bytes [0, checked) are complete, good lines */
	uint64_t next_line;     /* line number at `checked` */
	bool unchecked;         /* written out of order: checked at close only */
	int refused;            /* 0, or the errno a write failed with (a bad
				 * line: EINVAL): never committed; later
				 * writes and the close fail with it */
	uint64_t parent;        /* INO_INGEST, or INO_VECTORS for a temporary
				 * ".ID.XXXXXX" (rsync) committed by its rename */
	struct timespec mtime;
	mode_t mode;
	uid_t uid;              /* who made it (its owner) */
	gid_t gid;
	uint64_t charged;       /* bytes counted against staged_max */
	staged_xattr *xattrs;   /* parent INO_VECTORS: pending metadata */
	size_t nxattrs;
	ingest_stream *stream;  /* a .fvecs/.f32 file going into the store
				 * as written (stream_ingest.c), or NULL */
} staged;

void staged_xattrs_free(staged_xattr *x, size_t n);

staged *staged_find_ino(rvffs *fs, uint64_t ino);
staged *staged_find_name(rvffs *fs, const char *name); /* in ingest/ */
staged *staged_find_in(rvffs *fs, uint64_t parent, const char *name);
int staged_create(rvffs *fs, const char *name, mode_t mode, staged **out);
/* Parses and commits the staged file; on success it leaves ingest/.
 * Returns 0 or -errno (the reason is logged and in `errors`). */
int staged_commit(rvffs *fs, staged *s);
/* After a write of [off, off+len): checks the lines it completed, for
 * text formats written in order.  0, or -EINVAL (reason in `errors`). */
int staged_check(rvffs *fs, staged *s, uint64_t off, size_t len);
/* stream_ingest.c: a write of s that streams (*streamed true: the bytes
 * went to the store, not to s->fd) or not (nothing done): 0 or -errno,
 * or STREAM_ANSWERED when it answered req itself (its records checked,
 * staged_streamed called) before it copied the rows. */
#define STREAM_ANSWERED 1
int stream_write(rvffs *fs, staged *s, fuse_req_t req, const char *buf, size_t size,
		 off_t off, bool *streamed);
/* node_staged.c: a streamed write of [off, off+size) happened (rc: its
 * result, 0 or -errno). */
void staged_streamed(rvffs *fs, staged *s, off_t off, size_t size, int rc);
bool stream_active(rvffs *fs, staged *s);
/* Commits s's stream (it ends): 0 or -errno, the reason logged. */
int stream_commit(rvffs *fs, staged *s);
/* Drops s's stream, if any: nothing of it is committed. */
void stream_drop(rvffs *fs, staged *s);
/* True for an ingest/ name whose bytes stream into the store: its
 * opener's writes bypass the page cache (direct_io). */
bool stream_direct(const char *name);
/* True when a write of size bytes at off continues s's stream without
 * blocking (staged_write_is_quick). */
bool stream_write_is_quick(rvffs *fs, staged *s, uint64_t off, size_t size);
/* Takes s out of ingest/; it is freed when no handle uses it. */
void staged_remove(rvffs *fs, staged *s);
void staged_put(rvffs *fs, staged *s);
/* True when NAME is committed at close (not hidden, known extension). */
bool staged_commits_at_close(const char *name);

/* slots.c: queries/NAME */
typedef struct slot {
	struct slot *next;
	uint64_t ino;           /* the directory; request = ino+1, result = ino+2 */
	char *name;
	char *request;
	size_t request_len;
	char *result;
	size_t result_len;
	struct timespec mtime;
	uid_t uid;              /* who made it: only it (and root) use it */
	gid_t gid;
} slot;

slot *slot_find_ino(rvffs *fs, uint64_t ino);
slot *slot_find_name(rvffs *fs, const char *name);
int slot_create(rvffs *fs, const char *name, uid_t uid, gid_t gid, slot **out);
void slot_remove(rvffs *fs, slot *q);
/* Runs the slot's request into its result (caller holds no lock). */
void slot_run(rvffs *fs, uint64_t slot_ino);

/* node_vector.c: parses the text of one vector and commits it as `id`;
 * 0 or -errno (the reason in `errors`). */
int vector_commit_text(rvffs *fs, uint64_t id, const char *buf, size_t len);
/* The same with the vector's metadata replaced by these fields (xattr
 * text form, rvf_value_parse). */
int vector_commit_text_meta(rvffs *fs, uint64_t id, const char *buf, size_t len,
			    const staged_xattr *x, size_t nx);

/* control.c: opening `control` for writing checks and keeps the opener;
 * one command per write, judged as that opener; replies to req. */
struct caller;
int control_open(fuse_req_t req, struct caller **opener, struct fuse_file_info *fi);
void control_write(fuse_req_t req, struct caller *opener, const char *buf, size_t size);

/* rewrite.c: size being written to ino, or -1 when nobody writes it. */
long long writer_size(rvffs *fs, uint64_t ino);

/* At exit: frees the handles (files and directories) the kernel never
 * released.  A RELEASE still in flight when the mount goes away is dropped
 * by the kernel, so some may be left; nothing is committed for them. */
void fs_handles_free(rvffs *fs);
void fs_listings_free(void);

/* Timeouts handed to the kernel for a node (node.c). */
double fs_attr_timeout(rvffs *fs, uint64_t ino);

/* ops*.c handlers */
void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		struct fuse_file_info *fi);
void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi);
void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi);
void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode);
void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
	       mode_t mode, struct fuse_file_info *fi);
void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
	     struct fuse_file_info *fi);
void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
	      off_t off, struct fuse_file_info *fi);
void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
	      struct fuse_file_info *fi);
void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
		 struct fuse_file_info *fi);
void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
	       fuse_ino_t newparent, const char *newname, unsigned int flags);
void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		 const char *value, size_t size, int flags);
void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);
void op_statfs(fuse_req_t req, fuse_ino_t ino);

#endif
