# Sourced by the image and registry benchmarks: bench_image DIR builds the
# three-layer benchmark image (/usr/share/doc, /usr/sbin + /etc,
# /usr/share/perl; about 150 MB) as the OCI layout DIR/oci, tag `bench`,
# with umoci, and sets IMAGE to DIR/oci:bench.
bench_image() {
    local w=$1 i=0 src s
    echo "== building a 3-layer image from /usr/share/doc, /usr/sbin, /etc, /usr/share/perl (umoci)"
    umoci init --layout "$w/oci" >/dev/null
    umoci new --image "$w/oci:bench" >/dev/null
    for src in /usr/share/doc "/usr/sbin /etc" /usr/share/perl; do
        i=$((i + 1))
        mkdir -p "$w/l$i"
        for s in $src; do
            mkdir -p "$w/l$i$(dirname "$s")"
            cp -a "$s" "$w/l$i$(dirname "$s")/" 2>/dev/null || true
        done
        tar --format=pax -C "$w/l$i" -cf "$w/l$i.tar" .
        rm -rf "$w/l$i"
        umoci raw add-layer --image "$w/oci:bench" "$w/l$i.tar" >/dev/null
        rm -f "$w/l$i.tar"
    done
    IMAGE="$w/oci:bench"
}
