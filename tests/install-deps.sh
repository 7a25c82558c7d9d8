#!/usr/bin/env bash
# tests/install-deps.sh: installs what building and testing rvffs needs on a
# bare Debian 12 machine (apt-get, as root or through sudo).  Sourced by
# demo.sh; tests/run-all.sh does the same and also installs the reference.
#
#   bash tests/install-deps.sh [--build-only]
set -uo pipefail

BUILD_PACKAGES=(meson ninja-build pkg-config gcc libfuse3-dev fuse3 libsodium-dev
                libzstd-dev libinih-dev libjansson-dev zlib1g-dev libisal-dev nettle-dev libxxhash-dev libbrotli-dev
                libmicrohttpd-dev
                ccache) # meson compiles through it when installed: rebuilds from a cache

install_packages() { # package...
	local missing=() p
	for p in "$@"; do
		[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "installing: ${missing[*]}"
	local sudo=()
	[ "$(id -u)" = 0 ] || sudo=(sudo)
	export DEBIAN_FRONTEND=noninteractive
	"${sudo[@]}" apt-get update -qq &&
		"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	install_packages "${BUILD_PACKAGES[@]}"
fi
