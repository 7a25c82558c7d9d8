/*
 * rvf.h - librvf, a C library for RVF (RuVector Format) vector stores.
 *
 * An RVF file is an append-only sequence of segments (64-byte header +
 * payload) whose newest MANIFEST segment is the root of trust.  librvf reads
 * and writes such files byte-compatibly with the reference runtime
 * (@ruvector/rvf-node 0.2.3); see docs/format.md for the layout as we
 * implement it.
 *
 * Model
 * -----
 * - An `rvf_store` is an open file: read-write (holds the writer lock
 *   `<path>.lock`, as the reference does) or read-only (no lock, never
 *   writes).
 * - An `rvf_view` is an immutable, reference-counted snapshot of one
 *   committed state of a store: the decoded manifest, the visible vectors
 *   (indexed in place in a read-only mapping of the file, never copied), the
 *   metadata, kernel, eBPF and witness chain.  Readers take a view and may
 *   use it from any thread while a writer commits: they see a commit entirely
 *   or not at all.  Release views when done.
 * - Every function that can fail returns an `rvf_code` and, when `err` is not
 *   NULL, fills it with a readable message.  librvf never exits, never prints
 *   and keeps no global state.
 *
 * Thread safety: views are safe to share.  Store functions lock the store
 * internally, so one writer commit runs at a time; they may be called from
 * several threads.
 */
#ifndef RVF_H
#define RVF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Everything declared here is exported; the rest of librvf is hidden. */
#pragma GCC visibility push(default)

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

typedef enum rvf_code {
	RVF_OK = 0,
	RVF_E_IO,                 /* an OS call failed (err->sys_errno says which) */
	RVF_E_MANIFEST_NOT_FOUND, /* reference 0x0106: no parseable manifest */
	RVF_E_INVALID_MANIFEST,   /* reference 0x0105: bad dimension and the like */
	RVF_E_INVALID_CHECKSUM,   /* reference 0x0102: a payload's content hash failed */
	RVF_E_CORRUPT,            /* a segment the manifest names is damaged */
	RVF_E_DIMENSION_MISMATCH, /* reference 0x0200 */
	RVF_E_LOCK_HELD,          /* reference 0x0300: another writer holds the lock */
	RVF_E_EXISTS,             /* create on an existing path */
	RVF_E_READ_ONLY,          /* reference 0x0305: read-only or frozen handle */
	RVF_E_PARENT_NOT_FOUND,   /* reference 0x0600 */
	RVF_E_PARENT_HASH_MISMATCH, /* reference 0x0601 */
	RVF_E_COW_MAP_CORRUPT,    /* branch state (COW_MAP/MEMBERSHIP) invalid */
	RVF_E_MEMBERSHIP_INVALID, /* reference 0x0705: e.g. ids too large to branch */
	RVF_E_INVALID_ARGUMENT,   /* bad argument or bad input data */
	RVF_E_NOT_FOUND,          /* no such vector, kernel or eBPF program */
	RVF_E_TOO_LARGE,          /* a size limit of the format */
	RVF_E_NO_MEMORY,
	RVF_E_FILTER,             /* a filter expression could not be parsed */
	RVF_E_SIGNATURE,          /* a signature or a chain does not verify */
} rvf_code;

typedef struct rvf_error {
	rvf_code code;
	int sys_errno;      /* errno for RVF_E_IO, else 0 */
	char message[512];  /* one readable line, no trailing newline */
} rvf_error;

/* A short stable name for a code, e.g. "InvalidChecksum". */
const char *rvf_code_name(rvf_code code);

/* The errno that best describes a code (EIO, ENOENT, EBUSY, EROFS, ...). */
int rvf_code_errno(rvf_code code, int sys_errno);

/* ------------------------------------------------------------------ */
/* Basic types                                                         */
/* ------------------------------------------------------------------ */

/* Values are the manifest's metric byte (any other byte reads as L2). */
typedef enum rvf_metric {
	RVF_METRIC_L2 = 0,            /* squared Euclidean distance */
	RVF_METRIC_INNER_PRODUCT = 1, /* -dot(q, x) */
	RVF_METRIC_COSINE = 2,        /* 1 - cos(q, x); 1.0 when a norm is zero */
} rvf_metric;

/* "l2", "inner_product", "cosine". */
const char *rvf_metric_name(rvf_metric m);
/* Parses "l2", "cosine", "ip"/"inner_product"/"dot"; false when unknown. */
bool rvf_metric_parse(const char *s, rvf_metric *out);

/* Longest text rvf_format_float writes, NUL included. */
#define RVF_FLOAT_TEXT_MAX 32

/* Writes the shortest decimal text (printf %g style, C locale) that reads
 * back as exactly v; returns its length.  How vectors and distances are
 * printed everywhere. */
size_t rvf_format_float(float v, char out[RVF_FLOAT_TEXT_MAX]);
/* strlen of what rvf_format_float writes for v, without writing it. */
size_t rvf_float_text_length(float v);

/* Ids: canonical decimal only -- digits, no sign, no blanks, no leading
 * zero (but "0"), at most 2^64-1.  The one rule for vector file names,
 * control commands, rvfctl arguments and ingested files. */
bool rvf_parse_id(const char *s, size_t len, uint64_t *id);
/* [s, s+len) entirely one finite float32 (C locale, as strtof rounds). */
bool rvf_parse_float(const char *s, size_t len, float *out);
/* A list of finite numbers separated by blanks (space, tab, CR, LF) with
 * at most one comma among them, optionally inside one [ ]: the text of a
 * vector everywhere.  Stores the first `cap` into out and returns how many
 * there are, or -1 with err (RVF_E_INVALID_ARGUMENT) saying which
 * component is wrong. */
long rvf_parse_floats(const char *s, size_t len, float *out, size_t cap,
		      rvf_error *err);

/* Segment type codes as written in the header's seg_type byte. */
enum {
	RVF_SEG_VEC = 0x01,
	RVF_SEG_INDEX = 0x02,
	RVF_SEG_JOURNAL = 0x04,
	RVF_SEG_MANIFEST = 0x05,
	RVF_SEG_META = 0x07,
	RVF_SEG_WITNESS = 0x0A,
	RVF_SEG_PROFILE = 0x0B,
	RVF_SEG_KERNEL = 0x0E,
	RVF_SEG_EBPF = 0x0F,
	RVF_SEG_WASM = 0x10,
	RVF_SEG_DASHBOARD = 0x11,
	RVF_SEG_COW_MAP = 0x20,
	RVF_SEG_REFCOUNT = 0x21,
	RVF_SEG_MEMBERSHIP = 0x22,
	RVF_SEG_SIGNATURE = 0x53, /* rvffs signature segment (docs/format.md) */
};

/* "vec", "manifest", "wasm", ... as upstream names them, or NULL for a
 * type upstream does not define. */
const char *rvf_segment_type_name(uint8_t type);

/* "provenance", "computation", "document" (a JSON witness) or "other":
 * the kind of a witness entry's type byte. */
const char *rvf_witness_kind(uint8_t type);

/* Which algorithm a segment's content hash turned out to use (checksum.c):
 * the reference writes the CRC-32 rotation; upstream tools write the
 * others.  A keyed HMAC cannot be checked without its key. */
typedef enum rvf_hash_algo {
	RVF_HASH_MISMATCH = 0,     /* no algorithm matches: damaged */
	RVF_HASH_NONE,             /* all-zero hash: not set */
	RVF_HASH_CRC32_ROTATED,    /* CRC-32/IEEE x4 rotated (rvf-node) */
	RVF_HASH_CRC32C,           /* checksum_algo 0 as rvf-types names it */
	RVF_HASH_XXH3_128,         /* checksum_algo 0/1 as rvf-wire computes it */
	RVF_HASH_SHAKE256,         /* checksum_algo 2: SHAKE-256, 16 bytes */
	RVF_HASH_SHA256,           /* SHA-256, 16 bytes (upstream ruvbot) */
	RVF_HASH_HMAC_SHAKE256,    /* checksum_algo 3: keyed, not verified */
} rvf_hash_algo;

/* "crc32-rotated", "xxh3-128", ... "mismatch". */
const char *rvf_hash_algo_name(rvf_hash_algo a);

#define RVF_SEGMENT_HEADER_SIZE 64
#define RVF_MAX_PAYLOAD (256u * 1024u * 1024u)

/* The decoded 64-byte header of a segment. */
typedef struct rvf_segment {
	uint64_t offset;         /* file offset of the header */
	uint8_t type;
	uint8_t version;
	uint16_t flags;
	uint64_t id;
	uint64_t payload_length;
	uint64_t timestamp_ns;
	uint8_t checksum_algo;
	uint8_t compression;
	uint8_t content_hash[16];
	bool readable;           /* a header with this type and length is at offset */
	bool hash_ok;            /* readable, and content hash verified (or all
				  * zero, or keyed: see hash_algo) */
	bool listed;             /* in the manifest directory (false: the manifest itself) */
	bool pending;            /* written by a deferred change, not durable yet:
				  * it may still grow (header and length) until
				  * the next sync; durable segments never change */
	uint8_t hash_algo;       /* rvf_hash_algo that matched (readable only) */
	bool gap;                /* no segment: payload_length raw bytes at
				  * offset that no header describes (torn or
				  * foreign bytes); never listed */
} rvf_segment;

/* Bytes a segment (or gap) covers in the file. */
static inline uint64_t rvf_segment_extent(const rvf_segment *s)
{
	return s->gap ? s->payload_length : RVF_SEGMENT_HEADER_SIZE + s->payload_length;
}

/* FileIdentity: lineage of a store. */
typedef struct rvf_identity {
	uint8_t file_id[16];
	uint8_t parent_id[16];
	uint8_t parent_hash[32];
	uint32_t lineage_depth;
} rvf_identity;

/* Metadata values.  Type codes follow the upstream META v1 layout. */
typedef enum rvf_value_type {
	RVF_VALUE_STRING = 1,
	RVF_VALUE_BYTES = 2,
	RVF_VALUE_I64 = 3,
	RVF_VALUE_U64 = 4,
	RVF_VALUE_F64 = 5,
	RVF_VALUE_BOOL = 6,
} rvf_value_type;

typedef struct rvf_value {
	rvf_value_type type;
	union {
		struct {
			const char *ptr; /* not NUL-terminated in general */
			size_t len;
		} str;               /* STRING and BYTES */
		int64_t i64;
		uint64_t u64;
		double f64;
		bool b;
	} u;
} rvf_value;

/* One named metadata field of one vector. */
typedef struct rvf_meta_field {
	const char *name;
	rvf_value value;
} rvf_meta_field;

/* ------------------------------------------------------------------ */
/* Opening and creating                                                */
/* ------------------------------------------------------------------ */

typedef struct rvf_store rvf_store;
typedef struct rvf_view rvf_view;

enum {
	RVF_OPEN_READ_ONLY = 1 << 0, /* no lock, never writes */
};

/* How long a read-write open waits for a live writer to release the lock
 * (a busy timeout, as SQLite's): long enough for an unmounted rvffs or a
 * finishing rvfctl to exit. */
#define RVF_LOCK_WAIT_DEFAULT_MS 5000

/* Opens an existing store.  Read-write opens take the writer lock, waiting
 * up to RVF_LOCK_WAIT_DEFAULT_MS for a live writer (the reference included)
 * to release it, then fail with RVF_E_LOCK_HELD; a stale lock (the pid is
 * dead on this host) is broken at once. */
rvf_code rvf_store_open(const char *path, unsigned flags, rvf_store **out,
			rvf_error *err);
/* The same with the wait given in milliseconds (0: fail at once). */
rvf_code rvf_store_open_wait(const char *path, unsigned flags,
			     unsigned wait_ms, rvf_store **out,
			     rvf_error *err);

typedef struct rvf_create_options {
	uint32_t dimension;    /* 1..65535 */
	rvf_metric metric;
	uint8_t profile;       /* stored in the manifest, 0 = generic */
} rvf_create_options;

/* Creates a new store exclusively (RVF_E_EXISTS if the path exists), takes
 * the writer lock and writes the epoch-0 manifest.  The store stays open
 * read-write. */
rvf_code rvf_store_create(const char *path, const rvf_create_options *opt,
			  rvf_store **out, rvf_error *err);

/* Closes the store, removing our lock file.  Views taken from it stay valid
 * until released. */
void rvf_store_close(rvf_store *s);

/* Read-only stores: re-reads the file to pick up a writer's later commits.
 * Returns RVF_OK with nothing changed when the file did not change. */
rvf_code rvf_store_refresh(rvf_store *s, rvf_error *err);

bool rvf_store_read_only(const rvf_store *s);

/* True when the store file is now shorter than the current view maps
 * (someone truncated it underneath); *now and *expected get the sizes.
 * Reads of the missing part would raise SIGBUS (see rvf_guard_install). */
bool rvf_store_shrunk(rvf_store *s, uint64_t *now, uint64_t *expected);

/* Installs a process-wide SIGBUS handler that turns a fault on a store
 * mapping into a page of zeros plus a count (rvf_guard_faults), instead of
 * the death of the process: a daemon must survive a store truncated under
 * it, and answer EIO.  Once any fault was counted, nothing read from a
 * mapping may be trusted.  0 or -1 with errno. */
int rvf_guard_install(void);
uint64_t rvf_guard_faults(void);
const char *rvf_store_path(const rvf_store *s);

/* A new reference to the store's current committed state. */
rvf_view *rvf_store_view(rvf_store *s);
rvf_view *rvf_view_ref(rvf_view *v);
void rvf_view_release(rvf_view *v);

/* ------------------------------------------------------------------ */
/* Reading a view                                                      */
/* ------------------------------------------------------------------ */

typedef struct rvf_info {
	uint32_t dimension;
	rvf_metric metric;
	uint8_t metric_byte;     /* the raw manifest byte */
	uint8_t profile;
	uint32_t epoch;
	uint64_t file_size;      /* bytes covered by this view */
	uint64_t visible;        /* vectors a query can return (inherited ones included) */
	uint64_t own_live;       /* own rows not deleted (the reference's totalVectors) */
	uint64_t deleted;        /* ids in the manifest's deletion list */
	uint64_t inherited;      /* visible rows that come from a branch parent */
	uint64_t manifest_total; /* the manifest's total_vectors field */
	uint32_t directory_len;  /* entries in the newest manifest's directory */
	uint64_t manifest_offset;
	rvf_identity identity;
	bool has_identity;       /* the manifest carries FIDI */
	bool read_only;          /* the store handle is read-only or frozen */
	bool frozen;             /* frozen (branch children record it in COW_MAP) */
	bool is_branch;          /* has COW_MAP + MEMBERSHIP */
	bool pending;            /* holds changes not yet durable (deferred
				  * commits; rvf_store_sync makes them so) */
	uint64_t dead_bytes;     /* bytes of file_size no state needs (older
				  * manifests, deleted or replaced rows,
				  * journals, older META, unlisted bytes):
				  * about what compaction would reclaim */
	const char *parent_path; /* branch parent as stored (relative), or NULL */
	const char *parent_resolved; /* the path we opened, or NULL */
	/* The file generation: 0 at open, one more each time the file was
	 * rewritten (compacted, replaced by another file, cut shorter), i.e.
	 * whenever segment offsets and names of earlier views stop holding.
	 * Appends (commits) keep it. */
	uint64_t generation;
	/* Branch child: the parent file's size, and how many of its bytes the
	 * child reads.  Less than parent_size when the parent grew after the
	 * branch was made: the child reads the parent as it was then. */
	uint64_t parent_size;
	uint64_t parent_as_of;
} rvf_info;

const rvf_info *rvf_view_info(const rvf_view *v);

/* The visible vectors, ascending by id: index 0 .. info->visible-1. */
uint64_t rvf_view_id_at(const rvf_view *v, size_t index);
/* Index of `id` among the visible vectors, or -1. */
long rvf_view_find(const rvf_view *v, uint64_t id);
/* Copies the components of the vector at `index` into out[dimension]. */
void rvf_view_vector_at(const rvf_view *v, size_t index, float *out);
/* Length of the text of each vector at indexes first..first+n-1 (its
 * numbers as rvf_format_float writes them, one blank between two, a
 * newline) into out[0..n-1], where out[i] is 0 (unknown); indexes past
 * the end are left alone.  Spread over the search workers; 0 is left
 * where memory ran out or a text is longer than 4 GiB. */
void rvf_view_text_lengths(const rvf_view *v, size_t first, size_t n, uint32_t *out);
/* Largest id ever used by this store (own rows, deletions, parent rows);
 * false when the store never held a vector. */
bool rvf_view_max_id(const rvf_view *v, uint64_t *out);
/* Calls fn(ctx, id) for each id visible in both views whose vector may
 * differ in `cur` (written again since `old`), so that caches of its
 * text can be dropped.  Cheap for appends (only the rows written since
 * `old` are read); a rewritten file, another dimension, a branch or a
 * block-layout segment compares every common vector. */
void rvf_view_changed_ids(const rvf_view *old, const rvf_view *cur,
			  void (*fn)(void *ctx, uint64_t id), void *ctx);

/* Segments: the newest manifest's directory, the newest manifest itself
 * and everything else in the file (unlisted segments such as older
 * sessions' manifests, and gaps), sorted by file offset: together they
 * cover the file's first info->file_size bytes exactly. */
size_t rvf_view_segment_count(const rvf_view *v);
const rvf_segment *rvf_view_segment(const rvf_view *v, size_t index);
/* The directory in manifest order (what the reference's segments() lists). */
size_t rvf_view_directory_count(const rvf_view *v);
const rvf_segment *rvf_view_directory(const rvf_view *v, size_t index);
/* Pointer to a segment's bytes on disk (header + payload; a gap's raw
 * bytes) in the mapping, valid while the view is held; NULL for a listed
 * segment with no valid header. */
const unsigned char *rvf_view_segment_bytes(const rvf_view *v,
					    const rvf_segment *seg);
/* True when the segment's payload is a JSON document (upstream tools write
 * META, PROFILE and WITNESS payloads so). */
bool rvf_segment_is_json(const rvf_view *v, const rvf_segment *seg);
/* Deleted ids of the manifest, ascending. */
size_t rvf_view_deleted_count(const rvf_view *v);
uint64_t rvf_view_deleted_at(const rvf_view *v, size_t index);

/* Kernel (first KERNEL entry of the directory, as the reference reads).
 * Three payload layouts are read (rvf_kernel_layout):
 *   PLAIN     header(128) | image | cmdline: rvf-node, upstream's
 *             embed_kernel and ours (the header says cmdline_offset 128
 *             although the cmdline follows the image);
 *   BINDING   header | KernelBinding(128) | cmdline | image, with
 *             cmdline_offset 256: upstream's embed_kernel_with_binding;
 *   BUILD_RVF header | gzip(image) | cmdline, with cmdline_offset and
 *             cmdline_length as u32 at 0x6C/0x70, a little-endian api_port
 *             and a u16 api_version: upstream's ruvbot build-rvf.js. */
typedef enum rvf_kernel_layout {
	RVF_KERNEL_PLAIN,
	RVF_KERNEL_BINDING,
	RVF_KERNEL_BUILD_RVF,
} rvf_kernel_layout;

typedef struct rvf_kernel_info {
	uint8_t arch;
	uint8_t kernel_type;
	uint32_t flags;
	uint32_t min_memory_mb;
	uint64_t entry_point;
	uint64_t image_size;      /* header field */
	uint64_t compressed_size; /* header field */
	uint8_t compression;      /* header field: 0 none; else the image's
				   * magic says (zstd from rvffs --compress,
				   * gzip from build-rvf.js) */
	const char *compression_name; /* "none", "zstd", "gzip", "unknown" */
	uint8_t api_transport;
	uint16_t api_port;        /* decoded (big-endian; build-rvf.js: little) */
	uint32_t api_version;
	uint8_t image_hash[32];
	uint8_t build_id[16];
	uint64_t build_timestamp;
	uint32_t vcpu_count;
	uint64_t cmdline_offset;  /* header field */
	uint32_t cmdline_length;  /* header field */
	uint64_t stored_length;   /* payload bytes after the 128-byte header */
	rvf_kernel_layout layout;
	const char *layout_name;  /* "plain", "binding", "build-rvf.js" */
	/* Where the parts are in the payload (offsets from its start), each
	 * within it: the (stored) image, the cmdline, the binding. */
	uint64_t image_at, image_stored;
	uint64_t image_length;    /* what rvf_view_kernel_image returns: the
				   * stored image, or image_size when compressed */
	uint64_t cmdline_at;
	uint32_t cmdline_stored;
	bool has_binding;
	const unsigned char *binding; /* 128 bytes in the mapping, or NULL */
	const rvf_segment *segment;
} rvf_kernel_info;

/* False when the view has no kernel. */
bool rvf_view_kernel(const rvf_view *v, rvf_kernel_info *out);
/* The image bytes (without cmdline and binding), decompressed when stored
 * compressed.  The caller frees *image.  *cmdline (NUL-terminated, the
 * cmdline's bytes up to a NUL) may be NULL. */
rvf_code rvf_view_kernel_image(const rvf_view *v, unsigned char **image,
			       size_t *image_len, char **cmdline,
			       rvf_error *err);

typedef struct rvf_ebpf_info {
	uint8_t program_type;
	uint8_t attach_type;
	uint32_t program_flags;
	uint16_t insn_count;
	uint16_t max_dimension;
	uint64_t program_size;
	uint32_t map_count;
	uint32_t btf_size;
	uint8_t program_hash[32];
	const rvf_segment *segment;
	const unsigned char *bytecode; /* in the mapping */
	const unsigned char *btf;      /* in the mapping, btf_size bytes */
} rvf_ebpf_info;

/* False when the view has no eBPF program. */
bool rvf_view_ebpf(const rvf_view *v, rvf_ebpf_info *out);

/* WASM modules (WASM segments, upstream's wasm_bootstrap.rs layout: a
 * 64-byte "RVWM" header, then the bytecode), in directory order. */
typedef struct rvf_wasm_info {
	bool has_header;          /* the RVWM header is there */
	uint8_t role;             /* 0 microkernel, 1 interpreter, 2 combined,
				   * 3 extension, 4 control plane */
	uint8_t target;           /* 0 wasm32, 1 wasi-p1, 2 wasi-p2, 3 browser, 4 bare tile */
	uint16_t required_features;
	uint16_t export_count;
	uint32_t bytecode_size;   /* header field */
	uint32_t compressed_size; /* header field (0x10) */
	uint8_t compression;      /* header field (0x14): 0 none, else the
				   * stored bytes' magic says (gzip, zstd);
				   * 2 without one is brotli, 1 without one
				   * LZ4 (not read) */
	const char *compression_name; /* "none", "gzip", "zstd", "brotli", "lz4" */
	uint8_t bytecode_hash[32];
	const unsigned char *bytecode; /* the STORED module in the mapping
				   * (compressed when compression != 0; the
				   * whole payload when there is no header) */
	size_t bytecode_len;      /* stored bytes */
	uint64_t module_len;      /* the module's size: bytecode_size when
				   * compressed, else bytecode_len */
	bool hash_ok;             /* segment hash verified */
	char name[32];            /* the role's name, unique in the view
				   * ("combined", "combined-2", ...) */
	const rvf_segment *segment;
} rvf_wasm_info;

size_t rvf_view_wasm_count(const rvf_view *v);
/* False when i is out of range. */
bool rvf_view_wasm(const rvf_view *v, size_t i, rvf_wasm_info *out);
/* Module i as a user takes it out: decompressed, in a malloc'd copy the
 * caller frees.  RVF_E_INVALID_CHECKSUM for a damaged segment,
 * RVF_E_CORRUPT when it does not decompress to bytecode_size bytes. */
rvf_code rvf_view_wasm_module(const rvf_view *v, size_t i, unsigned char **bytes,
			      size_t *len, rvf_error *err);

/* The dashboard bundle: the first DASHBOARD segment (as upstream's
 * extract_dashboard takes it), a 64-byte "RVDB" header and the bundle.
 * A bundle with a file table (file_count > 0) is split into its files;
 * otherwise (upstream's embed_dashboard writes file_count 0) it is one
 * file, index.html. */
typedef struct rvf_dashboard_file {
	char *path;               /* relative, '/'-separated, checked: no "..",
				   * no empty or absolute components */
	const unsigned char *data; /* in the mapping */
	uint64_t size;
} rvf_dashboard_file;

typedef struct rvf_dashboard {
	uint8_t ui_framework;     /* 0 threejs, 1 react, 2 custom */
	uint8_t compression;      /* 0 none, 1 gzip, 2 brotli (decompressed
				   * before splitting; other values: the
				   * stored bytes, one file bundle.bin) */
	uint64_t bundle_size;
	uint32_t file_count;      /* header field */
	uint64_t build_timestamp;
	bool hash_ok;
	size_t nfiles;
	rvf_dashboard_file *files;
	unsigned char *owned;     /* the decompressed bundle files point into */
	const rvf_segment *segment;
} rvf_dashboard;

/* RVF_E_NOT_FOUND when the store has no dashboard; RVF_E_CORRUPT for a
 * damaged one.  Free *out with rvf_dashboard_free. */
rvf_code rvf_view_dashboard(const rvf_view *v, rvf_dashboard **out,
			    rvf_error *err);
void rvf_dashboard_free(rvf_dashboard *d);

/* Kernel attestation (upstream's `rvf verify-attestation`): the KERNEL
 * header's image hash, the KernelBinding (upstream's layout: header,
 * 128-byte binding, cmdline, image, with cmdline_offset 256) and the
 * attestation witness payloads (a SHAKE-256 linked chain of 73-byte
 * entries whose action hashes are SHAKE-256 of their records).  SHAKE-256
 * comes from Nettle. */
typedef struct rvf_attestation {
	bool has_kernel;
	bool magic_ok;               /* "RVKN" */
	uint8_t arch;
	uint64_t image_size;         /* the image the hash covers */
	uint8_t stored_hash[32];
	uint8_t shake_hash[32];      /* SHAKE-256-256 of the image */
	bool image_hash_ok;          /* the stored hash is one of the below */
	const char *image_hash_algo; /* "shake256-256", "shake256-256 (payload
				      * after header)", "simple_hash256",
				      * "sha256", or "mismatch" */
	bool has_binding;
	bool binding_ok;             /* version > 0, padding and reserved zero */
	uint16_t binding_version;
	uint16_t min_runtime_version;
	uint64_t allowed_segment_mask;
	uint8_t manifest_root_hash[32];
	uint8_t policy_hash[32];
	uint32_t witnesses;          /* attestation witness payloads found */
	uint32_t witnesses_ok;
	uint32_t entries;            /* entries in the verified ones */
	char problem[256];           /* first failure, or "" */
} rvf_attestation;

/* Fills *out; returns RVF_OK when everything present verifies (no kernel
 * and no attestation witness is OK: has_kernel false), RVF_E_SIGNATURE
 * naming the first mismatch. */
rvf_code rvf_view_verify_attestation(const rvf_view *v, rvf_attestation *out,
				     rvf_error *err);

/* REFCOUNT (0x21, upstream's refcount.rs: 32-byte "RVRC" header, one byte
 * per cluster) recomputed from the COW map chain: for each cluster of a
 * branch child, how many stores of the chain share its data (1 local,
 * +1 per parent-ref hop to the store that holds it, 0 unallocated). */
typedef struct rvf_refcount_info {
	uint32_t cluster_count;
	uint32_t local_clusters;     /* tag 2 in this store's map */
	uint32_t max_refcount;
	uint32_t chain_depth;        /* stores walked */
} rvf_refcount_info;


/* Witness entries in directory order. */
typedef struct rvf_witness {
	uint8_t type;          /* 1 computation (ingest, compact), 0 provenance (delete) */
	uint64_t timestamp_ns;
	const char *action;    /* NUL-terminated copy */
	uint8_t prev_hash[32];
	bool links;            /* prev_hash == H(previous witness payload) */
	const rvf_segment *segment;
} rvf_witness;

size_t rvf_view_witness_count(const rvf_view *v);
const rvf_witness *rvf_view_witness(const rvf_view *v, size_t index);
/* How an entry joins the chain: "linked" (prev_hash is the previous
 * entry's hash), "session-start" (prev_hash is zero: the first entry of a
 * session) or "unlinked". */
const char *rvf_witness_link(const rvf_witness *w);
/* Its time in UTC, "2024-06-11T08:30:00Z", with nanos
 * "2024-06-11T08:30:00.123456789Z". */
#define RVF_WITNESS_TIME_SIZE 48
void rvf_witness_time(const rvf_witness *w, bool nanos,
		      char out[RVF_WITNESS_TIME_SIZE]);

/* Metadata of the vector `id` (persisted in META segments).  Returns the
 * number of fields; *fields points into the view. */
size_t rvf_view_metadata(const rvf_view *v, uint64_t id,
			 const rvf_meta_field **fields);

/* The type the store's metadata schema gives field `name` (one type per
 * name in a store); false when no vector has held it. */
bool rvf_view_meta_type(const rvf_view *v, const char *name,
			rvf_value_type *type);

/* Metadata values as text, the same through every door that has only text
 * (the user.rvf.meta.* xattrs, rvfctl export through a mount, rvfctl query
 * --meta): numbers and booleans are JSON (17, -3, 2.5, 1e+30, true); a
 * string is its bare bytes unless those would read back as another type or
 * start with '"', then it is a JSON string literal ("17", "true"); bytes
 * are their raw bytes.  rvf_value_text: malloc'd, NUL-terminated, *len
 * without the NUL; NULL when out of memory. */
char *rvf_value_text(const rvf_value *v, size_t *len);
/* Reads such text.  want 0: the type the text says (JSON numbers: i64,
 * else u64, else f64; true/false: bool; a JSON string literal: its string;
 * anything else: the text as a string, or bytes when not UTF-8).  want a
 * type (the field's, see rvf_view_meta_type): a bare text into a string
 * field is that text; a number into a numeric field must convert exactly.
 * Strings point into text or into *owned (malloc'd; free it). */
rvf_code rvf_value_parse(const char *text, size_t len, rvf_value_type want,
			 rvf_value *out, char **owned, rvf_error *err);

/* The branch parent view, or NULL. */
const rvf_view *rvf_view_parent(const rvf_view *v);

/* Verifies the content hash of every segment the directory lists (and the
 * manifest); returns the first failure. */
rvf_code rvf_view_verify_hashes(const rvf_view *v, rvf_error *err);

/* What rvf_view_verify_chains found. */
typedef struct rvf_chain_report {
	uint32_t manifests;        /* older manifests the directory lists */
	uint32_t manifests_bad;    /* ... that do not parse, or are newer than the newest */
	uint32_t witnesses;        /* witness entries */
	uint32_t witness_sessions; /* entries that start a chain (zero predecessor hash) */
	uint32_t witness_breaks;   /* entries that neither start nor link to the previous */
} rvf_chain_report;

/* Checks the manifest chain (every older MANIFEST the directory lists
 * parses and has an epoch <= the newest's) and the witness chain (each
 * witness carries H(previous witness payload), or zeros where a writer
 * session began).  Fills *report (may be NULL) and returns
 * RVF_E_SIGNATURE naming the first failure. */
rvf_code rvf_view_verify_chains(const rvf_view *v, rvf_chain_report *report,
				rvf_error *err);

/* ------------------------------------------------------------------ */
/* Search                                                              */
/* ------------------------------------------------------------------ */

typedef struct rvf_hit {
	uint64_t id;
	float distance;
} rvf_hit;

typedef struct rvf_filter rvf_filter;

/* Parses a filter in the reference's JSON form
 * ({"op":"eq","fieldId":0,"valueType":"string","value":"a"}) or the named
 * form ({"op":"eq","field":"color","value":"red"}).  Ops: eq ne lt le gt ge
 * in range and or not. */
rvf_filter *rvf_filter_parse(const char *json, rvf_error *err);
void rvf_filter_free(rvf_filter *f);

/* 8-bit codes of a view's rows make exact search faster, for every metric
 * (the answer is the same: codes only choose which rows to measure in
 * float32).  They take about a quarter of the vectors' size in memory
 * (dim + 8 bytes a row), are built once and carried from view to view
 * across commits, and run on every CPU (AVX-512 VNNI, AVX-512BW, AVX2,
 * NEON with or without sdot, or portable C). */
typedef enum rvf_accel_mode {
	RVF_ACCEL_AUTO = 0, /* build in the background after the first search
			     * of a large enough view; exact scan meanwhile */
	RVF_ACCEL_OFF,      /* never build or use codes */
	RVF_ACCEL_NOW,      /* build now (this call waits) if missing */
} rvf_accel_mode;

/* Default cap on the codes' memory: 2 GiB (10M x 128 needs 1.4 GB). */
#define RVF_ACCEL_DEFAULT_MAX_BYTES ((uint64_t)2 << 30)

typedef struct rvf_search_options {
	unsigned threads;          /* 0 = one per CPU */
	const rvf_filter *filter;  /* NULL = all visible vectors */
	rvf_accel_mode accel;
	uint64_t accel_max_bytes;  /* 0 = RVF_ACCEL_DEFAULT_MAX_BYTES */
} rvf_search_options;

/* The view's codes: "ready", "building", "none" (not built: not searched
 * yet, or too small to need them), "off", or "unavailable: REASON".
 * *bytes (may be NULL) = their memory. */
const char *rvf_view_accel_state(rvf_view *v, uint64_t *bytes);

/* Exact k-nearest-neighbour search for nq queries (queries[nq*dimension])
 * in one pass over the data.  out[q*k .. q*k+k) receives the hits of query
 * q ordered by (distance, id); counts[q] how many there are (< k when fewer
 * vectors are visible).  Distances are the reference's. */
rvf_code rvf_view_search(const rvf_view *v, const float *queries, size_t nq,
			 size_t k, const rvf_search_options *opt, rvf_hit *out,
			 size_t *counts, rvf_error *err);

/* The query language (the `query` file, queries/NAME/request, rvfctl
 * query --file): one query per line, "[k=N] [ef=N] NUMBERS" or
 * {"vector":[...],"k":N,"ef":N,"filter":{...}}; blank and # lines skipped;
 * unknown keys and bad values refuse the request.  *out (malloc'd, NULL
 * only without memory) is the results text -- per query "ID DISTANCE"
 * lines, an empty line between queries -- or "error: line N: REASON\n"
 * when the code is not RVF_OK (RVF_E_INVALID_ARGUMENT for bad requests). */
#define RVF_REQUEST_MAX_K (1u << 20)
typedef struct rvf_request_options {
	size_t default_k;            /* k when a query names none; 0 = 10 */
	rvf_search_options search;   /* threads, codes (filter unused) */
	/* Optional: given the hits a request may produce (k capped by the
	 * visible vectors, summed over its queries), returns 0 or non-zero
	 * with a malloc'd reason in *msg; the request then fails with
	 * RVF_E_TOO_LARGE and "error: REASON". */
	int (*budget)(void *ctx, uint64_t hits, char **msg);
	void *budget_ctx;
} rvf_request_options;
rvf_code rvf_request_run(const rvf_view *v, const char *text, size_t len,
			 const rvf_request_options *opt, char **out,
			 size_t *out_len, rvf_error *err);

/* Distance between two vectors under a metric, as search computes it. */
float rvf_distance(rvf_metric m, const float *a, const float *b, size_t dim);

/* ------------------------------------------------------------------ */
/* Writing                                                             */
/* ------------------------------------------------------------------ */

/* What a commit did. */
typedef struct rvf_commit_info {
	uint32_t epoch;     /* epoch of the new manifest */
	uint64_t accepted;  /* vectors written / deleted */
	uint64_t bytes;     /* bytes appended */
} rvf_commit_info;

/* Durability.  By default every change below is durable when the call
 * returns (data fsynced, then the manifest, then fsynced again).  A store
 * in deferred mode commits like a filesystem: a change is visible in new
 * views at once, its segments are appended but not fsynced, and no
 * manifest is written; rvf_store_sync writes one manifest (and one witness
 * per kind of change) that makes every change since the last sync durable
 * together.  A crash loses the changes since the last sync, all of them or
 * none, never part of one.  librvf syncs by itself every 4096 changes,
 * before compaction, signing, freezing, branching, and at close. */
rvf_code rvf_store_set_deferred(rvf_store *s, bool deferred, rvf_error *err);
/* Makes the deferred changes durable; RVF_OK at once when there are none. */
rvf_code rvf_store_sync(rvf_store *s, rvf_commit_info *info, rvf_error *err);
/* True when changes are waiting for rvf_store_sync. */
bool rvf_store_dirty(rvf_store *s);
/* True when a writer holds the store (a commit, a streaming ingest, a
 * compaction) at this moment: a change started now would wait for it. */
bool rvf_store_writer_busy(rvf_store *s);

/* When to compact by itself (a policy applied by its user: rvffs). */
typedef struct rvf_compact_policy {
	bool enabled;
	double ratio;        /* dead_bytes / file_size at least this ... */
	uint64_t min_dead;   /* ... and dead_bytes at least this */
} rvf_compact_policy;

#define RVF_COMPACT_DEFAULT_RATIO 0.5
#define RVF_COMPACT_DEFAULT_MIN_DEAD ((uint64_t)1 << 20)

/* True when the view's dead bytes call for compaction under policy p. */
bool rvf_view_wants_compaction(const rvf_view *v, const rvf_compact_policy *p);


/* Streaming ingest: rows are appended to the file as they come (payloads
 * split at 256 MiB), and become visible together, at commit, with one
 * manifest.  abort truncates the file back: nothing is committed. */
typedef struct rvf_ingest rvf_ingest;

rvf_code rvf_ingest_begin(rvf_store *s, rvf_ingest **out, rvf_error *err);

/* Adds n rows.  ids may be NULL: ids are then assigned consecutively after
 * the largest id the store ever used (0 in an empty store).  vectors holds
 * n*dimension floats.  meta may be NULL; else row i has the fields
 * meta[meta_start[i] .. meta_start[i+1]). */
rvf_code rvf_ingest_add(rvf_ingest *t, size_t n, const uint64_t *ids,
			const float *vectors, const rvf_meta_field *meta,
			const size_t *meta_start, rvf_error *err);

/* Removes every metadata field of ids at commit (a row added for the same
 * id afterwards in this ingest sets its fields again).  A row added without
 * fields leaves an id's metadata alone; this is how to clear it. */
rvf_code rvf_ingest_clear_metadata(rvf_ingest *t, size_t n, const uint64_t *ids,
				   rvf_error *err);

/* Rows added so far. */
uint64_t rvf_ingest_rows(const rvf_ingest *t);

/* Writes the witness and manifest, fsyncs (data, then manifest) and
 * publishes the new view.  Frees t whatever the result; on failure nothing
 * is committed. */
rvf_code rvf_ingest_commit(rvf_ingest *t, rvf_commit_info *info,
			   rvf_error *err);
void rvf_ingest_abort(rvf_ingest *t);

/* A stream: an ingest of rows that arrive over time (a file being written
 * into rvffs's ingest/), without holding the store meanwhile.  Rows are
 * appended in segments no manifest lists; commit lists them all in one
 * commit (durable as any other under the store's mode), abort drops them.
 * Ids are taken a segment at a time, after the largest the store used and
 * every id other open streams (or an ingest meanwhile) took.  Both commit and
 * abort free st.  Compaction waits (fails) while a stream is open. */
typedef struct rvf_stream rvf_stream;
rvf_code rvf_stream_begin(rvf_store *s, rvf_stream **out, rvf_error *err);
uint32_t rvf_stream_dimension(const rvf_stream *st);
uint64_t rvf_stream_rows(const rvf_stream *st);
/* Adds n rows of dimension floats each. */
rvf_code rvf_stream_add(rvf_stream *st, size_t n, const float *vectors,
			rvf_error *err);
/* The same one row at a time, without a copy: the caller decodes the
 * next row into rvf_stream_slot (dimension floats, valid until the next
 * push), then rvf_stream_push adds it.  Full segments are written by a
 * thread of the stream's: a write error is returned by a later push or
 * by the commit (which then commits nothing). */
float *rvf_stream_slot(rvf_stream *st);
/* True when `rows` more pushes fill no segment (none waits for the
 * writer thread). */
bool rvf_stream_room(const rvf_stream *st, size_t rows);
rvf_code rvf_stream_push(rvf_stream *st, rvf_error *err);
rvf_code rvf_stream_commit(rvf_stream *st, rvf_commit_info *info,
			   rvf_error *err);
void rvf_stream_abort(rvf_stream *st);
/* True while a stream is open on s. */
bool rvf_store_streaming(rvf_store *s);

/* One-shot ingest of n rows (ids may be NULL as above). */
rvf_code rvf_store_ingest(rvf_store *s, size_t n, const uint64_t *ids,
			  const float *vectors, const rvf_meta_field *meta,
			  const size_t *meta_start, rvf_commit_info *info,
			  rvf_error *err);

/* Soft-deletes ids (JOURNAL + WITNESS + MANIFEST).  Only existing live own
 * ids enter the deletion list; in a branch child inherited ids are hidden
 * by clearing their membership bit.  info->accepted counts them. */
rvf_code rvf_store_delete(rvf_store *s, size_t n, const uint64_t *ids,
			  rvf_commit_info *info, rvf_error *err);

/* Deletes the own live vectors matching a filter; nothing is written when
 * none matches. */
rvf_code rvf_store_delete_filter(rvf_store *s, const rvf_filter *f,
				 rvf_commit_info *info, rvf_error *err);

/* Rewrites the file without deleted rows (temp file, fsync, rename, fsync
 * directory), in the reference's compacted layout; unknown segments are
 * preserved.  info->accepted = dead rows dropped. */
rvf_code rvf_store_compact(rvf_store *s, rvf_commit_info *info,
			   rvf_error *err);

/* Makes this handle read-only (and, for a branch child, records it). */
rvf_code rvf_store_freeze(rvf_store *s, rvf_commit_info *info, rvf_error *err);

typedef struct rvf_child_options {
	uint32_t dimension;  /* 0 = the parent's */
	int metric;          /* -1 = the parent's */
} rvf_child_options;

/* Creates CHILD with lineage only (parent id, parent hash, depth+1); it
 * holds none of the parent's vectors.  The child is returned open
 * read-write.  The parent may be read-only; it is not modified. */
rvf_code rvf_store_derive(rvf_store *parent, const char *child_path,
			  const rvf_child_options *opt, rvf_store **child,
			  rvf_error *err);

/* Creates a queryable copy-on-write branch CHILD (COW_MAP + MEMBERSHIP)
 * that sees the parent's vectors.  The parent must not change afterwards. */
rvf_code rvf_store_branch(rvf_store *parent, const char *child_path,
			  rvf_store **child, rvf_error *err);

/* The branch children of the store at `path` that sit beside it: store
 * files (*.rv*) in its directory whose COW_MAP names it.  Children in other
 * directories are not found.  Paths are "DIR/NAME" (DIR as in `path`;
 * just NAME when `path` has no directory), sorted. */
typedef struct rvf_children {
	char **paths;
	size_t count;
} rvf_children;
rvf_code rvf_branch_children(const char *path, rvf_children *out,
			     rvf_error *err);
void rvf_children_free(rvf_children *c);

/* Makes a branch child independent of its parent: the inherited vectors it
 * sees (with the parent's metadata for them) become its own rows, the
 * branch state (COW_MAP, MEMBERSHIP) leaves it, and the file is compacted
 * so no older branch state remains in it.  The child keeps its file id and
 * lineage (parent id, parent hash, depth), like a derived store, and shows
 * exactly the vectors it showed before.  info->accepted = rows copied.
 * RVF_E_INVALID_ARGUMENT when the store is not a branch child. */
rvf_code rvf_store_detach(rvf_store *s, rvf_commit_info *info, rvf_error *err);

typedef struct rvf_kernel_spec {
	uint8_t arch;
	uint8_t kernel_type;
	uint32_t flags;
	uint16_t api_port;
	const char *cmdline;   /* NULL or "" = none */
	bool compress;         /* store zstd-compressed (rvffs extension) */
} rvf_kernel_spec;

/* Embeds a kernel image, replacing any earlier one (older KERNEL entries
 * leave the directory so the reference sees this one). */
rvf_code rvf_store_embed_kernel(rvf_store *s, const rvf_kernel_spec *spec,
				const unsigned char *image, size_t image_len,
				rvf_commit_info *info, rvf_error *err);
/* Removes the kernel from the directory. RVF_E_NOT_FOUND if none. */
rvf_code rvf_store_remove_kernel(rvf_store *s, rvf_commit_info *info,
				 rvf_error *err);

typedef struct rvf_ebpf_spec {
	uint8_t program_type;
	uint8_t attach_type;
	uint16_t max_dimension;
} rvf_ebpf_spec;

rvf_code rvf_store_embed_ebpf(rvf_store *s, const rvf_ebpf_spec *spec,
			      const unsigned char *bytecode, size_t len,
			      const unsigned char *btf, size_t btf_len,
			      rvf_commit_info *info, rvf_error *err);
rvf_code rvf_store_remove_ebpf(rvf_store *s, rvf_commit_info *info,
			       rvf_error *err);

/* Appends a REFCOUNT segment (replacing earlier ones in the directory) and
 * commits it.  RVF_E_NOT_FOUND when the store has no COW map. */
rvf_code rvf_store_rebuild_refcounts(rvf_store *s, rvf_refcount_info *out,
				     rvf_commit_info *info, rvf_error *err);

/* ------------------------------------------------------------------ */
/* Signing (rvffs extension; docs/format-signature.md)                 */
/* ------------------------------------------------------------------ */

/* Ed25519 keys as libsodium holds them: the secret key embeds the public
 * key in its last 32 bytes. */
#define RVF_SIGN_PUBLIC_KEY_BYTES 32
#define RVF_SIGN_SECRET_KEY_BYTES 64

/* Makes a new key pair and writes PREFIX (secret key, mode 0600) and
 * PREFIX.pub, one hex line each.  Refuses (RVF_E_EXISTS) to overwrite
 * either.  public_key (may be NULL) receives the public key. */
rvf_code rvf_sign_keygen(const char *prefix,
			 uint8_t public_key[RVF_SIGN_PUBLIC_KEY_BYTES],
			 rvf_error *err);

/* Reads a key file written by rvf_sign_keygen.  With secret_key NULL a
 * public key file (or a secret one, whose public half is taken) is
 * accepted; otherwise the file must hold a secret key. */
rvf_code rvf_sign_read_key(const char *path,
			   uint8_t secret_key[RVF_SIGN_SECRET_KEY_BYTES],
			   uint8_t public_key[RVF_SIGN_PUBLIC_KEY_BYTES],
			   rvf_error *err);

/* Signs the store's committed content: appends a SIGNATURE segment over
 * every segment the current directory lists (SIGNATURE segments excepted)
 * and commits it with a new manifest.  Earlier signatures by the same key
 * leave the directory.  The content must be undamaged (hashes verify). */
rvf_code rvf_store_sign(rvf_store *s,
			const uint8_t secret_key[RVF_SIGN_SECRET_KEY_BYTES],
			const uint8_t public_key[RVF_SIGN_PUBLIC_KEY_BYTES],
			rvf_commit_info *info, rvf_error *err);

/* The check of one SIGNATURE segment. */
typedef struct rvf_signature_check {
	uint64_t offset;          /* file offset of the SIGNATURE segment */
	uint32_t epoch;           /* epoch of the signed state */
	uint8_t public_key[RVF_SIGN_PUBLIC_KEY_BYTES];
	uint32_t covered;         /* segments the signature covers */
	uint32_t uncovered;       /* directory entries committed after it
				   * (manifests and signatures not counted) */
	bool ok;                  /* content digest and Ed25519 signature verify */
	bool trusted;             /* made with the key the caller asked for */
	char problem[200];        /* why not ok, or "" */
} rvf_signature_check;

/* Checks every SIGNATURE segment the directory lists: the signed state
 * (the newest manifest before the signature) still has the recorded epoch,
 * its segments hash to the recorded digest, and the signature over that
 * digest verifies with the recorded public key.  *checks (caller frees;
 * NULL when there are none) gets one entry per signature.  Returns RVF_OK
 * when every signature verifies and, when public_key is not NULL, at least
 * one was made with it; RVF_E_SIGNATURE naming the first failure otherwise. */
rvf_code rvf_view_verify_signatures(const rvf_view *v,
				    const uint8_t *public_key,
				    rvf_signature_check **checks, size_t *n,
				    rvf_error *err);

/* ------------------------------------------------------------------ */
/* Import: vector files in common formats                              */
/* ------------------------------------------------------------------ */

typedef enum rvf_import_format {
	RVF_IMPORT_CSV,   /* .csv .tsv .txt: id then components per line */
	RVF_IMPORT_JSONL, /* .jsonl .ndjson: {"id":N,"vector":[...],"metadata":{...}} */
	RVF_IMPORT_JSON,  /* .json: an array of the same objects */
	RVF_IMPORT_FVECS, /* .fvecs: int32 dim then dim float32, per row */
	RVF_IMPORT_NPY,   /* .npy: float32 or float64, 2-D, C order */
	RVF_IMPORT_F32,   /* .f32: raw little-endian float32 rows */
} rvf_import_format;

/* Picks the format from a file name's extension; false when unknown. */
bool rvf_import_format_from_name(const char *name, rvf_import_format *out);
const char *rvf_import_format_name(rvf_import_format f);

/* Receives parsed rows in batches.  ids is NULL for formats without ids
 * (fvecs, npy, f32): the store assigns them.  Row i has the metadata fields
 * meta[meta_start[i] .. meta_start[i+1]) (meta NULL: none).  Pointers are
 * valid during the call only.  A non-OK return stops the import. */
typedef rvf_code (*rvf_import_sink)(void *ctx, size_t n, const uint64_t *ids,
				    const float *vectors,
				    const rvf_meta_field *meta,
				    const size_t *meta_start, rvf_error *err);

/* Streams the file open at fd (read from its current position to EOF) in
 * bounded memory, checking every row has `dimension` components.  On bad
 * input returns RVF_E_INVALID_ARGUMENT with a message naming `name`, the
 * line or record, and what was wrong.  *rows (may be NULL) = rows parsed. */
rvf_code rvf_import_fd(int fd, const char *name, rvf_import_format fmt,
		       uint32_t dimension, rvf_import_sink sink, void *ctx,
		       uint64_t *rows, rvf_error *err);

/* The header of an .npy file (versions 1.0, 2.0, 3.0) as rvf_import_fd
 * takes it: a 2-D C-order array of little-endian float32 ('<f4') or
 * float64 ('<f8', narrowed to float32) with `dimension` columns. */
typedef struct rvf_npy_header {
	uint64_t rows;        /* shape[0]: the data is rows * dimension * width bytes */
	unsigned width;       /* bytes per component: 4 or 8 */
	size_t data_offset;   /* where the rows start */
} rvf_npy_header;

/* Parses the header from the first len bytes of a file.  RVF_OK with
 * *need > 0: the header goes on, call again with at least *need bytes;
 * RVF_OK with *need 0: *out is filled.  complete: the file has no more
 * bytes (an empty file then has no rows; a short header is an error).
 * A bad header is refused as soon as the bytes that show it are there:
 * RVF_E_INVALID_ARGUMENT, "name: npy header: ...". */
rvf_code rvf_npy_read_header(const void *buf, size_t len, bool complete,
			     const char *name, uint32_t dimension,
			     rvf_npy_header *out, size_t *need, rvf_error *err);

/* Checks complete lines of a CSV/TSV/text or JSON Lines file as they
 * arrive (other formats: RVF_OK, they are checked whole): the same rules
 * and messages as rvf_import_fd, with line numbers from first_line (a
 * first_line above 1 has no header line).  The ingest/ directory fails
 * the write() of a bad line with it. */
rvf_code rvf_import_check_lines(const char *text, size_t len, const char *name,
				rvf_import_format fmt, uint32_t dimension,
				uint64_t first_line, rvf_error *err);

/* ------------------------------------------------------------------ */
/* Hashes (exposed for tools and tests)                                */
/* ------------------------------------------------------------------ */

/* CRC-32/IEEE replicated as the reference's 16-byte content hash. */
void rvf_content_hash(const void *data, size_t len, uint8_t out[16]);
/* The reference's simple_hash256 (not SHAKE-256). */
void rvf_simple_hash256(const void *data, size_t len, uint8_t out[32]);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif /* RVF_H */
