#!/bin/sh
# deps.sh: checks (default) or installs (--install) the Debian packages convgen
# needs; --bench: those of `make bench` instead (oneDNN and XNNPACK, the peers it measures).
# Checking prints the exact command for whatever is missing and fails.
set -eu
PACKAGES="make gcc clang libclang-rt-14-dev valgrind pkg-config cmake lua5.4 liblua5.4-dev lua-dkjson lua-check tcc libtcc-dev libcmocka-dev libzip-dev libhdf5-dev"
install=0
target="deps"
for arg in "$@"; do
    case "$arg" in
        --install) install=1 ;;
        --bench) PACKAGES="libdnnl-dev libxnnpack-dev libpthreadpool-dev"; target="deps-bench" ;;
        *) echo "usage: tools/deps.sh [--install] [--bench]" >&2; exit 2 ;;
    esac
done
missing=""
for p in $PACKAGES; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$status" in
        *" installed") ;;
        *) missing="$missing $p" ;;
    esac
done
if [ -z "$missing" ]; then
    exit 0
fi
if [ "$install" -eq 1 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
    exit 0
fi
echo "convgen: missing Debian packages:$missing" >&2
echo "convgen: install them with: make $target   (runs: apt-get install$missing)" >&2
exit 1
