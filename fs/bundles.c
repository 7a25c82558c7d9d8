/* bundles.c - wasm and dashboard/ at the top of the tree: the store's
 * WASM module(s) and the files of its dashboard bundle, read-only.
 *
 * `wasm` is a file with the module when the store has one, a directory of
 * modules named by role (wasm/combined, wasm/interpreter, ...) when it has
 * several.  dashboard/ holds the bundle's files; a path with directories
 * shows as one name with '/' written %2F (and '%' as %25), so every file
 * is one entry and the names map back to the paths. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rvffs.h"

/* Dashboard path -> mount name; false when it does not fit. */
static bool dash_name(const char *path, char *out, size_t cap)
{
	size_t o = 0;
	for (const char *p = path; *p; p++) {
		const char *rep = *p == '/' ? "%2F" : *p == '%' ? "%25" : NULL;
		size_t n = rep ? 3 : 1;
		if (o + n >= cap)
			return false;
		if (rep)
			memcpy(out + o, rep, 3);
		else
			out[o] = *p;
		o += n;
	}
	out[o] = '\0';
	return o > 0;
}

bool bundle_node(uint64_t ino)
{
	return (ino >= INO_WASM_FILE && ino < INO_WASM_FILE + BUNDLE_MAX_FILES) ||
	       (ino >= INO_DASH_FILE && ino < INO_DASH_FILE + BUNDLE_MAX_FILES);
}

bool bundle_stat(rvf_view *v, uint64_t ino, mode_t *mode, uint64_t *size)
{
	size_t nw = rvf_view_wasm_count(v);
	rvf_wasm_info w;
	if (ino == INO_WASM) {
		if (nw == 0)
			return false;
		if (nw > 1) {
			*mode = S_IFDIR | 0555;
			*size = 0;
			return true;
		}
		rvf_view_wasm(v, 0, &w);
		*mode = S_IFREG | 0444;
		*size = w.module_len;
		return true;
	}
	if (ino >= INO_WASM_FILE && ino < INO_WASM_FILE + BUNDLE_MAX_FILES) {
		if (nw < 2 || !rvf_view_wasm(v, ino - INO_WASM_FILE, &w))
			return false;
		*mode = S_IFREG | 0444;
		*size = w.module_len;
		return true;
	}
	rvf_dashboard *d;
	if (rvf_view_dashboard(v, &d, NULL) != RVF_OK)
		return false;
	bool found = false;
	if (ino == INO_DASHBOARD) {
		*mode = S_IFDIR | 0555;
		*size = 0;
		found = true;
	} else if (ino >= INO_DASH_FILE && ino - INO_DASH_FILE < d->nfiles) {
		*mode = S_IFREG | 0444;
		*size = d->files[ino - INO_DASH_FILE].size;
		found = true;
	}
	rvf_dashboard_free(d);
	return found;
}

uint64_t bundle_lookup(rvf_view *v, uint64_t parent, const char *name)
{
	if (parent == INO_WASM) {
		rvf_wasm_info w;
		size_t nw = rvf_view_wasm_count(v);
		for (size_t i = 0; nw > 1 && i < nw && i < BUNDLE_MAX_FILES; i++)
			if (rvf_view_wasm(v, i, &w) && !strcmp(w.name, name))
				return INO_WASM_FILE + i;
		return 0;
	}
	rvf_dashboard *d;
	if (parent != INO_DASHBOARD || rvf_view_dashboard(v, &d, NULL) != RVF_OK)
		return 0;
	uint64_t ino = 0;
	char n[NAME_MAX + 1];
	for (size_t i = 0; i < d->nfiles && i < BUNDLE_MAX_FILES && !ino; i++)
		if (dash_name(d->files[i].path, n, sizeof(n)) && !strcmp(n, name))
			ino = INO_DASH_FILE + i;
	rvf_dashboard_free(d);
	return ino;
}

void bundle_list(rvf_view *v, uint64_t dir,
		 void (*add)(void *ctx, const char *name, uint64_t ino), void *ctx)
{
	if (dir == INO_WASM) {
		rvf_wasm_info w;
		size_t nw = rvf_view_wasm_count(v);
		for (size_t i = 0; nw > 1 && i < nw && i < BUNDLE_MAX_FILES; i++)
			if (rvf_view_wasm(v, i, &w))
				add(ctx, w.name, INO_WASM_FILE + i);
		return;
	}
	rvf_dashboard *d;
	if (dir != INO_DASHBOARD || rvf_view_dashboard(v, &d, NULL) != RVF_OK)
		return;
	char n[NAME_MAX + 1];
	for (size_t i = 0; i < d->nfiles && i < BUNDLE_MAX_FILES; i++)
		if (dash_name(d->files[i].path, n, sizeof(n)))
			add(ctx, n, INO_DASH_FILE + i);
	rvf_dashboard_free(d);
}

int bundle_read(rvffs *fs, rvf_view *v, uint64_t ino, char **text, size_t *len)
{
	rvf_error err;
	if (ino == INO_WASM || (ino >= INO_WASM_FILE && ino < INO_WASM_FILE + BUNDLE_MAX_FILES)) {
		/* decompressed when stored compressed */
		size_t i = ino == INO_WASM ? 0 : ino - INO_WASM_FILE;
		if (rvf_view_wasm_module(v, i, (unsigned char **)text, len, &err) != RVF_OK)
			return err.code == RVF_E_NOT_FOUND ? -ENOENT :
			       -fs_rvf_errno(fs, "wasm", &err);
		return 0;
	}
	rvf_dashboard *d = NULL;
	rvf_code rc = rvf_view_dashboard(v, &d, &err);
	if (rc != RVF_OK)
		return -fs_rvf_errno(fs, "dashboard", &err);
	if (ino < INO_DASH_FILE || ino - INO_DASH_FILE >= d->nfiles) {
		rvf_dashboard_free(d);
		return -ENOENT;
	}
	const unsigned char *src = d->files[ino - INO_DASH_FILE].data;
	size_t n = (size_t)d->files[ino - INO_DASH_FILE].size;
	*text = malloc(n ? n : 1);
	if (*text) {
		memcpy(*text, src, n);
		*len = n;
	}
	rvf_dashboard_free(d);
	return *text ? 0 : -ENOMEM;
}
