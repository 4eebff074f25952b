#!/usr/bin/env bash
# A two-minute tour of unionfs: build it, stack two layers under a writable
# upper, make changes, look at what landed in the upper (kernel overlay
# format), check that the kernel's overlayfs shows the same tree, unmount.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }
if ! need fusermount3 || ! need getfattr; then
    echo "== installing fuse3 and attr"
    apt-get update -qq && apt-get install -y -qq fuse3 attr >/dev/null
fi

echo "== building unionfs (release)"
cargo build --release --quiet
BIN=$PWD/target/release/unionfs

DEMO=$(mktemp -d /tmp/unionfs-demo.XXXXXX)
cleanup() {
    for m in "$DEMO/merged" "$DEMO/kernel"; do
        mountpoint -q "$m" 2>/dev/null && { umount "$m" 2>/dev/null || umount -l "$m"; }
    done
    rm -rf "$DEMO"
}
trap cleanup EXIT
mkdir -p "$DEMO"/{base,app,upper,work,merged}

echo "== two lower layers"
mkdir -p "$DEMO/base/etc" "$DEMO/base/srv/old"
echo "base hostname" > "$DEMO/base/etc/hostname"
echo "from base" > "$DEMO/base/etc/motd"
echo "stale" > "$DEMO/base/srv/old/cache"
mkdir -p "$DEMO/app/etc"
echo "app overrides motd" > "$DEMO/app/etc/motd"
(cd "$DEMO" && find base app -type f | sort | sed 's/^/   /')

echo "== mount: unionfs -o lowerdir=app:base,upperdir=upper,workdir=work merged"
"$BIN" -o "lowerdir=$DEMO/app:$DEMO/base,upperdir=$DEMO/upper,workdir=$DEMO/work" "$DEMO/merged"
echo "   merged view:"
(cd "$DEMO/merged" && find . -mindepth 1 | sort | sed 's/^/   /')
echo "   etc/motd says: $(cat "$DEMO/merged/etc/motd")"

echo "== changes: edit a lower file, delete a lower dir, add a file"
echo "edited in the container" >> "$DEMO/merged/etc/hostname"
rm -r "$DEMO/merged/srv/old"
echo "new" > "$DEMO/merged/srv/new"
echo "   the upper now holds (kernel overlay format):"
(cd "$DEMO/upper" && find . -mindepth 1 -printf '   %y %p\n' | sort)
echo "   srv/old is a whiteout: $(stat -c '%F %t:%T' "$DEMO/upper/srv/old")"

echo "== unmount"
umount "$DEMO/merged"

echo "== the kernel's overlayfs over the same upper shows the same tree"
mkdir -p "$DEMO/kwork" "$DEMO/kernel"
mount -t overlay overlay -o "lowerdir=$DEMO/app:$DEMO/base,upperdir=$DEMO/upper,workdir=$DEMO/kwork" "$DEMO/kernel"
(cd "$DEMO/kernel" && find . -mindepth 1 | sort | sed 's/^/   /')
echo "   etc/hostname: $(tr '\n' '|' < "$DEMO/kernel/etc/hostname")"
umount "$DEMO/kernel"
echo "== done"
