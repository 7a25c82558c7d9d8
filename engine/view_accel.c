/* view_accel.c - when a view builds its search codes (accel.h), and where.
 *
 * A view is immutable, so its codes never go stale: they are built once,
 * the first time a search of a large enough view finishes, on a detached
 * thread holding a reference to the view.  Searches meanwhile scan the
 * float rows, and every later search uses the codes.  A commit makes a
 * new view, whose codes are built again the same way.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accel.h"
#include "distance.h"
#include "env.h"
#include "store.h"

enum { ACCEL_NONE, ACCEL_BUILDING, ACCEL_READY, ACCEL_FAILED };

/* Below this many floats an exact scan takes well under a millisecond. */
#define ACCEL_MIN_FLOATS ((size_t)1 << 19)

/* The kernel codes use: VNNI, or (for tests) the portable one when
 * RVF_ACCEL_PORTABLE=1. */
static const code_ops *accel_ops(void)
{
	const code_ops *ops = code_ops_vnni();

	if (!ops && env_flag("RVF_ACCEL_PORTABLE"))
		ops = code_ops_portable();
	return ops;
}

static void build(rvf_view *v)
{
	const char *why = NULL;
	accel_index *a = accel_build(v->visible, v->nvisible, v->info.dimension,
				     accel_ops(), &why);

	pthread_mutex_lock(&v->accel_mu);
	v->accel = a;
	v->accel_state = a ? ACCEL_READY : ACCEL_FAILED;
	v->accel_why = why;
	pthread_mutex_unlock(&v->accel_mu);
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

	if (!accel_ops())
		return "the CPU lacks AVX-512 VNNI";
	if (dist_metric(v->info.metric) != RVF_METRIC_L2)
		return "codes serve the L2 metric only";
	if (accel_estimate(v->nvisible, v->info.dimension) > cap)
		return "larger than the memory cap";
	return NULL;
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
	pthread_mutex_lock(&v->accel_mu);
	if (v->accel_state == ACCEL_READY) {
		a = v->accel;
	} else if (v->accel_state == ACCEL_NONE &&
		   (why = unsuitable(v, opt)) != NULL) {
		v->accel_state = ACCEL_FAILED;
		v->accel_why = why;
	} else if (v->accel_state == ACCEL_NONE && mode == RVF_ACCEL_NOW) {
		v->accel_state = ACCEL_BUILDING;
		pthread_mutex_unlock(&v->accel_mu);
		build(v);
		pthread_mutex_lock(&v->accel_mu);
		a = v->accel;
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
		v->accel_state = ACCEL_FAILED;
		v->accel_why = "could not start a thread";
		pthread_mutex_unlock(&v->accel_mu);
		rvf_view_release(v);
	}
}

void view_accel_free(rvf_view *v)
{
	accel_free(v->accel);
	pthread_mutex_destroy(&v->accel_mu);
}

const char *rvf_view_accel_state(rvf_view *v, uint64_t *bytes)
{
	static __thread char buf[128];
	const char *s;

	pthread_mutex_lock(&v->accel_mu);
	if (bytes)
		*bytes = v->accel ? accel_bytes(v->accel) : 0;
	switch (v->accel_state) {
	case ACCEL_READY:
		s = "ready";
		break;
	case ACCEL_BUILDING:
		s = "building";
		break;
	case ACCEL_FAILED:
		snprintf(buf, sizeof(buf), "unavailable: %s", v->accel_why);
		s = buf;
		break;
	default:
		s = "none";
	}
	pthread_mutex_unlock(&v->accel_mu);
	return s;
}
