/* progress.c - the progress bar (see progress.h). */
#include "progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DELAY_NS 300000000ll   /* quiet for operations quicker than this */
#define REDRAW_NS 100000000ll  /* at most 10 redraws a second */
#define BAR 30

static long long since(const struct timespec *a, const struct timespec *b)
{
	return (b->tv_sec - a->tv_sec) * 1000000000ll + (b->tv_nsec - a->tv_nsec);
}

static void human(char *out, size_t n, uint64_t v, bool bytes)
{
	if (!bytes) {
		snprintf(out, n, "%llu", (unsigned long long)v);
		return;
	}
	static const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double x = (double)v;
	int u = 0;
	while (x >= 1024 && u < 4) {
		x /= 1024;
		u++;
	}
	snprintf(out, n, u ? "%.1f %s" : "%.0f %s", x, units[u]);
}

/* Caller holds p->mu. */
static void draw(progress *p, bool force)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (since(&p->start, &now) < p->delay_ns ||
	    (!force && p->drawn && since(&p->last, &now) < REDRAW_NS))
		return;
	p->last = now;
	p->drawn = true;
	double secs = (double)since(&p->start, &now) / 1e9;
	char done[32], total[32];
	human(done, sizeof(done), p->done, p->bytes);
	if (p->total) {
		uint64_t d = p->done < p->total ? p->done : p->total;
		int fill = (int)(BAR * (double)d / (double)p->total);
		char bar[BAR + 1];
		memset(bar, '#', (size_t)fill);
		memset(bar + fill, '.', (size_t)(BAR - fill));
		bar[BAR] = '\0';
		human(total, sizeof(total), p->total, p->bytes);
		fprintf(stderr, "\r%s [%s] %3d%% %s/%s %.0fs\033[K", p->label, bar,
			(int)(100.0 * (double)d / (double)p->total), done, total, secs);
	} else {
		static const char spin[] = "|/-\\";
		fprintf(stderr, "\r%s %c %.1fs\033[K", p->label,
			spin[(int)(secs * 5) % 4], secs);
	}
	fflush(stderr);
}

static void *tick(void *arg)
{
	progress *p = arg;
	pthread_mutex_lock(&p->mu);
	while (!p->stop) {
		struct timespec t;
		clock_gettime(CLOCK_REALTIME, &t);
		t.tv_nsec += REDRAW_NS * 2;
		if (t.tv_nsec >= 1000000000l) {
			t.tv_sec++;
			t.tv_nsec -= 1000000000l;
		}
		pthread_cond_timedwait(&p->cond, &p->mu, &t);
		if (!p->stop)
			draw(p, true);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

void progress_begin(progress *p, const char *label, uint64_t total, bool bytes)
{
	memset(p, 0, sizeof(*p));
	p->on = isatty(2);
	if (!p->on)
		return;
	p->label = label;
	p->total = total;
	p->bytes = bytes;
	clock_gettime(CLOCK_MONOTONIC, &p->start);
	/* Tests shorten the delay to see a bar on small inputs. */
	const char *d = getenv("RVFCTL_PROGRESS_DELAY_MS");
	p->delay_ns = d ? atoll(d) * 1000000ll : DELAY_NS;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cond, NULL);
	if (!total)
		p->ticking = pthread_create(&p->ticker, NULL, tick, p) == 0;
}

void progress_update(progress *p, uint64_t done)
{
	if (!p->on)
		return;
	pthread_mutex_lock(&p->mu);
	p->done = done;
	draw(p, false);
	pthread_mutex_unlock(&p->mu);
}

void progress_end(progress *p)
{
	if (!p->on)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->mu);
	if (p->ticking)
		pthread_join(p->ticker, NULL);
	if (p->drawn) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
	}
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cond);
	p->on = false;
}
