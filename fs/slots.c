/* slots.c - queries/NAME: a request file and a result file per slot, so
 * scripts can run queries in parallel without sharing the query file. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rvffs.h"

slot *slot_find_ino(rvffs *fs, uint64_t ino)
{
	for (slot *q = fs->slots; q; q = q->next)
		if (ino >= q->ino && ino <= q->ino + 2)
			return q;
	return NULL;
}

slot *slot_find_name(rvffs *fs, const char *name)
{
	for (slot *q = fs->slots; q; q = q->next)
		if (!strcmp(q->name, name))
			return q;
	return NULL;
}

int slot_create(rvffs *fs, const char *name, uid_t uid, gid_t gid, slot **out)
{
	slot *q = calloc(1, sizeof(*q));
	if (!q || !(q->name = strdup(name))) {
		free(q);
		return -ENOMEM;
	}
	q->uid = uid;
	q->gid = gid;
	clock_gettime(CLOCK_REALTIME, &q->mtime);
	pthread_mutex_lock(&fs->mu);
	int rc = slot_find_name(fs, name) ? -EEXIST :
		 !limits_slot_allowed(fs, uid) ? -EDQUOT : 0;
	if (rc) {
		pthread_mutex_unlock(&fs->mu);
		if (rc == -EDQUOT)
			fs_error(fs, "queries/%s: uid %u has %u query slots already (slots_max in rvffs.conf)",
				 name, (unsigned)uid, fs->lim.slots_max);
		free(q->name);
		free(q);
		return rc;
	}
	q->ino = fs->next_dyn;
	fs->next_dyn += 3; /* directory, request, result */
	q->next = fs->slots;
	fs->slots = q;
	pthread_mutex_unlock(&fs->mu);
	*out = q;
	return 0;
}

void slot_remove(rvffs *fs, slot *q)
{
	for (slot **p = &fs->slots; *p; p = &(*p)->next) {
		if (*p == q) {
			*p = q->next;
			break;
		}
	}
	free(q->name);
	free(q->request);
	free(q->result);
	free(q);
}

void slot_run(rvffs *fs, uint64_t slot_ino)
{
	pthread_mutex_lock(&fs->mu);
	slot *q = slot_find_ino(fs, slot_ino);
	char *req = q && q->request_len ? strndup(q->request, q->request_len) : NULL;
	size_t len = req ? q->request_len : 0;
	pthread_mutex_unlock(&fs->mu);
	if (!req)
		return;
	rvf_view *v = fs_view(fs);
	char *out = NULL;
	size_t out_len = 0;
	int rc = query_run(fs, v, req, len, &out, &out_len);
	rvf_view_release(v);
	free(req);
	if (!rc && fs_store_check(fs)) {
		/* The search read a store that shrank under us: its answer may
		 * come from zeroed pages, so the result is the error instead. */
		free(out);
		out = strdup("error: the store file shrank under the mount\n");
		out_len = out ? strlen(out) : 0;
		rc = -EIO;
	}
	pthread_mutex_lock(&fs->mu);
	q = slot_find_ino(fs, slot_ino); /* may have been removed meanwhile */
	if (q && rc && out_len) {
		/* The error is the result; `errors` says it too. */
		char *line = strndup(out, out_len - (out[out_len - 1] == '\n'));
		char *name = strdup(q->name);
		pthread_mutex_unlock(&fs->mu);
		if (line && name)
			fs_error(fs, "queries/%s: %s", name, line);
		free(line);
		free(name);
		pthread_mutex_lock(&fs->mu);
		q = slot_find_ino(fs, slot_ino);
	}
	if (q) {
		free(q->result);
		q->result = out;
		q->result_len = out_len;
		clock_gettime(CLOCK_REALTIME, &q->mtime);
		out = NULL;
	}
	pthread_mutex_unlock(&fs->mu);
	free(out);
}
