/* children.c - finding the branch children of a store.
 *
 * A branch child names its parent by a path relative to its own directory
 * (COW_MAP, format document §3.8); the parent records nothing about its
 * children.  We look for them where they usually are: the store files
 * (*.rv*, e.g. .rvf, .rvdna) in the parent's own directory whose newest
 * COW_MAP names this very file.  Children elsewhere are not found. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bytes.h"
#include "error.h"
#include "manifest.h"
#include "segment.h"
#include "store.h"

/* How far from its end a file's newest manifest is looked for. */
#define TAIL_WINDOW (64ull << 20)

/* Store files only: reading every file of a directory would be slow. */
static bool store_name(const char *name)
{
	const char *dot = strrchr(name, '.');
	return dot && dot != name && strncmp(dot, ".rv", 3) == 0;
}

/* True when the file `name` in directory `dfd` (path `dir`) is a branch
 * child whose parent resolves to the file (dev, ino). */
static bool names_parent(int dfd, const char *dir, const char *name,
			 dev_t dev, ino_t ino)
{
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return false;
	struct stat st;
	bool yes = false;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0 ||
	    (st.st_dev == dev && st.st_ino == ino)) {
		close(fd);
		return false;
	}
	uint64_t size = (uint64_t)st.st_size;
	unsigned char *map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (map == MAP_FAILED)
		return false;
	/* A child's newest manifest is at its end: look only there, so a
	 * large file that is no store costs little. */
	uint64_t win = size < TAIL_WINDOW ? size : TAIL_WINDOW;
	manifest m = { 0 };
	rvf_segment ms;
	if (manifest_locate(map + size - win, win, &m, &ms, NULL) == RVF_OK) {
		const dir_entry *cow = NULL;
		for (uint32_t i = 0; i < m.dir_len; i++)
			if (m.dir[i].type == RVF_SEG_COW_MAP)
				cow = &m.dir[i];
		uint64_t at = cow ? cow->offset + RVF_SEGMENT_HEADER_SIZE : 0;
		if (cow && cow->payload_length >= 81 && at <= size &&
		    cow->payload_length <= size - at) {
			const unsigned char *p = map + at;
			uint32_t plen = ld32(p + 0x49);
			if (plen > 0 && plen <= cow->payload_length - 81 && plen < 4096) {
				char rel[4096], full[8192];
				memcpy(rel, p + 81, plen);
				rel[plen] = '\0';
				if (rel[0] == '/')
					snprintf(full, sizeof(full), "%s", rel);
				else
					snprintf(full, sizeof(full), "%s/%s", dir, rel);
				struct stat ps;
				yes = stat(full, &ps) == 0 && ps.st_dev == dev &&
				      ps.st_ino == ino;
			}
		}
		manifest_free(&m);
	}
	munmap(map, (size_t)size);
	return yes;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

rvf_code rvf_branch_children(const char *path, rvf_children *out, rvf_error *err)
{
	memset(out, 0, sizeof(*out));
	struct stat st;
	if (stat(path, &st) != 0)
		return rvf_fail_io(err, errno, "cannot stat %s", path);
	char *copy = strdup(path);
	if (!copy)
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	const char *dir = dirname(copy);
	DIR *d = opendir(dir);
	if (!d) {
		rvf_code rc = rvf_fail_io(err, errno, "cannot list %s", dir);
		free(copy);
		return rc;
	}
	rvf_code rc = RVF_OK;
	size_t cap = 0;
	for (struct dirent *e; (e = readdir(d));) {
		if (!store_name(e->d_name) ||
		    !names_parent(dirfd(d), dir, e->d_name, st.st_dev, st.st_ino))
			continue;
		if (out->count == cap) {
			size_t nc = cap ? cap * 2 : 4;
			char **g = realloc(out->paths, nc * sizeof(char *));
			if (!g) {
				rc = rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
				break;
			}
			out->paths = g;
			cap = nc;
		}
		/* "NAME" for a store given without a directory, else "DIR/NAME" */
		bool here = strcmp(dir, ".") == 0 && !strchr(path, '/');
		size_t n = strlen(dir) + strlen(e->d_name) + 2;
		out->paths[out->count] = malloc(n);
		if (!out->paths[out->count]) {
			rc = rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
			break;
		}
		snprintf(out->paths[out->count], n, "%s%s%s", here ? "" : dir,
			 here ? "" : "/", e->d_name);
		out->count++;
	}
	closedir(d);
	free(copy);
	if (rc != RVF_OK) {
		rvf_children_free(out);
		return rc;
	}
	if (out->count > 1)
		qsort(out->paths, out->count, sizeof(char *), cmp_str);
	return RVF_OK;
}

void rvf_children_free(rvf_children *c)
{
	for (size_t i = 0; i < c->count; i++)
		free(c->paths[i]);
	free(c->paths);
	c->paths = NULL;
	c->count = 0;
}
