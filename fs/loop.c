/* loop.c - the request loop.
 *
 * One thread reads /dev/fuse.  The requests of the shell's vector write
 * pattern -- lookups, and creates, opens, writes, flushes, releases and
 * unlinks of vector files -- it answers itself: they cannot block for
 * long.  Everything else (queries, ingest files, readdir, control,
 * xattrs, ...) goes to a pool of worker threads, so a long request never
 * holds up the others.
 *
 * Why not libfuse's multi-threaded loop: the kernel hands a request to
 * its /dev/fuse readers in turn, so every request of `echo > vectors/N`
 * (six of them) woke another thread, and a release overlapped the next
 * lookup on a second one; perf stat counted twice the daemon CPU per echo
 * of a single thread (issue 12).  A vector flush or unlink commits under
 * the store's writer lock: while another writer holds it (a streaming
 * ingest, a compaction), those go to the pool too. */
#include <errno.h>
#include <linux/fuse.h>
#include <stdlib.h>
#include <string.h>

#include "node.h"

typedef struct job {
	struct job *next;
	struct fuse_buf buf;
} job;

typedef struct pool {
	rvffs *fs;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	job *head, *tail;         /* queued requests */
	void *spare[8];           /* receive buffers to reuse */
	unsigned nspare;
	unsigned workers, idle, max;
	bool stop;
	pthread_t *threads;
} pool;

/* A vector file, or the vectors/ directory. */
static bool vector_node(rvffs *fs, uint64_t ino)
{
	return ino == INO_VECTORS ||
	       (ino >= INO_BIGID_BASE && node_of(fs, ino) == &node_vector);
}

/* A WRITE that continues a streamed ingest file without blocking: cp
 * waits for each write's answer, so a hop to a worker thread per MiB
 * was a wakeup on its path (a long wait on a loaded machine). */
static bool streamed_write_is_quick(rvffs *fs, const struct fuse_buf *b)
{
	const struct fuse_in_header *in = b->mem;
	if (b->size < sizeof(*in) + sizeof(struct fuse_write_in))
		return false;
	const struct fuse_write_in *w = (const void *)(in + 1);
	/* The kernel sends no WRITE of a file after its RELEASE: the handle
	 * is alive. */
	handle *h = (handle *)(uintptr_t)w->fh;
	return h && staged_write_is_quick(fs, h, w->offset, w->size);
}

/* True when the request may be answered by the reading thread. */
static bool answer_inline(rvffs *fs, const struct fuse_buf *b)
{
	if (b->size < sizeof(struct fuse_in_header))
		return true; /* libfuse says what is wrong with it */
	const struct fuse_in_header *in = b->mem;
	switch (in->opcode) {
	case FUSE_INIT:
	case FUSE_DESTROY:
	case FUSE_FORGET:
	case FUSE_BATCH_FORGET:
	case FUSE_INTERRUPT:
		return true;
	case FUSE_WRITE:
		if (!fs->read_only && streamed_write_is_quick(fs, b))
			return true;
		/* fall through */
	case FUSE_LOOKUP:
	case FUSE_GETATTR:
	case FUSE_CREATE:
	case FUSE_OPEN:
	case FUSE_READ:
	case FUSE_RELEASE:
	case FUSE_SETATTR:
		/* A read-only mount may refresh its view first: not inline. */
		return !fs->read_only && vector_node(fs, in->nodeid);
	case FUSE_FLUSH:
	case FUSE_UNLINK:
		/* These commit: not while a writer holds the store. */
		return !fs->read_only && vector_node(fs, in->nodeid) &&
		       !rvf_store_writer_busy(fs->store);
	default:
		return false;
	}
}

static void *worker(void *arg)
{
	pool *p = arg;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->head && !p->stop) {
			p->idle++;
			pthread_cond_wait(&p->cond, &p->mu);
			p->idle--;
		}
		job *j = p->head;
		if (!j)
			break; /* stopped, nothing left */
		p->head = j->next;
		if (!p->head)
			p->tail = NULL;
		pthread_mutex_unlock(&p->mu);
		fuse_session_process_buf(p->fs->se, &j->buf);
		pthread_mutex_lock(&p->mu);
		if (p->nspare < sizeof(p->spare) / sizeof(p->spare[0]))
			p->spare[p->nspare++] = j->buf.mem;
		else
			free(j->buf.mem);
		free(j);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* Hands the request in *b to a worker (b gets a fresh buffer): 0 or
 * -errno (then the caller answers it itself). */
static int hand_off(pool *p, struct fuse_buf *b)
{
	job *j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->buf = *b;
	pthread_mutex_lock(&p->mu);
	if (!p->idle && p->workers < p->max &&
	    pthread_create(&p->threads[p->workers], NULL, worker, p) == 0)
		p->workers++;
	if (!p->workers) {
		pthread_mutex_unlock(&p->mu);
		free(j);
		return -EAGAIN;
	}
	if (p->tail)
		p->tail->next = j;
	else
		p->head = j;
	p->tail = j;
	memset(b, 0, sizeof(*b));
	b->mem = p->nspare ? p->spare[--p->nspare] : NULL; /* NULL: libfuse allocates */
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->mu);
	return 0;
}

int fs_loop(rvffs *fs, unsigned max_threads)
{
	pool p = { .fs = fs, .max = max_threads ? max_threads : 1 };
	p.threads = calloc(p.max, sizeof(pthread_t));
	if (!p.threads)
		return -ENOMEM;
	pthread_mutex_init(&p.mu, NULL);
	pthread_cond_init(&p.cond, NULL);
	struct fuse_buf b = { 0 };
	int res = 0;
	while (!fuse_session_exited(fs->se)) {
		res = fuse_session_receive_buf(fs->se, &b);
		if (res == -EINTR)
			continue;
		if (res <= 0)
			break; /* 0: unmounted */
		if (answer_inline(fs, &b) || hand_off(&p, &b) != 0)
			fuse_session_process_buf(fs->se, &b);
	}
	pthread_mutex_lock(&p.mu);
	p.stop = true;
	pthread_cond_broadcast(&p.cond);
	pthread_mutex_unlock(&p.mu);
	for (unsigned i = 0; i < p.workers; i++)
		pthread_join(p.threads[i], NULL);
	for (unsigned i = 0; i < p.nspare; i++)
		free(p.spare[i]);
	free(b.mem);
	free(p.threads);
	pthread_cond_destroy(&p.cond);
	pthread_mutex_destroy(&p.mu);
	fuse_session_reset(fs->se);
	return res < 0 ? res : 0;
}
