"""Shared machinery of the differential tests: build layers, mount the kernel's
overlayfs and unionfs over identical copies, snapshot trees, compare.

Every mount made through `Mounts` is undone (umount, then lazy umount as a
last resort), also when a scenario raises.
"""
import ctypes
import errno
import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
import time

LIBC = ctypes.CDLL(None, use_errno=True)
# Lower layers get this mtime, so a copied-up object must show it exactly.
OLD_TIME = 1_000_000_000


def renameat2(a, b, flags):
    """rename with RENAME_NOREPLACE (1) / RENAME_EXCHANGE (2)."""
    if LIBC.renameat2(-100, os.fsencode(a), -100, os.fsencode(b), flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def result(fn, *args, **kw):
    """Run one operation: its value, or 'E<ERRNO>'."""
    try:
        v = fn(*args, **kw)
        return v if isinstance(v, (str, int, float, bool, list, tuple, type(None))) else repr(v)
    except OSError as e:
        return "E" + errno.errorcode.get(e.errno, str(e.errno))


class Layers:
    """Helpers to write lower layers (paths relative to one layer dir)."""

    def __init__(self, base, n):
        self.dirs = [os.path.join(base, f"l{i}") for i in range(n)]
        for d in self.dirs:
            os.makedirs(d)

    def p(self, layer, rel):
        return os.path.join(self.dirs[layer], rel)

    def file(self, layer, rel, data=b"data\n", mode=0o644, uid=0, gid=0):
        p = self.p(layer, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())
        os.chown(p, uid, gid)
        os.chmod(p, mode)
        return p

    def dir(self, layer, rel, mode=0o755, uid=0, gid=0):
        p = self.p(layer, rel)
        os.makedirs(p, exist_ok=True)
        os.chown(p, uid, gid)
        os.chmod(p, mode)
        return p

    def whiteout(self, layer, rel):
        p = self.p(layer, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        os.mknod(p, stat.S_IFCHR | 0o600, 0)

    def opaque(self, layer, rel):
        os.setxattr(self.dir(layer, rel), "trusted.overlay.opaque", b"y")

    def symlink(self, layer, rel, target):
        p = self.p(layer, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        os.symlink(target, p)

    def age(self):
        """Give every lower object the same old mtime/atime."""
        for d in self.dirs:
            for root, dirs, files in os.walk(d, topdown=False):
                for n in dirs + files:
                    os.utime(os.path.join(root, n), (OLD_TIME, OLD_TIME), follow_symlinks=False)
            os.utime(d, (OLD_TIME, OLD_TIME))

    @property
    def lowerdir(self):
        return ":".join(self.dirs)


def snapshot(root):
    """The tree as a sorted list of comparable tuples: type+mode, owner, size,
    content hash, symlink target, rdev, user.* xattrs, nlink (non-dirs), and
    mtime, directories' too (exact when older than the test, else just 'new':
    a copy-up must not make a directory new, a change must)."""
    out = []
    for d, dirs, files in os.walk(root):
        for n in sorted(dirs + files):
            p = os.path.join(d, n)
            try:
                st = os.lstat(p)
            except OSError as e:
                out.append((p[len(root):], "error", e.errno))
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    h = hashlib.sha256(f.read()).hexdigest()[:16]
            elif stat.S_ISLNK(st.st_mode):
                h = os.readlink(p)
            else:
                h = ""
            try:
                names = os.listxattr(p, follow_symlinks=False)
            except OSError:
                names = []
            xs = sorted((x, os.getxattr(p, x, follow_symlinks=False).hex()) for x in names if x.startswith("user."))
            mtime = st.st_mtime_ns if st.st_mtime < OLD_TIME + 10 else "new"
            out.append((p[len(root):], oct(st.st_mode), st.st_uid, st.st_gid,
                        0 if is_dir else st.st_size, h, st.st_rdev,
                        xs, 0 if is_dir else st.st_nlink, mtime))
    return sorted(out)


def differences(want, got, limit=4):
    a, b = set(map(repr, want)), set(map(repr, got))
    return sorted(a - b)[:limit], sorted(b - a)[:limit]


class Mounts:
    def __init__(self):
        self.points = []

    def kernel(self, lower, upper, work, mnt, opts=""):
        # unionfs's defaults where they differ from this kernel's.
        if "redirect_dir=" not in opts:
            opts += ",redirect_dir=on"
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={lower},upperdir={upper},workdir={work}{opts}", mnt], check=True)
        self.points.append(mnt)

    def unionfs(self, binary, lower, upper, work, mnt, opts=""):
        # UNIONFS_ORACLE_OPTS: options for unionfs's mounts only (",io_uring").
        opts += os.environ.get("UNIONFS_ORACLE_OPTS", "")
        subprocess.run([binary, "-o", f"lowerdir={lower},upperdir={upper},workdir={work}{opts}", mnt], check=True)
        self.points.append(mnt)

    def umount(self, mnt):
        for _ in range(50):
            if subprocess.run(["umount", mnt], stderr=subprocess.DEVNULL).returncode == 0:
                break
            time.sleep(0.05)
        else:
            subprocess.run(["umount", "-l", mnt])
        self.points.remove(mnt)

    def close(self):
        for m in list(self.points):
            self.umount(m)


def differential(binary, nlayers, setup, tmp_parent=None, opts=""):
    """`setup(Layers)` fills the lower layers and returns `ops(root)`, which
    runs the operations and returns their results. Runs it on the kernel
    overlay and on unionfs over identical fresh layers and compares the
    results, then the kernel's tree with: unionfs's tree, unionfs's tree
    after a remount, the kernel over unionfs's upper, and unionfs over the
    kernel's upper. `opts` (",redirect_dir=on", ...) go to every mount of
    both. Returns the problems found."""
    tmp = tempfile.mkdtemp(prefix="unionfs-oracle.", dir=tmp_parent)
    mounts = Mounts()
    problems = []
    try:
        sides = {}
        for side in ("kernel", "unionfs"):
            base = os.path.join(tmp, side)
            layers = Layers(base, nlayers)
            ops = setup(layers)
            layers.age()
            for d in ("upper", "work", "work2", "mnt"):
                os.makedirs(os.path.join(base, d))
            sides[side] = (base, layers)
        kb, kl = sides["kernel"]
        ub, ul = sides["unionfs"]
        mounts.kernel(kl.lowerdir, f"{kb}/upper", f"{kb}/work", f"{kb}/mnt", opts)
        mounts.unionfs(binary, ul.lowerdir, f"{ub}/upper", f"{ub}/work", f"{ub}/mnt", opts)
        klog = ops(f"{kb}/mnt")
        ulog = ops(f"{ub}/mnt")
        for i, (a, b) in enumerate(zip(klog, ulog)):
            if a != b:
                problems.append(f"operation {i}: kernel {a!r}, unionfs {b!r}")
                break
        if len(klog) != len(ulog):
            problems.append(f"{len(klog)} operations on the kernel, {len(ulog)} on unionfs")
        want = snapshot(f"{kb}/mnt")
        views = [("merged tree", snapshot(f"{ub}/mnt"))]
        mounts.umount(f"{kb}/mnt")
        mounts.umount(f"{ub}/mnt")
        mounts.unionfs(binary, ul.lowerdir, f"{ub}/upper", f"{ub}/work", f"{ub}/mnt", opts)
        views.append(("tree after unionfs remount", snapshot(f"{ub}/mnt")))
        mounts.umount(f"{ub}/mnt")
        # With index=on the work dir holds the index: part of what was written.
        work2 = "work" if "index=on" in opts else "work2"
        mounts.kernel(ul.lowerdir, f"{ub}/upper", f"{ub}/{work2}", f"{ub}/mnt", opts)
        views.append(("kernel overlay over unionfs's upper", snapshot(f"{ub}/mnt")))
        mounts.umount(f"{ub}/mnt")
        # And the other way round: unionfs over the upper the kernel wrote.
        mounts.unionfs(binary, kl.lowerdir, f"{kb}/upper", f"{kb}/{work2}", f"{kb}/mnt", opts)
        views.append(("unionfs over the kernel's upper", snapshot(f"{kb}/mnt")))
        mounts.umount(f"{kb}/mnt")
        for what, got in views:
            if got != want:
                only_k, only_u = differences(want, got)
                problems.append(f"{what}: kernel-only {only_k} unionfs-only {only_u}")
    finally:
        mounts.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return problems
