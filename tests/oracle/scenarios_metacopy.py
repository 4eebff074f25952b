"""Differential scenarios of `metacopy=on` (loaded by scenarios.py): both
sides are mounted with it (the kernel also with redirect_dir=on), so every
view the harness compares (merged tree, after a remount, the kernel over our
upper and unionfs over the kernel's) reads metacopy files written by the
other side.
"""
import os

from overlay import renameat2, result
from scenarios import j, lstat_t, ls, read, scenario, write

MC = ",metacopy=on"


def blocks(p):
    """st_blocks: a metacopy file shows its lower data's."""
    return os.stat(p).st_blocks


def same_ino(a, b):
    return os.stat(a).st_ino == os.stat(b).st_ino


@scenario(opts=MC)
def metacopy_each_metadata_op_then_data(L):
    data = {n: (n * 3000)[:9000] for n in ("m", "o", "t", "x", "rx", "keep", "trunc0")}
    for n, d in data.items():
        L.file(1, f"d/{n}", d, mode=0o644, uid=1000, gid=1000)
    os.setxattr(L.p(1, "d/rx"), "user.gone", b"1")
    os.setxattr(L.p(1, "d/x"), "user.keep", b"k")
    names = list(data)

    def ops(r):
        p = lambda n: j(r, "d", n)  # noqa: E731
        out = [result(os.chmod, p("m"), 0o600), result(os.chown, p("o"), 5, 6),
               result(os.utime, p("t"), ns=(10**9, 2 * 10**9)),
               result(os.setxattr, p("x"), "user.new", b"v"), result(os.removexattr, p("rx"), "user.gone"),
               result(os.chmod, p("keep"), 0o640), result(os.chmod, p("trunc0"), 0o664)]
        out += [(n, result(read, p(n))[:20], result(lstat_t, p(n)), result(blocks, p(n))) for n in names]
        out += [result(os.listxattr, p("x")), result(os.listxattr, p("rx")), result(lstat_t, j(r, "d"))]
        # Then the data: a write, a truncation, an append, a truncating open.
        out += [result(write, p("m"), "WRITE", os.O_WRONLY), result(os.truncate, p("o"), 100),
                result(write, p("t"), "+", os.O_WRONLY | os.O_APPEND), result(write, p("x"), "new"),
                result(os.truncate, p("trunc0"), 0), result(os.truncate, p("rx"), 20000)]
        out += [(n, result(read, p(n))[:40], result(lstat_t, p(n))) for n in names]
        return out + [result(os.getxattr, p("x"), "user.new"), result(os.getxattr, p("x"), "user.keep")]
    return ops


@scenario(opts=MC)
def metacopy_rename_records_where_the_data_is(L):
    for n in ("a", "b", "c", "e", "f"):
        L.file(1, n, f"lower {n}\n" * 50)
    L.file(1, "d/g", "lower g\n" * 50); L.file(1, "d/h", "lower h\n"); L.dir(1, "t")
    L.file(1, "x", "lower x\n"); L.file(1, "y", "lower y\n" * 3); L.file(1, "p/q", "lower q\n")

    def ops(r):
        out = [result(os.chmod, j(r, "a"), 0o600), result(os.rename, j(r, "a"), j(r, "a2")),
               result(os.chmod, j(r, "d/g"), 0o600), result(os.rename, j(r, "d/g"), j(r, "t/g2")),
               # Copied up by the rename itself (metadata only), then moved.
               result(os.rename, j(r, "b"), j(r, "t/b2")),
               # A relative record becomes absolute when the file leaves its dir.
               result(os.chmod, j(r, "c"), 0o600), result(os.rename, j(r, "c"), j(r, "c2")),
               result(os.rename, j(r, "c2"), j(r, "t/c3")),
               # Back to its own name, and over another lower file.
               result(os.chown, j(r, "e"), 1, 1), result(os.rename, j(r, "e"), j(r, "e2")),
               result(os.rename, j(r, "e2"), j(r, "e")), result(os.rename, j(r, "d/h"), j(r, "f"))]
        # Exchanged (both copied up metadata only); a directory holding a
        # metacopy file moves by its own redirect.
        out += [result(os.chmod, j(r, "x"), 0o600), result(renameat2, j(r, "x"), j(r, "y"), 2),
                result(os.chmod, j(r, "p/q"), 0o600), result(os.rename, j(r, "p"), j(r, "t/p2"))]
        out += [result(ls, r), result(ls, j(r, "t")), result(ls, j(r, "d"))]
        names = ["a2", "t/g2", "t/b2", "t/c3", "e", "f", "x", "y", "t/p2/q"]
        out += [(n, result(read, j(r, n))[:30], result(lstat_t, j(r, n))) for n in names]
        out += [result(write, j(r, "t/c3"), "!", os.O_WRONLY | os.O_APPEND), result(read, j(r, "t/c3"))[-12:],
                result(os.unlink, j(r, "t/b2")), result(ls, j(r, "t"))]
        return out
    return ops


@scenario(opts=MC)
def metacopy_hard_links(L):
    L.file(1, "l1", "linked\n"); os.link(L.p(1, "l1"), L.p(1, "l2"))
    L.file(1, "f", "plain\n"); L.dir(1, "sub")

    def ops(r):
        out = [result(os.chmod, j(r, "l1"), 0o600), result(read, j(r, "l1")), result(read, j(r, "l2")),
               result(lstat_t, j(r, "l1")), result(lstat_t, j(r, "l2")), result(same_ino, j(r, "l1"), j(r, "l2"))]
        # link(2) of a lower file copies it up (metadata only) and records an
        # absolute redirect, so every name finds the data.
        out += [result(os.link, j(r, "f"), j(r, "sub/f2")), result(os.chmod, j(r, "sub/f2"), 0o600),
                result(read, j(r, "f")), result(read, j(r, "sub/f2")), result(lstat_t, j(r, "f")),
                result(same_ino, j(r, "f"), j(r, "sub/f2"))]
        out += [result(write, j(r, "sub/f2"), "more\n", os.O_WRONLY | os.O_APPEND), result(read, j(r, "f")),
                result(write, j(r, "l2"), "l2!", os.O_WRONLY), result(read, j(r, "l1")), result(read, j(r, "l2"))]
        return out
    return ops


@scenario(opts=MC)
def metacopy_sparse_empty_and_kept(L):
    p = L.file(1, "sparse", b"")
    with open(p, "r+b") as f:
        f.seek(4 << 20)
        f.write(b"end")
    L.file(1, "empty", b""); L.file(1, "grow", "g" * 100); L.file(1, "stays", "still lower\n")

    def ops(r):
        out = [result(os.chmod, j(r, n), 0o600) for n in ("sparse", "empty", "grow", "stays")]
        out += [result(blocks, j(r, "sparse")), result(lambda: read(j(r, "sparse"))[-3:]),
                result(os.truncate, j(r, "grow"), 5000), result(lambda: read(j(r, "grow")).count("g")),
                result(write, j(r, "empty"), "now"), result(read, j(r, "stays")), result(lstat_t, j(r, "stays"))]
        # An open for reading keeps reading the lower data; one for writing
        # copies the data and the first handle follows it.
        def two_handles():
            a = os.open(j(r, "sparse"), os.O_RDONLY)
            try:
                before = os.pread(a, 3, 4 << 20)
                write(j(r, "sparse"), "E", os.O_WRONLY)
                return [before, os.pread(a, 3, 0), os.pread(a, 3, 4 << 20), os.fstat(a).st_size]
            finally:
                os.close(a)
        return out + [result(two_handles)]
    return ops


@scenario(layers=3, opts=MC)
def metacopy_file_in_a_lower_layer(L):
    # A lower layer holding a metacopy file (an earlier upper stacked as a
    # lower): its data is found further down, by path or by its redirect.
    L.file(2, "f", "bottom data\n" * 10); L.file(2, "old", "moved data\n")
    for name, size, redirect in (("f", 120, None), ("new", 11, b"old")):
        p = L.file(1, name, b"", mode=0o600)
        os.truncate(p, size)
        os.setxattr(p, "trusted.overlay.metacopy", b"")
        if redirect:
            os.setxattr(p, "trusted.overlay.redirect", redirect)
    L.whiteout(1, "old")

    def ops(r):
        out = [result(read, j(r, "f"))[:24], result(lstat_t, j(r, "f")), result(read, j(r, "new")),
               result(lstat_t, j(r, "new")), result(ls, r)]
        out += [result(os.chown, j(r, "f"), 3, 3), result(read, j(r, "f"))[:24],
                result(write, j(r, "new"), "X", os.O_WRONLY), result(read, j(r, "new"))]
        return out
    return ops


@scenario(layers=3)
def metacopy_lower_file_refused_without_the_option(L):
    L.file(2, "f", "bottom\n")
    p = L.file(1, "f", b"")
    os.truncate(p, 7)
    os.setxattr(p, "trusted.overlay.metacopy", b"")
    L.file(1, "plain", "p")
    return lambda r: [result(lstat_t, j(r, "f")),
                      result(read, j(r, "f")), result(read, j(r, "plain")), result(ls, r)]
