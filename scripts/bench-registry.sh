#!/usr/bin/env bash
# Benchmark `unionctl pull` from a loopback registry (Debian's docker-registry)
# against `skopeo copy docker://... oci:DIR` + `umoci unpack` and against
# `podman pull` (vfs), into empty stores, median of N runs each (caches
# dropped before each run); then a re-pull of an image whose layers are all
# stored, with the requests it made counted in the registry's access log.
#
# The image is the one scripts/bench-images.sh builds (three layers, about
# 150 MB: /usr/share/doc, /usr/sbin+/etc, /usr/share/perl), unless an OCI
# layout is given.
#
# usage: scripts/bench.sh registry [RUNS] [OCI_LAYOUT:TAG]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench-image.sh
. scripts/bench-image.sh
RUNS=${1:-3}
for c in umoci skopeo podman docker-registry; do
    command -v $c >/dev/null || { apt-get update -qq && apt-get install -y -qq umoci skopeo podman docker-registry >/dev/null; break; }
done
cargo build --release --quiet --bin unionctl
CTL=$PWD/target/release/unionctl
W=$(mktemp -d /tmp/unionctl-pullbench.XXXXXX)
REG_PID=
cleanup() {
    # SIGKILL: the registry's graceful stop can wait on idle connections.
    if [ -n "$REG_PID" ]; then kill -9 "$REG_PID" 2>/dev/null || true; wait "$REG_PID" 2>/dev/null || true; fi
    podman --root "$W/ps" --runroot "$W/pr" --storage-driver vfs rmi -a -f >/dev/null 2>&1 || true
    rm -rf "$W"
}
trap 'rc=$?; cleanup; exit $rc' EXIT

if [ -n "${2:-}" ]; then
    IMAGE=$2
else
    bench_image "$W"
fi

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$W/reg"
cat > "$W/reg.yml" <<YML
version: 0.1
log: {level: info}
storage: {filesystem: {rootdirectory: $W/reg}}
http: {addr: 127.0.0.1:$PORT}
YML
docker-registry serve "$W/reg.yml" >"$W/reg.log" 2>&1 &
REG_PID=$!
for _ in $(seq 100); do
    python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/v2/')" 2>/dev/null && break
    sleep 0.1
done
REF=127.0.0.1:$PORT/bench/img:1
skopeo copy --quiet --dest-tls-verify=false "oci:$IMAGE" "docker://$REF"
echo "   image: $(du -sh "$W/reg" | cut -f1) in the registry"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
run_timed() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>&1 || echo "FAILED: $*" >&2; t1=$(date +%s.%N); echo "$t1 - $t0" | bc; }
skopeo_umoci() {
    skopeo copy --quiet --src-tls-verify=false "docker://$REF" "oci:$W/sk:x" && umoci unpack --image "$W/sk:x" "$W/bundle"
}
podman_pull() {
    podman --root "$W/ps" --runroot "$W/pr" --storage-driver vfs pull -q --tls-verify=false "$REF"
}

ours=() sk=() pm=()
for r in $(seq 1 "$RUNS"); do
    rm -rf "$W/store" "$W/sk" "$W/bundle"
    podman --root "$W/ps" --runroot "$W/pr" --storage-driver vfs rmi -a -f >/dev/null 2>&1 || true
    sync; echo 3 > /proc/sys/vm/drop_caches
    ours+=("$(run_timed "$CTL" --root "$W/store" pull --tls-verify=false "$REF")")
    sync; echo 3 > /proc/sys/vm/drop_caches
    sk+=("$(run_timed skopeo_umoci)")
    sync; echo 3 > /proc/sys/vm/drop_caches
    pm+=("$(run_timed podman_pull)")
done
# Re-pull with every layer stored: count what it asked the registry for.
before=$(grep -c '"GET /v2/\|"HEAD /v2/' "$W/reg.log" || true)
again=$(run_timed "$CTL" --root "$W/store" pull --tls-verify=false "$REF")
after=$(grep -c '"GET /v2/\|"HEAD /v2/' "$W/reg.log" || true)
reqs=$( (grep '"GET /v2/\|"HEAD /v2/' "$W/reg.log" || true) | tail -n $((after - before)) | sed 's/.*"\(GET\|HEAD\) \([^ ]*\).*/\1 \2/' | tr '\n' ' ')

m_ours=$(printf '%s\n' "${ours[@]}" | median)
m_sk=$(printf '%s\n' "${sk[@]}" | median)
m_pm=$(printf '%s\n' "${pm[@]}" | median)
echo
echo "| pull into an empty store | median of $RUNS (s) |"
echo "|---|---|"
printf '| unionctl pull | %.2f |\n' "$m_ours"
printf '| skopeo copy + umoci unpack | %.2f |\n' "$m_sk"
printf '| podman pull (vfs) | %.2f |\n' "$m_pm"
printf '| unionctl re-pull, all layers stored | %.2f (%s requests: %s) |\n' "$again" "$((after - before))" "$reqs"
echo
echo "runs: unionctl ${ours[*]} / skopeo+umoci ${sk[*]} / podman ${pm[*]}"
