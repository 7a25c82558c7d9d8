/* httpd_loader.c - dlopen of libmicrohttpd for `rvfctl serve` (why: see
 * httpd_loader.h). */
#include "httpd_loader.h"

#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static httpd_api api;
static bool loaded;

/* dlsym returns an object pointer; copying it into the function pointer
 * is the conversion POSIX guarantees. */
static bool sym(void *lib, const char *name, void *slot, const char **missing)
{
	void *p = dlsym(lib, name);
	memcpy(slot, &p, sizeof(p));
	if (!p && !*missing)
		*missing = name;
	return p != NULL;
}

const httpd_api *httpd_load(char *why, size_t len)
{
	if (loaded)
		return &api;
	void *lib = dlopen(HTTPD_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		const char *e = dlerror();
		snprintf(why, len, "serve needs libmicrohttpd12 (apt install libmicrohttpd12): %s",
			 e ? e : "cannot load " HTTPD_SONAME);
		return NULL;
	}
	const char *missing = NULL;
#define LOAD(f) sym(lib, "MHD_" #f, &api.f, &missing)
	/* every symbol is looked up (no short circuit): the message names
	 * the first one missing */
	bool ok = LOAD(start_daemon);
	ok = LOAD(stop_daemon) && ok;
	ok = LOAD(get_daemon_info) && ok;
	ok = LOAD(create_response_from_buffer) && ok;
	ok = LOAD(add_response_header) && ok;
	ok = LOAD(queue_response) && ok;
	ok = LOAD(destroy_response) && ok;
#undef LOAD
	if (!ok) {
		snprintf(why, len, "serve needs libmicrohttpd12: %s has no %s",
			 HTTPD_SONAME, missing);
		dlclose(lib);
		memset(&api, 0, sizeof(api));
		return NULL;
	}
	loaded = true;
	return &api;
}
