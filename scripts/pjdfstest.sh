#!/usr/bin/env bash
# Run pjdfstest (the Rust POSIX suite) against a kernel overlay mount and a
# unionfs mount of the same layout, in the same run. Fails if a test that
# passes on the kernel overlay fails on unionfs, unless it is listed in
# tests/pjdfstest-expected-failures.txt with a reason.
#
# usage: scripts/pjdfstest.sh UNIONFS_BIN
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "${1:-target/release/unionfs}")
EXPECTED=$PWD/tests/pjdfstest-expected-failures.txt

command -v pjdfstest >/dev/null || cargo install --locked pjdfstest
# pjdfstest switches to two unprivileged users.
getent group nogroup >/dev/null || groupadd nogroup
id tests >/dev/null 2>&1 || useradd -M -U -s /usr/sbin/nologin tests

T=$(mktemp -d /tmp/unionfs-pjdfstest.XXXXXX)
chmod 755 "$T"   # the unprivileged test users must reach the mounts
cleanup() {
    for m in "$T"/kernel/mnt "$T"/unionfs/mnt; do
        if mountpoint -q "$m" 2>/dev/null; then umount "$m" 2>/dev/null || umount -l "$m"; fi
    done
    rm -rf "$T"
}
trap cleanup EXIT

cat > "$T/pjdfstest.toml" <<'TOML'
[features]
posix_fallocate = {}
utimensat = {}
utime_now = {}
rename_ctime = {}
[settings]
naptime = 0.01
allow_remount = false
expected_failures = []
[dummy_auth]
entries = [["nobody", "nogroup"], ["tests", "tests"]]
TOML

for side in kernel unionfs; do
    mkdir -p "$T/$side"/{lower,upper,work,mnt}
    echo "from the lower layer" > "$T/$side/lower/file"
    mkdir -p "$T/$side/lower/dir"
done
mount -t overlay overlay -o "lowerdir=$T/kernel/lower,upperdir=$T/kernel/upper,workdir=$T/kernel/work" "$T/kernel/mnt"
"$BIN" -o "lowerdir=$T/unionfs/lower,upperdir=$T/unionfs/upper,workdir=$T/unionfs/work${UNIONFS_ORACLE_OPTS:-}" "$T/unionfs/mnt"

for side in kernel unionfs; do
    (cd "$T/$side/mnt" && timeout 1200 pjdfstest -c "$T/pjdfstest.toml" -p "$T/$side/mnt" > "$T/$side.out" 2>&1) || true
    grep -E '^Summary:' "$T/$side.out" | sed "s/^/pjdfstest on $side: /" || { echo "pjdfstest on $side did not finish"; tail -20 "$T/$side.out"; exit 1; }
done

result() { awk -v want="$2" '$NF == want && $1 ~ /::/ {print $1}' "$T/$1.out" | sort; }
result kernel ok > "$T/kernel.pass"
result unionfs FAILED > "$T/unionfs.fail"
{ grep -v '^#' "$EXPECTED" || true; } | awk 'NF {print $1}' | sort > "$T/expected"
comm -12 "$T/kernel.pass" "$T/unionfs.fail" | comm -23 - "$T/expected" > "$T/regressions"
npass_k=$(wc -l < "$T/kernel.pass")
npass_u=$(result unionfs ok | wc -l)
echo "pjdfstest: kernel overlay passes $npass_k, unionfs passes $npass_u"
if [ -s "$T/regressions" ]; then
    echo "pjdfstest: FAILED on unionfs but passed on the kernel overlay:"
    sed 's/^/    /' "$T/regressions"
    grep -A3 -F -f "$T/regressions" "$T/unionfs.out" | head -60
    exit 1
fi
echo "pjdfstest: every test that passes on the kernel overlay passes on unionfs"
