/* node.h - the kinds of node in the tree and their operations.
 *
 * Every inode belongs to one kind (node_of); each kind lives in its own
 * file (node_KIND.c) with one ops table saying how its nodes are stat'ed,
 * opened, read, written, flushed and released, what their xattrs are and,
 * for a directory, what its entries are.  The FUSE handlers (ops_file.c,
 * ops_dir.c, xattr.c) find the kind and call through its table; a missing
 * entry means the kind does not do that (each handler says which errno). */
#ifndef RVFFS_NODE_H
#define RVFFS_NODE_H

#include <fcntl.h>
#include <stdio.h>

#include "rvffs.h"

struct node_ops;

/* An open file (fi->fh): what every kind has.  A kind with more state
 * embeds this as the first member of its own handle (node_ops.handle_size)
 * and casts. */
typedef struct handle {
	const struct node_ops *ops;
	uint64_t ino;
	char *text;             /* what reads return, taken at open (or NULL) */
	size_t len;
	bool gated;             /* only the opener's own close commits: a
				 * child holding a copy does not (op_flush) */
	pid_t owner;            /* the thread that opened it for writing
				 * (its process's close commits) */
	struct handle *reg_prev, *reg_next; /* every open handle (node.c) */
} handle;

/* Adds a directory entry to a listing being built at opendir. */
typedef void (*node_add_fn)(void *ctx, const char *name, uint64_t ino);

typedef struct node_ops {
	const char *kind;       /* for the reader of a debugger */
	size_t handle_size;     /* the kind's handle; 0: a plain handle */
	double attr_timeout;    /* how long the kernel may keep attributes */
	bool creatable;         /* may be opened for writing while missing
				 * (created, or removed since the lookup) */
	bool store_free;        /* its content does not come from the store:
				 * readable when the store shrank (errors) */
	int rename_errno;       /* a rename into or out of this directory
				 * from another one (0: EPERM) */

	/* Attributes of ino in view v; false when it does not exist. */
	bool (*stat)(rvffs *fs, rvf_view *v, uint64_t ino, struct stat *st);
	/* Attributes that depend on who asks, applied to stat's answer for
	 * a lookup or getattr (the query file: the caller's own results). */
	void (*caller_stat)(fuse_req_t req, rvffs *fs, struct stat *st);

	/* Files.  open fills h (h->ops and h->ino are set); 0 or -errno,
	 * NULL: -ENOENT.  read replies itself.  write returns the bytes
	 * written or -errno (NULL: -EBADF), or NODE_REPLIED.  flush commits
	 * what was written (NULL: nothing to do); pending says whether a
	 * last release must still flush; release frees the kind's state. */
	int (*open)(fuse_req_t req, rvffs *fs, rvf_view *v, handle *h,
		    struct fuse_file_info *fi);
	void (*read)(fuse_req_t req, rvffs *fs, handle *h, size_t size, off_t off);
	long (*write)(fuse_req_t req, rvffs *fs, handle *h, const char *buf,
		      size_t size, off_t off);
	int (*flush)(fuse_req_t req, rvffs *fs, handle *h);
	bool (*pending)(rvffs *fs, handle *h);
	void (*release)(rvffs *fs, handle *h);

	/* setattr, when the kind handles all of it: 0 or -errno.  Else
	 * truncate says whether (and how) a size change is taken (NULL:
	 * refused); other changes of mode and owner are refused. */
	int (*setattr)(rvffs *fs, uint64_t ino, struct stat *attr, int to_set);
	int (*truncate)(rvffs *fs, handle *h_or_null, off_t size);

	/* Extended attributes.  getxattr replies itself (NULL: ENODATA);
	 * listxattr writes NUL-terminated names; setxattr and removexattr
	 * return 0 or -errno (NULL: -ENOTSUP). */
	void (*getxattr)(fuse_req_t req, rvffs *fs, rvf_view *v, uint64_t ino,
			 const char *name, size_t size);
	void (*listxattr)(rvffs *fs, rvf_view *v, uint64_t ino, FILE *out);
	int (*setxattr)(rvffs *fs, rvf_view *v, uint64_t ino, const char *name,
			const char *value, size_t size);
	int (*removexattr)(rvffs *fs, rvf_view *v, uint64_t ino, const char *name);

	/* Directories.  lookup returns the inode of NAME or 0.  Entries come
	 * either from list (taken at opendir) or, for the large ones, from
	 * count/entry (read from the listing's view).  create makes a file
	 * and its handle (*out); unlink, rename, mkdir, rmdir reply to req. */
	uint64_t (*lookup)(rvffs *fs, rvf_view *v, uint64_t dir, const char *name);
	void (*list)(rvffs *fs, rvf_view *v, uint64_t dir, node_add_fn add, void *ctx);
	uint64_t (*count)(rvf_view *v);
	uint64_t (*entry)(rvffs *fs, rvf_view *v, size_t i, char name[SEG_NAME_MAX]);
	/* Work that the attributes of entries first..first+n-1 need, done
	 * for the batch at once before a READDIRPLUS fills them (vectors/:
	 * the text sizes, on all CPUs).  Optional. */
	void (*prepare_plus)(rvffs *fs, rvf_view *v, size_t first, size_t n);
	int (*create)(fuse_req_t req, rvffs *fs, const char *name, mode_t mode,
		      struct fuse_file_info *fi, handle **out);
	void (*unlink)(fuse_req_t req, rvffs *fs, const char *name);
	void (*rename)(fuse_req_t req, rvffs *fs, const char *name,
		       const char *newname, unsigned int flags);
	void (*mkdir)(fuse_req_t req, rvffs *fs, const char *name, mode_t mode);
	void (*rmdir)(fuse_req_t req, rvffs *fs, const char *name);
} node_ops;

/* write's "already replied" (control replies itself). */
#define NODE_REPLIED (-100000L)

/* The kind of ino (node_none when nothing can have that number). */
const node_ops *node_of(rvffs *fs, uint64_t ino);

/* The kinds (node_KIND.c). */
extern const node_ops node_none;
extern const node_ops node_root;                   /* node_dir.c */
extern const node_ops node_segments, node_segment;  /* node_segment.c */
extern const node_ops node_vectors, node_vector;    /* node_vector.c */
extern const node_ops node_ingest, node_staged;     /* node_staged.c */
extern const node_ops node_query;                   /* node_query.c */
extern const node_ops node_queries, node_slot_dir, node_slot_request,
	node_slot_result;                               /* node_slot.c */
extern const node_ops node_image;                   /* node_image.c */
extern const node_ops node_text, node_errors;       /* node_text.c */
extern const node_ops node_control;                 /* node_control.c */
extern const node_ops node_bundle, node_dashboard;  /* node_bundle.c */

/* node.c: handles */
/* A zeroed handle of kind ops for ino (registered); NULL when out of memory. */
handle *handle_new(const node_ops *ops, uint64_t ino);
/* Frees h: its kind's state (release) and what every handle holds. */
void handle_free(rvffs *fs, handle *h);
static inline handle *handle_of(struct fuse_file_info *fi)
{
	return (handle *)(uintptr_t)fi->fh;
}
static inline bool wants_write(const struct fuse_file_info *fi)
{
	return (fi->flags & O_ACCMODE) != O_RDONLY;
}

/* node.c: attributes */
/* The store's mtime as of view v (stat'ed once per committed state). */
struct timespec node_view_mtime(rvffs *fs, rvf_view *v);
/* Fills st for a node.  On a read-only mount the write bits go, except
 * for the nodes that answer queries (`answers_queries`). */
void node_fill(rvffs *fs, struct stat *st, uint64_t ino, mode_t mode,
	       uint64_t size, struct timespec mtime, bool answers_queries);
/* A directory of the tree (root, segments/, vectors/, ...). */
bool node_stat_dir(rvffs *fs, rvf_view *v, uint64_t ino, struct stat *st);
/* Attributes of a file created and not committed yet. */
void node_fill_pending(rvffs *fs, struct stat *st, uint64_t ino, uint64_t size);

/* node.c: replies */
/* A slice [off, off+size) of p: replied from p (p must outlive the reply). */
void reply_slice(fuse_req_t req, const char *p, size_t len, size_t size, off_t off);
/* The same from a copy: another thread may release the handle that owns
 * p as soon as the kernel has the reply. */
void reply_copy(fuse_req_t req, const char *p, size_t len, size_t size, off_t off);
/* read of a handle that answers from h->text. */
void node_read_text(fuse_req_t req, rvffs *fs, handle *h, size_t size, off_t off);
/* An xattr value: its size (size 0), ERANGE, or the bytes. */
void xattr_reply(fuse_req_t req, const void *val, size_t n, size_t size);
/* A number in an xattr value (decimal or 0x hex) up to max. */
bool xattr_parse_num(const char *value, size_t size, unsigned long max,
		     unsigned long *out);
/* Lower-case hex of n bytes into out (2n+1 bytes). */
void xattr_hex(char *out, const uint8_t *p, size_t n);

/* rewrite.c: a vector / kernel / eBPF file being written whole. */
typedef struct rewrite {
	uint64_t ino;
	bool on;                /* opened for writing */
	unsigned char *buf;     /* the new content */
	size_t len, cap;
	bool dirty;             /* bytes written since the last commit */
	bool seq;               /* written from the start, in order */
	bool failed;            /* a write was refused: the close commits nothing */
	staged_xattr *meta;     /* metadata set before the vector exists (cp -a) */
	size_t nmeta;
	struct rewrite *next;   /* fs->writers */
} rewrite;
/* Starts a read-modify-write from the content h read at open. */
void rewrite_adopt(rewrite *w, handle *h);
/* Puts [off, off+size) into the buffer (zero-filling a hole) and marks
 * it dirty: 0 or -errno. */
int rewrite_put(rewrite *w, const char *buf, size_t size, off_t off);
/* O_TRUNC or truncate(2) of a vector/kernel/eBPF file: EROFS on a
 * read-only mount; to 0 through a descriptor, only what is written next
 * counts (w NULL: no descriptor, nothing to drop). */
int rewrite_truncate(rvffs *fs, rewrite *w, off_t size);
/* read of a rewrite handle: what was written so far, or h->text. */
void rewrite_read(fuse_req_t req, handle *h, rewrite *w, size_t size, off_t off);
/* The files being written (created files exist only there until their
 * flush commits them). */
void writer_add(rvffs *fs, rewrite *w);
void writer_remove(rvffs *fs, rewrite *w);
/* Sets (value) or removes (value NULL) a metadata field waiting on the
 * newest writer of ino: 0, -ENOENT (no writer), -ENODATA, -ENOMEM. */
int writer_meta(rvffs *fs, uint64_t ino, const char *field, const char *value,
		size_t len);
/* Takes the fields waiting on w (to commit them with its content). */
void writer_take_meta(rvffs *fs, rewrite *w, staged_xattr **x, size_t *n);

/* pending_meta.c: metadata xattrs set before the file is a vector (field
 * names without the user.rvf.meta. prefix; callers hold fs->mu). */
staged_xattr *pending_meta_find(staged_xattr *x, size_t n, const char *field);
/* Checks the text form of a value (logs why not): 0 or -EINVAL. */
int pending_meta_check(rvffs *fs, const char *field, const char *value, size_t len);
int pending_meta_set(staged_xattr **x, size_t *n, const char *field,
		     const char *value, size_t len);
int pending_meta_remove(staged_xattr *x, size_t *n, const char *field);

/* node_dir.c: open of a directory (-EISDIR). */
int node_open_dir(fuse_req_t req, rvffs *fs, rvf_view *v, handle *h,
		  struct fuse_file_info *fi);
/* ops_dir.c: replies with the entry of ino (ENOENT when it is gone). */
void fs_reply_entry(fuse_req_t req, rvffs *fs, uint64_t ino);

/* node_staged.c: a staged file made by create() in ingest/ or, for an
 * rsync temporary ".ID.XXXXXX", in vectors/ (parent). */
int staged_create_handle(fuse_req_t req, rvffs *fs, uint64_t parent,
			 const char *name, mode_t mode, handle **out);
/* True when a WRITE of size bytes at off through h continues a streamed
 * file and cannot block (no segment to hand over): the request loop
 * answers it itself instead of waking a worker (loop.c). */
bool staged_write_is_quick(rvffs *fs, handle *h, uint64_t off, size_t size);
/* Takes NAME out of directory parent: replies 0 or ENOENT. */
void staged_unlink(fuse_req_t req, rvffs *fs, uint64_t parent, const char *name);

/* node_image.c: kernel and ebpf in the root directory. */
bool image_name(const char *name);
int image_create(fuse_req_t req, rvffs *fs, const char *name,
		 struct fuse_file_info *fi, handle **out);
void image_unlink(fuse_req_t req, rvffs *fs, const char *name);

/* node_vector.c */
/* The store's dimension now (0: a store without vectors). */
uint32_t store_dimension(rvffs *fs);

/* vector_meta.c: user.rvf.meta.NAME of vectors/ID */
void vector_getxattr(fuse_req_t req, rvffs *fs, rvf_view *v, uint64_t ino,
		     const char *name, size_t size);
void vector_listxattr(rvffs *fs, rvf_view *v, uint64_t ino, FILE *out);
int vector_setxattr(rvffs *fs, rvf_view *v, uint64_t ino, const char *name,
		    const char *value, size_t size);
int vector_removexattr(rvffs *fs, rvf_view *v, uint64_t ino, const char *name);

/* image_xattr.c: user.rvf.kernel.* and user.rvf.ebpf.* */
void image_getxattr(fuse_req_t req, rvffs *fs, rvf_view *v, uint64_t ino,
		    const char *name, size_t size);
void image_listxattr(rvffs *fs, rvf_view *v, uint64_t ino, FILE *out);
int image_setxattr(rvffs *fs, rvf_view *v, uint64_t ino, const char *name,
		   const char *value, size_t size);

#endif
