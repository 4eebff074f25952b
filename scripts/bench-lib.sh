# shellcheck shell=bash disable=SC2034
# Shared by scripts/bench-fs.sh and scripts/bench-programs.sh (sourced, with
# BENCH_NAME set to the script's name for messages): the options every bench
# takes, the root and overlay checks, installing missing packages, building
# unionfs and the targets (the kernel overlay, unionfs, --compare builds,
# fuse-overlayfs).

die() { echo "$BENCH_NAME: $*" >&2; exit 2; }
need_arg() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value"; }
num() { [[ $2 =~ ^[0-9]+$ ]] || die "$1: not a number: $2"; }

RUNS=3 ONLY="" WANT_TARGETS="" UNIONFS_BIN="" INSTALL=1 OUT="" RAW="" CASE_TIMEOUT=600
COMPARE_BINS=() COMPARE_LABELS=() COMPARE_OPTS=() UNIONFS_OPTS=""

# common_opt ARG [VALUE...]: take one option every bench has; sets USED to
# the number of arguments it took (0: not a common option).
common_opt() {
    USED=2
    case $1 in
    --runs) need_arg "$@"; num "$1" "$2"; RUNS=$2 ;;
    --only) need_arg "$@"; ONLY=$2 ;;
    --targets) need_arg "$@"; WANT_TARGETS=$2 ;;
    --unionfs) need_arg "$@"; UNIONFS_BIN=$(realpath -e "$2") || die "no such file: $2" ;;
    --compare) need_arg "$@"; COMPARE_BINS+=("$(realpath -e "$2")") || die "no such file: $2" ;;
    --compare-label) need_arg "$@"; COMPARE_LABELS+=("$2") ;;
    --unionfs-opts) need_arg "$@"; UNIONFS_OPTS=$2 ;;
    --compare-opts) need_arg "$@"; COMPARE_OPTS+=("$2") ;;
    --out) need_arg "$@"; OUT=$2 ;;
    --raw) need_arg "$@"; RAW=$2 ;;
    --timeout) need_arg "$@"; num "$1" "$2"; CASE_TIMEOUT=$2 ;;
    --no-install) INSTALL=0 USED=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) USED=0 ;;
    esac
}

# need_root_and_overlay WHY: root (for WHY) and a kernel with overlayfs.
need_root_and_overlay() {
    [ "$RUNS" -ge 1 ] || die "--runs must be at least 1"
    [ "$(id -u)" = 0 ] || die "needs root ($1)"
    grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || true
    grep -qw overlay /proc/filesystems || die "the kernel has no overlay filesystem"
}

# install_missing PKG...: apt-get install them (apt-get update only when the
# first try fails); a failure is said and the bench goes on without them.
install_missing() {
    [ $# -gt 0 ] && command -v apt-get >/dev/null || return 0
    echo "== installing $*" >&2
    { apt-get install -y -qq "$@" >/dev/null 2>&1 ||
        { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq "$@" >/dev/null 2>&1; }; } ||
        echo "$BENCH_NAME: could not install $*; going on without" >&2
}

# setup_targets: build unionfs unless --unionfs named one, then TARGETS and,
# per label, KIND (kernel, unionfs, fuse-overlayfs), BIN and TOPTS (extra
# mount options); --targets keeps the kernel (the ratios are to it).
setup_targets() {
    if [ -z "$UNIONFS_BIN" ]; then
        echo "== cargo build --release --bin unionfs" >&2
        ${CARGO_LOCK:+flock "$CARGO_LOCK"} cargo build --release --quiet --bin unionfs
        UNIONFS_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/unionfs
        [ -x "$UNIONFS_BIN" ] || die "build made no $UNIONFS_BIN"
    fi
    declare -gA KIND BIN TOPTS
    TARGETS=(kernel unionfs)
    KIND[kernel]=kernel
    KIND[unionfs]=unionfs BIN[unionfs]=$UNIONFS_BIN TOPTS[unionfs]=$UNIONFS_OPTS
    local i label t sel
    for i in "${!COMPARE_BINS[@]}"; do
        label=${COMPARE_LABELS[$i]:-compare$([ "$i" = 0 ] || echo $((i + 1)))}
        [ -z "${KIND[$label]:-}" ] || die "duplicate target label: $label"
        TARGETS+=("$label")
        KIND[$label]=unionfs BIN[$label]=${COMPARE_BINS[$i]} TOPTS[$label]=${COMPARE_OPTS[$i]:-}
    done
    if command -v fuse-overlayfs >/dev/null; then
        TARGETS+=(fuse-overlayfs)
        KIND[fuse-overlayfs]=fuse-overlayfs BIN[fuse-overlayfs]=$(command -v fuse-overlayfs)
    fi
    if [ -n "$WANT_TARGETS" ]; then
        sel=(kernel)
        for t in "${TARGETS[@]}"; do
            [ "$t" = kernel ] && continue
            [[ ",$WANT_TARGETS," == *",$t,"* ]] && sel+=("$t")
        done
        TARGETS=("${sel[@]}")
    fi
}

# bench_workdir PREFIX: the run's work dir W (/var/tmp/PREFIX.XXXXXX), and at
# exit (also on INT/TERM/HUP) the running workload WPID stopped, every mount
# under W undone and W removed (kept, and said, if something stays mounted).
bench_workdir() {
    W=$(mktemp -d "/var/tmp/$1.XXXXXX")
    DPID="" # the FUSE daemon of the current mount
    WPID="" # the running workload, if any: timeout(1), leader of its process group
    trap cleanup EXIT
    trap 'exit 130' INT TERM HUP
}

mounts_under() { awk -v w="$W/" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r; }

cleanup() {
    set +e
    local m left
    if [ -n "$WPID" ]; then
        kill -TERM -- "-$WPID" 2>/dev/null || kill -TERM "$WPID" 2>/dev/null
        wait "$WPID" 2>/dev/null
    fi
    for m in $(mounts_under); do umount "$m" 2>/dev/null || umount -l "$m"; done
    [ -n "$DPID" ] && wait_gone "$DPID"
    left=$(mounts_under)
    if [ -z "$left" ]; then
        rm -rf --one-file-system "$W"
    else
        echo "$BENCH_NAME: still mounted, $W kept: $left" >&2
    fi
}

wait_gone() { # pid: wait up to 20 s for a daemon to exit after its unmount
    local i
    for i in $(seq 200); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
    echo "$BENCH_NAME: daemon $1 still running 20 s after unmount" >&2
}

# do_mount TARGET RUNDIR [EXTRA-OPTS]: the target's mount of the lowers L1
# over L2 at RUNDIR/mnt, with a fresh upper and work dir; DPID its daemon.
do_mount() {
    local t=$1 d=$2 extra=${3:-} mnt=$2/mnt
    [ -z "${TOPTS[$t]:-}" ] || extra=${extra:+$extra,}${TOPTS[$t]}
    local opts="lowerdir=$L1:$L2,upperdir=$d/upper,workdir=$d/work${extra:+,$extra}"
    mkdir -p "$d/upper" "$d/work" "$mnt"
    DPID=""
    case ${KIND[$t]} in
    kernel) mount -t overlay overlay -o "$opts" "$mnt" ;;
    *)
        "${BIN[$t]}" -o "$opts" "$mnt" || return 1
        mountpoint -q "$mnt" || { echo "not mounted after exit 0" >&2; return 1; }
        DPID=$(pgrep -n -f -- " $mnt\$") || { echo "no daemon found for $mnt" >&2; return 1; }
        ;;
    esac
}

do_umount() { # rundir: unmount, wait for the daemon, remove the run dir
    local mnt=$1/mnt
    if mountpoint -q "$mnt"; then umount "$mnt" || umount -l "$mnt"; fi
    [ -n "$DPID" ] && wait_gone "$DPID"
    DPID=""
    rm -rf --one-file-system "$1"
}

# run_all: every run of every workload on every target (run_case WORKLOAD
# TARGET RUN, the script's own, appends to RESULTS); --raw gets a copy;
# ELAPSED is the seconds it took.
run_all() {
    local start=$EPOCHREALTIME r w t
    for r in $(seq "$RUNS"); do
        echo "== run $r/$RUNS" >&2
        for w in "${WORKLOADS[@]}"; do
            for t in "${TARGETS[@]}"; do run_case "$w" "$t" "$r"; done
        done
    done
    [ -z "$RAW" ] || cp "$RESULTS" "$RAW"
    ELAPSED=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')
}

# report HEADLINE TABLE-PROGRAM...: the headline, the table TABLE-PROGRAM
# makes of RESULTS (`... table RESULTS TARGET...`) and what each target ran,
# to stdout and --out.
report() {
    local head=$1 t
    shift
    {
        echo "$head"
        echo
        "$@" table "$RESULTS" "${TARGETS[@]}"
        for t in "${TARGETS[@]}"; do
            [ "${KIND[$t]}" = kernel ] || echo "- $t: ${BIN[$t]}${TOPTS[$t]:+ -o ${TOPTS[$t]}}"
        done
    } | tee ${OUT:+"$OUT"}
}
