#!/usr/bin/env python3
"""Layer-count sweep (scripts/bench.sh layers): the same files spread over N
lower layers, every layer holding every directory; walk-cold, walk-warm,
negative lookups and a read of every file, side by side on the kernel overlay
and unionfs (and fuse-overlayfs when installed), median of --runs, fresh mount
per run. Prints a markdown table and each target's growth from the smallest
to the largest N."""
import argparse, os, shutil, statistics, subprocess, sys, tempfile, time

def sh(*a, **kw):
    return subprocess.run(a, check=True, **kw)

def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3")

def build(base, n, files, dirs):
    per_dir = files // dirs
    for l in range(n):
        for d in range(dirs):
            os.makedirs(f"{base}/{l}/d{d:03}", exist_ok=True)
    for i in range(files):
        d, l = i % dirs, i % n
        with open(f"{base}/{l}/d{d:03}/f{i:05}", "w") as f:
            f.write("x" * (i % 512))
    return per_dir

def mount(target, base, n, mnt, bins):
    # A fresh empty upper per run (the kernel wants one, or two lowers).
    for d in ("u", "w"):
        shutil.rmtree(f"{base}/{d}", ignore_errors=True)
        os.makedirs(f"{base}/{d}")
    o = "lowerdir=" + ":".join(str(l) for l in range(n)) + ",upperdir=u,workdir=w"
    if target == "kernel":
        sh("mount", "-t", "overlay", "overlay", "-o", o, mnt, cwd=base)
    elif target == "fuse-overlayfs":
        sh("fuse-overlayfs", "-o", o, mnt, cwd=base)
    else:
        sh(bins[target], "-o", o, mnt, cwd=base)

def umount(mnt):
    subprocess.run(["umount", mnt], check=False)
    for _ in range(200):
        if not os.path.ismount(mnt):
            return
        time.sleep(0.01)
    subprocess.run(["umount", "-l", mnt], check=False)

def walk(mnt):
    for root, ds, fs in os.walk(mnt):
        for x in fs:
            os.lstat(os.path.join(root, x))

def misses(mnt, files, dirs):
    for i in range(files):
        try:
            os.lstat(f"{mnt}/d{i % dirs:03}/missing{i:05}")
        except FileNotFoundError:
            pass

def read_all(mnt, files, dirs):
    for i in range(files):
        with open(f"{mnt}/d{i % dirs:03}/f{i:05}", "rb") as f:
            f.read()

def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--unionfs", required=True)
    ap.add_argument("--layers", default="1,8,32,128")
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--dirs", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--compare", help="another unionfs binary to run side by side (e.g. a build before a change)")
    ap.add_argument("--compare-label", default="compare")
    ap.add_argument("--no-fuse-overlayfs", action="store_true")
    a = ap.parse_args()
    targets = ["kernel", "unionfs"] + ([a.compare_label] if a.compare else [])
    if shutil.which("fuse-overlayfs") and not a.no_fuse_overlayfs:
        targets.append("fuse-overlayfs")
    bins = {"unionfs": os.path.abspath(a.unionfs), a.compare_label: a.compare and os.path.abspath(a.compare)}
    work = tempfile.mkdtemp(prefix="unionfs-bench-layers.")
    mnt = f"{work}/mnt"
    os.makedirs(mnt)
    results = {}  # (n, workload, target) -> secs
    try:
        for n in [int(x) for x in a.layers.split(",")]:
            base = f"{work}/n{n}"
            build(base, n, a.files, a.dirs)
            for wl in ["walk-cold", "walk-warm", "misses", "read-all"]:
                for t in targets:
                    times = []
                    for _ in range(a.runs):
                        mount(t, base, n, mnt, bins)
                        try:
                            if wl == "walk-warm":
                                walk(mnt)
                            if wl in ("walk-cold", "misses", "read-all"):
                                drop_caches()
                            t0 = time.perf_counter()
                            if wl.startswith("walk"):
                                walk(mnt)
                            elif wl == "misses":
                                misses(mnt, a.files, a.dirs)
                            else:
                                read_all(mnt, a.files, a.dirs)
                            times.append(time.perf_counter() - t0)
                        finally:
                            umount(mnt)
                    results[(n, wl, t)] = statistics.median(times)
            shutil.rmtree(base)
    finally:
        umount(mnt)
        shutil.rmtree(work, ignore_errors=True)
    ns = sorted({k[0] for k in results})
    print(f"\nlayer-count sweep: {a.files} files in {a.dirs} dirs over N lower layers (every layer has every dir); "
          f"median of {a.runs}; {os.cpu_count()} cores, {os.uname().release}\n")
    print("| workload | N | " + " | ".join(targets) + " | " + " | ".join(f"{t}/kernel" for t in targets[1:]) + " |")
    print("|---|---|" + "---|" * (2 * len(targets) - 1))
    for wl in ["walk-cold", "walk-warm", "misses", "read-all"]:
        for n in ns:
            k = results[(n, wl, "kernel")]
            row = [f"{results[(n, wl, t)]:.3f} s" for t in targets]
            ratios = [f"{results[(n, wl, t)] / k:.2f}x" for t in targets[1:]]
            print(f"| {wl} | {n} | " + " | ".join(row) + " | " + " | ".join(ratios) + " |")
    print(f"\ngrowth from N={ns[0]} to N={ns[-1]} (time at N={ns[-1]} / time at N={ns[0]}):\n")
    print("| workload | " + " | ".join(targets) + " |")
    print("|---|" + "---|" * len(targets))
    for wl in ["walk-cold", "walk-warm", "misses", "read-all"]:
        print(f"| {wl} | " + " | ".join(f"{results[(ns[-1], wl, t)] / results[(ns[0], wl, t)]:.2f}x" for t in targets) + " |")

if __name__ == "__main__":
    sys.exit(main())
