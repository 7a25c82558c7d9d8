/* standalone_main.c - runs a fuzz target without libFuzzer.
 *
 *   fuzz_open [FILE|DIR]...
 *
 * Every FILE (and every regular file directly inside a DIR, in name order)
 * goes once through LLVMFuzzerTestOneInput.  Built with -DFUZZ_STANDALONE
 * under ASan/UBSan by tests/fuzz/build.sh --standalone; a crash aborts the
 * process, a leak makes LeakSanitizer fail it at exit.  Prints one line
 * per input so a failure names the file. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return 1;
	}
	unsigned char *buf = NULL;
	size_t len = 0, cap = 0;
	for (;;) {
		if (len == cap) {
			cap = cap ? 2 * cap : 65536;
			unsigned char *n = realloc(buf, cap);
			if (!n) {
				fprintf(stderr, "%s: out of memory\n", path);
				free(buf);
				fclose(f);
				return 1;
			}
			buf = n;
		}
		size_t got = fread(buf + len, 1, cap - len, f);
		len += got;
		if (got == 0)
			break;
	}
	int bad = ferror(f);
	fclose(f);
	if (bad) {
		fprintf(stderr, "%s: read error\n", path);
		free(buf);
		return 1;
	}
	fprintf(stderr, "running %s (%zu bytes)\n", path, len);
	/* An exact-size copy, so ASan sees reads past the input's end. */
	unsigned char *exact = malloc(len ? len : 1);
	if (!exact) {
		free(buf);
		return 1;
	}
	memcpy(exact, buf, len);
	free(buf);
	LLVMFuzzerTestOneInput(exact, len);
	free(exact);
	return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

int main(int argc, char **argv)
{
	if (LLVMFuzzerInitialize)
		LLVMFuzzerInitialize(&argc, &argv);
	int failed = 0, ran = 0;
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) != 0) {
			fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
			failed = 1;
			continue;
		}
		if (!S_ISDIR(st.st_mode)) {
			failed |= run_file(argv[i]);
			ran++;
			continue;
		}
		struct dirent **ents;
		int n = scandir(argv[i], &ents, NULL, by_name);
		if (n < 0) {
			fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
			failed = 1;
			continue;
		}
		for (int j = 0; j < n; j++) {
			char *p;
			if (asprintf(&p, "%s/%s", argv[i], ents[j]->d_name) >= 0) {
				if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
					failed |= run_file(p);
					ran++;
				}
				free(p);
			}
			free(ents[j]);
		}
		free(ents);
	}
	fprintf(stderr, "%d input(s) run\n", ran);
	return failed;
}
