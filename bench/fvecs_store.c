/* fvecs_store.c - a store from an .fvecs file, with ids in random order.
 *
 *   fvecs_store BASE.fvecs STORE [--ids random|sequential] [--batch N]
 *
 * bench/run.sh --size 10m mounts a store of 10M rows whose ids arrive in
 * random order.  At 1M the reference writes it (ref_bench.js ingest --ids
 * random), but its ingest reads the whole .npy into one buffer and node
 * cannot read a 5 GB file at once, so at 10M this writes it through
 * librvf instead: one commit (one VEC segment) per batch of N rows
 * (default 10,000, as the reference's ingestBatch in the bench), ids
 * random_id(row) (bench.py's and ref_bench.js's bijection on [0, 2^48))
 * or the row numbers.  Prints one JSON line: rows, seconds.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rvf.h"

#define ID_MASK (((uint64_t)1 << 48) - 1)

static uint64_t random_id(uint64_t row)
{
	return (row * (0x9E3779B97F4A7C15ull & ID_MASK)) & ID_MASK;
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int usage(void)
{
	fprintf(stderr, "usage: fvecs_store BASE.fvecs STORE [--ids random|sequential] [--batch N]\n");
	return 2;
}

/* Reads up to n rows of dim floats (each preceded by its int32 dim). */
static size_t read_rows(FILE *f, uint32_t dim, float *out, size_t n, bool *bad)
{
	size_t got = 0;
	for (; got < n; got++) {
		int32_t d;
		if (fread(&d, 4, 1, f) != 1)
			break;
		if ((uint32_t)d != dim || fread(out + got * dim, 4, dim, f) != dim) {
			*bad = true;
			break;
		}
	}
	return got;
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return usage();
	const char *src = argv[1], *dst = argv[2];
	bool random = true;
	size_t batch = 10000;
	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--ids") && i + 1 < argc) {
			random = !strcmp(argv[++i], "random");
		} else if (!strcmp(argv[i], "--batch") && i + 1 < argc) {
			batch = strtoull(argv[++i], NULL, 10);
			if (!batch)
				return usage();
		} else {
			return usage();
		}
	}
	FILE *f = fopen(src, "rb");
	int32_t d0;
	if (!f || fread(&d0, 4, 1, f) != 1 || d0 <= 0 || d0 > 65535) {
		fprintf(stderr, "fvecs_store: %s: not an .fvecs file\n", src);
		return 1;
	}
	rewind(f);
	uint32_t dim = (uint32_t)d0;
	rvf_create_options co = { .dimension = dim, .metric = RVF_METRIC_L2 };
	rvf_store *s;
	rvf_error err;
	if (rvf_store_create(dst, &co, &s, &err) != RVF_OK) {
		fprintf(stderr, "fvecs_store: %s: %s\n", dst, err.message);
		return 1;
	}
	float *rows = malloc(batch * dim * sizeof(float));
	uint64_t *ids = malloc(batch * sizeof(uint64_t));
	if (!rows || !ids) {
		fprintf(stderr, "fvecs_store: out of memory\n");
		return 1;
	}
	double t0 = now();
	uint64_t total = 0;
	bool bad = false;
	int rc = 0;
	size_t n;
	while ((n = read_rows(f, dim, rows, batch, &bad)) > 0) {
		for (size_t i = 0; i < n; i++)
			ids[i] = random ? random_id(total + i) : total + i;
		rvf_commit_info ci;
		if (rvf_store_ingest(s, n, ids, rows, NULL, NULL, &ci, &err) != RVF_OK) {
			fprintf(stderr, "fvecs_store: ingest: %s\n", err.message);
			rc = 1;
			break;
		}
		total += n;
	}
	if (bad) {
		fprintf(stderr, "fvecs_store: %s: a row has another dimension or is cut short\n", src);
		rc = 1;
	}
	rvf_store_close(s);
	fclose(f);
	free(rows);
	free(ids);
	if (!rc)
		printf("{\"rows\":%llu,\"seconds\":%.3f}\n", (unsigned long long)total, now() - t0);
	return rc;
}
