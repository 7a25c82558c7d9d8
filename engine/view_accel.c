/* view_accel.c - when a view gets its search codes (accel.h), and where.
 *
 * The first search of a large enough view starts a build on a detached
 * thread holding a reference to the view; searches meanwhile scan the
 * float rows, and every later search uses the codes.  A commit does not
 * start over: store_publish hands the previous view's codes to the new
 * view (view_accel_inherit), which codes only the rows the commit added
 * and masks the ones it removed, before any query sees the new view.
 * When masked slots or rows the grid codes badly pile up (accel_stale)
 * a full build runs in the background while the inherited codes keep
 * serving.
 *
 * A commit during the first build leaves the new view a reference to the
 * view being built for (accel_from): its first search once that build is
 * done carries the codes over; until then searches scan, as they would on
 * the older view, and no second build starts.
 *
 * Indexes are reference counted: a search holds one while it runs, so a
 * background build can replace a view's index under it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accel.h"
#include "codes4.h"
#include "distance.h"
#include "store.h"

/* READY_REBUILDING: ready, and a full build is on its way. */
enum { ACCEL_NONE, ACCEL_BUILDING, ACCEL_READY, ACCEL_FAILED,
       ACCEL_READY_REBUILDING };

/* Below this many floats an exact scan takes well under a millisecond. */
#define ACCEL_MIN_FLOATS ((size_t)1 << 19)
/* L2 stores whose 8-bit codes would pass this get 4-bit ones: a query
 * then reads half the bytes (accel.h). */
#define ACCEL_4BIT_FROM ((size_t)512 << 20)

static bool is_ready(int state)
{
	return state == ACCEL_READY || state == ACCEL_READY_REBUILDING;
}

/* 8 or 4: the code width for v.  RVF_CODES_BITS=8 or 4 chooses (4 only
 * for L2, the one metric with 4-bit codes). */
static unsigned code_bits(const rvf_view *v)
{
	const char *e = getenv("RVF_CODES_BITS");
	bool l2 = dist_metric(v->info.metric) == RVF_METRIC_L2;

	if (e && !strcmp(e, "8"))
		return 8;
	if (e && !strcmp(e, "4"))
		return l2 ? 4 : 8;
	return l2 && accel_estimate(v->nvisible, v->info.dimension,
				    v->info.metric, 8) > ACCEL_4BIT_FROM ? 4 : 8;
}

static void build(rvf_view *v)
{
	const char *why = NULL;
	const search_row *rows = view_rows(v);
	accel_index *a = rows ? accel_build(rows, v->nvisible, v->info.dimension,
					    v->info.metric, code_ops_best(),
					    code_bits(v) == 4 ? code4_ops_best() : NULL,
					    &why) : NULL;
	accel_index *old = NULL;

	pthread_mutex_lock(&v->accel_mu);
	if (a) {
		old = v->accel;
		v->accel = a;
		v->accel_state = ACCEL_READY;
	} else if (v->accel_state == ACCEL_READY_REBUILDING) {
		v->accel_state = ACCEL_READY; /* keep serving what it has */
	} else {
		v->accel_state = ACCEL_FAILED;
	}
	v->accel_why = why;
	pthread_mutex_unlock(&v->accel_mu);
	accel_release(old);
}

static void *build_thread(void *arg)
{
	build(arg);
	rvf_view_release(arg);
	return NULL;
}

/* Why codes will not be built for this view and these options, or NULL. */
static const char *unsuitable(const rvf_view *v, const rvf_search_options *opt)
{
	uint64_t cap = opt && opt->accel_max_bytes ? opt->accel_max_bytes :
						     RVF_ACCEL_DEFAULT_MAX_BYTES;

	if (accel_estimate(v->nvisible, v->info.dimension, v->info.metric,
			   code_bits(v)) > cap)
		return "larger than the memory cap";
	return NULL;
}

/* Carries the codes of v->accel_from to v once they are ready; drops the
 * link when that build failed. */
static void take_pending(rvf_view *v)
{
	rvf_view *from;
	accel_index *prev = NULL, *a = NULL;
	const char *why;
	bool done;

	pthread_mutex_lock(&v->accel_mu);
	from = v->accel_from ? rvf_view_ref(v->accel_from) : NULL;
	pthread_mutex_unlock(&v->accel_mu);
	if (!from)
		return;
	pthread_mutex_lock(&from->accel_mu);
	if (is_ready(from->accel_state))
		prev = accel_ref(from->accel);
	done = from->accel_state != ACCEL_BUILDING;
	pthread_mutex_unlock(&from->accel_mu);
	rvf_view_release(from);
	if (prev) {
		const search_row *rows = view_rows(v);
		a = rows ? accel_derive(prev, rows, v->nvisible, &why) : NULL;
		accel_release(prev);
	}
	if (!done)
		return;
	pthread_mutex_lock(&v->accel_mu);
	if (a && v->accel_state == ACCEL_NONE) {
		v->accel = a;
		v->accel_state = ACCEL_READY;
		a = NULL;
	}
	from = v->accel_from;
	v->accel_from = NULL;
	pthread_mutex_unlock(&v->accel_mu);
	accel_release(a);
	if (from)
		rvf_view_release(from);
}

accel_index *view_accel(rvf_view *v, const rvf_search_options *opt,
			bool *start_build)
{
	rvf_accel_mode mode = opt ? opt->accel : RVF_ACCEL_AUTO;
	accel_index *a = NULL;
	const char *why;

	*start_build = false;
	if (mode == RVF_ACCEL_OFF || v->nvisible == 0)
		return NULL;
	take_pending(v);
	pthread_mutex_lock(&v->accel_mu);
	if (is_ready(v->accel_state)) {
		a = accel_ref(v->accel);
	} else if (v->accel_from && mode != RVF_ACCEL_NOW) {
		/* an earlier view's build will serve this one: scan meanwhile */
	} else if (v->accel_state == ACCEL_NONE &&
		   (why = unsuitable(v, opt)) != NULL) {
		v->accel_state = ACCEL_FAILED;
		v->accel_why = why;
	} else if (v->accel_state == ACCEL_NONE && mode == RVF_ACCEL_NOW) {
		v->accel_state = ACCEL_BUILDING;
		pthread_mutex_unlock(&v->accel_mu);
		build(v);
		pthread_mutex_lock(&v->accel_mu);
		if (v->accel)
			a = accel_ref(v->accel);
	} else if (v->accel_state == ACCEL_NONE &&
		   v->nvisible * (size_t)v->info.dimension >= ACCEL_MIN_FLOATS) {
		/* the caller starts it once its own search is done */
		v->accel_state = ACCEL_BUILDING;
		*start_build = true;
	}
	pthread_mutex_unlock(&v->accel_mu);
	return a;
}

void view_accel_start(rvf_view *v)
{
	pthread_attr_t attr;
	pthread_t t;
	bool ok = false;

	rvf_view_ref(v);
	if (pthread_attr_init(&attr) == 0) {
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		ok = pthread_create(&t, &attr, build_thread, v) == 0;
		pthread_attr_destroy(&attr);
	}
	if (!ok) {
		pthread_mutex_lock(&v->accel_mu);
		v->accel_state = v->accel ? ACCEL_READY : ACCEL_FAILED;
		v->accel_why = "could not start a thread";
		pthread_mutex_unlock(&v->accel_mu);
		rvf_view_release(v);
	}
}

void view_accel_inherit(rvf_view *v, rvf_view *old)
{
	accel_index *prev = NULL, *a;
	rvf_view *pending = NULL;
	const char *why;
	bool rebuild;

	if (!old || v->nvisible == 0 || v->info.dimension != old->info.dimension ||
	    dist_metric(v->info.metric) != dist_metric(old->info.metric))
		return;
	pthread_mutex_lock(&old->accel_mu);
	if (is_ready(old->accel_state))
		prev = accel_ref(old->accel);
	else if (old->accel_state == ACCEL_BUILDING)
		pending = rvf_view_ref(old);
	else if (old->accel_from)
		pending = rvf_view_ref(old->accel_from);
	pthread_mutex_unlock(&old->accel_mu);
	if (pending) {
		pthread_mutex_lock(&v->accel_mu);
		v->accel_from = pending;
		pthread_mutex_unlock(&v->accel_mu);
		return;
	}
	if (!prev)
		return;
	const search_row *rows = view_rows(v);
	a = rows ? accel_derive(prev, rows, v->nvisible, &why) : NULL;
	accel_release(prev);
	if (!a)
		return; /* the first search builds them afresh */
	rebuild = accel_stale(a);
	pthread_mutex_lock(&v->accel_mu);
	if (v->accel_state != ACCEL_NONE) { /* not expected: nobody saw v */
		pthread_mutex_unlock(&v->accel_mu);
		accel_release(a);
		return;
	}
	v->accel = a;
	v->accel_state = rebuild ? ACCEL_READY_REBUILDING : ACCEL_READY;
	pthread_mutex_unlock(&v->accel_mu);
	if (rebuild)
		view_accel_start(v);
}

void view_accel_free(rvf_view *v)
{
	if (v->accel_from)
		rvf_view_release(v->accel_from);
	accel_release(v->accel);
	pthread_mutex_destroy(&v->accel_mu);
}

const char *rvf_view_accel_state(rvf_view *v, uint64_t *bytes)
{
	static __thread char buf[128];
	const char *s;

	take_pending(v);
	pthread_mutex_lock(&v->accel_mu);
	if (bytes)
		*bytes = v->accel ? accel_bytes(v->accel) : 0;
	switch (v->accel_state) {
	case ACCEL_READY:
		s = "ready";
		break;
	case ACCEL_READY_REBUILDING:
		s = "ready (rebuilding)";
		break;
	case ACCEL_BUILDING:
		s = "building";
		break;
	case ACCEL_FAILED:
		snprintf(buf, sizeof(buf), "unavailable: %s", v->accel_why);
		s = buf;
		break;
	default:
		s = v->accel_from ? "building" : "none";
	}
	pthread_mutex_unlock(&v->accel_mu);
	return s;
}
