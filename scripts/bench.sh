#!/usr/bin/env bash
# The benchmarks, side by side with their peers in one run each:
#
#   scripts/bench.sh containers [RUNS]   create+mount+ls, disk and RSS per
#                                        container, 100 mounts; vs podman
#   scripts/bench.sh registry [RUNS]     unionctl pull vs skopeo+umoci and podman
#   scripts/bench.sh images              unionctl image load vs umoci unpack
set -euo pipefail
cd "$(dirname "$0")"
what=${1:-}
[ $# -gt 0 ] && shift
case "$what" in
    containers) exec ./bench-containers.sh "$@" ;;
    registry) exec ./bench-registry.sh "$@" ;;
    images) exec ./bench-images.sh "$@" ;;
    *)
        sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
        exit 2
        ;;
esac
