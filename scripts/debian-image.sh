#!/usr/bin/env bash
# scripts/debian-image.sh OUT : an OCI layout at OUT of a real Debian image,
# tag localhost/rt/debian:bookworm (one layer, Cmd bash), for the run tests
# and demos. The root file system comes from
#   mmdebstrap --variant=minbase --include=procps,mount,hostname bookworm
# with the mirror apt is configured with (or $DEBIAN_MIRROR), and is cached
# in $UNIONFS_CACHE (default /var/cache/unionfs-tests) between runs: only the
# first run needs the network. Needs root and mmdebstrap (apt-get install
# mmdebstrap). Several runs at once build it once (flock).
set -euo pipefail
out=$1
cache=${UNIONFS_CACHE:-/var/cache/unionfs-tests}
tarball=$cache/debian-bookworm-minbase.tar
mkdir -p "$cache"
exec 9>"$cache/debian.lock"
flock 9
if [ ! -s "$tarball" ]; then
    command -v mmdebstrap >/dev/null || { echo "debian-image.sh: mmdebstrap is not installed" >&2; exit 1; }
    mirror=${DEBIAN_MIRROR:-}
    if [ -z "$mirror" ]; then
        mirror=$( (cat /etc/apt/sources.list.d/*.sources 2>/dev/null || true) | awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}')
    fi
    if [ -z "$mirror" ]; then
        mirror=$( (cat /etc/apt/sources.list 2>/dev/null || true) | awk '$1 == "deb" && $0 !~ /security/ {print $2; exit}')
    fi
    mirror=${mirror:-http://deb.debian.org/debian}
    echo "debian-image.sh: mmdebstrap bookworm from $mirror into $tarball" >&2
    mmdebstrap --quiet --variant=minbase --include=procps,mount,hostname \
        --mode=root --format=tar bookworm "$tarball.tmp" "$mirror" >&2
    mv "$tarball.tmp" "$tarball"
fi
flock -u 9
MKIMAGE_CONFIG='{"Cmd":["bash"],"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}' \
    "$(dirname "$0")/mkimage.sh" "$out" localhost/rt/debian:bookworm "$tarball"
