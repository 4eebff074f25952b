#!/usr/bin/env bash
# scripts/mkimage.sh OUT NAME:TAG DIR... : an OCI image layout at OUT, one
# uncompressed layer per directory (bottom first; OCI whiteouts `.wh.NAME`
# in a directory delete NAME from the layers below), Cmd /bin/sh. An argument
# ending in .tar is used as a layer as it is. $MKIMAGE_CONFIG replaces the
# image's "config" object (JSON). Needs only tar and sha256sum.
set -euo pipefail
out=$1
name=$2
shift 2
mkdir -p "$out/blobs/sha256"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
blob() { # FILE -> its digest, stored in the layout
    local d
    d=$(sha256sum "$1" | cut -c1-64)
    # a hard link where it can (a cached Debian tar is big), else a copy
    ln -f "$(realpath "$1")" "$out/blobs/sha256/$d" 2>/dev/null || cp "$1" "$out/blobs/sha256/$d"
    echo "$d"
}
layers=""
diffs=""
history=""
n=0
for dir in "$@"; do
    if [ -f "$dir" ] && [ "${dir%.tar}" != "$dir" ]; then
        ln -s "$(realpath "$dir")" "$work/l$n.tar"
    else
        tar --numeric-owner --owner=0 --group=0 --sort=name -C "$dir" -cf "$work/l$n.tar" .
    fi
    d=$(blob "$work/l$n.tar")
    layers="$layers${layers:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"sha256:$d\",\"size\":$(stat -c %s "$work/l$n.tar")}"
    diffs="$diffs${diffs:+,}\"sha256:$d\""
    history="$history${history:+,}{\"created_by\":\"layer $n: $(basename "$dir")\"}"
    n=$((n + 1))
done
default_config='{"Cmd":["/bin/sh"],"Env":["PATH=/bin"]}'
arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
printf '{"architecture":"%s","os":"linux","config":%s,"rootfs":{"type":"layers","diff_ids":[%s]},"history":[%s]}' \
    "$arch" "${MKIMAGE_CONFIG:-$default_config}" "$diffs" "$history" > "$work/config.json"
cfg=$(blob "$work/config.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[%s]}' \
    "$cfg" "$(stat -c %s "$work/config.json")" "$layers" > "$work/manifest.json"
man=$(blob "$work/manifest.json")
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"annotations":{"org.opencontainers.image.ref.name":"%s"}}]}' \
    "$man" "$(stat -c %s "$work/manifest.json")" "$name" > "$out/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' > "$out/oci-layout"
