#!/usr/bin/env bash
# The one test command. On a fresh Debian machine (as root) it installs what
# the tests need, builds, and runs: formatting and lint checks, unit and
# integration tests (cargo test), the differential scenarios and fuzzing
# against the kernel's overlayfs, and pjdfstest on both.
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

if [ "$(id -u)" != 0 ]; then
    echo "scripts/test.sh needs root (FUSE and kernel overlay mounts)" >&2
    exit 1
fi

# ---- what the tests need
# fuse3: fusermount3; attr: getfattr/setfattr; acl: setfacl; libcap2-bin:
# setcap/getcap; skopeo and podman: check that saved images are archives
# they accept (and, with runc, the oracle of UNIONFS_RUN_ORACLE=podman); the registry tests (tests/registry.rs): the registry,
# htpasswd, openssl, the token server's JWT.
need() { command -v "$1" >/dev/null || missing="$missing $2"; }
missing=""
need fusermount3 fuse3
need getfattr attr
need setfacl acl
need setcap libcap2-bin
need skopeo skopeo
need podman podman
need docker-registry docker-registry
need htpasswd apache2-utils
need openssl openssl
/usr/bin/python3 -c 'import jwt, cryptography' 2>/dev/null || missing="$missing python3-jwt python3-cryptography"
# processes in containers (tests/run*.rs): a static busybox for the test
# images, mmdebstrap for the Debian image (scripts/debian-image.sh, cached in
# /var/cache/unionfs-tests), newuidmap/newgidmap for rootless containers.
dpkg -s busybox-static >/dev/null 2>&1 || missing="$missing busybox-static"
need mmdebstrap mmdebstrap
need newuidmap uidmap
if [ -n "$missing" ]; then
    echo "== apt-get install$missing"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null || {
        echo "apt-get install failed" >&2
        exit 1
    }
fi
[ -e /dev/fuse ] || mknod -m 666 /dev/fuse c 10 229

# FUSE over io_uring (`-o io_uring`) is offered by the kernel only while the
# fuse module's enable_uring is set: set it for this run (only mounts that
# ask for io_uring use it), put the old value back at exit.
URING_PARAM=/sys/module/fuse/parameters/enable_uring
if [ -w "$URING_PARAM" ]; then
    uring_was=$(cat "$URING_PARAM")
    trap 'echo "$uring_was" > "$URING_PARAM"' EXIT
    echo Y > "$URING_PARAM"
fi

passed=0
failed=0
failures=""
step() {
    local name=$1
    shift
    echo
    echo "== $name"
    local t0=$SECONDS
    if "$@"; then
        passed=$((passed + 1))
        echo "== $name: ok ($((SECONDS - t0))s)"
    else
        failed=$((failed + 1))
        failures="$failures\n    $name"
        echo "== $name: FAILED ($((SECONDS - t0))s)"
    fi
}

step "build" cargo build --workspace --all-targets --quiet || true
BIN=$PWD/target/debug/unionfs
if [ ! -x "$BIN" ]; then
    echo "build failed: no $BIN"
    echo "0 passed, 1 failed"
    exit 1
fi
step "cargo fmt --check" cargo fmt --all -- --check
step "cargo clippy -D warnings" cargo clippy --workspace --all-targets --quiet -- -D warnings
step "cargo test (unit + integration)" cargo test --workspace --all-targets
step "differential scenarios vs kernel overlay" python3 tests/oracle/scenarios.py "$BIN"
step "differential fuzzing vs kernel overlay" python3 tests/oracle/fuzz.py "$BIN" --seeds 1-150 --ops 500
step "differential fuzzing, metacopy=on" python3 tests/oracle/fuzz.py "$BIN" --seeds 1-40 --ops 300 --opts ,metacopy=on
step "differential fuzzing, index=on" python3 tests/oracle/fuzz.py "$BIN" --seeds 1-40 --ops 300 --opts ,index=on
# The parallel layer reads and lookups (src/fs/sweep.rs) on every merge and listing.
step "differential scenarios, layers swept in parallel" env UNIONFS_SWEEP=always python3 tests/oracle/scenarios.py "$BIN"
step "differential fuzzing, layers swept in parallel" env UNIONFS_SWEEP=always python3 tests/oracle/fuzz.py "$BIN" --seeds 1-40 --ops 300
# An inode table of 4 (src/fs/prune.rs): the kernel hands names back all the
# time, so every object is found again from the layers, never from memory.
step "differential scenarios, inode table bounded" env UNIONFS_ORACLE_OPTS=,max_inodes=4 python3 tests/oracle/scenarios.py "$BIN"
step "differential fuzzing, inode table bounded" env UNIONFS_ORACLE_OPTS=,max_inodes=4 python3 tests/oracle/fuzz.py "$BIN" --seeds 1-40 --ops 300
step "pjdfstest, inode table bounded" env UNIONFS_ORACLE_OPTS=,max_inodes=4 scripts/pjdfstest.sh "$BIN"
if [ "$(cat "$URING_PARAM" 2>/dev/null)" = Y ]; then
    step "differential scenarios, FUSE over io_uring" env UNIONFS_ORACLE_OPTS=,io_uring python3 tests/oracle/scenarios.py "$BIN"
    step "differential fuzzing, FUSE over io_uring" env UNIONFS_ORACLE_OPTS=,io_uring python3 tests/oracle/fuzz.py "$BIN" --seeds 1-40 --ops 300
    step "pjdfstest, FUSE over io_uring" env UNIONFS_ORACLE_OPTS=,io_uring scripts/pjdfstest.sh "$BIN"
fi
step "pjdfstest: kernel overlay vs unionfs" scripts/pjdfstest.sh "$BIN"

# FUSE and overlay mounts anywhere in /tmp; anything (tmpfs, binds) the
# container tests mounted in their stores.
leftover=$(awk '$3 ~ /^fuse/ || $1 == "overlay" || $2 ~ /^\/tmp\/unionctl-/ {print $2}' /proc/mounts | grep -E '^/tmp/' || true)
if [ -n "$leftover" ]; then
    echo "mounts left behind by the tests:"
    echo "$leftover"
    failed=$((failed + 1))
    failures="$failures\n    mounts left behind"
fi

# Processes the container tests started (their commands carry
# UNIONFS_RUNTEST in the environment: monitors, unionfs daemons).
leftproc=$(for e in /proc/[0-9]*/environ; do
    if { tr '\0' '\n' < "$e"; } 2>/dev/null | grep -q '^UNIONFS_RUNTEST='; then
        p=${e%/environ}
        echo "${p#/proc/} $({ tr '\0' ' ' < "$p/cmdline"; } 2>/dev/null)"
    fi
done)
if [ -n "$leftproc" ]; then
    echo "processes left behind by the tests:"
    echo "$leftproc"
    failed=$((failed + 1))
    failures="$failures\n    processes left behind"
fi

echo
if [ "$failed" -gt 0 ]; then
    printf "failed steps:%b\n" "$failures"
fi
echo "test.sh: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
