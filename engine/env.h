/* env.h - switches read from the environment (tests and benchmarks use
 * them to pick an implementation). */
#ifndef RVF_ENV_H
#define RVF_ENV_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* True when NAME is set to anything but "" or "0". */
static inline bool env_flag(const char *name)
{
	const char *v = getenv(name);

	return v && *v && strcmp(v, "0") != 0;
}

#endif
