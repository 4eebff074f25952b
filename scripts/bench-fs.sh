#!/usr/bin/env bash
# Benchmark unionfs against the kernel overlay (and fuse-overlayfs when
# installed) side by side in one run, on identical fresh layers: the median of
# N runs per workload and target, a fresh upper and mount per run, caches
# dropped for the cold cases. Prints a markdown table of times and ratios to
# the kernel overlay.
#
# Layers (made once per bench run under a fresh mktemp -d):
#   top lower    a copy of /usr/share (capped by --share-mb) plus big.bin
#                (--big-mb, default 1 GiB)
#   bottom lower include/ (a copy of /usr/include) and 200 files at the same
#                paths as files of the top lower (shadowed by them), so 200
#                directories are merged across both layers
#
# Workloads (cwd = the mount point):
#   walk-cold, walk-warm   find . -printf '%s %m %n' (an lstat of every entry)
#   read-big-cold/-warm    cat big.bin > /dev/null
#   read-small             tar cf - of the tree but big.bin, to a pipe (lower
#                          page cache warm, mount fresh)
#   randread-4k            fio, 2 jobs, psync 4 KiB random reads of big.bin,
#                          after one cat of it through the mount (if fio exists)
#   copyup-touch           touch 2000 lower files
#   copyup-big             append one byte to big.bin (copies it up)
#   create-untar           tar xf of /usr/include (~8.7k entries) into the mount
#   delete-tree            rm -rf include (a lower tree; --tree)
#   rename-dir             mv include include.moved (EXDEV, then mv copies)
#   rename-dir-redirect    the same on a mount with redirect_dir=on (kernel,
#                          unionfs builds; not fuse-overlayfs)
#   write-seq              dd of --write-mb MiB of zeros + fsync
#   daemon peak RSS        VmHWM of the FUSE daemon after walk-cold
#
# usage: scripts/bench.sh [options]
#   --runs N            runs per case (default 3; the median is reported)
#   --share-mb N        cap the /usr/share copy at N MiB of file data (0: all;
#                       default 0)
#   --big-mb N          size of big.bin (default 1024)
#   --write-mb N        size written by write-seq (default 1024)
#   --randread-mb N     MiB read by each fio job (default 256)
#   --touch N           files touched by copyup-touch (default 2000)
#   --tree DIR          the lower tree of delete-tree and rename-dir (default
#                       include: /usr/include, ~8.7k entries, 130 MiB)
#   --only W1,W2        run these workloads only
#   --targets T1,T2     kernel,unionfs,fuse-overlayfs and compare labels
#                       (default: all available)
#   --unionfs BIN       use this unionfs binary instead of building one
#   --compare BIN       add another unionfs binary as a target (repeatable)
#   --compare-label L   label of the matching --compare (default compare,
#                       compare2, ...)
#   --unionfs-opts O    extra mount options of the unionfs target
#   --compare-opts O    extra mount options of the matching --compare; e.g.
#                       `--compare target/release/unionfs --compare-label
#                       no-passthrough --compare-opts passthrough=off`
#   --no-install        do not apt-get install fio / fuse-overlayfs
#   --out FILE          also write the table to FILE
#   --raw FILE          also write every run's value (TSV) to FILE
#   --timeout SECS      limit per timed workload (default 600)
# Needs root (the kernel overlay, dropping caches). With CARGO_LOCK=FILE set
# the build runs under `flock FILE`; CARGO_BUILD_JOBS limits its parallelism.
# --compare takes any program with fuse-overlayfs's command line.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
HELPER=$ROOT/scripts/bench_helper.py

BENCH_NAME=bench.sh
. "$ROOT/scripts/bench-lib.sh"
SHARE_MB=0 BIG_MB=1024 WRITE_MB=1024 RR_MB=256 TOUCH_N=2000 TREE=include

while [ $# -gt 0 ]; do
    common_opt "$@"
    if [ "$USED" -gt 0 ]; then
        shift "$USED"
        continue
    fi
    case $1 in
    --share-mb) need_arg "$@"; num "$1" "$2"; SHARE_MB=$2; shift ;;
    --big-mb) need_arg "$@"; num "$1" "$2"; BIG_MB=$2; shift ;;
    --write-mb) need_arg "$@"; num "$1" "$2"; WRITE_MB=$2; shift ;;
    --randread-mb) need_arg "$@"; num "$1" "$2"; RR_MB=$2; shift ;;
    --touch) need_arg "$@"; num "$1" "$2"; TOUCH_N=$2; shift ;;
    --tree) need_arg "$@"; TREE=$2; shift ;;
    *) die "unknown argument: $1 (see --help)" ;;
    esac
    shift
done
need_root_and_overlay "kernel overlay mounts, drop_caches"
[ "$BIG_MB" -ge 1 ] || die "--big-mb must be at least 1"

# ---- tools ---------------------------------------------------------------
if [ "$INSTALL" = 1 ]; then
    missing=()
    command -v fio >/dev/null || missing+=(fio)
    command -v fuse-overlayfs >/dev/null || missing+=(fuse-overlayfs)
    install_missing "${missing[@]}"
fi
HAVE_FIO=0
command -v fio >/dev/null && HAVE_FIO=1

setup_targets

WORKLOADS=(walk-cold walk-warm read-big-cold read-big-warm read-small randread-4k
    copyup-touch copyup-big create-untar delete-tree rename-dir rename-dir-redirect write-seq)
if [ -n "$ONLY" ]; then
    sel=()
    for w in "${WORKLOADS[@]}"; do [[ ",$ONLY," == *",$w,"* ]] && sel+=("$w"); done
    [ ${#sel[@]} -gt 0 ] || die "--only: no known workload in $ONLY"
    WORKLOADS=("${sel[@]}")
fi

# ---- work dir, cleanup -----------------------------------------------------
bench_workdir unionfs-bench

drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }

# ---- layers ----------------------------------------------------------------
L1=$W/lower-top L2=$W/lower-bottom
mkdir -p "$L1" "$L2"
echo "== layers: /usr/share (cap: ${SHARE_MB} MiB, 0 = all), big.bin ${BIG_MB} MiB, /usr/include" >&2
python3 "$HELPER" select /usr/share "$SHARE_MB" > "$W/share.list"
tar -C /usr/share --null --no-recursion -T "$W/share.list" -cf - 2>/dev/null | tar -C "$L1" -xf -
dd if=/dev/zero of="$L1/big.bin" bs=1M count="$BIG_MB" status=none
cp -a /usr/include "$L2/include"
python3 "$HELPER" pick "$L1" 200 big.bin > "$W/override.list"
while IFS= read -r f; do
    mkdir -p "$L2/$(dirname "$f")"
    echo "bottom layer copy of $f" > "$L2/$f"
done < "$W/override.list"
python3 "$HELPER" pick "$L1" "$TOUCH_N" big.bin > "$W/touch.list"
tar -C /usr -cf "$W/untar.tar" include
[ -d "$L1/$TREE" ] || [ -d "$L2/$TREE" ] || die "--tree $TREE: no such directory in the lowers"
case $TREE in /* | *..*) die "--tree $TREE: must be relative, without .." ;; esac
ENTRIES=$(find "$L1" "$L2" | wc -l)
echo "== $ENTRIES entries in the lowers; targets: ${TARGETS[*]}; $RUNS runs" >&2

# everything the warm cases read, in the page cache
warm_lowers() { tar -C "$W" -cf - lower-top lower-bottom untar.tar 2> /dev/null | cat > /dev/null || true; }

# ---- workloads (run with the mount point as cwd, in a child bash) ----------
wl_walk() { find . -printf '%s %m %n\n' > /dev/null; }
wl_read_big() { cat big.bin > /dev/null; }
wl_read_small() { tar --exclude=./big.bin -cf - . | cat > /dev/null; }
wl_randread() {
    fio --name=randread --filename=big.bin --readonly --rw=randread --bs=4k \
        --numjobs=2 --ioengine=psync --invalidate=0 --io_size="${RR_MB}m" \
        --randrepeat=1 --group_reporting --output=/dev/null
}
wl_copyup_touch() { xargs -d '\n' -a "$W/touch.list" touch --; }
wl_copyup_big() { printf x >> big.bin; }
wl_untar() { mkdir untar && tar -xf "$W/untar.tar" -C untar; }
wl_delete() { rm -rf -- "$TREE"; }
wl_rename() { mv -- "$TREE" "$TREE.moved"; }
wl_write_seq() { dd if=/dev/zero of=seq.bin bs=1M count="$WRITE_MB" conv=fsync status=none; }
export W RR_MB WRITE_MB TREE
export -f wl_walk wl_read_big wl_read_small wl_randread wl_copyup_touch wl_copyup_big \
    wl_untar wl_delete wl_rename wl_write_seq

RESULTS=$W/results.tsv
: > "$RESULTS"
CACHES_COLD=1

timed() { # mnt function -> sets SECS, or returns 1 (first stderr line in ERR)
    local t0 t1 rc=0
    t0=$EPOCHREALTIME
    timeout -k 5 "$CASE_TIMEOUT" bash -c 'cd "$1" && "$2"' _ "$1" "$2" 2> "$W/err" || rc=$?
    t1=$EPOCHREALTIME
    SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')
    ERR=$(grep -v '^$' "$W/err" | tail -n 1 | cut -c1-80 | tr '\t' ' ')
    [ "$rc" = 124 ] && ERR="timeout after ${CASE_TIMEOUT}s"
    [ "$rc" = 0 ]
}

run_case() { # workload target run
    local w=$1 t=$2 r=$3 extra="" fn pre="" d=$W/run/$1.$2.$3
    case $w in
    walk-cold) fn=wl_walk pre=cold ;;
    walk-warm) fn=wl_walk pre=walk ;;
    read-big-cold) fn=wl_read_big pre=cold ;;
    read-big-warm) fn=wl_read_big pre=bigread ;;
    read-small) fn=wl_read_small ;;
    randread-4k)
        [ "$HAVE_FIO" = 1 ] || return 0
        fn=wl_randread pre=bigread ;;
    copyup-touch) fn=wl_copyup_touch ;;
    copyup-big) fn=wl_copyup_big ;;
    create-untar) fn=wl_untar ;;
    delete-tree) fn=wl_delete ;;
    rename-dir) fn=wl_rename ;;
    rename-dir-redirect)
        [ "${KIND[$t]}" = fuse-overlayfs ] && return 0 # no redirect_dir
        fn=wl_rename extra=redirect_dir=on ;;
    write-seq) fn=wl_write_seq ;;
    esac
    if [ "$pre" != cold ] && [ "$CACHES_COLD" = 1 ]; then
        warm_lowers
        CACHES_COLD=0
    fi
    if ! do_mount "$t" "$d" "$extra" 2> "$W/err"; then
        printf '%s\t%s\t%s\tFAIL\tmount: %s\n' "$w" "$t" "$r" "$(tail -n 1 "$W/err" | cut -c1-70)" >> "$RESULTS"
        do_umount "$d"
        return 0
    fi
    case $pre in
    cold) drop_caches; CACHES_COLD=1 ;;
    walk) (cd "$d/mnt" && wl_walk) 2> /dev/null || true ;; # failures show in the timed run
    bigread) (cd "$d/mnt" && wl_read_big) 2> /dev/null || true ;;
    esac
    if timed "$d/mnt" "$fn"; then
        printf '%s\t%s\t%s\t%s\n' "$w" "$t" "$r" "$SECS" >> "$RESULTS"
        printf '   %-20s %-16s run %s: %8.3f s\n' "$w" "$t" "$r" "$SECS" >&2
    else
        printf '%s\t%s\t%s\tFAIL\t%s\n' "$w" "$t" "$r" "${ERR:-exit status}" >> "$RESULTS"
        printf '   %-20s %-16s run %s: FAIL %s\n' "$w" "$t" "$r" "$ERR" >&2
    fi
    if [ "$w" = walk-cold ] && [ -n "$DPID" ]; then
        local hwm
        hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$DPID/status" 2> /dev/null || true)
        [ -n "$hwm" ] && printf 'rss\t%s\t%s\t%s\n' "$t" "$r" "$hwm" >> "$RESULTS"
    fi
    do_umount "$d"
}

run_all
report "unionfs bench: median of $RUNS runs; $ENTRIES entries in the lowers (/usr/share$([ "$SHARE_MB" = 0 ] || echo " capped at $SHARE_MB MiB")), big.bin $BIG_MB MiB, write-seq $WRITE_MB MiB; $(nproc) cores, $(uname -r); ${ELAPSED}s" \
    python3 "$HELPER"
