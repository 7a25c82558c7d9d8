/* bench_data.c - the data of bench/run.sh, written once for both sides.
 *
 *   bench_data --n N --dim D --queries Q --k K --seed S --out DIR
 *              [--formats fvecs,npy,csv]
 *
 * Draws N base vectors and then Q query vectors uniformly from [-1, 1)
 * with the same seeded splitmix64 stream as search_bench (so the base rows
 * are the rows search_bench searches), and writes into DIR:
 *
 *   base.fvecs    int32 dim, then dim float32, per row
 *   base.npy      float32 (N, D), C order, format 1.0
 *   base.csv      "id,x1,...,xD" per row, ids 0..N-1, "%.9g" (round-trips)
 *   queries.f32   Q x D raw little-endian float32
 *   queries.txt   one query per line, "%.9g" numbers separated by spaces
 *   truth.txt     per query, the ids (row numbers) of its exact k nearest
 *                 rows by squared L2 distance, nearest first, ties by id
 *
 * The ground truth is a plain brute-force scan that shares no code with
 * librvf, so recall@k of rvffs is not measured against itself.
 * Prints one JSON line describing what it wrote. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

typedef struct options {
	size_t n, dim, queries, k;
	uint64_t seed;
	const char *out;
	bool fvecs, npy, csv;
} options;

static uint64_t next_u64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Exactly search_bench's uniform(): multiples of 2^-23 in [-1, 1). */
static float uniform(uint64_t *s)
{
	return (float)((double)(next_u64(s) >> 40) / (double)(1u << 24) * 2.0 - 1.0);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int usage(void)
{
	fprintf(stderr, "usage: bench_data --n N --dim D --queries Q --k K "
			"--seed S --out DIR [--formats fvecs,npy,csv]\n");
	return 2;
}

static bool parse_size(const char *s, size_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end)
		return false;
	*out = (size_t)v;
	return true;
}

static FILE *open_out(const options *o, const char *name, char *path,
		      size_t path_len)
{
	FILE *f;

	snprintf(path, path_len, "%s/%s", o->out, name);
	f = fopen(path, "wb");
	if (!f)
		fprintf(stderr, "bench_data: %s: %s\n", path, strerror(errno));
	else
		setvbuf(f, NULL, _IOFBF, 1 << 20);
	return f;
}

static bool close_out(FILE *f, const char *path)
{
	if (ferror(f) | fclose(f)) {
		fprintf(stderr, "bench_data: writing %s failed\n", path);
		return false;
	}
	return true;
}

static bool write_fvecs(const options *o, const float *x)
{
	char path[4200];
	FILE *f = open_out(o, "base.fvecs", path, sizeof(path));
	int32_t d = (int32_t)o->dim;

	if (!f)
		return false;
	for (size_t i = 0; i < o->n; i++) {
		fwrite(&d, 4, 1, f);
		fwrite(x + i * o->dim, 4, o->dim, f);
	}
	return close_out(f, path);
}

static bool write_npy(const options *o, const float *x)
{
	char path[4200], hdr[256];
	FILE *f = open_out(o, "base.npy", path, sizeof(path));
	int len;
	uint16_t hlen;

	if (!f)
		return false;
	len = snprintf(hdr, sizeof(hdr),
		       "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu, %zu), }",
		       o->n, o->dim);
	/* magic (6) + version (2) + length (2) + header, padded to 64 with
	 * spaces and ending in a newline */
	while ((10 + len + 1) % 64)
		hdr[len++] = ' ';
	hdr[len++] = '\n';
	hlen = (uint16_t)len;
	fwrite("\x93NUMPY\x01\x00", 1, 8, f);
	fwrite(&hlen, 2, 1, f);
	fwrite(hdr, 1, (size_t)len, f);
	fwrite(x, 4, o->n * o->dim, f);
	return close_out(f, path);
}

static bool write_csv(const options *o, const float *x)
{
	char path[4200];
	FILE *f = open_out(o, "base.csv", path, sizeof(path));

	if (!f)
		return false;
	for (size_t i = 0; i < o->n; i++) {
		fprintf(f, "%zu", i);
		for (size_t d = 0; d < o->dim; d++)
			fprintf(f, ",%.9g", (double)x[i * o->dim + d]);
		fputc('\n', f);
	}
	return close_out(f, path);
}

static bool write_queries(const options *o, const float *q)
{
	char path[4200];
	FILE *f = open_out(o, "queries.f32", path, sizeof(path));

	if (!f)
		return false;
	fwrite(q, 4, o->queries * o->dim, f);
	if (!close_out(f, path))
		return false;
	if (!(f = open_out(o, "queries.txt", path, sizeof(path))))
		return false;
	for (size_t i = 0; i < o->queries; i++) {
		for (size_t d = 0; d < o->dim; d++)
			fprintf(f, "%s%.9g", d ? " " : "", (double)q[i * o->dim + d]);
		fputc('\n', f);
	}
	return close_out(f, path);
}

/* Squared L2 with eight independent sums (vectorisable without
 * -ffast-math). */
static float l2(const float *a, const float *b, size_t dim)
{
	float s[8] = { 0 }, t = 0;
	size_t d = 0;

	for (; d + 8 <= dim; d += 8)
		for (int j = 0; j < 8; j++) {
			float e = a[d + j] - b[d + j];
			s[j] += e * e;
		}
	for (; d < dim; d++)
		t += (a[d] - b[d]) * (a[d] - b[d]);
	return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])) + t;
}

/* Exact top-k of every query; blocks of rows stay in cache for all
 * queries. */
static bool write_truth(const options *o, const float *x, const float *q)
{
	const size_t block = 2048;
	size_t k = o->k < o->n ? o->k : o->n;
	float *bd = malloc(o->queries * (k + 1) * sizeof(float));
	uint32_t *bi = malloc(o->queries * (k + 1) * sizeof(uint32_t));
	size_t *cnt = calloc(o->queries, sizeof(size_t));
	char path[4200];
	FILE *f;

	if (!bd || !bi || !cnt) {
		fprintf(stderr, "bench_data: out of memory\n");
		return false;
	}
	for (size_t r0 = 0; r0 < o->n; r0 += block) {
		size_t r1 = r0 + block < o->n ? r0 + block : o->n;

		for (size_t qi = 0; qi < o->queries; qi++) {
			const float *qv = q + qi * o->dim;
			float *d = bd + qi * (k + 1);
			uint32_t *id = bi + qi * (k + 1);
			size_t c = cnt[qi];

			for (size_t r = r0; r < r1; r++) {
				float dist = l2(qv, x + r * o->dim, o->dim);
				size_t j;

				if (c == k && !(dist < d[k - 1]))
					continue; /* rows come in id order: ties keep the older */
				j = c < k ? c++ : k - 1;
				while (j > 0 && dist < d[j - 1]) {
					d[j] = d[j - 1];
					id[j] = id[j - 1];
					j--;
				}
				d[j] = dist;
				id[j] = (uint32_t)r;
			}
			cnt[qi] = c;
		}
	}
	if (!(f = open_out(o, "truth.txt", path, sizeof(path))))
		return false;
	for (size_t qi = 0; qi < o->queries; qi++) {
		for (size_t j = 0; j < cnt[qi]; j++)
			fprintf(f, "%s%u", j ? " " : "", bi[qi * (k + 1) + j]);
		fputc('\n', f);
	}
	free(bd);
	free(bi);
	free(cnt);
	return close_out(f, path);
}

int main(int argc, char **argv)
{
	options o = { .n = 10000, .dim = 128, .queries = 200, .k = 10,
		      .seed = 1, .out = NULL, .fvecs = true, .npy = true,
		      .csv = true };
	float *x, *q;
	uint64_t seed;
	double t0 = now(), t_gen, t_write, t_truth;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		size_t s;
		bool ok = true;

		if (!v)
			return usage();
		i++;
		if (!strcmp(a, "--n"))
			ok = parse_size(v, &o.n) && o.n >= 1 && o.n < UINT32_MAX;
		else if (!strcmp(a, "--dim"))
			ok = parse_size(v, &o.dim) && o.dim >= 1 && o.dim <= 65535;
		else if (!strcmp(a, "--queries"))
			ok = parse_size(v, &o.queries) && o.queries >= 1;
		else if (!strcmp(a, "--k"))
			ok = parse_size(v, &o.k) && o.k >= 1;
		else if (!strcmp(a, "--seed"))
			ok = parse_size(v, &s) && ((o.seed = s), true);
		else if (!strcmp(a, "--out"))
			o.out = v;
		else if (!strcmp(a, "--formats")) {
			o.fvecs = strstr(v, "fvecs") != NULL;
			o.npy = strstr(v, "npy") != NULL;
			o.csv = strstr(v, "csv") != NULL;
		} else
			ok = false;
		if (!ok)
			return usage();
	}
	if (!o.out)
		return usage();
	if (mkdir(o.out, 0755) && errno != EEXIST) {
		fprintf(stderr, "bench_data: %s: %s\n", o.out, strerror(errno));
		return 1;
	}
	x = malloc(o.n * o.dim * sizeof(float));
	q = malloc(o.queries * o.dim * sizeof(float));
	if (!x || !q) {
		fprintf(stderr, "bench_data: out of memory\n");
		return 1;
	}
	seed = o.seed;
	for (size_t i = 0; i < o.n * o.dim; i++)
		x[i] = uniform(&seed);
	for (size_t i = 0; i < o.queries * o.dim; i++)
		q[i] = uniform(&seed);
	t_gen = now();
	if ((o.fvecs && !write_fvecs(&o, x)) || (o.npy && !write_npy(&o, x)) ||
	    (o.csv && !write_csv(&o, x)) || !write_queries(&o, q))
		return 1;
	t_write = now();
	if (!write_truth(&o, x, q))
		return 1;
	t_truth = now();
	printf("{\"n\":%zu,\"dim\":%zu,\"queries\":%zu,\"k\":%zu,\"seed\":%llu,"
	       "\"seconds\":{\"generate\":%.3f,\"write\":%.3f,\"truth\":%.3f}}\n",
	       o.n, o.dim, o.queries, o.k, (unsigned long long)o.seed,
	       t_gen - t0, t_write - t_gen, t_truth - t_write);
	free(x);
	free(q);
	return 0;
}
