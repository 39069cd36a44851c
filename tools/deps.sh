#!/bin/sh
# deps.sh: checks (default) or installs (--install) the Debian packages convgen needs.
# Checking prints the exact apt-get command for whatever is missing and fails.
set -eu
PACKAGES="make gcc clang pkg-config lua5.4 liblua5.4-dev lua-dkjson lua-check tcc libtcc-dev libcmocka-dev"
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
if [ "${1:-}" = "--install" ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
    exit 0
fi
echo "convgen: missing Debian packages:$missing" >&2
echo "convgen: install them with: make deps   (runs: apt-get install$missing)" >&2
exit 1
