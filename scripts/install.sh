#!/usr/bin/env bash
# Install unionfs, unionctl and mount.unionfs with man pages and shell
# completions; --uninstall removes exactly what an install put there.
#
#   scripts/install.sh [--prefix DIR] [--helper-dir DIR] [--debug] [--no-build] [--uninstall]
#
#   --prefix DIR      default /usr/local: DIR/bin/{unionfs,unionctl},
#                     DIR/sbin/mount.unionfs, DIR/share/man/man{1,8},
#                     DIR/share/{bash-completion/completions,zsh/site-functions,fish/vendor_completions.d}
#   --helper-dir DIR  where mount(8) looks for mount.TYPE helpers (default /sbin);
#                     gets a symlink to DIR/sbin/mount.unionfs unless that is the same directory
#   --debug           install the debug build (target/debug) instead of the release build
#   --no-build        do not run cargo: install what target/ already holds
#   --uninstall       remove what the install recorded in DIR/share/unionfs/install-manifest
#
# Idempotent: installing again replaces the same files. The manifest lists
# every file and every directory the install created, so uninstall removes
# those and nothing else (directories only when empty).
set -euo pipefail
cd "$(dirname "$0")/.."

prefix=/usr/local
helper_dir=/sbin
profile=release
build=1
uninstall=0
die() {
    echo "install.sh: $*" >&2
    exit 1
}
while [ $# -gt 0 ]; do
    case $1 in
    --prefix) [ $# -ge 2 ] || die "--prefix needs a directory"; prefix=$2; shift ;;
    --prefix=*) prefix=${1#--prefix=} ;;
    --helper-dir) [ $# -ge 2 ] || die "--helper-dir needs a directory"; helper_dir=$2; shift ;;
    --helper-dir=*) helper_dir=${1#--helper-dir=} ;;
    --debug) profile=debug ;;
    --no-build) build=0 ;;
    --uninstall) uninstall=1 ;;
    -h | --help) sed -n '2,19s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) die "unknown argument: $1" ;;
    esac
    shift
done
case $prefix in /*) ;; *) prefix=$PWD/$prefix ;; esac
case $helper_dir in /*) ;; *) helper_dir=$PWD/$helper_dir ;; esac
prefix=${prefix%/}
manifest=$prefix/share/unionfs/install-manifest

if [ "$uninstall" = 1 ]; then
    if [ ! -f "$manifest" ]; then
        echo "nothing installed under $prefix (no $manifest)"
        exit 0
    fi
    entries=$(cat -- "$manifest")
    rm -f -- "$manifest"
    # Files first, then the directories the install created, deepest first.
    grep '^f ' <<<"$entries" | cut -c3- | while IFS= read -r f; do
        rm -f -- "$f"
    done
    grep '^d ' <<<"$entries" | cut -c3- | awk '{ print length, $0 }' | sort -rn | cut -d' ' -f2- |
        while IFS= read -r d; do
            rmdir -- "$d" 2>/dev/null || true
        done
    echo "uninstalled from $prefix"
    exit 0
fi

if [ "$build" = 1 ]; then
    if [ "$profile" = release ]; then
        cargo build --release --workspace --bins
    else
        cargo build --workspace --bins
    fi
fi
target=${CARGO_TARGET_DIR:-target}/$profile
for b in unionfs unionctl mount-unionfs unionfs-docgen; do
    [ -x "$target/$b" ] || die "$target/$b is missing: build first (or drop --no-build)"
done

docs=$(mktemp -d)
trap 'rm -rf "$docs"' EXIT
"$target/unionfs-docgen" "$docs"

# What this run installs; merged with an earlier manifest at the end.
new_files=$(mktemp)
new_dirs=$(mktemp)
trap 'rm -rf "$docs" "$new_files" "$new_dirs"' EXIT

# mkdir -p, recording each directory it creates.
make_dir() {
    local d=$1 missing=()
    while [ ! -d "$d" ]; do
        missing=("$d" "${missing[@]}")
        d=$(dirname "$d")
    done
    for d in "${missing[@]}"; do
        mkdir -m 755 -- "$d"
        echo "d $d" >>"$new_dirs"
    done
}
put() { # put MODE SRC DEST
    make_dir "$(dirname "$3")"
    install -m "$1" -- "$2" "$3.tmp.$$"
    mv -f -- "$3.tmp.$$" "$3"
    echo "f $3" >>"$new_files"
}

put 755 "$target/unionfs" "$prefix/bin/unionfs"
put 755 "$target/unionctl" "$prefix/bin/unionctl"
put 755 "$target/mount-unionfs" "$prefix/sbin/mount.unionfs"
for page in "$docs"/man/man1/*.1; do put 644 "$page" "$prefix/share/man/man1/${page##*/}"; done
put 644 "$docs/man/man8/mount.unionfs.8" "$prefix/share/man/man8/mount.unionfs.8"
for name in unionfs unionctl mount.unionfs; do
    put 644 "$docs/completions/bash/$name" "$prefix/share/bash-completion/completions/$name"
    put 644 "$docs/completions/zsh/_$name" "$prefix/share/zsh/site-functions/_$name"
    put 644 "$docs/completions/fish/$name.fish" "$prefix/share/fish/vendor_completions.d/$name.fish"
done

# mount(8) runs /sbin/mount.TYPE: point it at the installed helper (it finds
# unionfs next to its real file, in ../bin).
make_dir "$helper_dir"
if [ "$(realpath -- "$helper_dir")" != "$(realpath -- "$prefix/sbin")" ]; then
    link=$helper_dir/mount.unionfs
    if [ -e "$link" ] && [ ! -L "$link" ]; then
        grep -qxF "f $link" "$manifest" 2>/dev/null || die "$link exists and is not ours: not replacing it"
    fi
    ln -sfn -- "$prefix/sbin/mount.unionfs" "$link"
    echo "f $link" >>"$new_files"
fi

make_dir "$(dirname "$manifest")"
{ cat -- "$manifest" 2>/dev/null || true; cat "$new_files" "$new_dirs"; } | sort -u >"$manifest.new"
mv -f -- "$manifest.new" "$manifest"
echo "installed into $prefix ($(grep -c '^f ' "$manifest") files); mount(8) helper: $helper_dir/mount.unionfs"
