#!/usr/bin/env python3
"""Daemon memory against tree size (scripts/bench.sh rss): the peak RSS
(VmHWM) of each FUSE daemon after a walk (find -printf '%s %m %n') of a tree
of about 60k entries and of one --scale times larger, fresh mount each, the
median of --runs. The trees are attribute-only copies (empty files) of
/usr/share and /usr/include: memory follows names, not data. Targets:
unionfs, --compare builds, fuse-overlayfs when installed. Prints a markdown
table with each target's growth."""
import argparse, os, shutil, statistics, subprocess, sys, tempfile, time
from bench_layers import sh, umount

def build(lower, copies):
    procs = []
    for i in range(copies):
        d = f"{lower}/c{i:02}"
        os.makedirs(d)
        for src in ("/usr/share", "/usr/include"):
            procs.append(subprocess.Popen(["cp", "-a", "--attributes-only", src, d]))
    for p in procs:
        p.wait()
    return sum(1 + len(ds) + len(fs) for _, ds, fs in os.walk(lower)) - 1

def one(cmd, opts, base, lower, mnt):
    for d in ("u", "w"):
        shutil.rmtree(f"{base}/{d}", ignore_errors=True)
        os.makedirs(f"{base}/{d}")
    o = f"lowerdir={lower},upperdir={base}/u,workdir={base}/w" + ("," + opts.lstrip(",") if opts else "")
    daemon = subprocess.Popen(cmd + ["-f", "-o", o, mnt], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(500):
            if os.path.ismount(mnt):
                break
            if daemon.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited before mounting")
            time.sleep(0.02)
        t0 = time.perf_counter()
        sh("find", ".", "-printf", "%s %m %n\n", cwd=mnt, stdout=subprocess.DEVNULL)
        secs = time.perf_counter() - t0
        with open(f"/proc/{daemon.pid}/status") as f:
            hwm = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
        return hwm, secs
    finally:
        umount(mnt)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()

def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--unionfs", required=True)
    ap.add_argument("--unionfs-opts", default="", help="extra mount options of the unionfs target (e.g. max_inodes=0)")
    ap.add_argument("--compare", action="append", default=[], help="another unionfs build (repeatable)")
    ap.add_argument("--compare-label", action="append", default=[])
    ap.add_argument("--compare-opts", action="append", default=[])
    ap.add_argument("--scale", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-fuse-overlayfs", action="store_true")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench rss: needs root")
    targets = [("unionfs", [os.path.abspath(a.unionfs)], a.unionfs_opts)]
    for i, c in enumerate(a.compare):
        label = a.compare_label[i] if i < len(a.compare_label) else f"compare{i + 1}"
        opts = a.compare_opts[i] if i < len(a.compare_opts) else ""
        targets.append((label, [os.path.abspath(c)], opts))
    if shutil.which("fuse-overlayfs") and not a.no_fuse_overlayfs:
        targets.append(("fuse-overlayfs", [shutil.which("fuse-overlayfs")], ""))
    work = tempfile.mkdtemp(prefix="unionfs-bench-rss.")
    mnt = f"{work}/mnt"
    os.makedirs(mnt)
    res = {}
    try:
        sizes = []
        for scale in (1, a.scale):
            lower = f"{work}/l{scale}"
            os.makedirs(lower)
            entries = build(lower, scale)
            sizes.append((scale, entries))
            for label, cmd, opts in targets:
                runs = []
                for _ in range(a.runs):
                    runs.append(one(cmd, opts, work, lower, mnt))
                res[(label, scale)] = (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))
                print(f"  {label} {scale}x: {res[(label, scale)][0] / 1024:.1f} MiB, walk {res[(label, scale)][1]:.2f} s",
                      file=sys.stderr)
            shutil.rmtree(lower)
    finally:
        umount(mnt)
        shutil.rmtree(work, ignore_errors=True)
    (s1, n1), (sn, nn) = sizes
    print(f"\ndaemon peak RSS (VmHWM) after a walk; trees of empty files: {n1} and {nn} entries; median of {a.runs}; "
          f"{os.cpu_count()} cores, {os.uname().release}\n")
    print(f"| target | {s1}x: RSS | {s1}x: walk | {sn}x: RSS | {sn}x: walk | RSS growth |")
    print("|---|---|---|---|---|---|")
    for label, _, _ in targets:
        r1, t1 = res[(label, s1)]
        rn, tn = res[(label, sn)]
        print(f"| {label} | {r1 / 1024:.1f} MiB | {t1:.2f} s | {rn / 1024:.1f} MiB | {tn:.2f} s | {rn / r1:.2f}x |")

if __name__ == "__main__":
    main()
