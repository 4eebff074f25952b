#!/usr/bin/env bash
# Containers on unionfs vs podman (kernel overlay), side by side in one run:
#
# - create + mount + first `ls` of the merged root, p50 and p99 over RUNS
#   runs, for a 1-layer and a 10-layer image (the same images for both);
# - disk used by a new container;
# - RSS of the unionfs daemon of an idle mounted container;
# - 100 containers of one image mounted at once (failures, wall time).
#
# The images are made from this machine (busybox-static and /usr/share/doc,
# no network). Needs root. usage: scripts/bench.sh containers [RUNS]   (default 50)
# (Image loading is measured by scripts/bench-images.sh.)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-50}
[ "$(id -u)" = 0 ] || { echo "scripts/bench-containers.sh needs root" >&2; exit 1; }
need=""
[ -x /bin/busybox ] || need="$need busybox-static"
command -v podman >/dev/null || need="$need podman"
command -v fusermount3 >/dev/null || need="$need fuse3"
if [ -n "$need" ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
fi
cargo build --release --quiet
CTL=$PWD/target/release/unionctl
W=$(mktemp -d /tmp/unionctl-bench.XXXXXX)
U="$CTL --root $W/store"
P="podman --root $W/podman/root --runroot $W/podman/run --storage-driver overlay --cgroup-manager cgroupfs --events-backend none"
cleanup() {
    $U unmount --all >/dev/null 2>&1 || true
    $P umount -a >/dev/null 2>&1 || true
    $P rm -af >/dev/null 2>&1 || true
    for m in $(awk '{print $5}' /proc/self/mountinfo | grep "^$W" | sort -r); do umount -l "$m" 2>/dev/null || true; done
    rm -rf "$W"
}
trap cleanup EXIT

echo "== images: busybox-static + /usr/share/doc in 1 layer; the same plus 9 small layers"
mkdir -p "$W/base/bin" "$W/base/usr/share" "$W/base/etc"
cp /bin/busybox "$W/base/bin/"
for t in sh ls cat; do ln "$W/base/bin/busybox" "$W/base/bin/$t"; done
cp -a /usr/share/doc "$W/base/usr/share/" 2>/dev/null || true
layers10=("$W/base")
for i in $(seq 1 9); do
    mkdir -p "$W/l$i/etc/layer$i"
    cp -a /etc/default "$W/l$i/etc/layer$i/" 2>/dev/null || echo "layer $i" > "$W/l$i/etc/layer$i/f"
    layers10+=("$W/l$i")
done
scripts/mkimage.sh "$W/img1" bench/one:1 "$W/base"
scripts/mkimage.sh "$W/img10" bench/ten:1 "${layers10[@]}"
$U image load -i "$W/img1" >/dev/null
$U image load -i "$W/img10" >/dev/null
$U image save -o "$W/one.tar" bench/one:1
$U image save -o "$W/ten.tar" bench/ten:1
$P load -i "$W/one.tar" >/dev/null 2>&1
$P load -i "$W/ten.tar" >/dev/null 2>&1
$U images | sed 's/^/   /'

now() { date +%s%N; }
# percentile P of the numbers on stdin (nanoseconds) -> milliseconds
pct() { sort -n | awk -v p="$1" '{a[NR]=$1} END {i=int((NR*p+99)/100); if (i<1) i=1; printf "%.1f", a[i]/1e6}'; }

# time_flow TOOL IMAGE PREFIX: RUNS x (create + mount + ls), times in $W/t-PREFIX
time_flow() {
    local tool=$1 image=$2 prefix=$3 i t0 m
    : > "$W/t-$prefix"
    for i in $(seq 1 "$RUNS"); do
        t0=$(now)
        if [ "$tool" = unionctl ]; then
            $U create --name "$prefix$i" "$image" >/dev/null
            m=$($U mount "$prefix$i")
        else
            $P create --name "$prefix$i" "$image" /bin/sh >/dev/null 2>&1
            m=$($P mount "$prefix$i" 2>/dev/null)
        fi
        ls "$m" >/dev/null
        echo $(($(now) - t0)) >> "$W/t-$prefix"
    done
}

# clean_flow TOOL PREFIX
clean_flow() {
    local i
    for i in $(seq 1 "$RUNS"); do
        if [ "$1" = unionctl ]; then $U rm -f "$2$i" >/dev/null; else $P rm -f "$2$i" >/dev/null 2>&1; fi
    done
}

echo "== create + mount + ls, $RUNS runs each"
time_flow unionctl bench/one:1 u1_
time_flow unionctl bench/ten:1 u10_
time_flow podman bench/one:1 p1_
time_flow podman bench/ten:1 p10_

echo "== disk and memory per container"
# unionctl: the container's directory (record, empty upper and work dir) after
# create+mount+ls; podman: its layer directory and its userdata.
ucid=$($U inspect u1_1 | sed -n 's/^ *"Id": "\(.*\)",/\1/p' | head -1)
udisk=$(du -sx --block-size=1 "$W/store/containers/$ucid" | cut -f1)
pupper=$($P inspect --format '{{.GraphDriver.Data.UpperDir}}' p1_1)
pcid=$($P inspect --format '{{.Id}}' p1_1)
pdisk=$(( $(du -sx --block-size=1 "$(dirname "$pupper")" | cut -f1) + $(du -sx --block-size=1 "$W/podman/root/overlay-containers/$pcid" | cut -f1) ))
rss_total=0
n=0
for pid in $($U ps -a --format json | grep -o '"Id": "[0-9a-f]*"' | cut -d'"' -f4 | while read -r id; do
    $U inspect "$id" | sed -n 's/^ *"DaemonPid": \([0-9]*\).*/\1/p'
done); do
    [ "$pid" -gt 0 ] || continue
    r=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    rss_total=$((rss_total + r))
    n=$((n + 1))
done
rss_avg=$((rss_total / (n > 0 ? n : 1)))

clean_flow unionctl u1_
clean_flow unionctl u10_
clean_flow podman p1_
clean_flow podman p10_

echo "== 100 containers of one image mounted at once"
for i in $(seq 1 100); do
    $U create --name c$i bench/ten:1 >/dev/null
    $P create --name c$i bench/ten:1 /bin/sh >/dev/null 2>&1
done
t0=$(now)
ufail=$(seq 1 100 | xargs -P 100 -I{} sh -c "$U mount c{} >/dev/null 2>&1 || echo fail" | grep -c fail || true)
uwall=$(( ($(now) - t0) / 1000000 ))
umounted=$(grep " fuse.unionfs " /proc/self/mountinfo | grep -c "$W" || true)
t0=$(now)
pfail=$(seq 1 100 | xargs -P 100 -I{} sh -c "$P mount c{} >/dev/null 2>&1 || echo fail" | grep -c fail || true)
pwall=$(( ($(now) - t0) / 1000000 ))
rss100=0
for pid in $(pgrep -x unionfs); do
    if grep -q "$W" "/proc/$pid/cmdline" 2>/dev/null; then
        rss100=$((rss100 + $(awk '/VmRSS/ {print $2}' "/proc/$pid/status")))
    fi
done
seq 1 100 | xargs -P 100 -I{} sh -c "$U unmount c{} >/dev/null 2>&1" || true
left=$(grep -c "$W/store" /proc/self/mountinfo || true)

printf '\n| measure | unionctl 1 layer | unionctl 10 layers | podman 1 layer | podman 10 layers |\n'
printf '|---|---|---|---|---|\n'
printf '| create+mount+ls p50 (ms) | %s | %s | %s | %s |\n' "$(pct 50 < "$W/t-u1_")" "$(pct 50 < "$W/t-u10_")" "$(pct 50 < "$W/t-p1_")" "$(pct 50 < "$W/t-p10_")"
printf '| create+mount+ls p99 (ms) | %s | %s | %s | %s |\n' "$(pct 99 < "$W/t-u1_")" "$(pct 99 < "$W/t-u10_")" "$(pct 99 < "$W/t-p1_")" "$(pct 99 < "$W/t-p10_")"
printf '| disk per new container (KiB) | %s | | %s | |\n' "$((udisk / 1024))" "$((pdisk / 1024))"
printf '| daemon RSS per idle mounted container (KiB, mean of %s) | %s | | none (kernel overlay) | |\n' "$n" "$rss_avg"
printf '| 100 concurrent mounts: failures, wall time | %s, %s ms (%s mounted, %s MiB RSS in all) | | %s, %s ms | |\n' \
    "$ufail" "$uwall" "$umounted" "$((rss100 / 1024))" "$pfail" "$pwall"
echo
echo "(mounts left after unmounting all: $left)"
