#!/usr/bin/env python3
"""Differential fuzzing of unionfs against the kernel's overlayfs.

For each seed: build identical lower layers twice, mount one copy with
`mount -t overlay` and the other with unionfs, run the same random sequence
of file-system operations on both, and compare every operation's result
(value or errno) and the merged trees: right after the run, after a unionfs
remount, and as the kernel overlay shows unionfs's upper.

usage: fuzz-differential.py UNIONFS_BIN [--seeds A-B] [--ops N]
Exit status 0 when every seed matched. Needs root.
"""
import argparse
import ctypes
import errno
import hashlib
import os
import random
import shutil
import stat
import subprocess
import sys
import tempfile
import time

LIBC = ctypes.CDLL(None, use_errno=True)
NAMES = ["a", "b", "c", "d"]
OPS = ["create", "write", "append", "trunc", "unlink", "mkdir", "rmdir", "rename",
       "rename_noreplace", "exchange", "link", "symlink", "chmod", "utime", "setxattr",
       "removexattr", "read", "open_unlink", "readdir", "stat", "mkfifo"]


def renameat2(a, b, flags):
    if LIBC.renameat2(-100, a.encode(), -100, b.encode(), flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def make_layers(base):
    """Two lower layers with merged dirs, a whiteout, an opaque dir, links."""
    l1, l2 = os.path.join(base, "l1"), os.path.join(base, "l2")
    for d in ["l2/a/b", "l2/b", "l2/c/d", "l1/a", "l1/d", "l1/b", "u", "w", "m"]:
        os.makedirs(os.path.join(base, d), exist_ok=True)
    files = {"l2/a/a": "1", "l2/a/b/c": "2", "l1/a/c": "3", "l1/a/b": "7", "l2/b/a": "4", "l1/d/d": "5", "l2/c/c2": "6"}
    for p, c in files.items():
        with open(os.path.join(base, p), "w") as f:
            f.write(c + "\n")
    os.link(os.path.join(l2, "b/a"), os.path.join(l2, "b/b"))
    os.link(os.path.join(l2, "a/a"), os.path.join(l2, "a/d"))              # visible lower hard links
    os.symlink("a", os.path.join(l2, "c/c"))
    os.mknod(os.path.join(l1, "c"), stat.S_IFCHR | 0o644, 0)          # whiteout of l2/c
    os.mknod(os.path.join(l1, "b/a"), stat.S_IFCHR | 0o644, 0)        # whiteout of l2/b/a
    os.setxattr(os.path.join(l1, "d"), "trusted.overlay.opaque", b"y")  # opaque l1/d
    os.setxattr(os.path.join(l2, "a/a"), "user.k", b"v")
    return f"{l1}:{l2}"


def run_ops(root, seed, n):
    rnd = random.Random(seed)
    log = []

    def path():
        return os.path.join(root, *[rnd.choice(NAMES) for _ in range(rnd.randint(1, 3))])

    opened = []

    def opn(p, flags, mode=0o777):
        fd = os.open(p, flags, mode)
        opened.append(fd)
        return fd

    for i in range(n):
        op, p, q = rnd.choice(OPS), path(), path()
        try:
            r = None
            if op == "create":
                fd = opn(p, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644)
                os.write(fd, b"x" * rnd.randint(0, 100))
            elif op == "write":
                fd = opn(p, os.O_WRONLY | os.O_NONBLOCK)
                os.pwrite(fd, b"w" * rnd.randint(1, 50), rnd.randint(0, 200))
            elif op == "append":
                fd = opn(p, os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK)
                os.write(fd, b"A" * rnd.randint(1, 20))
            elif op == "trunc":
                os.truncate(p, rnd.randint(0, 300))
            elif op == "unlink":
                os.unlink(p)
            elif op == "mkdir":
                os.mkdir(p, 0o755)
            elif op == "rmdir":
                os.rmdir(p)
            elif op == "rename":
                os.rename(p, q)
            elif op == "rename_noreplace":
                renameat2(p, q, 1)
            elif op == "exchange":
                renameat2(p, q, 2)
            elif op == "link":
                os.link(p, q)
            elif op == "symlink":
                os.symlink(rnd.choice(NAMES), p)
            elif op == "chmod":
                os.chmod(p, rnd.choice([0o600, 0o755, 0o4755, 0o700]))
            elif op == "utime":
                os.utime(p, ns=(rnd.randint(0, 10**18), rnd.randint(0, 10**18)), follow_symlinks=False)
            elif op == "setxattr":
                os.setxattr(p, "user." + rnd.choice(NAMES), b"v", follow_symlinks=False)
            elif op == "removexattr":
                os.removexattr(p, "user." + rnd.choice(NAMES), follow_symlinks=False)
            elif op == "read":
                fd = opn(p, os.O_RDONLY | os.O_NONBLOCK)
                r = hashlib.md5(os.read(fd, 100000)).hexdigest()
            elif op == "open_unlink":
                fd = opn(p, os.O_RDWR | os.O_NONBLOCK)
                os.unlink(p)
                os.write(fd, b"zz")
                os.lseek(fd, 0, 0)
                r = os.read(fd, 1000).hex()
            elif op == "readdir":
                r = sorted(os.listdir(p))
            elif op == "stat":
                st = os.lstat(p)
                r = (oct(st.st_mode), st.st_size if not stat.S_ISDIR(st.st_mode) else 0,
                     st.st_nlink if not stat.S_ISDIR(st.st_mode) else 0)
            elif op == "mkfifo":
                os.mkfifo(p)
        except OSError as e:
            r = "E" + errno.errorcode.get(e.errno, str(e.errno))
        finally:
            # Close what an operation left open when it failed half way.
            for fd in opened:
                try:
                    os.close(fd)
                except OSError:
                    pass
            opened.clear()
        log.append((i, op, p[len(root):], q[len(root):], r))
    return log


def tree(root):
    out = []
    for d, dirs, files in os.walk(root):
        for n in sorted(dirs + files):
            p = os.path.join(d, n)
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    h = hashlib.md5(f.read()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                h = os.readlink(p)
            else:
                h = ""
            xs = sorted((x, os.getxattr(p, x, follow_symlinks=False).hex())
                        for x in os.listxattr(p, follow_symlinks=False) if x.startswith("user."))
            out.append((p[len(root):], oct(st.st_mode), st.st_uid, st.st_gid,
                        0 if stat.S_ISDIR(st.st_mode) else st.st_size,
                        0 if stat.S_ISDIR(st.st_mode) else st.st_nlink, h, xs))
    return sorted(out)


class Mounts:
    """Every mount made here is undone, also when a comparison fails."""

    def __init__(self):
        self.points = []

    def kernel(self, lower, upper, work, mnt):
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={lower},upperdir={upper},workdir={work}", mnt], check=True)
        self.points.append(mnt)

    def unionfs(self, binary, lower, upper, work, mnt):
        subprocess.run([binary, "-o", f"lowerdir={lower},upperdir={upper},workdir={work}", mnt], check=True)
        self.points.append(mnt)

    def umount(self, mnt):
        if subprocess.run(["umount", mnt]).returncode != 0:
            subprocess.run(["umount", "-l", mnt])
        self.points.remove(mnt)

    def close(self):
        for m in list(self.points):
            self.umount(m)


def diff(a, b):
    sa, sb = set(map(repr, a)), set(map(repr, b))
    return sorted(sa - sb)[:3], sorted(sb - sa)[:3]


def one_seed(binary, seed, nops, tmp):
    k, u = os.path.join(tmp, "k"), os.path.join(tmp, "u")
    lk, lu = make_layers(k), make_layers(u)
    mounts = Mounts()
    problems = []
    try:
        mounts.kernel(lk, f"{k}/u", f"{k}/w", f"{k}/m")
        mounts.unionfs(binary, lu, f"{u}/u", f"{u}/w", f"{u}/m")
        ok_ops, u_ops = run_ops(f"{k}/m", seed, nops), run_ops(f"{u}/m", seed, nops)
        for a, b in zip(ok_ops, u_ops):
            if a != b:
                problems.append(f"op {a[0]} {a[1]} {a[2]} {a[3]}: kernel {a[4]!r}, unionfs {b[4]!r}")
                break
        want = tree(f"{k}/m")
        views = [("merged tree", tree(f"{u}/m"))]
        mounts.umount(f"{k}/m")
        mounts.umount(f"{u}/m")
        mounts.unionfs(binary, lu, f"{u}/u", f"{u}/w", f"{u}/m")
        views.append(("tree after remount", tree(f"{u}/m")))
        mounts.umount(f"{u}/m")
        os.makedirs(f"{u}/w2")
        mounts.kernel(lu, f"{u}/u", f"{u}/w2", f"{u}/m")
        views.append(("kernel over unionfs's upper", tree(f"{u}/m")))
        mounts.umount(f"{u}/m")
        for what, got in views:
            if got != want:
                only_k, only_u = diff(want, got)
                problems.append(f"{what}: kernel-only {only_k} unionfs-only {only_u}")
    finally:
        mounts.close()
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--seeds", default="1-20")
    ap.add_argument("--ops", type=int, default=300)
    args = ap.parse_args()
    lo, _, hi = args.seeds.partition("-")
    seeds = range(int(lo), int(hi or lo) + 1)
    failed = 0
    start = time.time()
    for seed in seeds:
        tmp = tempfile.mkdtemp(prefix="unionfs-fuzz.")
        try:
            problems = one_seed(os.path.abspath(args.binary), seed, args.ops, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if problems:
            failed += 1
            print(f"seed {seed}: FAILED")
            for p in problems:
                print("   ", p)
    passed = len(seeds) - failed
    print(f"fuzz-differential: {len(seeds)} seeds x {args.ops} ops in {time.time() - start:.0f}s")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
