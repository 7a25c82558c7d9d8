#!/bin/sh
# Run by `meson install` (meson.build): refresh the dynamic linker's cache,
# so programs linked against the freshly installed librvf.so find it at
# once.  Nothing to do for a staged install (DESTDIR: packaging) or when
# not root (an install into a home directory; ldconfig could not write).
[ -z "${DESTDIR:-}" ] || exit 0
[ "$(id -u)" = 0 ] || exit 0
PATH=$PATH:/usr/sbin:/sbin
ldconfig || echo "ldconfig failed: run it yourself so librvf.so is found" >&2
exit 0
