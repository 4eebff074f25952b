#!/usr/bin/env python3
"""Differential scenarios: each runs on the kernel's `mount -t overlay` and on
unionfs over identical fresh layers, and compares every operation's result
(value or errno), the merged tree, the tree after a unionfs remount, and the
tree the kernel overlay shows over unionfs's upper.

A scenario is a function that fills the lower layers (`L`, top layer 0) and
returns the operations to run on the mounted root.

usage: scenarios.py UNIONFS_BIN [-k SUBSTRING] [--list]
Prints one line per scenario and a closing 'N passed, M failed'. Needs root.
"""
import argparse
import mmap
import os
import pickle
import stat
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from overlay import differential, renameat2, result  # noqa: E402

SCENARIOS = []


def scenario(layers=2, opts=""):
    def reg(fn):
        fn.layers = layers
        fn.opts = opts
        SCENARIOS.append(fn)
        return fn
    return reg


def j(root, *parts):
    return os.path.join(root, *parts)


def read(p):
    with open(p, "rb") as f:
        return f.read().decode(errors="replace")


def write(p, data, flags=os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode=0o644):
    fd = os.open(p, flags, mode)
    try:
        return os.write(fd, data.encode() if isinstance(data, str) else data)
    finally:
        os.close(fd)


def lstat_t(p):
    """The parts of lstat that both implementations must agree on."""
    st = os.lstat(p)
    is_dir = stat.S_ISDIR(st.st_mode)
    return (oct(st.st_mode), st.st_uid, st.st_gid, 0 if is_dir else st.st_size, 0 if is_dir else st.st_nlink)


def ls(p):
    return sorted(os.listdir(p))


def as_user(uid, gid, fn, *args):
    """Run fn in a child process that dropped to uid/gid; returns result()."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            out = result(fn, *args)
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            out = f"child error {e!r}"
        os.write(w, pickle.dumps(out))
        os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return pickle.loads(data)


NOBODY = (65534, 65534)


# ------------------------------------------------------------------ lookup
@scenario(layers=3)
def lookup_precedence(L):
    L.file(0, "f", "top"); L.file(1, "f", "mid"); L.file(2, "f", "bottom")
    L.file(2, "only_bottom", "b"); L.file(1, "d/x", "mid-x"); L.file(2, "d/x", "bottom-x")
    L.file(2, "d/y", "y"); L.dir(1, "d", mode=0o750)
    return lambda r: [result(read, j(r, "f")), result(read, j(r, "only_bottom")), result(read, j(r, "d/x")),
                      result(read, j(r, "d/y")), result(ls, j(r, "d")), result(lstat_t, j(r, "d")),
                      result(lstat_t, j(r, "f"))]


@scenario()
def nondir_hides_lower_dir(L):
    L.file(0, "x", "file on top"); L.file(1, "x/inner", "hidden"); L.dir(0, "y"); L.file(1, "y", "file below dir")
    return lambda r: [result(read, j(r, "x")), result(os.lstat, j(r, "x/inner")), result(ls, j(r, "y")),
                      result(lstat_t, j(r, "y")), result(ls, r)]


@scenario(layers=3)
def lower_whiteouts_and_opaque(L):
    L.file(2, "gone", "x"); L.whiteout(1, "gone"); L.file(2, "d/a", "a"); L.file(2, "d/b", "b")
    L.opaque(1, "d"); L.file(1, "d/c", "c"); L.file(2, "e/keep", "k"); L.whiteout(0, "e/keep")
    L.file(1, "e/new", "n")
    return lambda r: [result(ls, r), result(ls, j(r, "d")), result(ls, j(r, "e")),
                      result(os.lstat, j(r, "gone")), result(read, j(r, "d/c"))]


@scenario()
def whiteouts_never_visible_and_recreate(L):
    L.file(1, "a", "lower a"); L.whiteout(0, "a"); L.dir(1, "d"); L.file(1, "d/f", "f"); L.whiteout(0, "d")
    return lambda r: [result(ls, r), result(write, j(r, "a"), "new a"), result(read, j(r, "a")),
                      result(os.mkdir, j(r, "d")), result(ls, j(r, "d")), result(lstat_t, j(r, "a"))]


# ----------------------------------------------------------------- copy-up
@scenario()
def copy_up_data(L):
    L.file(1, "dir/sub/f", "0123456789", mode=0o640, uid=1000, gid=1001)
    L.dir(1, "dir", mode=0o711, uid=7, gid=8); L.dir(1, "dir/sub", mode=0o750, uid=9, gid=10)
    os.setxattr(L.p(1, "dir"), "user.parent", b"kept")
    def ops(r):
        return [result(write, j(r, "dir/sub/f"), "ab", os.O_WRONLY), result(read, j(r, "dir/sub/f")),
                result(lstat_t, j(r, "dir")), result(lstat_t, j(r, "dir/sub")), result(lstat_t, j(r, "dir/sub/f"))]
    return ops


@scenario()
def copy_up_metadata_each_kind(L):
    for n in ("m", "o", "t", "x", "rx"):
        L.file(1, n, n * 3, mode=0o644, uid=1000, gid=1000)
    os.setxattr(L.p(1, "rx"), "user.gone", b"1"); os.setxattr(L.p(1, "x"), "user.keep", b"k")
    L.symlink(1, "sl", "m")
    def ops(r):
        return [result(os.chmod, j(r, "m"), 0o600), result(os.chown, j(r, "o"), 5, 6),
                result(os.utime, j(r, "t"), ns=(10**9, 2 * 10**9)),
                result(os.setxattr, j(r, "x"), "user.new", b"v"), result(os.removexattr, j(r, "rx"), "user.gone"),
                result(os.chown, j(r, "sl"), 3, 4, follow_symlinks=False),
                result(os.utime, j(r, "sl"), ns=(5, 6), follow_symlinks=False),
                result(lstat_t, j(r, "m")), result(lstat_t, j(r, "o")), result(os.listxattr, j(r, "x")),
                result(os.listxattr, j(r, "rx")), result(lstat_t, j(r, "sl"))]
    return ops


@scenario()
def truncation(L):
    L.file(1, "t0", "x" * 5000); L.file(1, "t1", "y" * 5000); L.file(1, "t2", "z" * 100); L.file(1, "t3", "w" * 100)
    def ops(r):
        out = [result(os.truncate, j(r, "t0"), 0), result(os.truncate, j(r, "t1"), 10),
               result(os.truncate, j(r, "t2"), 100000), result(write, j(r, "t3"), "new")]
        return out + [result(lstat_t, j(r, n)) for n in ("t0", "t1", "t2", "t3")] + [result(read, j(r, "t1"))]
    return ops


@scenario()
def open_flags(L):
    L.file(1, "app", "start\n"); L.file(1, "ex", "exists")
    def ops(r):
        return [result(write, j(r, "app"), "more\n", os.O_WRONLY | os.O_APPEND),
                result(write, j(r, "ex"), "x", os.O_WRONLY | os.O_CREAT | os.O_EXCL),
                result(write, j(r, "new"), "n", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600),
                result(write, j(r, "new"), "", os.O_WRONLY | os.O_TRUNC),
                result(read, j(r, "app")), result(lstat_t, j(r, "new"))]
    return ops


# ----------------------------------------------------- unlink / rmdir / mkdir
@scenario()
def unlink_and_recreate(L):
    L.file(1, "a", "lower"); L.file(1, "b", "lower b"); L.file(0, "c", "upper-layer c")
    def ops(r):
        return [result(os.unlink, j(r, "a")), result(os.lstat, j(r, "a")), result(write, j(r, "a"), "again"),
                result(read, j(r, "a")), result(os.unlink, j(r, "b")), result(os.unlink, j(r, "b")),
                result(os.unlink, j(r, "c")), result(os.symlink, "x", j(r, "c")), result(ls, r)]
    return ops


@scenario()
def rmdir_mkdir_opaque(L):
    L.file(1, "d/a", "a"); L.file(1, "d/sub/b", "b"); L.dir(1, "e")
    def ops(r):
        return [result(os.rmdir, j(r, "d")), result(os.unlink, j(r, "d/a")), result(os.unlink, j(r, "d/sub/b")),
                result(os.rmdir, j(r, "d/sub")), result(os.rmdir, j(r, "d")), result(os.mkdir, j(r, "d"), 0o700),
                result(ls, j(r, "d")), result(lstat_t, j(r, "d")), result(os.rmdir, j(r, "e")),
                result(os.mkdir, j(r, "e")), result(write, j(r, "e/new"), "n"), result(ls, j(r, "e"))]
    return ops


@scenario()
def rmdir_lower_only_entries(L):
    L.file(1, "d/x", "x"); L.dir(0, "d")
    return lambda r: [result(os.rmdir, j(r, "d")), result(ls, j(r, "d"))]


# ----------------------------------------------------------------- renames
@scenario()
def rename_files(L):
    L.file(1, "a", "A"); L.file(1, "b", "B"); L.file(1, "c", "C"); L.file(1, "sub/d", "D")
    def ops(r):
        return [result(os.rename, j(r, "a"), j(r, "a2")), result(os.rename, j(r, "b"), j(r, "c")),
                result(os.rename, j(r, "sub/d"), j(r, "d")), result(os.rename, j(r, "d"), j(r, "sub/d")),
                result(os.rename, j(r, "a2"), j(r, "a")), result(ls, r), result(ls, j(r, "sub")),
                result(read, j(r, "c"))]
    return ops


@scenario()
def rename_noreplace_exchange(L):
    L.file(1, "a", "A"); L.file(1, "b", "B"); L.file(1, "w", "W"); L.whiteout(0, "w")
    def ops(r):
        return [result(renameat2, j(r, "a"), j(r, "b"), 1), result(renameat2, j(r, "a"), j(r, "w"), 1),
                result(renameat2, j(r, "w"), j(r, "b"), 2), result(renameat2, j(r, "b"), j(r, "nope"), 2),
                result(renameat2, j(r, "b"), j(r, "x"), 4), result(ls, r), result(read, j(r, "w")),
                result(read, j(r, "b"))]
    return ops


@scenario(opts=",redirect_dir=off")
def rename_dirs(L):
    L.file(1, "lowerdir/f", "f"); L.dir(1, "target")
    def ops(r):
        out = [result(os.mkdir, j(r, "up")), result(write, j(r, "up/f"), "u"),
               result(os.rename, j(r, "up"), j(r, "up2")), result(os.rename, j(r, "up2"), j(r, "target")),
               result(ls, j(r, "target")), result(os.mkdir, j(r, "d1")), result(os.mkdir, j(r, "d2")),
               result(renameat2, j(r, "d1"), j(r, "d2"), 2)]
        # Lower dirs: EXDEV with redirect_dir=off (mv then copies); both sides must agree.
        out.append(result(os.rename, j(r, "lowerdir"), j(r, "moved")))
        return out + [result(ls, r)]
    return ops


# ------------------------------------------- kernel caches: listings, misses
@scenario()
def cached_listings_and_negative_entries(L):
    L.file(1, "d/a", "a"); L.file(1, "d/b", "b"); L.file(0, "src", "s")
    def ops(r):
        out = [result(ls, j(r, "d")), result(lstat_t, j(r, "d/new")), result(lstat_t, j(r, "d/ln")),
               result(lstat_t, j(r, "d/mv"))]
        # Misses and a listing are cached now; each change must show at once.
        out += [result(write, j(r, "d/new"), "n"), result(os.link, j(r, "src"), j(r, "d/ln")),
                result(os.rename, j(r, "d/a"), j(r, "d/mv")), result(ls, j(r, "d")),
                result(lstat_t, j(r, "d/new")), result(lstat_t, j(r, "d/ln")), result(read, j(r, "d/mv")),
                result(lstat_t, j(r, "d/a")), result(os.unlink, j(r, "d/b")), result(ls, j(r, "d")),
                result(os.mkdir, j(r, "d/b")), result(ls, j(r, "d")), result(lstat_t, j(r, "d/b"))]
        return out
    return ops


def _dir_walker(path):
    """opendir/readdir/telldir/seekdir of libc (the offsets the kernel hands
    through from the filesystem)."""
    import ctypes

    class Dirent(ctypes.Structure):
        _fields_ = [("d_ino", ctypes.c_uint64), ("d_off", ctypes.c_int64), ("d_reclen", ctypes.c_ushort),
                    ("d_type", ctypes.c_ubyte), ("d_name", ctypes.c_char * 256)]
    libc = ctypes.CDLL(None, use_errno=True)
    libc.opendir.restype = ctypes.c_void_p
    libc.readdir.restype = ctypes.POINTER(Dirent)
    libc.readdir.argtypes = [ctypes.c_void_p]
    libc.telldir.restype = ctypes.c_long
    libc.telldir.argtypes = [ctypes.c_void_p]
    libc.seekdir.argtypes = [ctypes.c_void_p, ctypes.c_long]
    libc.closedir.argtypes = [ctypes.c_void_p]
    libc.rewinddir.argtypes = [ctypes.c_void_p]
    d = libc.opendir(path.encode())
    if not d:
        raise OSError(ctypes.get_errno(), "opendir")

    def next_name():
        e = libc.readdir(d)
        return e.contents.d_name.decode() if e else None
    return libc, d, next_name


@scenario()
def interleaved_and_abandoned_readings(L):
    # Listings are known by their offsets alone (no OPENDIR): readings of one
    # directory at once, one left half way, seekdir back, a reading that
    # deletes as it goes, and a rewind after changes.
    for i in range(1500):
        L.file(1 if i % 3 else 0, f"big/entry-with-a-long-name-{i:04d}", "x")
    for i in range(300):
        L.file(1, f"del/f{i:03d}", "x")

    def ops(r):
        big = j(r, "big")
        a, b = os.scandir(big), os.scandir(big)
        seen_a, seen_b = [], []
        for ea, eb in zip(a, b):
            seen_a.append(ea.name)
            seen_b.append(eb.name)
        seen_a += [e.name for e in a]
        seen_b += [e.name for e in b]
        half = os.scandir(big)
        first = [next(half).name for _ in range(700)]
        full = sorted(os.listdir(big))
        libc, d, next_name = _dir_walker(big)
        for _ in range(900):
            next_name()
        pos = libc.telldir(d)
        at_pos = [next_name() for _ in range(5)]
        walked = 905
        while next_name() is not None:
            walked += 1
        libc.seekdir(d, pos)
        again = [next_name() for _ in range(5)]
        libc.closedir(d)
        half.close()
        # rm -r's way: unlink each name as the reading returns it.
        removed = 0
        with os.scandir(j(r, "del")) as it:
            for e in it:
                os.unlink(e.path)
                removed += 1
        left = os.listdir(j(r, "del"))
        # A rewind shows the directory as it is now.
        libc, d, next_name = _dir_walker(big)
        for _ in range(10):
            next_name()
        os.unlink(j(big, "entry-with-a-long-name-0001"))
        write(j(big, "fresh"), "f")
        libc.rewinddir(d)
        after = []
        while (n := next_name()) is not None:
            after.append(n)
        libc.closedir(d)
        return [len(seen_a), sorted(seen_a) == sorted(seen_b), len(set(seen_a)), len(first), len(set(first)),
                len(full), at_pos == again, walked == len(full) + 2, removed, left,
                sorted(x for x in after if x not in (".", "..")) == sorted(os.listdir(big)), "fresh" in after,
                "entry-with-a-long-name-0001" in after, result(os.rmdir, j(r, "del"))]
    return ops


@scenario()
def setuid_setgid_cleared_by_writes_of_others(L):
    # The kernel clears setuid (and setgid when group-executable) when a
    # caller without CAP_FSETID writes, truncates or opens with O_TRUNC;
    # root keeps them; chown clears them for everyone.
    for name in ("w", "t", "o", "g", "k", "r", "c", "up"):
        L.file(1, f"d/{name}", "data")

    def ops(r):
        def mode(n):
            return oct(os.lstat(j(r, "d", n)).st_mode)
        # The harness's private temp dirs: passable for the other user.
        os.chmod(os.path.dirname(r), 0o711)
        os.chmod(os.path.dirname(os.path.dirname(r)), 0o711)
        out = []
        for n, m in (("w", 0o4777), ("t", 0o6777), ("o", 0o4777), ("g", 0o2777), ("k", 0o2767), ("r", 0o6777),
                     ("c", 0o6777)):
            out.append(result(os.chmod, j(r, "d", n), m))
        # A file made through the mount (passthrough-eligible as root).
        write(j(r, "d", "new"), "n")
        os.chmod(j(r, "d", "new"), 0o4777)
        out += [as_user(*NOBODY, write, j(r, "d/w"), "x", os.O_WRONLY),
                as_user(*NOBODY, os.truncate, j(r, "d/t"), 2),
                as_user(*NOBODY, write, j(r, "d/o"), "y", os.O_WRONLY | os.O_TRUNC),
                as_user(*NOBODY, write, j(r, "d/g"), "z", os.O_WRONLY | os.O_APPEND),
                as_user(*NOBODY, write, j(r, "d/k"), "z", os.O_WRONLY),
                as_user(*NOBODY, write, j(r, "d/new"), "u", os.O_WRONLY),
                result(write, j(r, "d/r"), "root", os.O_WRONLY), result(os.truncate, j(r, "d/r"), 1),
                result(os.chown, j(r, "d/c"), 0, 0)]
        out += [(n, mode(n), read(j(r, "d", n))) for n in ("w", "t", "o", "g", "k", "new", "r", "c")]
        return out
    return ops


# ------------------------------------- redirect_dir (on: unionfs's default)
@scenario()
def redirect_rename_in_place_and_back(L):
    L.file(1, "d/f", "f"); L.file(1, "d/sub/g", "g"); L.file(0, "d/h", "h")
    def ops(r):
        return [result(os.rename, j(r, "d"), j(r, "e")), result(ls, r), result(ls, j(r, "e")),
                result(read, j(r, "e/sub/g")), result(os.rename, j(r, "e"), j(r, "d2")),
                result(os.rename, j(r, "d2"), j(r, "d")), result(ls, j(r, "d")), result(ls, r)]
    return ops


@scenario()
def redirect_move_into_other_dirs(L):
    L.file(1, "a/b/c/f", "f"); L.dir(1, "x/y"); L.file(1, "x/y/z", "z"); L.file(0, "a/b/n", "n")
    def ops(r):
        return [result(os.rename, j(r, "a/b"), j(r, "x/y/b")), result(ls, j(r, "a")), result(ls, j(r, "x/y/b")),
                result(write, j(r, "x/y/b/c/f"), "changed"), result(os.unlink, j(r, "x/y/b/n")),
                result(os.rename, j(r, "x/y"), j(r, "y2")), result(ls, j(r, "y2/b/c")),
                result(os.rename, j(r, "y2/b/c"), j(r, "c")), result(read, j(r, "c/f")),
                result(os.mkdir, j(r, "a/b")), result(ls, j(r, "a/b")), result(ls, r)]
    return ops


@scenario()
def redirect_over_whiteouts_and_opaque(L):
    L.file(1, "src/f", "f"); L.file(1, "gone/g", "g"); L.file(1, "old/o", "o"); L.file(1, "t/x", "x")
    def ops(r):
        out = [result(os.unlink, j(r, "gone/g")), result(os.rmdir, j(r, "gone")),
               result(os.rename, j(r, "src"), j(r, "gone")), result(ls, j(r, "gone")),
               result(os.unlink, j(r, "t/x")), result(os.rename, j(r, "old"), j(r, "t")),
               result(ls, j(r, "t")), result(os.mkdir, j(r, "new")), result(os.rename, j(r, "t"), j(r, "new/t")),
               result(ls, j(r, "new/t")), result(renameat2, j(r, "gone"), j(r, "new"), 2),
               result(ls, j(r, "gone")), result(ls, j(r, "new"))]
        return out + [result(ls, r)]
    return ops


@scenario()
def redirect_rm_rf_and_recreate(L):
    L.file(1, "d/a/f", "f"); L.file(1, "d/b", "b"); L.file(0, "d/a/g", "g")
    def ops(r):
        import shutil
        out = [result(os.rename, j(r, "d"), j(r, "e")), result(shutil.rmtree, j(r, "e")), result(ls, r),
               result(os.mkdir, j(r, "e")), result(ls, j(r, "e")), result(os.mkdir, j(r, "d")),
               result(ls, j(r, "d"))]
        return out
    return ops


@scenario(layers=3, opts=",redirect_dir=on")
def redirect_in_lower_layers_stacked(L):
    # The upper of an earlier mount as a lower layer: layer 0 holds "e", moved
    # there from "d" (relative record), and "m/n", moved from "d/s" (absolute).
    L.file(2, "d/f", "f"); L.file(2, "d/s/t", "t"); L.file(1, "d/g", "g")
    L.dir(0, "e"); os.setxattr(L.p(0, "e"), "trusted.overlay.redirect", b"d"); L.whiteout(0, "d")
    L.dir(0, "m/n"); os.setxattr(L.p(0, "m/n"), "trusted.overlay.redirect", b"/d/s")
    def ops(r):
        return [result(ls, r), result(ls, j(r, "e")), result(read, j(r, "e/f")), result(ls, j(r, "m/n")),
                result(os.rename, j(r, "e"), j(r, "m/e")), result(ls, j(r, "m/e")), result(read, j(r, "m/e/g")),
                result(os.rename, j(r, "m/n"), j(r, "n2")), result(ls, j(r, "n2"))]
    return ops


def stacked_layers(L):
    L.file(2, "d/f", "f"); L.file(1, "d/g", "g")
    L.dir(0, "e"); os.setxattr(L.p(0, "e"), "trusted.overlay.redirect", b"d"); L.whiteout(0, "d")
    def ops(r):
        return [result(ls, r), result(ls, j(r, "e")), result(os.rename, j(r, "e"), j(r, "e2")), result(ls, j(r, "e2"))]
    return ops


@scenario(layers=3, opts=",redirect_dir=follow")
def redirect_follow_only(L):
    return stacked_layers(L)


@scenario(layers=3, opts=",redirect_dir=nofollow")
def redirect_nofollow(L):
    return stacked_layers(L)


# -------------------------------------------------------------- hard links
@scenario()
def hard_links(L):
    L.file(1, "f", "data"); L.file(1, "g", "g")
    os.link(L.p(1, "g"), L.p(1, "g2"))
    def ops(r):
        out = [result(os.link, j(r, "f"), j(r, "f2")), result(lstat_t, j(r, "f")), result(lstat_t, j(r, "f2"))]
        out.append(result(lambda: os.stat(j(r, "f")).st_ino == os.stat(j(r, "f2")).st_ino))
        out += [result(write, j(r, "f2"), "x", os.O_WRONLY | os.O_APPEND), result(read, j(r, "f")),
                result(os.unlink, j(r, "f")), result(lstat_t, j(r, "f2")), result(lstat_t, j(r, "g")),
                result(write, j(r, "g"), "changed"), result(read, j(r, "g2")), result(os.rename, j(r, "g"), j(r, "g2")),
                result(ls, r)]
        return out
    return ops


# ---------------------------------------------------- symlinks and specials
@scenario()
def symlinks_and_special_files(L):
    L.symlink(1, "ls", "target"); L.file(1, "target", "t"); os.mkfifo(L.p(1, "fifo"))
    os.mknod(L.p(1, "null"), stat.S_IFCHR | 0o666, os.makedev(1, 3))
    def ops(r):
        return [result(os.readlink, j(r, "ls")), result(read, j(r, "ls")), result(os.symlink, "../x", j(r, "new")),
                result(os.readlink, j(r, "new")), result(os.mkfifo, j(r, "f2")), result(lstat_t, j(r, "f2")),
                result(os.mknod, j(r, "zero"), stat.S_IFCHR | 0o600, os.makedev(1, 5)),
                result(lambda: os.stat(j(r, "zero")).st_rdev), result(os.chmod, j(r, "fifo"), 0o600),
                result(lstat_t, j(r, "fifo")), result(os.rename, j(r, "null"), j(r, "null2")),
                result(lambda: os.stat(j(r, "null2")).st_rdev)]
    return ops


# ------------------------------------------------------------ sparse files
@scenario()
def sparse_files(L):
    p = L.file(1, "sparse", b"")
    with open(p, "r+b") as f:
        f.seek(8 << 20)
        f.write(b"end")
        f.seek(1 << 20)
        f.write(b"mid")
    def ops(r):
        def probe():
            fd = os.open(j(r, "sparse"), os.O_RDWR)
            try:
                os.pwrite(fd, b"!", 0)
                data = os.lseek(fd, 4096, os.SEEK_DATA)
                hole = os.lseek(fd, data, os.SEEK_HOLE)
                # The kernel may copy a whole chunk around the data; where the
                # hole starts after it is its choice.
                return [data, hole > data, os.fstat(fd).st_size, os.pread(fd, 3, 1 << 20).decode()]
            finally:
                os.close(fd)
        return [result(probe)]
    return ops


# ---------------------------------------------------------------- xattrs
@scenario()
def xattrs(L):
    L.file(1, "f", "f"); os.setxattr(L.p(1, "f"), "user.a", b"1"); os.setxattr(L.p(1, "f"), "trusted.t", b"t")
    L.dir(1, "d"); os.setxattr(L.p(1, "d"), "user.d", b"dir")
    def ops(r):
        return [result(sorted, os.listxattr(j(r, "f"))), result(os.getxattr, j(r, "f"), "user.a"),
                result(os.getxattr, j(r, "f"), "user.missing"), result(os.setxattr, j(r, "f"), "user.b", b"2"),
                result(os.setxattr, j(r, "f"), "user.b", b"3", os.XATTR_CREATE),
                result(os.setxattr, j(r, "f"), "user.c", b"3", os.XATTR_REPLACE),
                result(os.removexattr, j(r, "f"), "user.a"), result(sorted, os.listxattr(j(r, "f"))),
                result(os.getxattr, j(r, "f"), "trusted.overlay.opaque"), result(sorted, os.listxattr(j(r, "d"))),
                result(os.setxattr, j(r, "d"), "user.e", b"e"), result(sorted, os.listxattr(j(r, "d"))),
                result(os.getxattr, j(r, "f"), "trusted.t")]
    return ops


# ---------------------------------------------------------- large directory
@scenario()
def large_dir_many_whiteouts(L):
    for i in range(2000):
        L.file(1, f"big/f{i:04d}", str(i))
    def ops(r):
        out = [result(lambda: len(os.listdir(j(r, "big"))))]
        for i in range(0, 2000, 2):
            os.unlink(j(r, "big", f"f{i:04d}"))
        for i in range(0, 200, 4):
            write(j(r, "big", f"f{i:04d}"), "back")
        names = os.listdir(j(r, "big"))
        return out + [len(names), len(set(names)), sorted(names)[:5], result(os.rmdir, j(r, "big"))]
    return ops


# ------------------------------------------------------------------- mmap
@scenario()
def mmap_shared_write(L):
    L.file(1, "m", b"\0" * 16384)
    def ops(r):
        def go():
            fd = os.open(j(r, "m"), os.O_RDWR)
            try:
                m = mmap.mmap(fd, 16384)
                m[0:5] = b"hello"
                m[8192:8197] = b"world"
                m.flush()
                m.close()
            finally:
                os.close(fd)
            with open(j(r, "m"), "rb") as f:
                d = f.read()
            return [d[:5].decode(), d[8192:8197].decode(), len(d)]
        return [result(go)]
    return ops


# -------------------------------------------------- unlinked but open files
@scenario()
def unlinked_open_files(L):
    L.file(1, "lower", "L" * 10); L.file(1, "ro", "read only")
    def ops(r):
        def rw():
            fd = os.open(j(r, "lower"), os.O_RDWR)
            try:
                os.unlink(j(r, "lower"))
                os.pwrite(fd, b"zz", 3)
                st = os.fstat(fd)
                return [os.pread(fd, 100, 0).decode(), st.st_nlink, st.st_size, os.path.exists(j(r, "lower"))]
            finally:
                os.close(fd)

        def ro():
            fd = os.open(j(r, "ro"), os.O_RDONLY)
            try:
                os.unlink(j(r, "ro"))
                write(j(r, "ro"), "new file")
                return [os.pread(fd, 100, 0).decode(), read(j(r, "ro"))]
            finally:
                os.close(fd)
        return [result(rw), result(ro), result(ls, r)]
    return ops


# ------------------------------------------------------------- errno cases
@scenario()
def errno_cases(L):
    L.file(1, "f", "f"); L.file(1, "d/x", "x")
    long = "n" * 256
    def ops(r):
        return [result(os.lstat, j(r, "missing")), result(os.lstat, j(r, "f/sub")), result(os.mkdir, j(r, "f")),
                result(os.mkdir, j(r, "d")), result(os.rmdir, j(r, "d")), result(os.rmdir, j(r, "f")),
                result(os.unlink, j(r, "d")), result(read, j(r, "d")), result(os.lstat, j(r, long)),
                result(write, j(r, long), "x"), result(os.mkdir, j(r, long)), result(os.rename, j(r, "d"), j(r, "f")),
                result(os.rename, j(r, "f"), j(r, "d")), result(os.link, j(r, "d"), j(r, "d2")),
                result(os.rename, j(r, "missing"), j(r, "x")), result(os.symlink, "x", j(r, "f"))]
    return ops


# -------------------------------------------------------------- permissions
@scenario()
def permissions_non_root(L):
    L.dir(1, "pub", mode=0o777); L.dir(1, "priv", mode=0o700); L.file(1, "priv/s", "secret")
    L.dir(1, "ro", mode=0o555); L.file(1, "ro/r", "r", mode=0o644)
    L.file(1, "pub/mine", "m", uid=65534, gid=65534); L.file(1, "pub/root", "x", mode=0o644)
    L.file(1, "pub/shared", "s", mode=0o666); L.dir(1, "sticky", mode=0o1777); L.file(1, "sticky/t", "t", uid=1000)
    L.file(1, "suid", "#!/bin/sh\n", mode=0o4777)
    def ops(r):
        u = NOBODY
        out = [as_user(*u, read, j(r, "priv/s")), as_user(*u, ls, j(r, "priv")), as_user(*u, write, j(r, "ro/new"), "x"),
               as_user(*u, write, j(r, "ro/r"), "x", os.O_WRONLY), as_user(*u, write, j(r, "pub/mine"), "y", os.O_WRONLY),
               as_user(*u, write, j(r, "pub/root"), "y", os.O_WRONLY), as_user(*u, write, j(r, "pub/shared"), "y", os.O_WRONLY),
               as_user(*u, os.chmod, j(r, "pub/root"), 0o777), as_user(*u, os.chmod, j(r, "pub/mine"), 0o600),
               as_user(*u, os.unlink, j(r, "sticky/t")), as_user(*u, write, j(r, "pub/new"), "n"),
               as_user(*u, os.mkdir, j(r, "pub/nd")), as_user(*u, write, j(r, "suid"), "#", os.O_WRONLY | os.O_APPEND)]
        out += [result(lstat_t, j(r, "pub/new")), result(lstat_t, j(r, "pub/nd")), result(lstat_t, j(r, "suid")),
                result(lstat_t, j(r, "pub/mine"))]
        # The same checks after copy-up must give the same answers.
        out += [result(os.utime, j(r, "priv/s")), as_user(*u, read, j(r, "priv/s")), result(os.utime, j(r, "ro/r")),
                as_user(*u, write, j(r, "ro/r"), "x", os.O_WRONLY)]
        return out
    return ops


@scenario()
def setgid_dirs_and_umask(L):
    L.dir(1, "sg", mode=0o2777, gid=1234)
    def ops(r):
        old = os.umask(0o027)
        try:
            out = [result(write, j(r, "sg/f"), "f", os.O_WRONLY | os.O_CREAT, 0o666), result(os.mkdir, j(r, "sg/d"), 0o777),
                   result(lstat_t, j(r, "sg/f")), result(lstat_t, j(r, "sg/d")), result(write, j(r, "plain"), "p")]
        finally:
            os.umask(old)
        return out + [result(lstat_t, j(r, "plain"))]
    return ops


# ----------------------------------------------------- st_ino, times, dirs
@scenario()
def inode_numbers_stable_across_copy_up(L):
    L.file(1, "f", "f"); L.file(1, "d/g", "g")
    def ops(r):
        a = os.stat(j(r, "f")).st_ino
        d = os.stat(j(r, "d")).st_ino
        write(j(r, "f"), "changed", os.O_WRONLY | os.O_APPEND)
        write(j(r, "d/new"), "n")
        return [a == os.stat(j(r, "f")).st_ino, d == os.stat(j(r, "d")).st_ino]
    return ops


@scenario()
def lower_hard_links_share_st_ino(L):
    # Three names of one lower file (busybox-style). The kernel shows one
    # st_ino for all; a write through one name copies it up and breaks the
    # link (index=off), the others keep the old data; d_ino matches st_ino.
    L.file(1, "d/a", "same")
    os.link(L.p(1, "d/a"), L.p(1, "d/b")); os.link(L.p(1, "d/a"), L.p(1, "e/c") if os.path.isdir(L.p(1, "e")) else L.p(1, "c"))
    def ops(r):
        ino = lambda *p: os.stat(j(r, *p)).st_ino
        dino = lambda d, n: next(e.inode() for e in os.scandir(j(r, d)) if e.name == n)
        before = [ino("d/a") == ino("d/b"), ino("d/a") == ino("c"), dino("d", "a") == ino("d/a"),
                  dino("d", "b") == ino("d/b"), os.stat(j(r, "d/b")).st_nlink]
        write(j(r, "d/a"), "+new", os.O_WRONLY | os.O_APPEND)
        after = [read(j(r, "d/a")), read(j(r, "d/b")), read(j(r, "c")), ino("d/a") == ino("d/b"),
                 ino("d/b") == ino("c"), dino("d", "a") == ino("d/a"), dino("d", "b") == ino("d/b"),
                 os.stat(j(r, "d/a")).st_nlink, os.stat(j(r, "d/b")).st_nlink]
        return [before, after]
    return ops


@scenario()
def directory_times_and_listing_types(L):
    L.file(1, "d/f", "f"); L.symlink(1, "d/l", "f"); L.dir(1, "d/sub"); os.mkfifo(L.p(1, "d/p"))
    def ops(r):
        entries = sorted((e.name, e.is_dir(follow_symlinks=False), e.is_symlink(), e.is_file(follow_symlinks=False))
                         for e in os.scandir(j(r, "d")))
        return [entries, result(lstat_t, j(r, "d"))]
    return ops


@scenario(layers=4)
def deep_merge_four_layers(L):
    for i in range(4):
        L.file(i, f"m/l{i}", str(i)); L.file(i, "m/shared", f"layer {i}")
    L.whiteout(1, "m/l2"); L.file(3, "m/deep/x", "x"); L.opaque(2, "m/deep"); L.file(2, "m/deep/y", "y")
    def ops(r):
        return [result(ls, j(r, "m")), result(read, j(r, "m/shared")), result(ls, j(r, "m/deep")),
                result(os.rename, j(r, "m/l3"), j(r, "m/l3b")), result(ls, j(r, "m"))]
    return ops


def many_layers(L):
    """A tree merged through 12 lower layers (from 8 on, layer directories
    are read and probed in parallel): every precedence rule across them."""
    n = 12
    for i in range(n):
        L.file(i, f"m/l{i}", str(i)); L.file(i, "m/shared", f"layer {i}"); L.file(i, f"m/deep/x{i}", str(i))
        L.file(i, f"m/all/f{i}", str(i))
        if i != 5:
            L.file(i, f"m/mixed/y{i}", str(i))
        if i >= 4:
            L.file(i, f"m/gone/z{i}", str(i))
    L.whiteout(3, "m/l7"); L.opaque(5, "m/deep"); L.file(5, "m/mixed", "a file between directories")
    L.whiteout(2, "m/gone"); os.setxattr(L.p(8, "m/all"), "trusted.overlay.opaque", b"y")
    return n


def many_layers_ops(r):
    out = [result(ls, j(r, "m")), result(read, j(r, "m/shared")), result(ls, j(r, "m/deep")), result(ls, j(r, "m/all")),
           result(ls, j(r, "m/mixed")), result(read, j(r, "m/mixed")), result(lstat_t, j(r, "m/gone")),
           result(os.lstat, j(r, "m/l7")), result(read, j(r, "m/l11")), result(os.lstat, j(r, "m/all/f9")),
           result(os.lstat, j(r, "m/all/f10")), result(os.lstat, j(r, "m/missing")), result(lstat_t, j(r, "m/deep/x5"))]
    out += [result(os.unlink, j(r, "m/l11")), result(os.mkdir, j(r, "m/gone")), result(ls, j(r, "m/gone")),
            result(write, j(r, "m/l7"), "new"), result(os.unlink, j(r, "m/all/f0")), result(ls, j(r, "m/all")),
            result(os.rename, j(r, "m/l10"), j(r, "m/l10b")), result(ls, j(r, "m")), result(read, j(r, "m/l7"))]
    return out


@scenario(layers=12)
def twelve_layers_merge(L):
    many_layers(L)
    return many_layers_ops


@scenario(layers=12, opts=",redirect_dir=on")
def twelve_layers_with_redirects(L):
    many_layers(L)
    # "m/r" in layer 2 continues as "m/src" below (relative record); "m/a"
    # in layer 1 as "/m/deep" below (absolute).
    for i in range(3, 12):
        L.file(i, f"m/src/s{i}", str(i))
    L.dir(2, "m/r"); os.setxattr(L.p(2, "m/r"), "trusted.overlay.redirect", b"src"); L.file(2, "m/r/top", "t")
    L.dir(1, "m/a"); os.setxattr(L.p(1, "m/a"), "trusted.overlay.redirect", b"/m/deep")
    def ops(r):
        return [result(ls, j(r, "m/r")), result(read, j(r, "m/r/s11")), result(ls, j(r, "m/a")),
                result(read, j(r, "m/a/x7")), result(os.rename, j(r, "m/deep"), j(r, "m/deep2")),
                result(ls, j(r, "m/deep2")), result(os.rename, j(r, "m/r"), j(r, "r2")), result(ls, j(r, "r2"))] + \
            many_layers_ops(r)
    return ops


@scenario()
def copy_up_preserves_owner_mode_times(L):
    L.file(1, "a/b/c/file", "x" * 10000, mode=0o4755, uid=123, gid=456)
    L.dir(1, "a", mode=0o701, uid=11, gid=12); L.dir(1, "a/b", mode=0o770, uid=13, gid=14)
    def ops(r):
        return [result(os.setxattr, j(r, "a/b/c/file"), "user.x", b"1"), result(lstat_t, j(r, "a/b/c/file")),
                result(lstat_t, j(r, "a")), result(lstat_t, j(r, "a/b")), result(lstat_t, j(r, "a/b/c"))]
    return ops


@scenario()
def read_only_files_and_chmod_write(L):
    L.file(1, "ro", "readonly", mode=0o444)
    def ops(r):
        return [result(write, j(r, "ro"), "x", os.O_WRONLY), result(lstat_t, j(r, "ro")),
                as_user(*NOBODY, write, j(r, "ro"), "x", os.O_WRONLY), result(read, j(r, "ro"))]
    return ops


@scenario()
def create_over_lower_whiteout_types(L):
    L.dir(1, "was_dir"); L.file(1, "was_dir/x", "x"); L.file(1, "was_file", "f"); L.symlink(1, "was_link", "x")
    def ops(r):
        out = [result(os.unlink, j(r, "was_file")), result(os.unlink, j(r, "was_link")), result(os.unlink, j(r, "was_dir/x")),
               result(os.rmdir, j(r, "was_dir"))]
        out += [result(os.mkdir, j(r, "was_file")), result(os.symlink, "y", j(r, "was_dir")), result(write, j(r, "was_link"), "l")]
        return out + [result(ls, r), result(ls, j(r, "was_file"))]
    return ops


# ------------------------------------------- fsync, fallocate, copy_file_range
@scenario()
def file_data_calls(L):
    L.file(1, "src", "0123456789" * 1000); L.file(1, "dst", "dst"); L.dir(1, "d"); L.file(1, "pub", "p", mode=0o640)

    def ops(r):
        def sync_calls():
            fd = os.open(j(r, "dst"), os.O_RDWR)
            try:
                os.write(fd, b"new data")
                os.fsync(fd)
                os.fdatasync(fd)
                os.posix_fallocate(fd, 0, 1 << 20)
                return os.fstat(fd).st_size
            finally:
                os.close(fd)

        def copy_range():
            a = os.open(j(r, "src"), os.O_RDONLY)
            b = os.open(j(r, "dst"), os.O_WRONLY)
            try:
                n = os.copy_file_range(a, b, 5000, 100, 10)
                return [n, os.fstat(b).st_size]
            finally:
                os.close(a)
                os.close(b)

        def dir_sync():
            fd = os.open(j(r, "d"), os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
                return True
            finally:
                os.close(fd)

        def times():
            os.utime(j(r, "src"), ns=(5 * 10**9, 6 * 10**9))
            before = os.stat(j(r, "src"))
            os.utime(j(r, "src"))  # UTIME_NOW for both
            after = os.stat(j(r, "src"))
            return [before.st_mtime_ns, after.st_mtime_ns > before.st_mtime_ns]

        st = os.statvfs(r)
        return [result(sync_calls), result(copy_range), result(read, j(r, "dst"))[:30], result(dir_sync),
                result(times), st.f_namemax, st.f_bsize > 0,
                as_user(*NOBODY, os.access, j(r, "pub"), os.R_OK), as_user(*NOBODY, os.access, j(r, "src"), os.R_OK),
                as_user(*NOBODY, os.access, j(r, "src"), os.W_OK), result(os.access, j(r, "src"), os.X_OK)]
    return ops


# Scenarios of optional features live in their own files and register here.
sys.modules.setdefault("scenarios", sys.modules[__name__])
import scenarios_metacopy  # noqa: E402,F401
import scenarios_index  # noqa: E402,F401


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("-k", default="")
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()
    chosen = [s for s in SCENARIOS if args.k in s.__name__]
    if args.list:
        print("\n".join(s.__name__ for s in chosen))
        return 0
    binary = os.path.abspath(args.binary)
    failed = 0
    start = time.time()
    for s in chosen:
        problems = differential(binary, s.layers, s, opts=s.opts)
        print(f"scenario {s.__name__} ... {'FAILED' if problems else 'ok'}")
        for p in problems:
            print("    " + p)
        failed += bool(problems)
    print(f"differential: {len(chosen)} scenarios in {time.time() - start:.1f}s")
    print(f"differential: {len(chosen) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
