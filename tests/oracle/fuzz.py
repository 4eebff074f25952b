#!/usr/bin/env python3
"""Differential fuzzing: the same random sequence of file-system operations
on the kernel's overlayfs and on unionfs (see overlay.differential for what
is compared), one sequence per seed.

usage: fuzz.py UNIONFS_BIN [--seeds A-B] [--ops N]
Prints failing seeds and a closing 'N passed, M failed'. Needs root.
"""
import argparse
import hashlib
import os
import random
import stat
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from overlay import differential, renameat2, result  # noqa: E402

NAMES = ["a", "b", "c", "d"]
OPS = ["create", "write", "append", "trunc", "unlink", "mkdir", "rmdir", "rename",
       "rename_noreplace", "exchange", "link", "symlink", "chmod", "utime", "setxattr",
       "removexattr", "read", "open_unlink", "readdir", "stat", "mkfifo"]


def setup(L):
    """Merged dirs, whiteouts, an opaque dir, lower hard links, a symlink."""
    for rel, data in {"a/a": "1", "a/b/c": "2", "b/a": "4", "c/c2": "6"}.items():
        L.file(1, rel, data)
    for rel, data in {"a/c": "3", "a/b": "7", "d/d": "5"}.items():
        L.file(0, rel, data)
    L.dir(1, "c/d")
    os.link(L.p(1, "b/a"), L.p(1, "b/b"))
    os.link(L.p(1, "a/a"), L.p(1, "a/d"))
    L.symlink(1, "c/c", "a")
    L.whiteout(0, "c")
    L.whiteout(0, "b/a")
    L.opaque(0, "d")
    os.setxattr(L.p(1, "a/a"), "user.k", b"v")
    return ops_for(setup.seed, setup.nops)


def ops_for(seed, n):
    def run(root):
        rnd = random.Random(seed)
        log = []
        opened = []

        def opn(p, flags, mode=0o777):
            fd = os.open(p, flags, mode)
            opened.append(fd)
            return fd

        def path():
            return os.path.join(root, *[rnd.choice(NAMES) for _ in range(rnd.randint(1, 3))])

        def one(op, p, q):
            if op == "create":
                os.write(opn(p, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644), b"x" * rnd.randint(0, 100))
            elif op == "write":
                os.pwrite(opn(p, os.O_WRONLY | os.O_NONBLOCK), b"w" * rnd.randint(1, 50), rnd.randint(0, 200))
            elif op == "append":
                os.write(opn(p, os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK), b"A" * rnd.randint(1, 20))
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
                return hashlib.md5(os.read(opn(p, os.O_RDONLY | os.O_NONBLOCK), 100000)).hexdigest()
            elif op == "open_unlink":
                fd = opn(p, os.O_RDWR | os.O_NONBLOCK)
                os.unlink(p)
                os.write(fd, b"zz")
                os.lseek(fd, 0, 0)
                return os.read(fd, 1000).hex()
            elif op == "readdir":
                return sorted(os.listdir(p))
            elif op == "stat":
                st = os.lstat(p)
                d = stat.S_ISDIR(st.st_mode)
                return (oct(st.st_mode), 0 if d else st.st_size, 0 if d else st.st_nlink)
            elif op == "mkfifo":
                os.mkfifo(p)
            return None

        for i in range(n):
            op, p, q = rnd.choice(OPS), path(), path()
            r = result(one, op, p, q)
            # Close what an operation left open, also when it failed half way.
            for fd in opened:
                result(os.close, fd)
            opened.clear()
            log.append((i, op, p[len(root):], q[len(root):], r))
        return log
    return run


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--seeds", default="1-50")
    ap.add_argument("--ops", type=int, default=400)
    ap.add_argument("--opts", default="", help="extra mount options for both sides, e.g. ,redirect_dir=on")
    args = ap.parse_args()
    lo, _, hi = args.seeds.partition("-")
    seeds = range(int(lo), int(hi or lo) + 1)
    binary = os.path.abspath(args.binary)
    failed = 0
    start = time.time()
    for seed in seeds:
        setup.seed, setup.nops = seed, args.ops
        problems = differential(binary, 2, setup, opts=args.opts)
        if problems:
            failed += 1
            print(f"seed {seed}: FAILED")
            for p in problems:
                print("    " + p)
    print(f"fuzz: {len(seeds)} seeds x {args.ops} operations in {time.time() - start:.0f}s")
    print(f"fuzz: {len(seeds) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
