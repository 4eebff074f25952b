#!/usr/bin/env bash
# Benchmark `unionctl image load` against `umoci unpack` of the same image,
# side by side in one run (median of N runs each, caches dropped before each).
#
# The image is made from trees on this machine (no network): three layers,
# /usr/share/doc, /usr/sbin+/etc and /usr/share/perl (about 150 MB, the size
# of a Debian base image; gzip-compressed by umoci), unless an OCI layout is
# given.
#
# usage: scripts/bench-images.sh [RUNS] [OCI_LAYOUT:TAG]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench-image.sh
. scripts/bench-image.sh
RUNS=${1:-3}
command -v umoci >/dev/null || { apt-get update -qq && apt-get install -y -qq umoci >/dev/null; }
cargo build --release --quiet
CTL=$PWD/target/release/unionctl
W=$(mktemp -d /tmp/unionctl-bench.XXXXXX)
trap 'rm -rf "$W"' EXIT

if [ -n "${2:-}" ]; then
    IMAGE=$2
else
    bench_image "$W"
fi
LAYOUT=${IMAGE%%:*}
echo "   image: $(du -sh "$LAYOUT" | cut -f1) compressed"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
run_timed() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N); echo "$t1 - $t0" | bc; }

ours=() theirs=()
for r in $(seq 1 "$RUNS"); do
    rm -rf "$W/store" "$W/bundle"
    sync; echo 3 > /proc/sys/vm/drop_caches
    ours+=("$(run_timed "$CTL" --root "$W/store" image load -i "$LAYOUT")")
    sync; echo 3 > /proc/sys/vm/drop_caches
    theirs+=("$(run_timed umoci unpack --image "$IMAGE" "$W/bundle")")
done
size=$(du -sh "$W/bundle/rootfs" | cut -f1)
m_ours=$(printf '%s\n' "${ours[@]}" | median)
m_theirs=$(printf '%s\n' "${theirs[@]}" | median)
echo
echo "| tool | median of $RUNS (s) | ratio to umoci |"
echo "|---|---|---|"
printf '| unionctl image load | %.2f | %.2f |\n' "$m_ours" "$(echo "$m_ours / $m_theirs" | bc -l)"
printf '| umoci unpack | %.2f | 1.00 |\n' "$m_theirs"
echo
echo "unpacked size: $size; runs: unionctl ${ours[*]} / umoci ${theirs[*]}"
