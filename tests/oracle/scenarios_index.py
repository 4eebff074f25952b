"""Differential scenarios of `index=on` (loaded by scenarios.py): both sides
are mounted with it, so copying up one name of a lower hard link keeps every
name linked to the one upper copy. The harness compares every operation, the
merged tree (st_nlink of each name included), the tree after a remount, the
kernel over our upper and ours over the kernel's (each with the same work
dir: the index lives there).
"""
import os

from overlay import renameat2, result
from scenarios import j, lstat_t, ls, read, scenario, write

IX = ",index=on"


def links(L, first, *more):
    """A lower file (layer 1) with more names."""
    L.file(1, first, "shared data\n")
    for m in more:
        os.makedirs(os.path.dirname(L.p(1, m)), exist_ok=True)
        os.link(L.p(1, first), L.p(1, m))


def view(r, names):
    """Content, lstat (mode, owner, size, nlink) of each name, and whether
    all show one st_ino."""
    inos = {result(lambda p: os.stat(p).st_ino, j(r, n)) for n in names}
    return [(n, result(read, j(r, n)), result(lstat_t, j(r, n))) for n in names] + [len(inos)]


@scenario(opts=IX)
def index_copy_up_keeps_links(L):
    links(L, "d/a", "d/b", "c")
    links(L, "m/x", "m/y")
    names = ["d/a", "d/b", "c"]

    def ops(r):
        out = [view(r, names)]
        out += [result(write, j(r, "d/a"), "+written through a\n", os.O_WRONLY | os.O_APPEND), view(r, names)]
        out += [result(os.chmod, j(r, "d/b"), 0o600), result(os.chown, j(r, "c"), 7, 8), view(r, names)]
        out += [result(os.utime, j(r, "c"), ns=(10**9, 2 * 10**9)), result(lambda p: os.stat(p).st_mtime_ns, j(r, "d/a"))]
        # A metadata change alone copies up too, and links every name.
        out += [result(os.chmod, j(r, "m/y"), 0o640), view(r, ["m/x", "m/y"])]
        out += [result(write, j(r, "m/x"), "truncated"), view(r, ["m/x", "m/y"])]
        return out
    return ops


@scenario(opts=IX)
def index_unlink_then_write(L):
    links(L, "a", "b", "c", "d/e")
    links(L, "p", "q")
    names = ["a", "b", "c", "d/e"]

    def ops(r):
        # Unlinking a name of a lower hard link not copied up yet.
        out = [result(os.unlink, j(r, "b")), view(r, ["a", "c", "d/e"])]
        out += [result(write, j(r, "c"), "through c\n", os.O_WRONLY | os.O_APPEND), view(r, ["a", "c", "d/e"])]
        out += [result(os.unlink, j(r, "a")), view(r, ["c", "d/e"]), result(os.unlink, j(r, "d/e")),
                view(r, ["c"]), result(os.unlink, j(r, "c")), result(ls, r), result(ls, j(r, "d"))]
        out += [result(os.stat, j(r, n)) for n in names]
        # Copied up first, then every name removed.
        out += [result(write, j(r, "p"), "new p"), result(os.unlink, j(r, "p")), view(r, ["q"]),
                result(os.unlink, j(r, "q")), result(ls, r)]
        return out
    return ops


@scenario(opts=IX)
def index_rename_and_link(L):
    links(L, "a", "b", "c")
    links(L, "x", "y")
    L.file(1, "other", "other file\n")
    L.dir(1, "t")

    def ops(r):
        # A name not copied up moves; then a write through the moved name.
        out = [result(os.rename, j(r, "c"), j(r, "t/c2")), view(r, ["a", "b", "t/c2"])]
        out += [result(write, j(r, "t/c2"), "moved\n", os.O_WRONLY | os.O_APPEND), view(r, ["a", "b", "t/c2"])]
        # Two names of one file: nothing happens.
        out += [result(os.rename, j(r, "a"), j(r, "b")), view(r, ["a", "b", "t/c2"])]
        # Another file over one name; a new link; an exchange.
        out += [result(os.rename, j(r, "other"), j(r, "b")), view(r, ["a", "b", "t/c2"])]
        out += [result(os.link, j(r, "a"), j(r, "t/new")), view(r, ["a", "t/c2", "t/new"])]
        out += [result(renameat2, j(r, "x"), j(r, "t/new"), 2), view(r, ["x", "y", "t/new", "a"])]
        out += [result(write, j(r, "y"), "y!", os.O_WRONLY), view(r, ["x", "y"])]
        return out + [result(ls, r), result(ls, j(r, "t"))]
    return ops


@scenario(opts=IX)
def index_many_names(L):
    # busybox-style: one file, many names in several directories.
    names = [f"bin/n{i}" for i in range(12)] + ["sbin/s1", "sbin/s2"]
    links(L, *names)

    def ops(r):
        out = [result(os.chmod, j(r, "bin/n3"), 0o755), view(r, names)]
        out += [result(os.unlink, j(r, n)) for n in names[::3]]
        left = [n for n in names if n not in names[::3]]
        return out + [view(r, left), result(write, j(r, "sbin/s2"), "rewritten"), view(r, left)]
    return ops
