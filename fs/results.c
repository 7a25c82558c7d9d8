/* results.c - what `cat query` shows from a fresh descriptor: the last
 * results of the reader's own requests, never another's.
 *
 * The shell idiom `echo "..." > query; cat query` writes from one process
 * (the shell, or a child of it) and reads from another (cat, a child of the
 * shell), so results are kept per writer: its uid, session, process and
 * parent.  A reader gets, nearest first along its own ancestry (itself, its
 * parent, ... within its session), the newest result written by that
 * process or by a child of it; failing that, the newest result of its
 * session.  Another uid or another session (another terminal, another
 * login) never matches.
 *
 * Session 0 is an ordinary value: inside a pid namespace whose session
 * leader lives outside (a sandbox, a CI runner), /proc shows 0 for every
 * process.  When /proc cannot tell at all (the caller is in another pid
 * namespace, or /proc is not ours), results are matched by uid alone among
 * such readers: still never another user's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rvffs.h"

#define RESULTS_MAX 256 /* writers remembered; the oldest is forgotten */
#define ANCESTRY_MAX 8

typedef struct result_entry {
	reader_id who;
	uint64_t seq;   /* newer entries have larger numbers */
	char *text;
	size_t len;
	struct timespec when; /* made (the query file's mtime for its reader) */
} result_entry;

static result_entry table[RESULTS_MAX];
static uint64_t next_seq = 1;

/* Reads ppid and session of pid from /proc/PID/stat; false if gone. */
static bool proc_stat(pid_t pid, pid_t *ppid, pid_t *sid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* "pid (comm) state ppid pgrp session ...": comm may hold anything. */
	char *p = strrchr(buf, ')');
	int pp, pg, s;
	char state;
	if (!p || sscanf(p + 1, " %c %d %d %d", &state, &pp, &pg, &s) != 4)
		return false;
	*ppid = pp;
	*sid = s;
	return true;
}

/* The process (thread group) of a thread. */
static pid_t tgid_of(pid_t tid)
{
	char path[64], line[128];
	pid_t tgid = tid;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)tid);
	FILE *f = tid > 0 ? fopen(path, "re") : NULL;
	if (!f)
		return tid;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "Tgid:", 5)) {
			tgid = (pid_t)atoi(line + 5);
			break;
		}
	fclose(f);
	return tgid;
}

/* Whether /proc shows our pid namespace (FUSE reports pids in it). */
static bool proc_is_ours(void)
{
	static int ours = -1;
	if (ours < 0) {
		pid_t ppid, sid;
		char self[32] = "";
		ssize_t n = readlink("/proc/self", self, sizeof(self) - 1);
		ours = n > 0 && atoi(self) == (int)getpid() &&
		       proc_stat(getpid(), &ppid, &sid);
	}
	return ours == 1;
}

void reader_of(fuse_req_t req, reader_id *c)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	memset(c, 0, sizeof(*c));
	c->uid = ctx->uid;
	c->tgid = tgid_of(ctx->pid);
	c->known = proc_is_ours() && c->tgid > 0 &&
		   proc_stat(c->tgid, &c->ppid, &c->sid);
	if (!c->known)
		c->tgid = c->ppid = c->sid = 0;
}

pid_t caller_tgid(fuse_req_t req)
{
	return tgid_of(fuse_req_ctx(req)->pid);
}

bool caller_same_process(fuse_req_t req, pid_t opener)
{
	/* The opener's own thread (a shell's `> f`) needs no /proc read:
	 * three of them per `echo > f` were a third of its daemon time. */
	pid_t tid = fuse_req_ctx(req)->pid;
	return opener > 0 && (tid == opener || tgid_of(tid) == tgid_of(opener));
}

void results_put(rvffs *fs, const reader_id *c, const char *text, size_t len)
{
	char *copy = malloc(len ? len : 1);
	if (!copy)
		return;
	memcpy(copy, text, len);
	pthread_mutex_lock(&fs->mu);
	result_entry *slot = NULL, *oldest = &table[0];
	for (size_t i = 0; i < RESULTS_MAX && !slot; i++) {
		result_entry *e = &table[i];
		if (e->seq && e->who.uid == c->uid && e->who.known == c->known &&
		    e->who.tgid == c->tgid && e->who.sid == c->sid)
			slot = e; /* this writer's previous result */
		else if (!e->seq || e->seq < oldest->seq)
			oldest = e;
	}
	if (!slot)
		slot = oldest;
	free(slot->text);
	slot->who = *c;
	slot->seq = next_seq++;
	slot->text = copy;
	slot->len = len;
	clock_gettime(CLOCK_REALTIME, &slot->when);
	pthread_mutex_unlock(&fs->mu);
}

/* Newest entry of the reader's uid and session written by pid or by a
 * child of pid (any when pid is 0). */
static result_entry *newest(const reader_id *r, pid_t pid)
{
	result_entry *best = NULL;
	for (size_t i = 0; i < RESULTS_MAX; i++) {
		result_entry *e = &table[i];
		if (!e->seq || e->who.uid != r->uid ||
		    e->who.known != r->known || e->who.sid != r->sid)
			continue;
		if (pid && e->who.tgid != pid && e->who.ppid != pid)
			continue;
		if (!best || e->seq > best->seq)
			best = e;
	}
	return best;
}

/* The entry reader r sees (holds fs->mu); chain: its ancestry. */
static result_entry *entry_for(const reader_id *r, const pid_t *chain, size_t n)
{
	result_entry *e = NULL;
	for (size_t i = 0; i < n && !e; i++)
		e = newest(r, chain[i]);
	return e ? e : newest(r, 0);
}

/* The reader's ancestry within its session, walked before locking. */
static size_t ancestry(const reader_id *r, pid_t chain[ANCESTRY_MAX])
{
	size_t n = 0;
	pid_t pid = r->tgid, ppid = r->ppid, sid = r->sid;
	while (r->known && n < ANCESTRY_MAX && pid > 1 && sid == r->sid) {
		chain[n++] = pid;
		pid = ppid;
		if (!proc_stat(pid, &ppid, &sid))
			break;
	}
	return n;
}

char *results_get(rvffs *fs, const reader_id *r, size_t *len)
{
	*len = 0;
	pid_t chain[ANCESTRY_MAX];
	size_t n = ancestry(r, chain);
	char *out = NULL;
	pthread_mutex_lock(&fs->mu);
	result_entry *e = entry_for(r, chain, n);
	if (e && (out = malloc(e->len ? e->len : 1))) {
		memcpy(out, e->text, e->len);
		*len = e->len;
	}
	pthread_mutex_unlock(&fs->mu);
	return out;
}

bool results_stat(rvffs *fs, const reader_id *r, size_t *len, struct timespec *when)
{
	pid_t chain[ANCESTRY_MAX];
	size_t n = ancestry(r, chain);
	pthread_mutex_lock(&fs->mu);
	result_entry *e = entry_for(r, chain, n);
	if (e) {
		*len = e->len;
		*when = e->when;
	}
	pthread_mutex_unlock(&fs->mu);
	return e != NULL;
}

void results_free(rvffs *fs)
{
	(void)fs;
	for (size_t i = 0; i < RESULTS_MAX; i++) {
		free(table[i].text);
		table[i].text = NULL;
		table[i].seq = 0;
	}
}
