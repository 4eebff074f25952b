#!/usr/bin/env bash
# A tour in two parts, as root on a Debian machine (installs what it needs).
#
# 1. unionfs: stack two layers under a writable upper, make changes, look at
#    what landed in the upper (kernel overlay format), check that the
#    kernel's overlayfs shows the same tree, unmount.
# 2. unionctl: make a small real image from this machine's busybox-static
#    (two layers, the second deleting a file), load it, create a container
#    with a named volume and a bind mount, mount it, write in the container
#    and in the volume, look at ps -s, diff, volume inspect and system df,
#    commit, run commands in containers (foreground and detached: logs,
#    exec, stop, start), and remove everything it made.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }
missing=""
need fusermount3 || missing="$missing fuse3"
need getfattr || missing="$missing attr"
[ -x /bin/busybox ] || missing="$missing busybox-static"
if [ -n "$missing" ]; then
    echo "== installing$missing"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

echo "== building unionfs and unionctl (release)"
cargo build --release --quiet
BIN=$PWD/target/release/unionfs
CTL=$PWD/target/release/unionctl

DEMO=$(mktemp -d /tmp/unionfs-demo.XXXXXX)
U="$CTL --root $DEMO/store"
cleanup() {
    $U unmount --all >/dev/null 2>&1 || true
    for m in "$DEMO/merged" "$DEMO/kernel"; do
        mountpoint -q "$m" 2>/dev/null && { umount "$m" 2>/dev/null || umount -l "$m"; }
    done
    rm -rf "$DEMO"
}
trap cleanup EXIT
step() { echo; echo "== $*"; }
show() { sed 's/^/   /'; }

########################################################################
echo
echo "############ part 1: unionfs, a union of directories"
mkdir -p "$DEMO"/{base,app,upper,work,merged}

step "two lower layers"
mkdir -p "$DEMO/base/etc" "$DEMO/base/srv/old"
echo "base hostname" > "$DEMO/base/etc/hostname"
echo "from base" > "$DEMO/base/etc/motd"
echo "stale" > "$DEMO/base/srv/old/cache"
mkdir -p "$DEMO/app/etc"
echo "app overrides motd" > "$DEMO/app/etc/motd"
(cd "$DEMO" && find base app -type f | sort | show)

step "mount: unionfs -o lowerdir=app:base,upperdir=upper,workdir=work merged"
"$BIN" -o "lowerdir=$DEMO/app:$DEMO/base,upperdir=$DEMO/upper,workdir=$DEMO/work" "$DEMO/merged"
echo "   merged view:"
(cd "$DEMO/merged" && find . -mindepth 1 | sort | show)
echo "   etc/motd says: $(cat "$DEMO/merged/etc/motd")"

step "changes: edit a lower file, delete a lower dir, add a file"
echo "edited in the container" >> "$DEMO/merged/etc/hostname"
rm -r "$DEMO/merged/srv/old"
echo "new" > "$DEMO/merged/srv/new"
echo "   the upper now holds (kernel overlay format):"
(cd "$DEMO/upper" && find . -mindepth 1 -printf '%y %p\n' | sort | show)
echo "   srv/old is a whiteout: $(stat -c '%F %t:%T' "$DEMO/upper/srv/old")"

step "unmount"
umount "$DEMO/merged"

step "the kernel's overlayfs over the same upper shows the same tree"
mkdir -p "$DEMO/kwork" "$DEMO/kernel"
mount -t overlay overlay -o "lowerdir=$DEMO/app:$DEMO/base,upperdir=$DEMO/upper,workdir=$DEMO/kwork" "$DEMO/kernel"
(cd "$DEMO/kernel" && find . -mindepth 1 | sort | show)
echo "   etc/hostname: $(tr '\n' '|' < "$DEMO/kernel/etc/hostname")"
umount "$DEMO/kernel"

########################################################################
echo
echo "############ part 2: unionctl, images, containers and volumes"

step "a real image from this machine's busybox-static: two layers"
IMG=$DEMO/image
mkdir -p "$IMG/l1/bin" "$IMG/l1/etc" "$IMG/l1/root" "$IMG/l1/data" "$IMG/l2/etc"
cp /bin/busybox "$IMG/l1/bin/busybox"
for t in sh ls cat echo rm mkdir sleep hostname ps id; do ln "$IMG/l1/bin/busybox" "$IMG/l1/bin/$t"; done
echo "Welcome to the demo image" > "$IMG/l1/etc/motd"
echo "this file is deleted by layer 2" > "$IMG/l1/etc/obsolete"
echo "seed data shipped in the image" > "$IMG/l1/data/seed"
echo "demo" > "$IMG/l2/etc/hostname"
: > "$IMG/l2/etc/.wh.obsolete" # layer 2 deletes /etc/obsolete (an OCI whiteout)
scripts/mkimage.sh "$IMG/oci" demo/busybox:1.0 "$IMG/l1" "$IMG/l2"
echo "   an OCI layout: layer 1 = busybox + /etc + /data, layer 2 deletes /etc/obsolete"

step "unionctl image load: each layer is unpacked once into the store ($DEMO/store)"
$U image load -i "$IMG/oci" | show
$U images | show

step "unionctl create: a container = an empty upper on the image's shared layers"
mkdir -p "$DEMO/host"
echo "a file on the host" > "$DEMO/host/readme"
CID=$($U create --name demo -v demo-data:/data -v "$DEMO/host:/host:ro" --label purpose=demo demo/busybox:1.0)
echo "   container ID: $CID"
echo "   named volume demo-data at /data, $DEMO/host bound read-only at /host"

step "unionctl mount: one unionfs daemon; the volume and the bind mount go on top"
M=$($U mount demo)
echo "   merged root: $M"
ls "$M" | tr '\n' ' ' | show
echo
echo "   /etc has no 'obsolete' (layer 2's whiteout): $(ls "$M/etc" | tr '\n' ' ')"
echo "   the volume was filled from the image once: $(ls "$M/data")"
echo "   /host is the host directory: $(cat "$M/host/readme")"

step "write in the container (with the image's own busybox) and in the volume"
chroot "$M" /bin/sh -c 'echo "written inside" > /root/hello; rm /etc/motd; echo "notes" > /data/notes'
echo "   the container's upper holds:"
(cd "$DEMO/store/containers/$CID/diff" && find . -mindepth 1 -printf '%y %p\n' | sort | show)
echo "   the volume holds: $(ls "$($U volume inspect --format '{{.Mountpoint}}' demo-data)" | tr '\n' ' ')"

step "unionctl ps -s: SIZE is the writable layer, virtual adds the image"
$U ps -a -s | show

step "unionctl diff: A added, C changed, D deleted (as docker diff and podman diff print them)"
$U diff demo | show

step "unionctl volume inspect demo-data"
$U volume inspect demo-data | show

step "unionctl system df"
$U system df | show

step "unionctl commit: the upper becomes a new layer of a new image"
$U commit -m "demo change" demo demo/busybox:changed | show
$U image history demo/busybox:changed | show
$U create --name again demo/busybox:changed >/dev/null
M2=$($U mount again)
echo "   a container of the committed image: /root/hello = $(cat "$M2/root/hello"), /etc/motd $(test -e "$M2/etc/motd" && echo exists || echo "is gone")"
$U unmount again >/dev/null

step "unionctl run: a process in the container (own pid, mount, uts, ipc namespaces; exit status passed on)"
set +e
$U run --rm -v demo-data:/data demo/busybox:1.0 sh -c 'echo "   hostname $(hostname), $(id)"; ps | sed "s/^/   /"; cat /data/notes | sed "s/^/   volume: /"; exit 3'
echo "   unionctl run exited with $?"
set -e

step "unionctl run -d, logs, exec, stop, start: a detached container keeps its writable layer"
$U run -d --name svc demo/busybox:1.0 sh -c 'trap "echo stopping; exit 0" TERM; echo up; while :; do sleep 0.2; done' >/dev/null
sleep 0.5
$U ps | show
$U exec svc sh -c 'echo "written by exec" > /root/exec-was-here'
$U logs svc | show
$U stop svc >/dev/null
$U ps -a --filter name=svc | show
$U start svc >/dev/null
echo "   after start: $($U exec svc cat /root/exec-was-here)"
$U rm -f svc >/dev/null

step "clean up: unmount (undoes the volume mounts, stops the daemon), remove everything"
$U unmount demo | show
$U rm -v demo again | show
$U volume rm demo-data | show
$U image rm demo/busybox:changed demo/busybox:1.0 | show
$U system df | show
echo
echo "== done"
