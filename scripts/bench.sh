#!/usr/bin/env bash
# The benchmarks, side by side with their peers in one run each:
#
#   scripts/bench.sh [fs] [OPTIONS]      the filesystem: kernel overlay vs unionfs
#                                        vs fuse-overlayfs (scripts/bench-fs.sh --help)
#   scripts/bench.sh programs [OPTIONS]  real programs on the filesystem: git,
#                                        sqlite, python venv/compileall/imports,
#                                        make -j2, fsx, a random-ops mix; kernel
#                                        overlay vs unionfs vs fuse-overlayfs
#                                        (scripts/bench-programs.sh --help)
#   scripts/bench.sh containers [RUNS]   create+mount+ls, disk and RSS per
#                                        container, 100 mounts; vs podman
#   scripts/bench.sh run [RUNS]          run --rm IMAGE true and exec, p50/p99;
#                                        vs podman with runc and crun
#   scripts/bench.sh registry [RUNS]     unionctl pull vs skopeo+umoci and podman
#   scripts/bench.sh images              unionctl image load vs umoci unpack
#   scripts/bench.sh layers [OPTIONS]    the layer-count sweep: N = 1..128 lower
#                                        layers, kernel overlay vs unionfs
#   scripts/bench.sh rss [OPTIONS]       daemon peak RSS after walking ~60k
#                                        entries and 10x as many; unionfs vs
#                                        fuse-overlayfs (scripts/bench_rss.py -h)
set -euo pipefail
cd "$(dirname "$0")"
case "${1:-fs}" in
    fs) [ $# -gt 0 ] && shift; exec ./bench-fs.sh "$@" ;;
    programs) shift; exec ./bench-programs.sh "$@" ;;
    containers) shift; exec ./bench-containers.sh "$@" ;;
    run) shift; exec ./bench-run.sh "$@" ;;
    registry) shift; exec ./bench-registry.sh "$@" ;;
    images) shift; exec ./bench-images.sh "$@" ;;
    layers)
        shift
        (cd .. && cargo build --release --quiet)
        exec python3 ./bench_layers.py --unionfs "$PWD/../target/release/unionfs" "$@"
        ;;
    rss)
        shift
        (cd .. && cargo build --release --quiet)
        exec python3 ./bench_rss.py --unionfs "$PWD/../target/release/unionfs" "$@"
        ;;
    -*) exec ./bench-fs.sh "$@" ;;
    *)
        sed -n '2,/^set -euo/p' "$(basename "$0")" | sed '$d; s/^# \{0,1\}//'
        exit 2
        ;;
esac
