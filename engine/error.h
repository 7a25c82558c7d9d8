/* error.h - filling rvf_error: one place that formats failures. */
#ifndef RVF_ERROR_H
#define RVF_ERROR_H

#include "rvf.h"

/* Sets err (if not NULL) to code + printf-style message; returns code. */
rvf_code rvf_fail(rvf_error *err, rvf_code code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Like rvf_fail with RVF_E_IO, appending ": strerror(sys_errno)". */
rvf_code rvf_fail_io(rvf_error *err, int sys_errno, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Clears err to RVF_OK. */
void rvf_error_clear(rvf_error *err);

#endif
