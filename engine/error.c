/* error.c - error codes, their names, errno mapping and messages. */
#include "error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *rvf_code_name(rvf_code code)
{
	switch (code) {
	case RVF_OK: return "Ok";
	case RVF_E_IO: return "IoError";
	case RVF_E_MANIFEST_NOT_FOUND: return "ManifestNotFound";
	case RVF_E_INVALID_MANIFEST: return "InvalidManifest";
	case RVF_E_INVALID_CHECKSUM: return "InvalidChecksum";
	case RVF_E_CORRUPT: return "CorruptSegment";
	case RVF_E_DIMENSION_MISMATCH: return "DimensionMismatch";
	case RVF_E_LOCK_HELD: return "LockHeld";
	case RVF_E_EXISTS: return "AlreadyExists";
	case RVF_E_READ_ONLY: return "ReadOnly";
	case RVF_E_PARENT_NOT_FOUND: return "ParentNotFound";
	case RVF_E_PARENT_HASH_MISMATCH: return "ParentHashMismatch";
	case RVF_E_COW_MAP_CORRUPT: return "CowMapCorrupt";
	case RVF_E_MEMBERSHIP_INVALID: return "MembershipInvalid";
	case RVF_E_INVALID_ARGUMENT: return "InvalidArgument";
	case RVF_E_NOT_FOUND: return "NotFound";
	case RVF_E_TOO_LARGE: return "TooLarge";
	case RVF_E_NO_MEMORY: return "OutOfMemory";
	case RVF_E_FILTER: return "BadFilter";
	case RVF_E_SIGNATURE: return "SignatureInvalid";
	}
	return "Unknown";
}

int rvf_code_errno(rvf_code code, int sys_errno)
{
	switch (code) {
	case RVF_OK: return 0;
	case RVF_E_IO: return sys_errno ? sys_errno : EIO;
	case RVF_E_LOCK_HELD: return EBUSY;
	case RVF_E_EXISTS: return EEXIST;
	case RVF_E_READ_ONLY: return EROFS;
	case RVF_E_PARENT_NOT_FOUND:
	case RVF_E_NOT_FOUND: return ENOENT;
	case RVF_E_INVALID_ARGUMENT:
	case RVF_E_DIMENSION_MISMATCH:
	case RVF_E_FILTER: return EINVAL;
	case RVF_E_TOO_LARGE: return EFBIG;
	case RVF_E_NO_MEMORY: return ENOMEM;
	case RVF_E_SIGNATURE: return EBADMSG;
	default: return EIO; /* damaged or refused file */
	}
}

static void vset(rvf_error *err, rvf_code code, int sys_errno, const char *fmt,
		 va_list ap)
{
	if (!err)
		return;
	err->code = code;
	err->sys_errno = sys_errno;
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
}

rvf_code rvf_fail(rvf_error *err, rvf_code code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vset(err, code, 0, fmt, ap);
	va_end(ap);
	return code;
}

rvf_code rvf_fail_io(rvf_error *err, int sys_errno, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vset(err, RVF_E_IO, sys_errno, fmt, ap);
	va_end(ap);
	if (err) {
		size_t n = strlen(err->message);
		snprintf(err->message + n, sizeof(err->message) - n, ": %s",
			 strerror(sys_errno));
	}
	return RVF_E_IO;
}

void rvf_error_clear(rvf_error *err)
{
	if (err) {
		err->code = RVF_OK;
		err->sys_errno = 0;
		err->message[0] = '\0';
	}
}
