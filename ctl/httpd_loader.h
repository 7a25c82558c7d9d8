/* libmicrohttpd for `rvfctl serve`, loaded when serve runs.
 *
 * Linking it would load it, GnuTLS and eight more libraries (and run
 * GnuTLS's constructor) at every rvfctl start, for the one command that
 * serves HTTP.  The function pointers take their types from microhttpd.h's
 * prototypes, so the compiler still checks every call. */
#ifndef RVFCTL_HTTPD_LOADER_H
#define RVFCTL_HTTPD_LOADER_H

#include <stddef.h>
#include <microhttpd.h>

/* The library's ABI name (Debian package libmicrohttpd12). */
#define HTTPD_SONAME "libmicrohttpd.so.12"

typedef struct httpd_api {
	__typeof__(MHD_start_daemon) *start_daemon;
	__typeof__(MHD_stop_daemon) *stop_daemon;
	__typeof__(MHD_get_daemon_info) *get_daemon_info;
	__typeof__(MHD_create_response_from_buffer) *create_response_from_buffer;
	__typeof__(MHD_add_response_header) *add_response_header;
	__typeof__(MHD_queue_response) *queue_response;
	__typeof__(MHD_destroy_response) *destroy_response;
} httpd_api;

/* The library's functions (loaded once, never unloaded), or NULL with
 * the reason in why. */
const httpd_api *httpd_load(char *why, size_t len);

#endif
