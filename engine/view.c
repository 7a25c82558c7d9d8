/* view.c - building an immutable snapshot of a committed store state.
 *
 * A view indexes rows in place: each visible vector is an (id, pointer into
 * the mapping) pair, sorted by id.  Nothing is copied onto the heap but
 * those pairs, so opening a large store costs about as much as reading its
 * ids.  After a commit, the new view reuses the rows of the previous one
 * and reads only the segments the commit appended. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bigmem.h"
#include "bytes.h"
#include "error.h"
#include "io.h"
#include "sort.h"
#include "checksum.h"
#include "dtype.h"
#include "guard.h"
#include "hash.h"
#include "jsondoc.h"
#include "segment.h"
#include "store.h"

/* ------------------------------------------------------------------ */
/* Mappings                                                            */
/* ------------------------------------------------------------------ */

rvf_map *map_file(int fd, uint64_t size, rvf_error *err)
{
	struct stat st;
	if (fstat(fd, &st) != 0) {
		rvf_fail_io(err, errno, "cannot stat the store");
		return NULL;
	}
	long page = sysconf(_SC_PAGESIZE);
	/* Leave room to grow so appends need no new mapping. */
	uint64_t cap = size * 2;
	if (cap < size + (64u << 20))
		cap = size + (64u << 20);
	cap = (cap + (uint64_t)page - 1) & ~((uint64_t)page - 1);
	rvf_map *m = calloc(1, sizeof(*m));
	if (!m) {
		rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
		return NULL;
	}
	int fault = io_map_fault();
	m->base = fault ? MAP_FAILED :
		  mmap(NULL, (size_t)cap, PROT_READ, MAP_SHARED, fd, 0);
	if (fault)
		errno = fault;
	if (m->base == MAP_FAILED) {
		rvf_fail_io(err, errno, "cannot map the store (%llu bytes)",
			    (unsigned long long)size);
		free(m);
		return NULL;
	}
	m->capacity = (size_t)cap;
	guard_map_add(m->base, m->capacity);
	m->dev = st.st_dev;
	m->ino = st.st_ino;
	atomic_init(&m->refs, 1);
	return m;
}

rvf_map *map_ref(rvf_map *m)
{
	atomic_fetch_add(&m->refs, 1);
	return m;
}

void map_unref(rvf_map *m)
{
	if (m && atomic_fetch_sub(&m->refs, 1) == 1) {
		guard_map_remove(m->base);
		munmap(m->base, m->capacity);
		free(m);
	}
}

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

/* A row with its arrival order, so that the later of two equal ids wins. */
typedef struct seq_row {
	uint64_t id;
	const unsigned char *data;
	size_t seq;
} seq_row;

static int cmp_seq_row(const void *a, const void *b)
{
	const seq_row *x = a, *y = b;
	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

bool view_is_deleted(const rvf_view *v, uint64_t id)
{
	return v->ndeleted && bsearch(&id, v->deleted, v->ndeleted, sizeof(uint64_t),
		       cmp_u64) != NULL;
}

static long row_find(const search_row *rows, size_t n, uint64_t id)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (rows[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && rows[lo].id == id ? (long)lo : -1;
}

const search_row *view_own_row(const rvf_view *v, uint64_t id)
{
	long i = row_find(v->own, v->nown, id);
	return i < 0 ? NULL : &v->own[i];
}

uint64_t view_total_rows(const rvf_view *v)
{
	return v->nown;
}

static int cmp_seg_offset(const void *a, const void *b)
{
	const rvf_segment *x = a, *y = b;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* ------------------------------------------------------------------ */
/* Building                                                            */
/* ------------------------------------------------------------------ */

/* An unlisted segment at `pos` that ends by `limit`, or a gap of raw bytes
 * up to `limit` (nothing we can decode: torn or foreign bytes). */
static void unlisted_at(const rvf_view *v, uint64_t pos, uint64_t limit,
			const rvf_view *prev, rvf_segment *out)
{
	const unsigned char *map = v->map->base;
	memset(out, 0, sizeof(*out));
	if (segment_at(map, limit, pos, out, NULL) != RVF_OK) {
		memset(out, 0, sizeof(*out));
		out->offset = pos;
		out->gap = true;
		out->payload_length = limit - pos;
		return;
	}
	out->readable = true;
	const rvf_segment *old = NULL;
	if (prev) {
		rvf_segment key = { .offset = pos };
		old = bsearch(&key, prev->sorted, prev->nsorted, sizeof(rvf_segment),
			      cmp_seg_offset);
		if (old && (!old->readable || old->payload_length != out->payload_length))
			old = NULL;
	}
	out->hash_algo = old ? old->hash_algo :
			 content_hash_identify(out, map + pos + RVF_SEGMENT_HEADER_SIZE,
					       (size_t)out->payload_length);
	out->hash_ok = content_hash_algo_ok(out->hash_algo);
}

/* Completes v->sorted (listed segments and the newest manifest, by offset)
 * with what lies between and after them: older sessions' manifests, the
 * witness after a compaction, torn bytes.  The list then covers the file
 * byte for byte, so concatenating segments/ rebuilds it.  Segments are packed,
 * so this walks headers; bytes that are none become one gap up to the
 * next known segment. */
static rvf_code add_unlisted(rvf_view *v, uint64_t size, const rvf_view *prev)
{
	rvf_segment *extra = NULL;
	size_t nextra = 0, cap = 0;
	uint64_t pos = 0;
	for (size_t i = 0; i <= v->nsorted; i++) {
		uint64_t limit = i < v->nsorted ? v->sorted[i].offset : size;
		if (limit > size)
			limit = size;
		while (pos < limit) {
			if (nextra == cap) {
				size_t nc = cap ? 2 * cap : 8;
				rvf_segment *g = realloc(extra, nc * sizeof(*g));
				if (!g) {
					free(extra);
					return RVF_E_NO_MEMORY;
				}
				extra = g;
				cap = nc;
			}
			rvf_segment *u = &extra[nextra++];
			unlisted_at(v, pos, limit, prev, u);
			pos += u->gap ? u->payload_length :
			       RVF_SEGMENT_HEADER_SIZE + u->payload_length;
		}
		if (i < v->nsorted) {
			uint64_t end = v->sorted[i].offset + RVF_SEGMENT_HEADER_SIZE +
				       v->sorted[i].payload_length;
			if (end > pos)
				pos = end;
		}
	}
	if (!nextra)
		return RVF_OK;
	rvf_segment *all = realloc(v->sorted, (v->nsorted + nextra) * sizeof(*all));
	if (!all) {
		free(extra);
		return RVF_E_NO_MEMORY;
	}
	memcpy(all + v->nsorted, extra, nextra * sizeof(*extra));
	v->sorted = all;
	v->nsorted += nextra;
	free(extra);
	qsort(v->sorted, v->nsorted, sizeof(rvf_segment), cmp_seg_offset);
	return RVF_OK;
}

/* Where a directory entry's segment lies, by the header found there. */
typedef struct extent {
	uint64_t start, end;
	uint32_t index;
} extent;

static int cmp_extent(const void *a, const void *b)
{
	const extent *x = a, *y = b;
	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

/* A hostile file may list one segment many times, or segments nested in
 * each other, so that every entry re-reads (and re-hashes, and re-indexes)
 * the same bytes: a 512 KB file whose entries all name one 1,000-row VEC
 * segment would cost a gigabyte.  The reference never writes either, so
 * before any segment is read: two entries that point at the same offset
 * make the store corrupt, and so do segments that together cover more
 * than twice the file (a damaged length that runs a few bytes into the
 * next segment is tolerated, as the reference tolerates it; nesting
 * segments to multiply the work is not).  Entries without a segment
 * header where they point are never read and cost nothing. */
static rvf_code check_directory(const rvf_view *v, uint64_t size,
				rvf_error *err)
{
	uint32_t n = v->man.dir_len;
	extent *x = malloc(((size_t)n + 1) * sizeof(extent));
	if (!x)
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	size_t k = 0;
	uint64_t covered = 0;
	for (uint32_t i = 0; i < n; i++) {
		const dir_entry *e = &v->man.dir[i];
		rvf_segment seg;
		if (segment_at(v->map->base, size, e->offset, &seg, NULL) != RVF_OK)
			continue;
		uint64_t len = RVF_SEGMENT_HEADER_SIZE + seg.payload_length;
		x[k++] = (extent){ e->offset, e->offset + len, i };
		covered += len; /* each len <= size: no overflow for 2^32 entries */
	}
	qsort(x, k, sizeof(extent), cmp_extent);
	rvf_code rc = RVF_OK;
	for (size_t i = 1; i < k && rc == RVF_OK; i++)
		if (x[i].start == x[i - 1].start)
			rc = rvf_fail(err, RVF_E_CORRUPT,
				      "directory entries %u and %u both point at offset %llu: a store lists each segment once",
				      x[i - 1].index, x[i].index,
				      (unsigned long long)x[i].start);
	if (rc == RVF_OK && covered / 2 > size)
		rc = rvf_fail(err, RVF_E_CORRUPT,
			      "the directory's segments overlap: together they cover %llu bytes of a %llu-byte file",
			      (unsigned long long)covered, (unsigned long long)size);
	free(x);
	return rc;
}

/* Decodes directory entry e; for entries we read (`must`), damage is an
 * error, for the rest it only marks the segment unreadable. */
static rvf_code decode_entry(const rvf_view *v, const dir_entry *e,
			     uint64_t size, const rvf_view *prev,
			     uint64_t trusted_from, rvf_segment *out,
			     rvf_error *err)
{
	const unsigned char *map = v->map->base;
	rvf_error local = { 0 };
	char label[SEGMENT_LABEL_SIZE];
	segment_type_label(e->type, label);
	memset(out, 0, sizeof(*out));
	out->offset = e->offset;
	out->type = e->type;
	out->id = e->seg_id;
	out->payload_length = e->payload_length;
	out->listed = true;
	rvf_code at = segment_at(map, size, e->offset, out, &local);
	if (at != RVF_OK || out->type != e->type) {
		/* Say what is wrong before out is reset to the entry. */
		char why[sizeof(local.message)];
		if (at != RVF_OK) {
			snprintf(why, sizeof(why), "%s", local.message);
		} else {
			char found[SEGMENT_LABEL_SIZE];
			segment_type_label(out->type, found);
			snprintf(why, sizeof(why), "the header there is of a %s segment",
				 found);
		}
		out->offset = e->offset;
		out->type = e->type;
		out->id = e->seg_id;
		out->payload_length = e->payload_length;
		out->listed = true;
		out->readable = false;
		if (e->type == RVF_SEG_VEC)
			return rvf_fail(err, RVF_E_CORRUPT,
					"%s segment id %llu at offset %llu: %s",
					label, (unsigned long long)e->seg_id,
					(unsigned long long)e->offset, why);
		return RVF_OK;
	}
	out->listed = true;
	out->readable = true;
	const unsigned char *payload = map + e->offset + RVF_SEGMENT_HEADER_SIZE;
	const rvf_segment *old = NULL;
	if (e->offset >= trusted_from) {
		/* We just wrote it, with the reference's hash. */
		out->hash_algo = content_hash_is_zero(out->content_hash) ?
				 RVF_HASH_NONE : RVF_HASH_CRC32_ROTATED;
	} else if (prev) {
		/* Reuse the verdict of the view that already checked it. */
		rvf_segment key = { .offset = e->offset };
		old = bsearch(&key, prev->sorted, prev->nsorted,
			      sizeof(rvf_segment), cmp_seg_offset);
		if (!old || !old->readable ||
		    old->payload_length != out->payload_length)
			old = NULL;
	}
	if (old)
		out->hash_algo = old->hash_algo;
	else if (e->offset < trusted_from)
		out->hash_algo = content_hash_identify(out, payload,
						       (size_t)out->payload_length);
	out->hash_ok = content_hash_algo_ok(out->hash_algo);
	if (!out->hash_ok && (e->type == RVF_SEG_VEC || e->type == RVF_SEG_META ||
			      e->type == RVF_SEG_COW_MAP ||
			      e->type == RVF_SEG_MEMBERSHIP))
		return rvf_fail(err, RVF_E_INVALID_CHECKSUM,
				"%s segment id %llu at offset %llu: content hash mismatch",
				label, (unsigned long long)e->seg_id,
				(unsigned long long)e->offset);
	return RVF_OK;
}

/* Appends the f32 rows of a block-layout VEC payload (dtype.h); the view
 * keeps the converted rows. */
static rvf_code collect_block_rows(rvf_view *v, const rvf_segment *seg,
				   seq_row **rows, size_t *n, size_t *cap,
				   rvf_error *err)
{
	const unsigned char *p = v->map->base + seg->offset + RVF_SEGMENT_HEADER_SIZE;
	char what[96];
	snprintf(what, sizeof(what), "VEC segment id %llu at offset %llu",
		 (unsigned long long)seg->id, (unsigned long long)seg->offset);
	vec_blocks b;
	rvf_code rc = vec_blocks_decode(p, seg->payload_length, v->info.dimension,
					what, &b, err);
	if (rc != RVF_OK)
		return rc;
	float **nc = realloc(v->converted, (v->nconverted + 1) * sizeof(float *));
	seq_row *r = *n + b.n > *cap ? realloc(*rows, (*n + b.n) * sizeof(seq_row)) : *rows;
	if (nc)
		v->converted = nc;
	if (r && *n + b.n > *cap) {
		*rows = r;
		*cap = *n + b.n;
	}
	if (!nc || !r) {
		vec_blocks_free(&b);
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory indexing rows");
	}
	v->converted[v->nconverted++] = b.rows;
	for (size_t k = 0; k < b.n; k++) {
		seq_row *row = &(*rows)[*n];
		row->id = b.ids[k];
		row->data = (const unsigned char *)(b.rows + k * v->info.dimension);
		row->seq = *n;
		(*n)++;
	}
	free(b.ids);
	return RVF_OK;
}

/* The row run of the segment whose header is at offset, or NULL. */
static const row_run *view_run_at(const rvf_view *v, uint64_t offset)
{
	size_t lo = 0, hi = v->nruns;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v->runs[mid].offset < offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < v->nruns && v->runs[lo].offset == offset ? &v->runs[lo] : NULL;
}

/* Appends the rows of one VEC segment, from row `skip` on, to *rows. */
static rvf_code collect_vec_rows(rvf_view *v, const rvf_segment *seg,
				 uint32_t skip, seq_row **rows, size_t *n,
				 size_t *cap, rvf_error *err)
{
	const unsigned char *p = v->map->base + seg->offset + RVF_SEGMENT_HEADER_SIZE;
	uint64_t len = seg->payload_length;
	if (skip == 0 && vec_is_block_layout(p, len, v->info.dimension))
		return collect_block_rows(v, seg, rows, n, cap, err);
	if (len < 6)
		return rvf_fail(err, RVF_E_CORRUPT,
				"VEC segment id %llu at offset %llu: payload too short",
				(unsigned long long)seg->id,
				(unsigned long long)seg->offset);
	uint32_t dim = ld16(p), count = ld32(p + 2);
	if (dim != v->info.dimension || dim == 0)
		return RVF_OK; /* the reference skips rows of another dimension */
	uint64_t stride = 8 + 4 * (uint64_t)dim;
	if ((len - 6) / stride < count)
		return rvf_fail(err, RVF_E_CORRUPT,
				"VEC segment id %llu at offset %llu: %u rows do not fit in %llu bytes",
				(unsigned long long)seg->id,
				(unsigned long long)seg->offset, count,
				(unsigned long long)len);
	if (*n + count > *cap) {
		size_t nc = (*cap ? *cap * 2 : 1024);
		while (nc < *n + count)
			nc *= 2;
		seq_row *r = realloc(*rows, nc * sizeof(seq_row));
		if (!r)
			return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory indexing rows");
		*rows = r;
		*cap = nc;
	}
	const unsigned char *row = p + 6 + (uint64_t)skip * stride;
	const row_run *run = view_run_at(v, seg->offset);
	if (run && run->count == count) {
		/* the writer's ids: no page of the rows is read */
		for (uint32_t k = skip; k < count; k++, row += stride) {
			seq_row *r = &(*rows)[*n];
			r->id = run->first_id + k;
			r->data = row + 8;
			r->seq = *n;
			(*n)++;
		}
		return RVF_OK;
	}
	for (uint32_t k = skip; k < count; k++, row += stride) {
		seq_row *r = &(*rows)[*n];
		r->id = ld64(row);
		r->data = row + 8;
		r->seq = *n;
		(*n)++;
	}
	return RVF_OK;
}

/* Sorts rows by id, keeping arrival order among equal ids: an LSD radix
 * sort (stable), one pass per id byte that is not the same in every row,
 * so random ids open about as fast as ascending ones (a comparison sort
 * of 1M random ids took two thirds of the open).  Falls back to qsort
 * when the scratch copy cannot be had. */
static void sort_rows(seq_row *rows, size_t n)
{
	seq_row *tmp = big_alloc(n * sizeof(seq_row));
	size_t (*count)[256] = calloc(8, sizeof(*count));
	if (!tmp || !count) {
		free(tmp);
		free(count);
		qsort(rows, n, sizeof(seq_row), cmp_seq_row);
		return;
	}
	for (size_t i = 0; i < n; i++)
		for (int b = 0; b < 8; b++)
			count[b][rows[i].id >> (8 * b) & 0xff]++;
	seq_row *src = rows, *dst = tmp;
	for (int b = 0; b < 8; b++) {
		if (count[b][rows[0].id >> (8 * b) & 0xff] == n)
			continue; /* every row has the same byte here */
		size_t pos[256], sum = 0;
		for (int k = 0; k < 256; k++) {
			pos[k] = sum;
			sum += count[b][k];
		}
		for (size_t i = 0; i < n; i++)
			dst[pos[src[i].id >> (8 * b) & 0xff]++] = src[i];
		seq_row *t = src;
		src = dst;
		dst = t;
	}
	if (src != rows)
		memcpy(rows, src, n * sizeof(seq_row));
	free(tmp);
	free(count);
}

/* Sorts rows by (id, arrival) and keeps the last row of each id. */
static size_t sort_dedup(seq_row *rows, size_t n)
{
	bool sorted = true;
	for (size_t i = 1; i < n && sorted; i++)
		sorted = rows[i - 1].id < rows[i].id;
	if (!sorted)
		sort_rows(rows, n);
	size_t w = 0;
	for (size_t i = 0; i < n; i++) {
		if (w > 0 && rows[w - 1].id == rows[i].id)
			rows[w - 1] = rows[i];
		else
			rows[w++] = rows[i];
	}
	return w;
}

/* own = merge(prev own, new rows); new rows win on equal ids. */
static rvf_code merge_own(rvf_view *v, const search_row *old, size_t nold,
			  const seq_row *add, size_t nadd, rvf_error *err)
{
	/* room for the appends of the views after this one (index_rows):
	 * a copy every quarter of growth, O(1) per row amortised */
	size_t cap = nold + nadd + (nold + nadd) / 4 + 64;
	v->own = big_alloc(cap * sizeof(search_row));
	if (!v->own)
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory indexing rows");
	v->own_cap = cap;
	atomic_fetch_add(&view_own_rows_copied, nold);
	size_t i = 0, j = 0, w = 0;
	while (i < nold || j < nadd) {
		if (j >= nadd || (i < nold && old[i].id < add[j].id)) {
			v->own[w++] = old[i++];
		} else {
			if (i < nold && old[i].id == add[j].id)
				i++;
			v->own[w].id = add[j].id;
			v->own[w].data = add[j].data;
			w++;
			j++;
		}
	}
	v->nown = w;
	atomic_store(&v->own_used, w);
	if (w) {
		v->own_has_max = true;
		v->own_max = v->own[w - 1].id;
	}
	return RVF_OK;
}

/* own = the new rows, when there are no old ones: rows (sorted, unique)
 * become the own array in place instead of being copied (a first ingest
 * of a million rows: 16 MB less to allocate, fault in and fill). */
static void adopt_own(rvf_view *v, seq_row *rows, size_t n)
{
	_Static_assert(sizeof(search_row) <= sizeof(seq_row), "own fits in rows");
	search_row *own = (search_row *)(void *)rows;
	for (size_t i = 0; i < n; i++) {
		/* own[i] ends before rows[i + 1] begins: read rows[i] first */
		search_row r = { .id = rows[i].id, .data = rows[i].data };
		own[i] = r;
	}
	/* room for later appends, as merge_own leaves */
	size_t cap = n + n / 4 + 64;
	search_row *shrunk = realloc(own, cap * sizeof(search_row));
	if (shrunk)
		own = shrunk;
	else
		cap = n; /* the array is at least n search_rows long */
	v->own = own;
	v->own_cap = cap;
	v->nown = n;
	atomic_store(&v->own_used, n);
	v->own_has_max = true;
	v->own_max = own[n - 1].id;
}

/* Shares prev's own array and appends rows (ascending, all above prev's
 * ids) after prev's, when prev is the newest view using the array and it
 * has room; false (nothing changed) otherwise. */
static bool append_own(rvf_view *v, const rvf_view *prev, const seq_row *add,
		       size_t nadd)
{
	rvf_view *owner = prev->own_owner ? prev->own_owner : (rvf_view *)prev;
	size_t n = prev->nown;
	if (!n || v->nconverted || add[0].id <= prev->own[n - 1].id ||
	    owner->own != prev->own || n + nadd > owner->own_cap)
		return false;
	size_t expect = n;
	if (!atomic_compare_exchange_strong(&owner->own_used, &expect, n + nadd))
		return false; /* another view appended after prev already */
	search_row *own = owner->own;
	for (size_t j = 0; j < nadd; j++)
		own[n + j] = (search_row){ .id = add[j].id, .data = add[j].data };
	v->own_owner = rvf_view_ref(owner);
	v->own = own;
	v->nown = n + nadd;
	v->own_has_max = true;
	v->own_max = add[nadd - 1].id;
	return true;
}

static bool bit_set(const cow_state *c, uint64_t id)
{
	return id < c->capacity_bits && (c->bitmap[id / 8] >> (id % 8)) & 1;
}

atomic_size_t view_rows_copied;
atomic_size_t view_own_rows_copied;

/* Visible rows: own live rows, plus in a branch child the parent's own
 * live rows whose membership bit is set and that the child does not
 * override (§6 of the format document).  Copies them all: O(rows). */
static rvf_code build_visible_flat(rvf_view *v, rvf_error *err)
{
	/* own and deleted are both ascending: walk them together. */
	size_t dead = 0;
	for (size_t i = 0, d = 0; i < v->nown && d < v->ndeleted;) {
		if (v->own[i].id < v->deleted[d]) {
			i++;
		} else if (v->own[i].id > v->deleted[d]) {
			d++;
		} else {
			dead++;
			i++;
			d++;
		}
	}
	v->info.own_live = v->nown - dead;
	if (!v->is_branch && dead == 0) {
		v->visible = v->own;
		v->nvisible = v->nown;
		v->visible_is_own = true;
		v->info.visible = v->nown;
		return RVF_OK;
	}
	const rvf_view *p = v->parent;
	size_t cap = v->nown - dead + (p ? p->nown : 0);
	v->visible = big_alloc((cap ? cap : 1) * sizeof(search_row));
	if (!v->visible)
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory indexing rows");
	size_t i = 0, j = 0, w = 0, inherited = 0, d = 0;
	size_t np = p ? p->nown : 0;
	while (i < v->nown || j < np) {
		if (j >= np || (i < v->nown && v->own[i].id <= p->own[j].id)) {
			if (j < np && p->own[j].id == v->own[i].id)
				j++; /* the child's row overrides, live or deleted */
			while (d < v->ndeleted && v->deleted[d] < v->own[i].id)
				d++;
			if (d >= v->ndeleted || v->deleted[d] != v->own[i].id)
				v->visible[w++] = v->own[i];
			i++;
		} else {
			const search_row *r = &p->own[j++];
			if (bit_set(&v->cow, r->id) && !view_is_deleted(p, r->id)) {
				v->visible[w++] = *r;
				inherited++;
			}
		}
	}
	v->nvisible = w;
	v->info.visible = w;
	v->info.inherited = inherited;
	atomic_fetch_add(&view_rows_copied, w);
	return RVF_OK;
}

/* Most rows an overlay hides before the next view copies its rows again:
 * a copy of n rows every n/16 deletes costs about 16 row copies per
 * delete, and an overlay's lookups stay a binary search in a short list. */
static bool overlay_too_long(size_t nhide, size_t nbase)
{
	return nhide > 64 && nhide > nbase / 16;
}

/* The ids v deletes that prev did not, when v only adds deletions to prev
 * (both lists ascend); false otherwise (an id came back: compaction). */
static bool new_deletions(const rvf_view *v, const rvf_view *prev,
			  uint64_t **out, size_t *n)
{
	if (v->ndeleted < prev->ndeleted)
		return false;
	uint64_t *add = malloc((v->ndeleted - prev->ndeleted + 1) * sizeof(uint64_t));
	if (!add)
		return false;
	size_t i = 0, k = 0;
	for (size_t j = 0; j < v->ndeleted; j++) {
		/* long equal runs (one `rm` adds one id): skip them a block
		 * at a time, memcmp is many times the speed of this loop */
		while (i + 64 <= prev->ndeleted && j + 64 <= v->ndeleted &&
		       !memcmp(prev->deleted + i, v->deleted + j, 64 * sizeof(uint64_t))) {
			i += 64;
			j += 64;
		}
		if (j >= v->ndeleted)
			break;
		if (i < prev->ndeleted && prev->deleted[i] == v->deleted[j])
			i++;
		else if (i < prev->ndeleted && prev->deleted[i] < v->deleted[j])
			break; /* prev's id is gone from v's list */
		else
			add[k++] = v->deleted[j];
	}
	if (i != prev->ndeleted) {
		free(add);
		return false;
	}
	*out = add;
	*n = k;
	return true;
}

/* Position in `base`'s visible rows of every id of add[n] it shows,
 * merged (ascending) with the positions `prev` already hides. */
static size_t *merge_hidden(const rvf_view *base, const size_t *old,
			    size_t nold, const uint64_t *add, size_t n,
			    size_t *nout)
{
	size_t *pos = malloc((nold + n + 1) * sizeof(size_t));
	if (!pos)
		return NULL;
	size_t i = 0, w = 0;
	for (size_t k = 0; k < n; k++) {
		long at = row_find(base->visible, base->nvisible, add[k]);
		if (at < 0)
			continue;
		while (i < nold && old[i] < (size_t)at)
			pos[w++] = old[i++];
		if (i < nold && old[i] == (size_t)at)
			continue; /* already hidden (not expected) */
		pos[w++] = (size_t)at;
	}
	while (i < nold)
		pos[w++] = old[i++];
	*nout = w;
	return pos;
}

/* Visible rows of a view that only deletes ids from prev (the same own
 * rows, no branch): prev's rows are not copied; v shows them minus the
 * ones it hides (an overlay).  Costs what the change deletes, plus a walk
 * of the deletion lists.  Returns false when this does not apply. */
static bool build_visible_overlay(rvf_view *v, const rvf_view *prev)
{
	/* same own rows: the same array and length (an append shares it) */
	if (!prev || v->own != prev->own || v->nown != prev->nown ||
	    v->is_branch || prev->is_branch)
		return false;
	const rvf_view *base = prev->vis_base ? prev->vis_base : prev;
	uint64_t *add;
	size_t nadd;
	if (!new_deletions(v, prev, &add, &nadd))
		return false;
	size_t nhide = 0;
	size_t *pos = merge_hidden(base, prev->hide_pos, prev->nhide, add,
				   nadd, &nhide);
	size_t own_gone = 0;
	for (size_t k = 0; k < nadd; k++)
		own_gone += row_find(v->own, v->nown, add[k]) >= 0;
	free(add);
	if (!pos || overlay_too_long(nhide, base->nvisible)) {
		free(pos);
		return false;
	}
	v->vis_base = rvf_view_ref((rvf_view *)base);
	v->hide_pos = pos;
	v->nhide = nhide;
	v->nvisible = base->nvisible - nhide;
	v->info.visible = v->nvisible;
	v->info.own_live = prev->info.own_live - own_gone;
	v->info.inherited = 0;
	return true;
}

static rvf_code build_visible(rvf_view *v, const rvf_view *prev,
			      rvf_error *err)
{
	if (build_visible_overlay(v, prev))
		return RVF_OK;
	return build_visible_flat(v, err);
}

/* Position in vis_base's rows of an overlay's visible row `index`: the
 * hidden positions p[k] ascend, and p[k] - k (the visible rows before
 * the k-th hidden one) does not descend, so a binary search counts the
 * hidden rows at or before the answer. */
static size_t overlay_base_index(const rvf_view *v, size_t index)
{
	size_t lo = 0, hi = v->nhide;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v->hide_pos[mid] - mid <= index)
			lo = mid + 1;
		else
			hi = mid;
	}
	return index + lo;
}

static const search_row *visible_row(const rvf_view *v, size_t index)
{
	if (!v->vis_base)
		return &v->visible[index];
	return &v->vis_base->visible[overlay_base_index(v, index)];
}

static long visible_find(const rvf_view *v, uint64_t id)
{
	if (!v->vis_base)
		return row_find(v->visible, v->nvisible, id);
	const rvf_view *b = v->vis_base;
	long at = row_find(b->visible, b->nvisible, id);
	if (at < 0)
		return -1;
	size_t lo = 0, hi = v->nhide;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v->hide_pos[mid] < (size_t)at)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < v->nhide && v->hide_pos[lo] == (size_t)at)
		return -1;
	return at - (long)lo;
}

const search_row *view_rows(rvf_view *v)
{
	if (!v->vis_base)
		return v->visible;
	/* An overlay copies its rows the first time a search needs them. */
	pthread_mutex_lock(&v->vis_mu);
	if (!v->vis_rows) {
		search_row *r = big_alloc((v->nvisible ? v->nvisible : 1) * sizeof(search_row));
		const search_row *b = v->vis_base->visible;
		if (r) {
			size_t w = 0, k = 0;
			for (size_t i = 0; i < v->vis_base->nvisible; i++) {
				if (k < v->nhide && v->hide_pos[k] == i)
					k++;
				else
					r[w++] = b[i];
			}
		}
		v->vis_rows = r;
		atomic_fetch_add(&view_rows_copied, r ? v->nvisible : 0);
	}
	const search_row *out = v->vis_rows;
	pthread_mutex_unlock(&v->vis_mu);
	return out;
}

static rvf_code parse_witnesses(rvf_view *v, rvf_error *err)
{
	size_t n = 0;
	for (uint32_t i = 0; i < v->man.dir_len; i++)
		if (v->dir[i].type == RVF_SEG_WITNESS && v->dir[i].readable)
			n++;
	if (!n)
		return RVF_OK;
	v->witness = calloc(n, sizeof(rvf_witness));
	if (!v->witness)
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	const unsigned char *prev = NULL;
	size_t prev_len = 0;
	for (uint32_t i = 0; i < v->man.dir_len; i++) {
		const rvf_segment *s = &v->dir[i];
		if (s->type != RVF_SEG_WITNESS || !s->readable)
			continue;
		const unsigned char *p = v->map->base + s->offset + RVF_SEGMENT_HEADER_SIZE;
		size_t len = (size_t)s->payload_length;
		rvf_witness *w = &v->witness[v->nwitness];
		w->segment = s;
		uint32_t alen = len >= 13 ? ld32(p + 9) : 0;
		if (payload_is_json(p, len)) {
			/* A JSON provenance document (upstream's build tools):
			 * shown whole, on one line, at the header's time. */
			w->type = 0xFF;
			w->timestamp_ns = s->timestamp_ns;
			w->action = json_one_line(p, len);
		} else if (len < 45 || alen > len - 45) {
			w->action = strdup("(malformed witness)");
		} else {
			w->type = p[0];
			w->timestamp_ns = ld64(p + 1);
			w->action = strndup((const char *)p + 13, alen);
			memcpy(w->prev_hash, p + 13 + alen, 32);
			if (prev) {
				uint8_t h[32];
				rvf_simple_hash256(prev, prev_len, h);
				w->links = memcmp(h, w->prev_hash, 32) == 0;
			}
		}
		if (!w->action)
			return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
		v->nwitness++;
		prev = p;
		prev_len = len;
	}
	return RVF_OK;
}

/* Decodes the last COW_MAP and MEMBERSHIP entries (§3.8, §3.9). */
static rvf_code parse_cow(rvf_view *v, long cm, long mb, rvf_error *err)
{
	if (cm < 0 || mb < 0)
		return rvf_fail(err, RVF_E_COW_MAP_CORRUPT,
				"branch state incomplete: a %s segment without a %s segment",
				cm < 0 ? "MEMBERSHIP" : "COW_MAP",
				cm < 0 ? "COW_MAP" : "MEMBERSHIP");
	const rvf_segment *s = &v->dir[cm];
	if (!s->readable)
		return rvf_fail(err, RVF_E_COW_MAP_CORRUPT,
				"COW_MAP segment at offset %llu is unreadable",
				(unsigned long long)s->offset);
	const unsigned char *p = v->map->base + s->offset + RVF_SEGMENT_HEADER_SIZE;
	uint64_t len = s->payload_length;
	cow_state *c = &v->cow;
	if (len < 81 || ld32(p) != 0x5256434Du || ld16(p + 4) != 1)
		return rvf_fail(err, RVF_E_COW_MAP_CORRUPT,
				"COW_MAP segment at offset %llu: bad magic, version or size",
				(unsigned long long)s->offset);
	c->cluster_size = ld32(p + 8);
	c->vectors_per_cluster = ld32(p + 12);
	memcpy(c->base_file_id, p + 16, 16);
	memcpy(c->base_file_hash, p + 32, 32);
	c->bytes_per_vector = ld32(p + 0x40);
	uint8_t frozen = p[0x44];
	c->snapshot_epoch = ld32(p + 0x45);
	uint32_t plen = ld32(p + 0x49), mlen = ld32(p + 0x4D);
	if (frozen > 1 || plen == 0 || (uint64_t)81 + plen + mlen != len)
		return rvf_fail(err, RVF_E_COW_MAP_CORRUPT,
				"COW_MAP segment at offset %llu: inconsistent fields",
				(unsigned long long)s->offset);
	c->frozen = frozen;
	c->parent_path = strndup((const char *)p + 81, plen);
	if (!c->parent_path)
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	c->map_bytes = p + 81 + plen;
	c->map_len = mlen;

	s = &v->dir[mb];
	/* An unreadable entry's offset may lie anywhere: no pointer to it. */
	p = s->readable ? v->map->base + s->offset + RVF_SEGMENT_HEADER_SIZE : NULL;
	len = s->payload_length;
	if (!s->readable || len < 96 || ld32(p) != 0x52564D42u ||
	    ld16(p + 4) != 1 || p[6] != 0 || p[7] != 0)
		return rvf_fail(err, RVF_E_MEMBERSHIP_INVALID,
				"MEMBERSHIP segment at offset %llu: bad magic, version or kind",
				(unsigned long long)s->offset);
	uint64_t bits = ld64(p + 8), members = ld64(p + 0x10);
	uint64_t foff = ld64(p + 0x18);
	uint32_t fsize = ld32(p + 0x20);
	if (foff != 96 || foff + fsize != len || bits > (uint64_t)fsize * 8 ||
	    (uint64_t)fsize != 8 * ((bits + 63) / 64))
		return rvf_fail(err, RVF_E_MEMBERSHIP_INVALID,
				"MEMBERSHIP segment at offset %llu: bitmap size does not match",
				(unsigned long long)s->offset);
	const unsigned char *bm = p + 96;
	uint8_t h[32];
	rvf_simple_hash256(bm, fsize, h);
	uint64_t count = 0;
	for (uint32_t i = 0; i < fsize; i++)
		count += (uint64_t)__builtin_popcount(bm[i]);
	if (memcmp(h, p + 0x28, 32) != 0 || count != members)
		return rvf_fail(err, RVF_E_MEMBERSHIP_INVALID,
				"MEMBERSHIP segment at offset %llu: bitmap hash or member count mismatch",
				(unsigned long long)s->offset);
	c->capacity_bits = bits;
	c->bitmap = bm;
	return RVF_OK;
}

/* Resolves `rel` against the directory of `child`. */
static char *resolve_parent(const char *child, const char *rel)
{
	if (rel[0] == '/')
		return strdup(rel);
	const char *slash = strrchr(child, '/');
	size_t dl = slash ? (size_t)(slash - child) + 1 : 0;
	char *out = malloc(dl + strlen(rel) + 1);
	if (!out)
		return NULL;
	memcpy(out, child, dl);
	strcpy(out + dl, rel);
	return out;
}

/* A compaction leaves a witness whose action starts with "compact": listed,
 * or still right after the newest manifest (the next manifest lists it). */
static bool view_was_compacted(const rvf_view *v)
{
	for (size_t i = 0; i < v->nwitness; i++)
		if (v->witness[i].action &&
		    strncmp(v->witness[i].action, "compact", 7) == 0)
			return true;
	const rvf_segment *m = NULL;
	for (size_t i = 0; i < v->nsorted; i++)
		if (v->sorted[i].offset == v->info.manifest_offset)
			m = &v->sorted[i];
	if (!m)
		return false;
	uint64_t w = m->offset + RVF_SEGMENT_HEADER_SIZE + m->payload_length;
	const unsigned char *p = v->map->base + w;
	return v->info.file_size - w >= RVF_SEGMENT_HEADER_SIZE + 13 + 7 &&
	       ld32(p) == RVF_SEGMENT_MAGIC && p[5] == RVF_SEG_WITNESS &&
	       memcmp(p + RVF_SEGMENT_HEADER_SIZE + 13, "compact", 7) == 0;
}

static rvf_code attach_parent(rvf_view *v, const char *path,
			      const rvf_view *prev, const view_chain *chain,
			      rvf_error *err)
{
	const rvf_identity *id = &v->info.identity;
	if (id->lineage_depth < 1)
		return rvf_fail(err, RVF_E_COW_MAP_CORRUPT,
				"branch state present but lineage depth is 0");
	if (v->cow.bytes_per_vector != 4 * v->info.dimension)
		return rvf_fail(err, RVF_E_COW_MAP_CORRUPT,
				"COW_MAP bytes_per_vector %u does not match dimension %u",
				v->cow.bytes_per_vector, v->info.dimension);
	if (prev && prev->parent && prev->cow.parent_path &&
	    strcmp(prev->cow.parent_path, v->cow.parent_path) == 0 &&
	    memcmp(prev->cow.base_file_hash, v->cow.base_file_hash, 32) == 0) {
		v->parent = rvf_view_ref(prev->parent);
		v->parent_resolved = strdup(prev->parent_resolved);
		v->info.parent_size = prev->info.parent_size;
		v->info.parent_as_of = prev->info.parent_as_of;
		return v->parent_resolved ? RVF_OK :
		       rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	}
	v->parent_resolved = resolve_parent(path, v->cow.parent_path);
	if (!v->parent_resolved)
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	view_chain me = { .dev = v->map->dev, .ino = v->map->ino,
			  .depth = chain ? chain->depth + 1 : 1, .child = chain };
	/* The parent as it was when the branch was made (parent_state.c). */
	rvf_code rc = open_view_readonly(v->parent_resolved, &me, id->parent_hash,
					 &v->parent, &v->info.parent_size, err);
	if (rc == RVF_E_IO && err && err->sys_errno == ENOENT)
		return rvf_fail(err, RVF_E_PARENT_NOT_FOUND,
				"branch parent %s (stored as \"%s\") not found",
				v->parent_resolved, v->cow.parent_path);
	if (rc != RVF_OK)
		return rc;
	const rvf_view *p = v->parent;
	v->info.parent_as_of = p->info.file_size;
	if (memcmp(p->info.identity.file_id, id->parent_id, 16) != 0 ||
	    memcmp(p->info.identity.file_id, v->cow.base_file_id, 16) != 0 ||
	    p->info.identity.lineage_depth + 1 != id->lineage_depth)
		return rvf_fail(err, RVF_E_PARENT_HASH_MISMATCH,
				"branch parent %s is another store now, not the one this branch was made from (file id or lineage depth differ): it was replaced",
				v->parent_resolved);
	uint8_t h[32];
	parent_tail_hash(p->map->base, p->info.file_size, h);
	if (memcmp(h, id->parent_hash, 32) != 0)
		return rvf_fail(err, RVF_E_PARENT_HASH_MISMATCH,
				"branch parent %s no longer holds the state this branch was made from (parent hash mismatch): it was %s since. The inherited vectors are lost with that state; this child's own vectors are intact. A copy of the parent from before that, put in its place, makes the child readable again (then `rvfctl detach` it)",
				v->parent_resolved,
				view_was_compacted(p) ? "compacted" :
				"rewritten (not appended to)");
	if (memcmp(h, v->cow.base_file_hash, 32) != 0)
		return rvf_fail(err, RVF_E_PARENT_HASH_MISMATCH,
				"branch parent %s: the COW_MAP's base hash differs from the file identity's parent hash",
				v->parent_resolved);
	return RVF_OK;
}

/* Replays META payloads in directory order.  A damaged META segment
 * (bad hash) is refused like any payload we use. */
static rvf_code replay_meta(rvf_view *v, rvf_error *err)
{
	size_t n = 0;
	for (uint32_t i = 0; i < v->man.dir_len; i++)
		n += v->dir[i].type == RVF_SEG_META;
	meta_blob *blobs = calloc(n ? n : 1, sizeof(meta_blob));
	if (!blobs)
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	size_t k = 0;
	for (uint32_t i = 0; i < v->man.dir_len; i++) {
		const rvf_segment *s = &v->dir[i];
		if (s->type != RVF_SEG_META)
			continue;
		if (s->readable &&
		    payload_is_json(v->map->base + s->offset + RVF_SEGMENT_HEADER_SIZE,
				    (size_t)s->payload_length))
			continue; /* a document about the store, not vector metadata */
		if (!s->readable) {
			free(blobs);
			return rvf_fail(err, RVF_E_CORRUPT,
					"META segment id %llu at offset %llu is unreadable",
					(unsigned long long)s->id,
					(unsigned long long)s->offset);
		}
		blobs[k].data = v->map->base + s->offset + RVF_SEGMENT_HEADER_SIZE;
		blobs[k].len = (size_t)s->payload_length;
		k++;
	}
	rvf_code rc = meta_replay(blobs, k, &v->meta, NULL, err);
	free(blobs);
	return rc;
}

/* True when the META payload is a full snapshot (flags bit 0). */
static bool meta_is_snapshot(const unsigned char *map, const rvf_segment *s)
{
	return s->readable && s->payload_length >= 12 &&
	       (map[s->offset + RVF_SEGMENT_HEADER_SIZE + 10] & 1);
}

/* Bytes of the file no state needs: what compaction would drop.  Needed
 * are the newest manifest, the live rows (with a header per 256 MiB),
 * the META segments from the newest snapshot on and every other listed
 * segment compaction keeps; superseded manifests, journals, indexes,
 * replaced or deleted rows, older META and unlisted bytes are dead. */
static uint64_t dead_bytes(const rvf_view *v, uint64_t mlen)
{
	uint64_t need = mlen, stride = 8 + 4 * (uint64_t)v->info.dimension;
	long last_snap = -1;
	for (uint32_t i = 0; i < v->man.dir_len; i++)
		if (v->dir[i].type == RVF_SEG_META &&
		    meta_is_snapshot(v->map->base, &v->dir[i]))
			last_snap = i;
	for (uint32_t i = 0; i < v->man.dir_len; i++) {
		const rvf_segment *d = &v->dir[i];
		switch (d->type) {
		case RVF_SEG_MANIFEST:
		case RVF_SEG_JOURNAL:
		case RVF_SEG_INDEX:
		case RVF_SEG_VEC:
			break;
		case RVF_SEG_META:
			if ((long)i >= last_snap)
				need += RVF_SEGMENT_HEADER_SIZE + d->payload_length;
			break;
		default:
			need += RVF_SEGMENT_HEADER_SIZE + d->payload_length;
		}
	}
	uint64_t live = v->nown - (v->ndeleted < v->nown ? v->ndeleted : v->nown);
	if (live) {
		uint64_t per = (RVF_MAX_PAYLOAD - 6) / stride;
		need += live * stride + ((live + per - 1) / per) *
					(RVF_SEGMENT_HEADER_SIZE + 6);
	}
	return v->info.file_size > need ? v->info.file_size - need : 0;
}

/* What index_directory found for the later steps. */
typedef struct dir_marks {
	long last_cow, last_mb;     /* COW_MAP, MEMBERSHIP entries, or -1 */
} dir_marks;

static rvf_view *view_alloc(rvf_map *map)
{
	rvf_view *v = calloc(1, sizeof(*v));
	if (!v)
		return NULL;
	atomic_init(&v->refs, 1);
	pthread_mutex_init(&v->accel_mu, NULL);
	pthread_mutex_init(&v->vis_mu, NULL);
	v->map = map_ref(map);
	v->kernel_index = v->ebpf_index = -1;
	return v;
}

/* The newest manifest: the pending one (taken over) or the file's. */
static rvf_code read_manifest(rvf_view *v, uint64_t size, const rvf_view *prev,
			      manifest *pending, rvf_segment *mseg,
			      rvf_error *err)
{
	if (pending) {
		/* No manifest on disk yet: nothing to list for it. */
		v->man = *pending;
		pending->dir = NULL;
		pending->deleted = NULL;
		mseg->offset = prev ? prev->info.manifest_offset : 0;
	} else {
		rvf_code rc = manifest_locate(v->map->base, size, &v->man, mseg, err);
		if (rc != RVF_OK)
			return rc;
	}
	/* Dimension 0 is a store without vectors (upstream's ruvbot.rvf holds
	 * only a kernel, WASM and JSON documents); the reference opens it. */
	rvf_info *info = &v->info;
	info->dimension = v->man.dimension;
	info->metric_byte = v->man.metric;
	info->metric = v->man.metric <= 2 ? (rvf_metric)v->man.metric : RVF_METRIC_L2;
	info->profile = v->man.profile;
	info->epoch = v->man.epoch;
	info->file_size = size;
	info->manifest_total = v->man.total_vectors;
	info->directory_len = v->man.dir_len;
	info->manifest_offset = mseg->offset;
	info->has_identity = v->man.has_identity;
	info->identity = v->man.identity;
	info->pending = pending != NULL;
	return RVF_OK;
}

/* Decodes every directory entry, and the offset-sorted segment list (with
 * the manifest itself when it is on disk). */
static rvf_code index_directory(rvf_view *v, uint64_t size, const rvf_view *prev,
				uint64_t trusted_from, rvf_segment *mseg,
				dir_marks *marks, rvf_error *err)
{
	rvf_code rc = check_directory(v, size, err);
	if (rc != RVF_OK)
		return rc;
	v->dir = calloc(v->man.dir_len + 1, sizeof(rvf_segment));
	v->sorted = calloc(v->man.dir_len + 1, sizeof(rvf_segment));
	if (!v->dir || !v->sorted)
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	marks->last_cow = marks->last_mb = -1;
	for (uint32_t i = 0; i < v->man.dir_len; i++) {
		const dir_entry *e = &v->man.dir[i];
		rc = decode_entry(v, e, size, prev, trusted_from, &v->dir[i], err);
		if (rc != RVF_OK)
			return rc;
		switch (e->type) {
		case RVF_SEG_KERNEL:
			if (v->kernel_index < 0)
				v->kernel_index = i;
			break;
		case RVF_SEG_EBPF:
			if (v->ebpf_index < 0)
				v->ebpf_index = i;
			break;
		case RVF_SEG_COW_MAP:
			marks->last_cow = i;
			break;
		case RVF_SEG_MEMBERSHIP:
			marks->last_mb = i;
			break;
		}
	}
	memcpy(v->sorted, v->dir, sizeof(rvf_segment) * v->man.dir_len);
	v->nsorted = v->man.dir_len;
	if (!v->info.pending) {
		mseg->readable = true;
		mseg->hash_algo = content_hash_identify(mseg,
				v->map->base + mseg->offset + RVF_SEGMENT_HEADER_SIZE,
				(size_t)mseg->payload_length);
		mseg->hash_ok = content_hash_algo_ok(mseg->hash_algo);
		mseg->listed = false;
		v->sorted[v->nsorted++] = *mseg;
	}
	qsort(v->sorted, v->nsorted, sizeof(rvf_segment), cmp_seg_offset);
	if (add_unlisted(v, size, prev) != RVF_OK)
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	return RVF_OK;
}

/* Where prev's rows can be reused: when its VEC entries are a prefix of
 * ours and it indexes the same mapping (its rows point into it; after the
 * file outgrew the mapping the old one goes away with prev).  Sets the
 * first entry to read and, for a reused entry that grew (a deferred tail),
 * that entry and the rows of it prev already has. */
typedef struct row_reuse {
	bool ok;
	size_t vec_from;
	long grown;
	uint32_t grown_skip;
} row_reuse;

static row_reuse reusable_rows(const rvf_view *v, const rvf_view *prev)
{
	row_reuse r = { .grown = -1 };
	if (!prev || prev->map != v->map ||
	    prev->info.dimension != v->info.dimension ||
	    prev->nconverted != 0 /* converted rows belong to prev */)
		return r;
	size_t a = 0, b = 0;
	bool prefix = true;
	uint64_t stride = 8 + 4 * (uint64_t)v->info.dimension;
	for (; a < prev->man.dir_len && prefix; a++) {
		if (prev->dir[a].type != RVF_SEG_VEC)
			continue;
		while (b < v->man.dir_len && v->dir[b].type != RVF_SEG_VEC)
			b++;
		prefix = b < v->man.dir_len &&
			 v->dir[b].offset == prev->dir[a].offset &&
			 v->dir[b].payload_length >= prev->dir[a].payload_length;
		if (prefix && v->dir[b].payload_length != prev->dir[a].payload_length) {
			/* only the last reused entry may have grown */
			prefix = r.grown < 0 && prev->dir[a].payload_length >= 6;
			r.grown = (long)b;
			r.grown_skip = (uint32_t)((prev->dir[a].payload_length - 6) / stride);
		}
		b++;
	}
	if (prefix && r.grown >= 0 && r.grown != (long)b - 1)
		prefix = false;
	if (!prefix)
		return (row_reuse){ .grown = -1 };
	r.ok = true;
	r.vec_from = b; /* first entry after the reused VEC ones */
	return r;
}

/* The rows of the VEC entries prev did not index, sorted, last one of an
 * id kept. */
static rvf_code collect_new_rows(rvf_view *v, const row_reuse *r,
				 seq_row **rows, size_t *nrows, rvf_error *err)
{
	size_t cap = 0;
	rvf_code rc = RVF_OK;
	/* One allocation for them all, instead of a doubling per segment (a
	 * million streamed rows: 24 MB copied twice over, and faulted in):
	 * room for a row per 4 * dimension payload bytes, no more rows than
	 * the mapped file could hold. */
	uint64_t row_bytes = 4 * (uint64_t)v->info.dimension, bound = 0;
	if (row_bytes && r->grown >= 0) {
		uint64_t all = v->dir[r->grown].payload_length / row_bytes;
		bound = all > r->grown_skip ? all - r->grown_skip : 0;
	}
	for (size_t i = r->vec_from; row_bytes && i < v->man.dir_len; i++)
		if (v->dir[i].type == RVF_SEG_VEC)
			bound += v->dir[i].payload_length / row_bytes;
	if (row_bytes && bound > v->map->capacity / row_bytes)
		bound = v->map->capacity / row_bytes;
	if (bound > 1024) {
		*rows = big_alloc((size_t)bound * sizeof(seq_row));
		if (*rows)
			cap = (size_t)bound;
	}
	if (r->grown >= 0)
		rc = collect_vec_rows(v, &v->dir[r->grown], r->grown_skip, rows,
				      nrows, &cap, err);
	for (size_t i = r->vec_from; i < v->man.dir_len && rc == RVF_OK; i++)
		if (v->dir[i].type == RVF_SEG_VEC)
			rc = collect_vec_rows(v, &v->dir[i], 0, rows, nrows, &cap, err);
	if (rc == RVF_OK)
		*nrows = sort_dedup(*rows, *nrows);
	return rc;
}

/* own = prev's rows (shared when nothing was added) + the new ones. */
static rvf_code index_rows(rvf_view *v, const rvf_view *prev, rvf_error *err)
{
	row_reuse r = reusable_rows(v, prev);
	seq_row *rows = NULL;
	size_t nrows = 0;
	rvf_code rc = collect_new_rows(v, &r, &rows, &nrows, err);
	if (rc == RVF_OK && r.ok && nrows == 0) {
		/* No new rows (a delete, a kernel...): share prev's array
		 * instead of copying it, holding the view that owns it. */
		rvf_view *owner = prev->own_owner ? prev->own_owner : (rvf_view *)prev;
		v->own_owner = rvf_view_ref(owner);
		v->own = prev->own;
		v->nown = prev->nown;
		v->own_has_max = prev->own_has_max;
		v->own_max = prev->own_max;
	} else if (rc == RVF_OK && r.ok && append_own(v, prev, rows, nrows)) {
		/* appended in place */
	} else if (rc == RVF_OK && nrows && (!r.ok || !prev->nown)) {
		adopt_own(v, rows, nrows);
		rows = NULL; /* v->own now */
	} else if (rc == RVF_OK) {
		rc = r.ok ? merge_own(v, prev->own, prev->nown, rows, nrows, err) :
			    merge_own(v, NULL, 0, rows, nrows, err);
	}
	free(rows);
	return rc;
}

/* Deletions, sorted and unique: the manifest's own list when it already
 * is (ours always is), else a sorted copy (foreign writers may not sort). */
static rvf_code index_deleted(rvf_view *v, bool ours, rvf_error *err)
{
	const manifest *m = &v->man;
	/* A pending manifest is the writer's (merge_deleted keeps it sorted
	 * and unique): no walk of the whole list per `rm`. */
	bool strict = true;
	if (ours)
		goto sorted;
	for (size_t i = 1; i < m->deleted_len && strict; i++)
		strict = m->deleted[i - 1] < m->deleted[i];
	if (strict) {
sorted:
		v->deleted = m->deleted;
		v->ndeleted = m->deleted_len;
		v->deleted_is_man = true;
	} else {
		v->deleted = malloc(sizeof(uint64_t) * m->deleted_len);
		if (!v->deleted)
			return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
		memcpy(v->deleted, m->deleted, sizeof(uint64_t) * m->deleted_len);
		qsort(v->deleted, m->deleted_len, sizeof(uint64_t), cmp_u64);
		size_t w = 0;
		for (size_t i = 0; i < m->deleted_len; i++)
			if (w == 0 || v->deleted[w - 1] != v->deleted[i])
				v->deleted[w++] = v->deleted[i];
		v->ndeleted = w;
	}
	v->info.deleted = v->ndeleted;
	return RVF_OK;
}

/* Branch state and parent, when the directory has them. */
static rvf_code index_branch(rvf_view *v, const char *path, const rvf_view *prev,
			     const view_chain *chain, const dir_marks *marks,
			     rvf_error *err)
{
	if (marks->last_cow < 0 && marks->last_mb < 0)
		return RVF_OK;
	rvf_code rc = parse_cow(v, marks->last_cow, marks->last_mb, err);
	if (rc == RVF_OK)
		rc = attach_parent(v, path, prev, chain, err);
	if (rc != RVF_OK)
		return rc;
	v->is_branch = true;
	v->info.is_branch = true;
	v->info.frozen = v->cow.frozen;
	v->info.parent_path = v->cow.parent_path;
	v->info.parent_resolved = v->parent_resolved;
	return RVF_OK;
}

/* Metadata: the writer's table, or a replay of the META segments. */
static rvf_code index_meta(rvf_view *v, meta_table *meta, rvf_error *err)
{
	if (!meta)
		return replay_meta(v, err);
	v->meta = meta_table_ref(meta);
	return RVF_OK;
}

/* v's row runs: prev's (facts about the bytes of the same file, which
 * segments never change) and the writer's new ones, sorted by offset. */
static rvf_code keep_runs(rvf_view *v, const rvf_view *prev, const row_run *runs,
			  size_t n, rvf_error *err)
{
	size_t old = prev && prev->map->dev == v->map->dev &&
		     prev->map->ino == v->map->ino ? prev->nruns : 0;
	if (!old && !n)
		return RVF_OK;
	v->runs = malloc((old + n) * sizeof(row_run));
	if (!v->runs)
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	if (old)
		memcpy(v->runs, prev->runs, old * sizeof(row_run));
	if (n)
		memcpy(v->runs + old, runs, n * sizeof(row_run));
	v->nruns = old + n;
	/* both in file order, the new ones after: a pass of insertion sort */
	for (size_t i = 1; i < v->nruns; i++)
		for (size_t j = i; j > 0 && v->runs[j - 1].offset > v->runs[j].offset; j--) {
			row_run t = v->runs[j];
			v->runs[j] = v->runs[j - 1];
			v->runs[j - 1] = t;
		}
	return RVF_OK;
}

static rvf_code view_build_any(rvf_map *map, uint64_t size, const char *path,
			       const rvf_view *prev, uint64_t trusted_from,
			       const view_chain *chain, meta_table *meta,
			       manifest *pending, const row_run *runs,
			       size_t nruns, rvf_view **out, rvf_error *err)
{
	rvf_view *v = view_alloc(map);
	if (!v) {
		if (pending)
			manifest_free(pending);
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	}
	if (keep_runs(v, prev, runs, nruns, err) != RVF_OK) {
		if (pending)
			manifest_free(pending);
		view_free(v);
		return err ? err->code : RVF_E_NO_MEMORY;
	}
	rvf_segment mseg = { 0 };
	dir_marks marks = { -1, -1 };
	rvf_code rc = read_manifest(v, size, prev, pending, &mseg, err);
	if (rc == RVF_OK)
		rc = index_directory(v, size, prev, trusted_from, &mseg, &marks, err);
	if (rc == RVF_OK)
		rc = index_rows(v, prev, err);
	if (rc == RVF_OK)
		rc = index_deleted(v, pending != NULL, err);
	if (rc == RVF_OK)
		rc = index_branch(v, path, prev, chain, &marks, err);
	if (rc == RVF_OK)
		rc = build_visible(v, prev, err);
	if (rc == RVF_OK)
		rc = parse_witnesses(v, err);
	if (rc == RVF_OK)
		rc = index_meta(v, meta, err);
	if (rc != RVF_OK) {
		view_free(v);
		return rc;
	}
	v->info.dead_bytes = dead_bytes(v, pending ? 0 :
					RVF_SEGMENT_HEADER_SIZE + mseg.payload_length);
	*out = v;
	return RVF_OK;
}

rvf_code view_build(rvf_map *map, uint64_t size, const char *path,
		    const rvf_view *prev, uint64_t trusted_from,
		    const view_chain *chain, meta_table *meta, rvf_view **out,
		    rvf_error *err)
{
	return view_build_any(map, size, path, prev, trusted_from, chain, meta,
			      NULL, NULL, 0, out, err);
}

rvf_code view_build_runs(rvf_map *map, uint64_t size, const char *path,
			 const rvf_view *prev, uint64_t trusted_from,
			 meta_table *meta, const row_run *runs, size_t nruns,
			 rvf_view **out, rvf_error *err)
{
	return view_build_any(map, size, path, prev, trusted_from, NULL, meta,
			      NULL, runs, nruns, out, err);
}

rvf_code view_build_pending(rvf_map *map, uint64_t size, const char *path,
			    const rvf_view *prev, uint64_t trusted_from,
			    uint64_t pending_from, meta_table *meta,
			    manifest *pending, const row_run *runs, size_t nruns,
			    rvf_view **out, rvf_error *err)
{
	rvf_code rc = view_build_any(map, size, path, prev, trusted_from, NULL,
				     meta, pending, runs, nruns, out, err);
	if (rc == RVF_OK) {
		rvf_view *v = *out;
		for (size_t i = 0; i < v->man.dir_len; i++)
			v->dir[i].pending = v->dir[i].offset >= pending_from;
		for (size_t i = 0; i < v->nsorted; i++)
			v->sorted[i].pending = v->sorted[i].offset >= pending_from;
	}
	return rc;
}

void view_free(rvf_view *v)
{
	if (!v)
		return;
	view_accel_free(v); /* its codes point at the rows */
	if (!v->visible_is_own)
		free(v->visible);
	free(v->vis_rows);
	free(v->hide_pos);
	if (v->vis_base)
		rvf_view_release(v->vis_base);
	pthread_mutex_destroy(&v->vis_mu);
	if (v->own_owner)
		rvf_view_release(v->own_owner);
	else
		free(v->own);
	if (!v->deleted_is_man)
		free(v->deleted);
	for (size_t i = 0; i < v->nwitness; i++)
		free((char *)v->witness[i].action);
	free(v->witness);
	free(v->dir);
	free(v->sorted);
	free(v->runs);
	manifest_free(&v->man);
	free(v->cow.parent_path);
	free(v->parent_resolved);
	if (v->parent)
		rvf_view_release(v->parent);
	if (v->meta)
		meta_table_unref(v->meta);
	for (size_t i = 0; i < v->nconverted; i++)
		free(v->converted[i]);
	free(v->converted);
	map_unref(v->map);
	free(v);
}

/* ------------------------------------------------------------------ */
/* Public accessors                                                    */
/* ------------------------------------------------------------------ */

rvf_view *rvf_view_ref(rvf_view *v)
{
	atomic_fetch_add(&v->refs, 1);
	return v;
}

void rvf_view_release(rvf_view *v)
{
	if (v && atomic_fetch_sub(&v->refs, 1) == 1)
		view_free(v);
}

bool rvf_view_wants_compaction(const rvf_view *v, const rvf_compact_policy *p)
{
	const rvf_info *i = &v->info;
	return p->enabled && !i->read_only && i->dead_bytes >= p->min_dead &&
	       (double)i->dead_bytes >= p->ratio * (double)i->file_size;
}

const rvf_info *rvf_view_info(const rvf_view *v)
{
	return &v->info;
}

uint64_t rvf_view_id_at(const rvf_view *v, size_t index)
{
	return index < v->nvisible ? visible_row(v, index)->id : 0;
}

long rvf_view_find(const rvf_view *v, uint64_t id)
{
	return visible_find(v, id);
}

void rvf_view_vector_at(const rvf_view *v, size_t index, float *out)
{
	if (index < v->nvisible)
		memcpy(out, visible_row(v, index)->data, 4 * (size_t)v->info.dimension);
}

bool rvf_view_max_id(const rvf_view *v, uint64_t *out)
{
	bool any = false;
	uint64_t m = 0;
	if (v->own_has_max) {
		m = v->own_max;
		any = true;
	}
	if (v->ndeleted && (!any || v->deleted[v->ndeleted - 1] > m)) {
		m = v->deleted[v->ndeleted - 1];
		any = true;
	}
	if (v->parent && v->parent->own_has_max &&
	    (!any || v->parent->own_max > m)) {
		m = v->parent->own_max;
		any = true;
	}
	*out = m;
	return any;
}

size_t rvf_view_segment_count(const rvf_view *v)
{
	return v->nsorted;
}

const rvf_segment *rvf_view_segment(const rvf_view *v, size_t index)
{
	return index < v->nsorted ? &v->sorted[index] : NULL;
}

size_t rvf_view_directory_count(const rvf_view *v)
{
	return v->man.dir_len;
}

const rvf_segment *rvf_view_directory(const rvf_view *v, size_t index)
{
	return index < v->man.dir_len ? &v->dir[index] : NULL;
}

const unsigned char *rvf_view_segment_bytes(const rvf_view *v,
					    const rvf_segment *seg)
{
	if (!seg->readable && !seg->gap)
		return NULL;
	return v->map->base + seg->offset;
}

size_t rvf_view_deleted_count(const rvf_view *v)
{
	return v->ndeleted;
}

uint64_t rvf_view_deleted_at(const rvf_view *v, size_t index)
{
	return index < v->ndeleted ? v->deleted[index] : 0;
}

size_t rvf_view_witness_count(const rvf_view *v)
{
	return v->nwitness;
}

const rvf_witness *rvf_view_witness(const rvf_view *v, size_t index)
{
	return index < v->nwitness ? &v->witness[index] : NULL;
}

const meta_table *view_meta_of(const rvf_view *v, uint64_t id)
{
	/* A branch child's record of an inherited row (set through its
	 * xattrs) wins; without one the row keeps the parent's metadata,
	 * as `rvfctl detach` copies it.  An own row has only the child's. */
	meta_record r;
	while (v->parent && !view_own_row(v, id) && !meta_table_find(v->meta, id, &r))
		v = v->parent;
	return v->meta;
}

size_t rvf_view_metadata(const rvf_view *v, uint64_t id,
			 const rvf_meta_field **fields)
{
	return meta_table_get(view_meta_of(v, id), id, fields);
}

const rvf_view *rvf_view_parent(const rvf_view *v)
{
	return v->parent;
}

rvf_code rvf_view_verify_hashes(const rvf_view *v, rvf_error *err)
{
	for (size_t i = 0; i < v->nsorted; i++) {
		const rvf_segment *s = &v->sorted[i];
		/* what the directory lists, and the newest manifest */
		if (s->gap || (!s->listed && s->offset != v->info.manifest_offset))
			continue;
		char label[SEGMENT_LABEL_SIZE];
		segment_type_label(s->type, label);
		if (!s->readable)
			return rvf_fail(err, RVF_E_CORRUPT,
					"%s segment id %llu at offset %llu: no valid header there",
					label, (unsigned long long)s->id,
					(unsigned long long)s->offset);
		const unsigned char *p = v->map->base + s->offset + RVF_SEGMENT_HEADER_SIZE;
		if (!content_hash_algo_ok(content_hash_identify(s, p,
					(size_t)s->payload_length)))
			return rvf_fail(err, RVF_E_INVALID_CHECKSUM,
					"%s segment id %llu at offset %llu: content hash mismatch",
					label, (unsigned long long)s->id,
					(unsigned long long)s->offset);
	}
	return RVF_OK;
}

/* Every id visible in both whose components differ (a rewritten file,
 * another dimension, a branch): one merge walk over the id lists. */
static void changed_by_content(const rvf_view *old, const rvf_view *cur,
			       void (*fn)(void *, uint64_t), void *ctx)
{
	size_t j = 0;
	bool same_dim = old->info.dimension == cur->info.dimension;
	size_t bytes = 4 * (size_t)cur->info.dimension;
	for (size_t i = 0; i < old->nvisible; i++) {
		const search_row *a = visible_row(old, i);
		while (j < cur->nvisible && visible_row(cur, j)->id < a->id)
			j++;
		if (j == cur->nvisible)
			break;
		const search_row *b = visible_row(cur, j);
		if (b->id != a->id)
			continue;
		if (!same_dim || (a->data != b->data && memcmp(a->data, b->data, bytes)))
			fn(ctx, a->id);
	}
}

/* Index in old->sorted of the segment at `offset`, or -1. */
static long sorted_index_at(const rvf_view *v, uint64_t offset)
{
	size_t lo = 0, hi = v->nsorted;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v->sorted[mid].offset < offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < v->nsorted && v->sorted[lo].offset == offset ? (long)lo : -1;
}

void rvf_view_changed_ids(const rvf_view *old, const rvf_view *cur,
			  void (*fn)(void *ctx, uint64_t id), void *ctx)
{
	if (old->info.generation != cur->info.generation ||
	    old->info.dimension != cur->info.dimension ||
	    old->is_branch || cur->is_branch) {
		changed_by_content(old, cur, fn, ctx);
		return;
	}
	/* Same file, appended to: a vector changed only if a row written
	 * since `old` carries its id.  Those rows are the VEC segments old
	 * did not list, and the tail of one it listed shorter (deferred
	 * commits grow the newest segment in place). */
	uint32_t dim = cur->info.dimension;
	uint64_t stride = 8 + 4 * (uint64_t)dim;
	for (uint32_t e = 0; e < cur->man.dir_len; e++) {
		const rvf_segment *s = &cur->dir[e];
		if (s->type != RVF_SEG_VEC)
			continue;
		const unsigned char *p = cur->map->base + s->offset + RVF_SEGMENT_HEADER_SIZE;
		uint64_t len = s->payload_length;
		long k = sorted_index_at(old, s->offset);
		uint64_t skip = 0;
		if (k >= 0 && old->sorted[k].type == RVF_SEG_VEC) {
			if (old->sorted[k].payload_length >= len)
				continue; /* nothing new in it */
			skip = old->sorted[k].payload_length >= 6 ?
			       (old->sorted[k].payload_length - 6) / stride : 0;
		}
		if (skip == 0 && vec_is_block_layout(p, len, dim)) {
			changed_by_content(old, cur, fn, ctx);
			return;
		}
		if (len < 6 || ld16(p) != dim)
			continue; /* rows the view ignores */
		uint64_t count = ld32(p + 2);
		if ((len - 6) / stride < count)
			count = (len - 6) / stride;
		const row_run *run = view_run_at(cur, s->offset);
		if (run && run->count == count) {
			/* the writer's ids, without reading the rows: new ids
			 * (above old's largest) changed no vector */
			uint64_t max;
			bool any = rvf_view_max_id(old, &max);
			for (uint64_t r = skip; any && r < count && run->first_id + r <= max; r++) {
				uint64_t id = run->first_id + r;
				if (visible_find(old, id) >= 0 && visible_find(cur, id) >= 0)
					fn(ctx, id);
			}
			continue;
		}
		for (uint64_t r = skip; r < count; r++) {
			uint64_t id = ld64(p + 6 + r * stride);
			if (visible_find(old, id) >= 0 && visible_find(cur, id) >= 0)
				fn(ctx, id);
		}
	}
}
