#!/usr/bin/env bash
# Real programs on unionfs, the kernel overlay and fuse-overlayfs (when
# installed) side by side in one run, on identical lowers: the median of N
# runs per workload and target, a fresh upper, workdir and mount per run, the
# lowers' page cache warm. Prints a markdown table of times (ops/s for mix)
# and ratios to the kernel overlay.
#
# Lowers (made once per bench run under a fresh mktemp -d):
#   top lower    repo/   a git repository of --git-files files of /usr/include
#                        (spread over it), committed before any mount
#                cproj/  a generated C project: --make-files .c files, Makefile
#                mix/    half of the mix tree (the merged directories)
#   bottom lower pylib/  the running python3's stdlib (no test, site-packages,
#                        lib-dynload, __pycache__), ~730 .py files
#                cproj/include/  the C project's headers (cproj is merged)
#                mix/    the rest of the mix tree, and files the top one shadows
#
# Workloads (cwd = the mount point; FAIL in a cell: that run failed):
#   git      in repo/: append a line to --git-touch files and touch as many
#            others (edit), git status (must list exactly the edited ones),
#            git add -A && git commit (commit), git gc (gc), git fsck (fsck);
#            one row for the sequence, one per step
#   sqlite   python3's sqlite3: a new DB in WAL mode with synchronous=FULL (an
#            fsync of the WAL per commit), --sqlite-rows inserts in
#            --sqlite-txns transactions, then a count/sum and integrity_check
#   python   python3 -m venv venv (with pip when ensurepip exists, else
#            --without-pip), python3 -m compileall -q pylib, then venv/bin/python
#            imports ~60 stdlib modules with PYTHONPATH=pylib and fails unless
#            they all come from the mount
#   make     make -j2 of cproj (gcc -O0), then ./prog's output checked
#   fsx      bench_programs.py fsx: --fsx-ops random read/write/mapread/
#            mapwrite/truncate/fsync/reopen ops on a new file (max 256 KiB),
#            every read checked against an in-memory model (Debian ships no fsx)
#   mix      --mix-procs processes for --mix-seconds doing create, write, read,
#            stat, rename, unlink, mkdir, rmdir, chmod, symlink, readdir in
#            their part of mix/ (lower files: copy-ups), every result checked
#            against a model; ops/s, higher is better
#
# usage: scripts/bench.sh programs [options]
#   --runs N            runs per case (default 3; the median is reported)
#   --only W1,W2        run these workloads only (git,sqlite,python,make,fsx,mix)
#   --git-files N       files in the git repository (default 4000)
#   --git-touch N       files edited, and files touched, before git status
#                       (default 50 each)
#   --sqlite-rows N     rows inserted (default 20000)
#   --sqlite-txns N     transactions they are inserted in (default 200)
#   --make-files N      .c files of the C project (default 200)
#   --fsx-ops N         fsx operations (default 50000)
#   --mix-seconds N     duration of mix (default 60)
#   --mix-procs N       processes of mix (default 4)
#   --seed N            seed of fsx and mix (default 1)
#   --targets T1,T2     kernel,unionfs,fuse-overlayfs and compare labels
#                       (default: all available)
#   --unionfs BIN       use this unionfs binary instead of building one
#   --compare BIN       add another unionfs binary as a target (repeatable)
#   --compare-label L   label of the matching --compare (default compare,
#                       compare2, ...)
#   --unionfs-opts O    extra mount options of the unionfs target
#   --compare-opts O    extra mount options of the matching --compare
#   --no-install        do not apt-get install git, gcc, make, python3-venv,
#                       fuse-overlayfs
#   --out FILE          also write the table to FILE
#   --raw FILE          also write every run's value (TSV) to FILE
#   --timeout SECS      limit per timed workload (default 600)
# Needs root (the kernel overlay). With CARGO_LOCK=FILE set the build runs
# under `flock FILE`; CARGO_BUILD_JOBS limits its parallelism. --compare takes
# any program with fuse-overlayfs's command line. The defaults take ~15 min
# with 3 targets on 2 cores, 9 of them in mix.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
HELPER=$ROOT/scripts/bench_programs.py
PICK=$ROOT/scripts/bench_helper.py

BENCH_NAME=bench-programs.sh
. "$ROOT/scripts/bench-lib.sh"
GIT_FILES=4000 GIT_TOUCH=50 SQL_ROWS=20000 SQL_TXNS=200 MAKE_FILES=200
FSX_OPS=50000 MIX_SECS=60 MIX_PROCS=4 SEED=1
MIX_DIRS=16 MIX_FILES=24 # per process: 16 dirs of 24 files (~390 files)

while [ $# -gt 0 ]; do
    common_opt "$@"
    if [ "$USED" -gt 0 ]; then
        shift "$USED"
        continue
    fi
    case $1 in
    --git-files) need_arg "$@"; num "$1" "$2"; GIT_FILES=$2; shift ;;
    --git-touch) need_arg "$@"; num "$1" "$2"; GIT_TOUCH=$2; shift ;;
    --sqlite-rows) need_arg "$@"; num "$1" "$2"; SQL_ROWS=$2; shift ;;
    --sqlite-txns) need_arg "$@"; num "$1" "$2"; SQL_TXNS=$2; shift ;;
    --make-files) need_arg "$@"; num "$1" "$2"; MAKE_FILES=$2; shift ;;
    --fsx-ops) need_arg "$@"; num "$1" "$2"; FSX_OPS=$2; shift ;;
    --mix-seconds) need_arg "$@"; num "$1" "$2"; MIX_SECS=$2; shift ;;
    --mix-procs) need_arg "$@"; num "$1" "$2"; MIX_PROCS=$2; shift ;;
    --seed) need_arg "$@"; num "$1" "$2"; SEED=$2; shift ;;
    *) die "unknown argument: $1 (see --help)" ;;
    esac
    shift
done
need_root_and_overlay "kernel overlay mounts"
[ "$GIT_FILES" -ge 1 ] || die "--git-files must be at least 1"
[ "$SQL_TXNS" -ge 1 ] && [ "$SQL_ROWS" -ge "$SQL_TXNS" ] || die "--sqlite-rows must be at least --sqlite-txns (>= 1)"
[ "$MAKE_FILES" -ge 1 ] || die "--make-files must be at least 1"
[ "$MIX_SECS" -ge 1 ] && [ "$MIX_PROCS" -ge 1 ] || die "--mix-seconds and --mix-procs must be at least 1"

WORKLOADS=(git sqlite python make fsx mix)
if [ -n "$ONLY" ]; then
    sel=()
    for w in "${WORKLOADS[@]}"; do [[ ",$ONLY," == *",$w,"* ]] && sel+=("$w"); done
    [ ${#sel[@]} -gt 0 ] || die "--only: no known workload in $ONLY"
    WORKLOADS=("${sel[@]}")
fi
wants() { [[ " ${WORKLOADS[*]} " == *" $1 "* ]]; }

# ---- tools -----------------------------------------------------------------
# python3 itself, not a wrapper (pyenv's shim costs ~50 ms per start)
PY=$(python3 -c 'import sys; print(sys.executable)') || die "no python3"
PYSTD=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
have_ensurepip() { "$PY" -c 'import ensurepip, venv' 2>/dev/null; }
if [ "$INSTALL" = 1 ]; then
    missing=()
    wants git && ! command -v git >/dev/null && missing+=(git)
    wants make && ! command -v gcc >/dev/null && missing+=(gcc libc6-dev)
    wants make && ! command -v make >/dev/null && missing+=(make)
    wants python && ! have_ensurepip && [[ $PY == /usr/bin/* ]] && missing+=(python3-venv)
    command -v fuse-overlayfs >/dev/null || missing+=(fuse-overlayfs)
    install_missing "${missing[@]}"
fi
VENV_FLAGS=()
have_ensurepip || VENV_FLAGS=(--without-pip)
# a workload whose program is missing is skipped (the table says why)
declare -A SKIP
command -v git >/dev/null || SKIP[git]="no git"
command -v gcc >/dev/null && command -v make >/dev/null || SKIP[make]="no gcc or make"
"$PY" -c 'import sqlite3' 2>/dev/null || SKIP[sqlite]="no sqlite3 module"
"$PY" -c 'import venv' 2>/dev/null || SKIP[python]="no venv module"

setup_targets

# ---- work dir, cleanup -----------------------------------------------------
bench_workdir unionfs-bench-programs

# the programs' environment: no user or system config, no stray Python paths
export HOME=$W/home XDG_CONFIG_HOME=$W/home/.config GIT_CONFIG_NOSYSTEM=1
export GIT_AUTHOR_DATE="2020-01-01T00:00:00Z" GIT_COMMITTER_DATE="2020-01-01T00:00:00Z"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INDEX=1 LC_ALL=C
unset PYTHONPATH PYTHONHOME PYTHONDONTWRITEBYTECODE PYTHONSTARTUP GIT_DIR GIT_WORK_TREE
mkdir -p "$HOME"
git config --global user.name bench 2>/dev/null || true
git config --global user.email bench@example.invalid 2>/dev/null || true
git config --global safe.directory '*' 2>/dev/null || true
git config --global gc.auto 0 2>/dev/null || true # gc runs when the workload says
git config --global commit.gpgSign false 2>/dev/null || true

# ---- lowers ----------------------------------------------------------------
L1=$W/lower-top L2=$W/lower-bottom
mkdir -p "$L1" "$L2"
echo "== lowers under $W" >&2
if wants git && [ -z "${SKIP[git]:-}" ]; then
    "$PY" "$PICK" pick /usr/include "$GIT_FILES" > "$W/git.list"
    mkdir -p "$L1/repo"
    tar -C /usr/include -T "$W/git.list" -cf - | tar -C "$L1/repo" -xf -
    (cd "$L1/repo" && git init -q && git add -A && git commit -q -m "lower: /usr/include files")
    # every (2n)th tracked file is edited, every (2n+1)th touched
    n=$(git -C "$L1/repo" ls-files | wc -l)
    step=$((n / (2 * GIT_TOUCH) > 0 ? n / (2 * GIT_TOUCH) : 1))
    git -C "$L1/repo" ls-files | awk -v s="$step" -v m="$GIT_TOUCH" 'NR % s == 0 { k++; if (k <= 2 * m) print }' > "$W/git-both.list"
    awk 'NR % 2 == 1' "$W/git-both.list" > "$W/git-edit.list"
    awk 'NR % 2 == 0' "$W/git-both.list" > "$W/git-touch.list"
    GIT_INFO="git: $n files, $(du -sm "$L1/repo" | cut -f1) MiB with .git, $(wc -l < "$W/git-edit.list") edited + $(wc -l < "$W/git-touch.list") touched"
fi
if wants python && [ -z "${SKIP[python]:-}" ]; then
    mkdir -p "$L2/pylib"
    tar -C "$PYSTD" --exclude=./test --exclude=./site-packages --exclude=./lib-dynload \
        --exclude='./config-*' --exclude=__pycache__ --exclude=tests --exclude=idle_test \
        --exclude='*/test' -cf - . | tar -C "$L2/pylib" -xf -
    PY_INFO="python: $("$PY" -V 2>&1 | cut -d' ' -f2), $(find "$L2/pylib" -name '*.py' | wc -l) .py files, venv ${VENV_FLAGS[*]:-with pip}"
fi
if wants make && [ -z "${SKIP[make]:-}" ]; then
    "$PY" "$HELPER" cproj "$L1/cproj" "$L2/cproj/include" "$MAKE_FILES"
fi
if wants mix; then
    "$PY" "$HELPER" mixtree "$L1/mix" "$L2/mix" "$MIX_PROCS" "$MIX_DIRS" "$MIX_FILES"
fi
ENTRIES=$(find "$L1" "$L2" | wc -l)
echo "== $ENTRIES entries in the lowers; targets: ${TARGETS[*]}; workloads: ${WORKLOADS[*]}; $RUNS runs" >&2
# the lowers' page cache warm, once
tar -C "$W" -cf - lower-top lower-bottom 2> /dev/null | cat > /dev/null || true

# ---- workloads (run with the mount point as cwd, in a child bash) ------------
# step NAME CMD...: run CMD, append "NAME<TAB>seconds" to $STEPS
step() {
    local t0=${EPOCHREALTIME/./} t1 us
    "${@:2}" || return 1
    t1=${EPOCHREALTIME/./}
    us=$((t1 - t0))
    printf '%s\t%d.%06d\n' "$1" $((us / 1000000)) $((us % 1000000)) >> "$STEPS"
}
git_edit() {
    local f
    while IFS= read -r f; do printf '/* edited */\n' >> "$f" || return 1; done < "$W/git-edit.list"
    xargs -d '\n' -a "$W/git-touch.list" touch --
}
git_status() {
    local got want
    git status --porcelain > "$W/git-status.out" || return 1
    got=$(grep -c '^ M ' "$W/git-status.out" || true)
    want=$(wc -l < "$W/git-edit.list")
    [ "$got" = "$want" ] && [ "$(wc -l < "$W/git-status.out")" = "$want" ] ||
        { echo "git status lists $(wc -l < "$W/git-status.out") paths ($got modified), want $want modified" >&2; return 1; }
}
git_commit() {
    git add -A && git commit -q -m x &&
        [ "$(git rev-list --count HEAD)" = 2 ] || { echo "no second commit" >&2; return 1; }
}
wl_git() {
    cd repo &&
        step git/edit git_edit &&
        step git/status git_status &&
        step git/commit git_commit &&
        step git/gc git gc -q &&
        step git/fsck git fsck --no-progress
}
wl_sqlite() { "$PY" "$HELPER" sqlite bench.db "$SQL_ROWS" "$SQL_TXNS"; }
wl_python() {
    step python/venv "$PY" -m venv "${VENV_FLAGS[@]}" venv &&
        step python/compileall "$PY" -m compileall -q pylib > "$W/compileall.out" &&
        step python/import env PYTHONPATH="$PWD/pylib" venv/bin/python "$HELPER" imports "$PWD/pylib" > /dev/null
}
wl_make() { cd cproj && make -s -j2 && make -s check; }
wl_fsx() { "$PY" "$HELPER" fsx fsx.file "$FSX_OPS" "$SEED"; }
wl_mix() { "$PY" "$HELPER" mix mix "$MIX_PROCS" "$MIX_DIRS" "$MIX_FILES" "$MIX_SECS" "$SEED" > "$W/rate"; }
export W PY HELPER STEPS=$W/steps SQL_ROWS SQL_TXNS FSX_OPS MIX_PROCS MIX_DIRS MIX_FILES MIX_SECS SEED
export VENV_FLAGS_STR="${VENV_FLAGS[*]:-}"
export -f step git_edit git_status git_commit wl_git wl_sqlite wl_python wl_make wl_fsx wl_mix

RESULTS=$W/results.tsv
: > "$RESULTS"

timed() { # mnt function -> sets SECS, or returns 1 (last stderr line in ERR)
    local t0 t1 rc=0
    : > "$STEPS"
    t0=$EPOCHREALTIME
    # arrays do not survive export: VENV_FLAGS is rebuilt from its string
    # in the background, so that a signal's trap runs at once (cleanup stops it)
    timeout -k 5 "$CASE_TIMEOUT" bash -c 'read -ra VENV_FLAGS <<< "$VENV_FLAGS_STR"; cd "$1" && "$2"' _ "$1" "$2" 2> "$W/err" &
    WPID=$!
    wait "$WPID" || rc=$?
    WPID=""
    t1=$EPOCHREALTIME
    SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')
    ERR=$(grep -v '^$' "$W/err" | tail -n 1 | cut -c1-120 | tr '\t' ' ')
    [ "$rc" = 124 ] && ERR="timeout after ${CASE_TIMEOUT}s"
    [ "$rc" = 0 ]
}

run_case() { # workload target run
    local w=$1 t=$2 r=$3 d=$W/run/$1.$2.$3 val
    if [ -n "${SKIP[$w]:-}" ]; then
        printf '%s\t%s\t%s\tSKIP\t%s\n' "$w" "$t" "$r" "${SKIP[$w]}" >> "$RESULTS"
        return 0
    fi
    if ! do_mount "$t" "$d" 2> "$W/err"; then
        printf '%s\t%s\t%s\tFAIL\tmount: %s\n' "$w" "$t" "$r" "$(tail -n 1 "$W/err" | cut -c1-100)" >> "$RESULTS"
        printf '   %-8s %-16s run %s: FAIL mount\n' "$w" "$t" "$r" >&2
        do_umount "$d"
        return 0
    fi
    if timed "$d/mnt" "wl_$w"; then
        val=$SECS
        if [ "$w" = mix ]; then
            val=$(cat "$W/rate")
            printf '   %-8s %-16s run %s: %8.0f ops/s\n' "$w" "$t" "$r" "$val" >&2
        else
            printf '   %-8s %-16s run %s: %8.3f s\n' "$w" "$t" "$r" "$val" >&2
        fi
        printf '%s\t%s\t%s\t%s\n' "$w" "$t" "$r" "$val" >> "$RESULTS"
        awk -v t="$t" -v r="$r" -F '\t' '{ printf "%s\t%s\t%s\t%s\n", $1, t, r, $2 }' "$STEPS" >> "$RESULTS"
    else
        printf '%s\t%s\t%s\tFAIL\t%s\n' "$w" "$t" "$r" "${ERR:-exit status}" >> "$RESULTS"
        printf '   %-8s %-16s run %s: FAIL %s\n' "$w" "$t" "$r" "$ERR" >&2
    fi
    do_umount "$d"
}

run_all
report "unionfs programs bench: median of $RUNS runs; ${GIT_INFO:+$GIT_INFO; }sqlite: $SQL_ROWS rows in $SQL_TXNS transactions (WAL, synchronous=FULL); ${PY_INFO:+$PY_INFO; }make: $MAKE_FILES .c files, -j2; fsx: $FSX_OPS ops, seed $SEED; mix: $MIX_PROCS processes x ${MIX_SECS}s; $(nproc) cores, $(uname -r); ${ELAPSED}s" \
    "$PY" "$HELPER"
