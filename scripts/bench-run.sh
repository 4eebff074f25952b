#!/usr/bin/env bash
# Starting processes in containers: unionctl vs podman, side by side in one
# run, on the same image (the host's static busybox, one layer, loaded into
# both stores):
#
# - `run --rm IMAGE true`: p50 and p99 over RUNS runs (the issue's goal: at
#   or below podman, and under 150 ms);
# - `exec CTR true` into a running container: p50 and p99 over RUNS runs.
#
# podman runs with runc and with crun (each where it works on this machine;
# a runtime that fails is reported, not timed), --network host (unionctl
# uses the host network too) and the storage driver overlay (the kernel's).
# Needs root. usage: scripts/bench.sh run [RUNS]   (default 50)
#   BENCH_TOOLS="unionctl podman-runc podman-crun" picks the columns.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-50}
TOOLS=${BENCH_TOOLS:-unionctl podman-runc podman-crun}
[ "$(id -u)" = 0 ] || { echo "scripts/bench-run.sh needs root" >&2; exit 1; }
need=""
[ -x /bin/busybox ] || need="$need busybox-static"
command -v podman >/dev/null || need="$need podman"
command -v runc >/dev/null || need="$need runc"
command -v crun >/dev/null || need="$need crun"
command -v fusermount3 >/dev/null || need="$need fuse3"
if [ -n "$need" ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
fi
case " $TOOLS " in *" unionctl "*) cargo build --release --quiet ;; esac
CTL=$PWD/target/release/unionctl
W=$(mktemp -d /tmp/unionctl-bench-run.XXXXXX)
U="$CTL --root $W/store"
P0="podman --root $W/podman/root --runroot $W/podman/run --storage-driver overlay --cgroup-manager cgroupfs --events-backend none"
# Limits this machine lets a container set (podman's defaults may be above
# the hard limits, which a root without CAP_SYS_RESOURCE cannot raise).
lim="--ulimit nofile=$(ulimit -Hn):$(ulimit -Hn) --ulimit nproc=4096:4096"
PRUN="--network host --pull never $lim"
cleanup() {
    $U rm -f bench-exec >/dev/null 2>&1 || true
    $U unmount --all >/dev/null 2>&1 || true
    for rt in runc crun; do $P0 --runtime $rt rm -af >/dev/null 2>&1 || true; done
    for m in $(awk '{print $5}' /proc/self/mountinfo | grep "^$W" | sort -r); do umount -l "$m" 2>/dev/null || true; done
    rm -rf "$W"
}
trap cleanup EXIT

echo "== image: the host's static busybox, one layer"
mkdir -p "$W/root/bin" "$W/root/proc" "$W/root/dev" "$W/root/sys" "$W/root/etc" "$W/root/tmp"
cp /bin/busybox "$W/root/bin/"
for t in sh true sleep cat; do ln -s busybox "$W/root/bin/$t"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$W/root/etc/passwd"
echo 'root:x:0:' > "$W/root/etc/group"
scripts/mkimage.sh "$W/oci" bench/run:1 "$W/root"
skopeo copy -q "oci:$W/oci:bench/run:1" "docker-archive:$W/image.tar:localhost/bench/run:1"
IMG=localhost/bench/run:1

now() { date +%s%N; }
# percentile P of the numbers on stdin (nanoseconds) -> milliseconds
pct() { sort -n | awk -v p="$1" '{a[NR]=$1} END {i=int((NR*p+99)/100); if (i<1) i=1; printf "%.1f", a[i]/1e6}'; }

# time_n FILE CMD...: RUNS timed runs of CMD (output discarded; a failure stops the bench)
time_n() {
    local f=$1 i t0
    shift
    : > "$f"
    "$@" >/dev/null 2>&1 || { echo "warm-up failed: $*" >&2; "$@" >&2 || true; return 1; }
    for i in $(seq 1 "$RUNS"); do
        t0=$(now)
        "$@" >/dev/null 2>&1 || { echo "run $i failed: $*" >&2; return 1; }
        echo $(($(now) - t0)) >> "$f"
    done
}

cols=()
declare -A RUN50 RUN99 EXEC50 EXEC99
for tool in $TOOLS; do
    case $tool in
        unionctl)
            $U image load -i "$W/image.tar" >/dev/null
            run=($U run --rm $IMG true)
            $U run -d --name bench-exec $IMG sleep 100000 >/dev/null
            exe=($U exec bench-exec true)
            ;;
        podman-*)
            rt=${tool#podman-}
            P="$P0 --runtime $rt"
            $P load -i "$W/image.tar" >/dev/null 2>&1 || true
            if ! out=$($P run --rm $PRUN $IMG true 2>&1); then
                echo "== $tool does not run containers here: $(echo "$out" | tail -1)"
                continue
            fi
            run=($P run --rm $PRUN $IMG true)
            $P run -d --name "bench-exec-$rt" $PRUN $IMG sleep 100000 >/dev/null
            exe=($P exec "bench-exec-$rt" true)
            ;;
        *) echo "unknown tool $tool" >&2; exit 2 ;;
    esac
    echo "== $tool: run --rm $IMG true, exec true; $RUNS runs each"
    time_n "$W/t-run-$tool" "${run[@]}"
    time_n "$W/t-exec-$tool" "${exe[@]}"
    RUN50[$tool]=$(pct 50 < "$W/t-run-$tool")
    RUN99[$tool]=$(pct 99 < "$W/t-run-$tool")
    EXEC50[$tool]=$(pct 50 < "$W/t-exec-$tool")
    EXEC99[$tool]=$(pct 99 < "$W/t-exec-$tool")
    cols+=("$tool")
done

left=$(grep -c "$W" /proc/self/mountinfo || true)
printf '\n| ms (%s runs) |' "$RUNS"
for c in "${cols[@]}"; do printf ' %s |' "$c"; done
printf '\n|---|'
for c in "${cols[@]}"; do printf -- '---|'; done
row() { # LABEL ARRAY
    local -n a=$2
    printf '\n| %s |' "$1"
    for c in "${cols[@]}"; do printf ' %s |' "${a[$c]}"; done
}
row "run --rm IMAGE true, p50" RUN50
row "run --rm IMAGE true, p99" RUN99
row "exec CTR true, p50" EXEC50
row "exec CTR true, p99" EXEC99
printf '\n\n'
if [ -n "${RUN50[unionctl]:-}" ]; then
    goal=$(awk -v u="${RUN50[unionctl]}" 'BEGIN {print (u < 150) ? "under 150 ms: yes" : "under 150 ms: NO"}')
    echo "unionctl run --rm p50 ${RUN50[unionctl]} ms, $goal"
fi
echo "(mounts left before cleanup: $left, the running exec targets' included)"
