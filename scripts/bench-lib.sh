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
