/* cmd_restore.c - rvfctl restore DIR OUT: a store file rebuilt from a copy
 * of a mount's segments/ directory (tar, rsync, cp -a).
 *
 * segments/ lists every byte of the store file in order: the segments (the
 * listed ones, older sessions' manifests, the witness after a compaction)
 * and, for bytes that are no segment, NNNN-gap.  So the file is the pieces
 * concatenated in rank order, which is what `cat DIR/[0-9]*` does while
 * there are fewer than 10000 pieces (the glob sorts names as text).  This
 * command sorts by the number, checks that no piece is missing or cut
 * short, writes OUT (a new file), fsyncs it and opens the result. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

typedef struct piece {
	unsigned long rank;
	char *name;
} piece;

static int cmp_piece(const void *a, const void *b)
{
	const piece *x = a, *y = b;
	return x->rank < y->rank ? -1 : x->rank > y->rank;
}

/* "NNNN-TYPE" (as segments/ names them): the rank, or 0. */
static unsigned long piece_rank(const char *name)
{
	char *end;
	if (!isdigit((unsigned char)name[0]))
		return 0;
	errno = 0;
	unsigned long r = strtoul(name, &end, 10);
	if (errno || *end != '-' || !end[1])
		return 0;
	return r;
}

static void free_pieces(piece *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(p[i].name);
	free(p);
}

/* The pieces in DIR by rank, 1..n without holes. */
static int list_pieces(ctl_ctx *ctx, const char *dir, piece **out, size_t *n)
{
	DIR *d = opendir(dir);
	if (!d)
		return ctl_fail(ctx, ctl_errno_exit(errno), NULL, "cannot list %s: %s",
				dir, strerror(errno));
	piece *p = NULL;
	size_t cnt = 0, cap = 0;
	int rc = 0;
	for (struct dirent *e; (e = readdir(d));) {
		unsigned long r = piece_rank(e->d_name);
		if (!r)
			continue; /* ".", "..", anything else */
		if (cnt == cap) {
			cap = cap ? 2 * cap : 64;
			piece *g = realloc(p, cap * sizeof(*p));
			if (!g) {
				rc = ctl_fail(ctx, EXIT_OTHER, NULL, "out of memory");
				break;
			}
			p = g;
		}
		p[cnt].rank = r;
		p[cnt].name = strdup(e->d_name);
		if (!p[cnt].name) {
			rc = ctl_fail(ctx, EXIT_OTHER, NULL, "out of memory");
			break;
		}
		cnt++;
	}
	closedir(d);
	if (!rc && !cnt)
		rc = ctl_fail(ctx, EXIT_REFUSED, NULL,
			      "%s holds no segment files (named NNNN-TYPE, as in a mount's segments/)",
			      dir);
	if (!rc) {
		qsort(p, cnt, sizeof(*p), cmp_piece);
		for (size_t i = 0; i < cnt && !rc; i++) {
			if (p[i].rank == i + 1)
				continue;
			if (i && p[i].rank == p[i - 1].rank)
				rc = ctl_fail(ctx, EXIT_REFUSED, NULL,
					      "%s: two pieces have rank %lu (%s and %s)",
					      dir, p[i].rank, p[i - 1].name, p[i].name);
			else
				rc = ctl_fail(ctx, EXIT_REFUSED, NULL,
					      "%s: piece %zu is missing (the next one is %s): the copy is incomplete",
					      dir, i + 1, p[i].name);
		}
	}
	if (rc) {
		free_pieces(p, cnt);
		return rc;
	}
	*out = p;
	*n = cnt;
	return 0;
}

/* A segment piece holds exactly its header and payload. */
static const char *piece_problem(const unsigned char *b, size_t len, bool gap)
{
	if (gap)
		return NULL;
	if (len < RVF_SEGMENT_HEADER_SIZE || b[0] != 'S' || b[1] != 'F' ||
	    b[2] != 'V' || b[3] != 'R')
		return "it does not start with a segment header";
	uint64_t plen = 0;
	for (int k = 7; k >= 0; k--)
		plen = plen << 8 | b[0x10 + k];
	if (plen != len - RVF_SEGMENT_HEADER_SIZE)
		return "its size is not what its header says (cut short, or grown)";
	return NULL;
}

static int append_piece(ctl_ctx *ctx, int fd, const char *dir, const piece *p,
			const char *out, uint64_t *total)
{
	char *path;
	if (asprintf(&path, "%s/%s", dir, p->name) < 0)
		return ctl_fail(ctx, EXIT_OTHER, NULL, "out of memory");
	size_t len;
	unsigned char *b = read_file(path, &len);
	if (!b) {
		int rc = ctl_fail(ctx, ctl_errno_exit(errno), NULL, "cannot read %s: %s",
				  path, strerror(errno));
		free(path);
		return rc;
	}
	const char *dash = strchr(p->name, '-');
	const char *why = piece_problem(b, len, dash && !strcmp(dash + 1, "gap"));
	int rc = 0;
	if (why)
		rc = ctl_fail(ctx, EXIT_REFUSED, NULL, "%s: %s", path, why);
	for (size_t done = 0; !rc && done < len;) {
		ssize_t w = write(fd, b + done, len - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			rc = ctl_fail(ctx, ctl_errno_exit(errno), NULL, "cannot write %s: %s",
				      out, strerror(errno));
		else
			done += (size_t)w;
	}
	*total += len;
	free(b);
	free(path);
	return rc;
}

int cmd_restore(ctl_ctx *ctx, int argc, char **argv)
{
	if (argc != 3)
		return ctl_usage_error(ctx, "restore needs DIR (a copy of MNT/segments) and OUT (a new store file)");
	const char *dir = argv[1], *out = argv[2];
	piece *p = NULL;
	size_t n = 0;
	int rc = list_pieces(ctx, dir, &p, &n);
	if (rc)
		return rc;
	int fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = ctl_fail(ctx, errno == EEXIST ? EXIT_OTHER : ctl_errno_exit(errno),
			      NULL, "cannot create %s: %s", out, strerror(errno));
		free_pieces(p, n);
		return rc;
	}
	uint64_t total = 0;
	for (size_t i = 0; i < n && !rc; i++)
		rc = append_piece(ctx, fd, dir, &p[i], out, &total);
	if (!rc && fsync(fd) != 0)
		rc = ctl_fail(ctx, ctl_errno_exit(errno), NULL, "cannot fsync %s: %s", out,
			      strerror(errno));
	close(fd);
	free_pieces(p, n);
	rvf_store *s = NULL;
	rvf_error err;
	if (!rc && rvf_store_open(out, RVF_OPEN_READ_ONLY, &s, &err) != RVF_OK)
		rc = ctl_report(ctx, out, &err);
	if (rc) {
		unlink(out);
		return rc;
	}
	rvf_view *v = rvf_store_view(s);
	const rvf_info *i = rvf_view_info(v);
	if (ctx->json)
		ctl_print_json(json_pack("{s:s,s:I,s:I,s:I,s:i}", "store", out,
					 "pieces", (json_int_t)n, "fileSize",
					 (json_int_t)total, "vectors",
					 (json_int_t)i->visible, "epoch", (int)i->epoch));
	else
		printf("restored %s from %zu pieces of %s: %llu bytes, %llu vectors (epoch %u)\n",
		       out, n, dir, (unsigned long long)total,
		       (unsigned long long)i->visible, i->epoch);
	rvf_view_release(v);
	rvf_store_close(s);
	return 0;
}
