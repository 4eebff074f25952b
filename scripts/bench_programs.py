#!/usr/bin/env python3
"""Helpers for scripts/bench-programs.sh: the generated lower trees, the
workloads written in Python and the result table.

  bench_programs.py cproj DIR INCDIR N      a C project: N .c files and a
                                            Makefile in DIR, its headers in
                                            INCDIR (the other lower's DIR/include)
  bench_programs.py mixtree TOP BOTTOM PROCS DIRS FILES
                                            the tree of the mix, split over two
                                            lowers (merged and one-layer dirs)
  bench_programs.py sqlite DB ROWS TXNS     WAL, synchronous=FULL, ROWS inserts
                                            in TXNS transactions, then checked
  bench_programs.py imports ROOT            import the MODULES from ROOT (put
                                            first on sys.path by PYTHONPATH);
                                            fails unless they come from ROOT
  bench_programs.py fsx FILE OPS SEED [MAXLEN]
                                            fsx-like: random read, write,
                                            mapread, mapwrite, truncate,
                                            fsync, close+open of FILE, every
                                            read checked against a model
  bench_programs.py mix DIR PROCS DIRS FILES SECONDS SEED
                                            PROCS processes doing random file
                                            ops on DIR for SECONDS, every result
                                            checked against a model; prints ops/s
  bench_programs.py table RESULTS TARGET... the markdown table (medians, ratios
                                            to the first target)

Only os and sys are imported at the top: `imports` runs with PYTHONPATH
pointing into the mount and must import everything else from there.
"""

import os
import sys

# ---- generated trees ----------------------------------------------------------


def cmd_cproj(d, incdir, n):
    """N translation units, each including the project's headers (in the other
    lower) and libc's; prog prints the sum of every unit's f()."""
    n = int(n)
    nhdr = 16
    os.makedirs(d, exist_ok=True)
    os.makedirs(incdir, exist_ok=True)
    for h in range(nhdr):
        with open(f"{incdir}/h{h:02}.h", "w") as f:
            f.write(f"#ifndef H{h:02}_H\n#define H{h:02}_H\n#include <stddef.h>\n")
            f.write(f"struct s{h} {{ int a[{h + 4}]; const char *name; size_t len; }};\n")
            f.write(f"static inline int h{h}_mix(int x) {{ return (x * {2 * h + 3}) ^ {h}; }}\n")
            f.write("#endif\n")
    with open(f"{incdir}/proj.h", "w") as f:
        f.write("#ifndef PROJ_H\n#define PROJ_H\n")
        for i in range(n):
            f.write(f"long f{i}(int x);\n")
        f.write("#endif\n")
    expect = 0
    for i in range(n):
        hs = sorted({i % nhdr, (i * 7 + 3) % nhdr, (i * 5 + 1) % nhdr})
        with open(f"{d}/u{i:04}.c", "w") as f:
            f.write('#include <stdio.h>\n#include <string.h>\n#include "proj.h"\n')
            for h in hs:
                f.write(f'#include "h{h:02}.h"\n')
            f.write(f"static int tab[{32 + i % 32}];\n")
            f.write(f"long f{i}(int x)\n{{\n    long s = 0;\n")
            f.write("    for (size_t k = 0; k < sizeof tab / sizeof tab[0]; k++) {\n")
            f.write(f"        tab[k] = h{hs[0]}_mix(x + (int)k);\n        s += tab[k] % 7;\n    }}\n")
            f.write(f'    return s + (long)strlen("u{i:04}");\n}}\n')
        # the same arithmetic as the C code, for prog's expected output
        tab = [((k * 1) * (2 * hs[0] + 3)) ^ hs[0] for k in range(32 + i % 32)]
        expect += sum(cmod(t, 7) for t in tab) + len(f"u{i:04}")
    with open(f"{d}/main.c", "w") as f:
        f.write('#include <stdio.h>\n#include "proj.h"\nint main(void)\n{\n    long s = 0;\n')
        for i in range(n):
            f.write(f"    s += f{i}(0);\n")
        f.write('    printf("%ld\\n", s);\n    return 0;\n}\n')
    with open(f"{d}/Makefile", "w") as f:
        f.write(
            "CFLAGS ?= -O0 -Iinclude\n"
            "SRCS := $(sort $(wildcard u*.c))\n"
            "OBJS := $(SRCS:.c=.o) main.o\n"
            "prog: $(OBJS)\n\t$(CC) -o $@ $(OBJS)\n"
            "%.o: %.c $(wildcard include/*.h)\n\t$(CC) $(CFLAGS) -c -o $@ $<\n"
            "check: prog\n\ttest \"$$(./prog)\" = \"$$(cat expect)\"\n"
            ".PHONY: check\n"
        )
    with open(f"{d}/expect", "w") as f:
        f.write(f"{expect}\n")


def cmod(a, b):
    """C's % for ints (truncating division)."""
    r = abs(a) % b
    return -r if a < 0 else r


def mix_layout(procs, dirs, files):
    """(layer, path, content) of the mix tree's files and (layer, path, None)
    of its directories; layer 0 is the top lower, 1 the bottom one. Even dirs
    are in both layers (merged), odd ones in the bottom one only; a file is in
    the top layer, the bottom one, or both (the top's content shows)."""
    out = []
    for p in range(procs):
        out.append((1, f"p{p}", None))
        out.append((0, f"p{p}", None))
        for d in range(dirs):
            dp = f"p{p}/d{d:02}"
            out.append((1, dp, None))
            if d % 2 == 0:
                out.append((0, dp, None))
            for i in range(files):
                fp = f"{dp}/f{i:03}"
                layers = (1,) if d % 2 else ((0,), (1,), (1, 0))[i % 3]
                for layer in layers:  # bottom first: the top's entry wins
                    n = 1 + (p * 131 + d * 17 + i * 7) % 40
                    out.append((layer, fp, f"{layer}:{fp}\n".encode() * n))
    return out


def cmd_mixtree(top, bottom, procs, dirs, files):
    for layer, path, content in mix_layout(int(procs), int(dirs), int(files)):
        full = os.path.join((top, bottom)[layer], path)
        if content is None:
            os.makedirs(full, exist_ok=True)
            os.chmod(full, 0o755)
        else:
            with open(full, "wb") as f:
                f.write(content)
            os.chmod(full, 0o644)


# ---- sqlite ---------------------------------------------------------------------


def cmd_sqlite(db, rows, txns):
    import sqlite3

    rows, txns = int(rows), int(txns)
    per = max(1, rows // txns)
    con = sqlite3.connect(db, isolation_level=None)
    mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if mode.lower() != "wal":
        sys.exit(f"sqlite: journal_mode is {mode}, not wal")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT, n INTEGER, v BLOB)")
    con.execute("CREATE INDEX t_k ON t (k)")
    n = 0
    for t in range(txns):
        con.execute("BEGIN")
        con.executemany(
            "INSERT INTO t (k, n, v) VALUES (?, ?, ?)",
            ((f"key{(i * 7919) % rows:08}", i, (b"%08d" % i) * (1 + i % 24)) for i in range(n, n + per)),
        )
        con.execute("COMMIT")
        n += per
    con.close()
    # a second connection: what is in the database file and the WAL
    con = sqlite3.connect(db)
    got = con.execute("SELECT count(*), sum(n), sum(length(v)) FROM t").fetchone()
    want = (n, n * (n - 1) // 2, sum(8 * (1 + i % 24) for i in range(n)))
    if tuple(got) != want:
        sys.exit(f"sqlite: count/sum/bytes {tuple(got)}, want {want}")
    check = con.execute("PRAGMA integrity_check").fetchone()[0]
    if check != "ok":
        sys.exit(f"sqlite: integrity_check: {check}")
    con.close()


# ---- imports --------------------------------------------------------------------

MODULES = """argparse ast base64 bisect bz2 calendar configparser contextlib copy csv
dataclasses datetime decimal difflib dis email.message email.parser fnmatch
fractions ftplib getopt gettext glob gzip hashlib heapq hmac html.parser
http.client http.cookiejar inspect ipaddress json logging.handlers lzma
mimetypes netrc pathlib pickle pprint queue random shlex shutil smtplib
statistics string tarfile tempfile textwrap threading tokenize traceback
typing unittest urllib.request uuid wave xml.dom.minidom xml.etree.ElementTree
zipfile""".split()


def cmd_imports(root):
    import importlib

    root = os.path.realpath(root) + os.sep
    before = set(sys.modules)
    ok, elsewhere = 0, []
    for name in MODULES:
        if name in before:
            continue  # imported at startup (frozen or by site)
        mod = importlib.import_module(name)
        where = os.path.realpath(getattr(mod, "__file__", None) or "?")
        if where.startswith(root):
            ok += 1
        else:
            elsewhere.append(f"{name} from {where}")
    # every pure-Python module these pulled in came from ROOT too, but for
    # frozen ones and submodules of packages imported at startup (importlib.machinery)
    pulled = [m for n, m in sys.modules.items() if n not in before and getattr(m, "__file__", None)]
    outside = [
        m.__name__
        for m in pulled
        if m.__file__.endswith(".py")
        and not os.path.realpath(m.__file__).startswith(root)
        and m.__name__.partition(".")[0] not in before
        and getattr(m.__spec__, "origin", None) != "frozen"  # ntpath: in the binary
    ]
    if elsewhere or outside or ok < 40:
        sys.exit(f"imports: {ok} from the mount, {len(elsewhere + outside)} not: {', '.join(elsewhere + outside)[:150]}")
    print(f"{ok} listed modules, {len(pulled)} in all, from {root}")


# ---- fsx --------------------------------------------------------------------------


def cmd_fsx(path, nops, seed, maxlen=256 * 1024):
    """fsx's operations (read, write, mapread, mapwrite, truncate) plus fsync
    and close+reopen, lengths up to 64 KiB in a file of up to MAXLEN bytes;
    every read and the size after every change checked against a model."""
    import collections
    import mmap
    import random

    nops, maxlen = int(nops), int(maxlen)
    rng = random.Random(int(seed))
    page = mmap.ALLOCATIONGRANULARITY
    maxop = 64 * 1024
    model = bytearray()
    log = collections.deque(maxlen=20)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)

    def fail(i, what):
        sys.stderr.write("fsx: last operations:\n" + "".join(f"  {x}\n" for x in log))
        sys.exit(f"fsx: op {i}: {what}")

    def check(i, off, got, want):
        if got != want:
            at = next((k for k in range(min(len(got), len(want))) if got[k] != want[k]), min(len(got), len(want)))
            fail(i, f"{log[-1]}: {len(got)} bytes read, {len(want)} expected; first difference at {off + at}")

    def check_size(i):
        size = os.fstat(fd).st_size
        if size != len(model):
            fail(i, f"{log[-1]}: size {size}, model {len(model)}")

    ops = ["read", "write", "mapread", "mapwrite", "truncate", "fsync", "reopen"]
    weights = [30, 30, 15, 15, 6, 1, 3]
    for i in range(nops):
        op = rng.choices(ops, weights)[0]
        size = len(model)
        if op in ("read", "mapread"):
            if size == 0:
                op = "write"
            else:
                off = rng.randrange(size)
                n = rng.randint(1, min(maxop, size - off))
        if op in ("write", "mapwrite"):
            off = rng.randrange(maxlen - 1)
            n = rng.randint(1, min(maxop, maxlen - off))
        if op == "read":
            log.append(f"{i} read {off} {n}")
            check(i, off, os.pread(fd, n, off), bytes(model[off : off + n]))
        elif op == "mapread":
            log.append(f"{i} mapread {off} {n}")
            base = off - off % page
            with mmap.mmap(fd, off - base + n, mmap.MAP_SHARED, mmap.PROT_READ, offset=base) as m:
                got = m[off - base : off - base + n]
            check(i, off, got, bytes(model[off : off + n]))
        elif op == "write":
            data = rng.randbytes(n)
            log.append(f"{i} write {off} {n} (size {size})")
            if os.pwrite(fd, data, off) != n:
                fail(i, f"short write at {off}")
            if off > size:
                model.extend(bytes(off - size))
            model[off : off + n] = data
            check_size(i)
        elif op == "mapwrite":
            data = rng.randbytes(n)
            log.append(f"{i} mapwrite {off} {n} (size {size})")
            if off + n > size:  # fsx's mapwrite extends the file first
                os.ftruncate(fd, off + n)
                model.extend(bytes(off + n - size))
            base = off - off % page
            with mmap.mmap(fd, off - base + n, mmap.MAP_SHARED, offset=base) as m:
                m[off - base : off - base + n] = data  # no msync: fsx's msync(0) is a no-op
            model[off : off + n] = data
            check_size(i)
        elif op == "truncate":
            new = rng.randrange(maxlen)
            log.append(f"{i} truncate {size} -> {new}")
            os.ftruncate(fd, new)
            if new < size:
                del model[new:]
            else:
                model.extend(bytes(new - size))
            check_size(i)
        elif op == "fsync":
            log.append(f"{i} fsync")
            os.fsync(fd)
        else:
            log.append(f"{i} close+open")
            os.close(fd)
            fd = os.open(path, os.O_RDWR)
            check_size(i)
    log.append("final read of the whole file")
    os.close(fd)
    with open(path, "rb") as f:
        check(nops, 0, f.read(), bytes(model))


# ---- mix --------------------------------------------------------------------------


class Pool:
    """A set with a uniform random pick in O(1)."""

    def __init__(self, items=()):
        self.items, self.index = [], {}
        for x in items:
            self.add(x)

    def add(self, x):
        if x not in self.index:
            self.index[x] = len(self.items)
            self.items.append(x)

    def remove(self, x):
        i = self.index.pop(x)
        last = self.items.pop()
        if i < len(self.items):
            self.items[i] = last
            self.index[last] = i

    def pick(self, rng):
        return self.items[rng.randrange(len(self.items))] if self.items else None

    def __len__(self):
        return len(self.items)

    def __contains__(self, x):
        return x in self.index


class MixWorker:
    """Random ops in p{P}/ of the tree, a model of every entry (type, content,
    mode, link target, directory listing) checked by every read, stat and
    readdir. The model starts from mix_layout, not from the mount."""

    OPS = ["create", "write", "read", "stat", "rename", "unlink", "mkdir", "rmdir", "chmod", "symlink", "readdir"]
    WEIGHTS = [8, 14, 20, 16, 8, 6, 3, 3, 6, 4, 12]

    def __init__(self, root, p, procs, dirs, files, seed):
        import random

        self.rng = random.Random(seed * 1000 + p)
        self.root = root
        self.files, self.links, self.dirs = {}, {}, {}  # path -> content / target / set of names
        self.mode = {}
        for _layer, path, content in mix_layout(procs, dirs, files):
            if not path.startswith(f"p{p}/") and path != f"p{p}":
                continue
            if content is None:
                self.dirs.setdefault(path, set())
            else:
                self.files[path] = bytearray(content)  # top layer last: it wins
                self.mode[path] = 0o644
        for path in list(self.files) + [d for d in self.dirs if "/" in d]:
            self.dirs[os.path.dirname(path)].add(os.path.basename(path))
        self.fpool, self.lpool, self.dpool = Pool(self.files), Pool(), Pool(self.dirs)
        self.start_files = len(self.files)
        self.serial = 0
        self.op = "start"

    def full(self, path):
        return os.path.join(self.root, path)

    def newname(self, prefix):
        self.serial += 1
        d = self.dpool.pick(self.rng)
        return f"{d}/{prefix}{self.serial}"

    def add_entry(self, path):
        self.dirs[os.path.dirname(path)].add(os.path.basename(path))

    def del_entry(self, path):
        self.dirs[os.path.dirname(path)].discard(os.path.basename(path))

    def payload(self):
        n = self.rng.choice((0, 100, 1000, 4096, 9000))
        return self.rng.randbytes(n)

    def step(self):
        rng = self.rng
        op = rng.choices(self.OPS, self.WEIGHTS)[0]
        nfiles = len(self.fpool)
        if op == "create" and nfiles > 1.5 * self.start_files:
            op = "unlink"
        if op in ("unlink", "rename") and nfiles < 0.5 * self.start_files:
            op = "create"
        if op in ("write", "read", "chmod", "unlink", "rename") and nfiles == 0:
            op = "create"
        self.op = op
        getattr(self, "op_" + op)()

    def op_create(self):
        path, data = self.newname("n"), self.payload()
        fd = os.open(self.full(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.chmod(self.full(path), 0o644)  # whatever the umask
        self.files[path], self.mode[path] = bytearray(data), 0o644
        self.fpool.add(path)
        self.add_entry(path)

    def op_write(self):
        path, data = self.fpool.pick(self.rng), self.payload()
        model = self.files[path]
        off = len(model) if self.rng.random() < 0.5 else self.rng.randrange(len(model) + 1)
        fd = os.open(self.full(path), os.O_WRONLY)
        try:
            if os.pwrite(fd, data, off) != len(data):
                raise AssertionError(f"short write to {path}")
        finally:
            os.close(fd)
        model[off : off + len(data)] = data

    def op_read(self):
        path = self.fpool.pick(self.rng)
        with open(self.full(path), "rb") as f:
            got = f.read()
        if got != self.files[path]:
            raise AssertionError(f"read {path}: {len(got)} bytes, model {len(self.files[path])}, contents differ")

    def op_stat(self):
        kind = self.rng.random()
        if kind < 0.6 and len(self.fpool):
            path = self.fpool.pick(self.rng)
            st = os.lstat(self.full(path))
            want = (0o100000 | self.mode[path], len(self.files[path]))
            if (st.st_mode, st.st_size) != want:
                raise AssertionError(f"stat {path}: mode {st.st_mode:o} size {st.st_size}, model {want[0]:o} {want[1]}")
        elif kind < 0.8 and len(self.lpool):
            path = self.lpool.pick(self.rng)
            got = os.readlink(self.full(path))
            if got != self.links[path]:
                raise AssertionError(f"readlink {path}: {got!r}, model {self.links[path]!r}")
        else:
            path = self.dpool.pick(self.rng)
            st = os.lstat(self.full(path))
            if st.st_mode & 0o170000 != 0o040000:
                raise AssertionError(f"stat {path}: mode {st.st_mode:o}, not a directory")

    def op_rename(self):
        src = self.fpool.pick(self.rng)
        dst = self.fpool.pick(self.rng) if self.rng.random() < 0.25 else self.newname("r")
        if dst == src:
            return
        os.rename(self.full(src), self.full(dst))
        if dst in self.files:  # replaced
            self.fpool.remove(dst)
        self.files[dst], self.mode[dst] = self.files.pop(src), self.mode.pop(src)
        self.fpool.remove(src)
        self.fpool.add(dst)
        self.del_entry(src)
        self.add_entry(dst)

    def op_unlink(self):
        if len(self.lpool) and self.rng.random() < 0.2:
            path = self.lpool.pick(self.rng)
            os.unlink(self.full(path))
            del self.links[path]
            self.lpool.remove(path)
        else:
            path = self.fpool.pick(self.rng)
            os.unlink(self.full(path))
            del self.files[path], self.mode[path]
            self.fpool.remove(path)
        self.del_entry(path)

    def op_mkdir(self):
        path = self.newname("m")
        if path.count("/") > 4:
            return self.op_readdir()
        os.mkdir(self.full(path))
        os.chmod(self.full(path), 0o755)
        self.dirs[path] = set()
        self.dpool.add(path)
        self.add_entry(path)

    def op_rmdir(self):
        # an empty directory, or one emptied by unlinking its files (few)
        for _ in range(8):
            path = self.dpool.pick(self.rng)
            if path.count("/") >= 1 and len(self.dirs[path]) <= 3 and not any(
                os.path.join(path, n) in self.dirs for n in self.dirs[path]
            ):
                break
        else:
            return self.op_readdir()
        for name in sorted(self.dirs[path]):
            child = os.path.join(path, name)
            os.unlink(self.full(child))
            if child in self.files:
                del self.files[child], self.mode[child]
                self.fpool.remove(child)
            else:
                del self.links[child]
                self.lpool.remove(child)
        os.rmdir(self.full(path))
        del self.dirs[path]
        self.dpool.remove(path)
        self.del_entry(path)

    def op_chmod(self):
        path = self.fpool.pick(self.rng)
        mode = self.rng.choice((0o600, 0o640, 0o644, 0o755))
        os.chmod(self.full(path), mode)
        self.mode[path] = mode

    def op_symlink(self):
        path = self.newname("s")
        target = f"../t{self.serial % 97}"
        os.symlink(target, self.full(path))
        self.links[path] = target
        self.lpool.add(path)
        self.add_entry(path)

    def op_readdir(self):
        self.op = "readdir"  # also for mkdir and rmdir that found nothing to do
        path = self.dpool.pick(self.rng)
        got = set(os.listdir(self.full(path)))
        if got != self.dirs[path]:
            extra, missing = sorted(got - self.dirs[path]), sorted(self.dirs[path] - got)
            raise AssertionError(f"readdir {path}: extra {extra[:5]}, missing {missing[:5]}")


def cmd_mix(root, procs, dirs, files, seconds, seed):
    import time

    procs, dirs, files, seconds, seed = (int(x) for x in (procs, dirs, files, seconds, seed))
    go_r, go_w = os.pipe()
    kids = []
    for p in range(procs):
        res_r, res_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(go_w)
            os.close(res_r)
            code, msg, n, w = 0, "", 0, None
            try:
                w = MixWorker(root, p, procs, dirs, files, seed)
                os.read(go_r, 1)
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline:
                    w.step()
                    n += 1
            except BaseException as e:  # noqa: B036 - everything is a failure, reported
                what = str(e) if isinstance(e, AssertionError) else f"{type(e).__name__}: {e}"
                code, msg = 1, f"process {p}, op {n} ({w and w.op}): {what}"
            os.write(res_w, f"{n}\t{msg}".encode()[:4000])
            os._exit(code)
        os.close(res_w)
        kids.append((pid, res_r))
    os.close(go_r)
    t0 = time.monotonic()
    os.write(go_w, b"x" * procs)
    total, errors = 0, []
    for pid, res_r in kids:
        chunks = []
        while True:
            b = os.read(res_r, 4096)
            if not b:
                break
            chunks.append(b)
        os.waitpid(pid, 0)
        n, _, msg = b"".join(chunks).decode(errors="replace").partition("\t")
        total += int(n or 0)
        if msg or not n:
            errors.append(msg or "process died")
    elapsed = time.monotonic() - t0
    if errors:
        sys.exit("mix: " + "; ".join(errors))
    print(f"{total / elapsed:.1f}")
    sys.stderr.write(f"mix: {total} ops in {elapsed:.2f} s by {procs} processes\n")


# ---- table ------------------------------------------------------------------------


def cmd_table(results, targets):
    # results: workload \t target \t run \t value|FAIL|SKIP \t note; workload
    # "mix" is ops/s, everything else seconds
    import statistics

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_helper import read_results

    order, data, fails, skips = read_results(results)
    base = targets[0]

    def fmt(wl, v):
        if wl == "mix":
            return f"{v:.0f} ops/s"
        return f"{v:.3f} s" if v < 1 else f"{v:.2f} s"

    print("| workload | " + " | ".join(targets) + " |")
    print("|---" * (len(targets) + 1) + "|")
    for wl in order:
        cells = []
        ref = data.get((wl, base))
        ref_med = statistics.median(ref) if ref else None
        for tgt in targets:
            vals = data.get((wl, tgt))
            failed = fails.get((wl, tgt), [])
            why = failed[0].replace("|", "/")[:100] if failed else ""
            if not vals:
                if failed:
                    cells.append(f"FAIL: {why}")
                else:
                    cells.append(f"skipped: {skips[(wl, tgt)]}" if (wl, tgt) in skips else "-")
                continue
            med = statistics.median(vals)
            cell = fmt(wl, med)
            if tgt != base and ref_med:
                cell += f" ({med / ref_med:.2f}x)"
            if failed:
                cell += f"; FAIL in {len(failed)} of {len(failed) + len(vals)} runs: {why}"
            cells.append(cell)
        name = "mix (ops/s, higher is better)" if wl == "mix" else wl
        if "/" in wl:
            name = "&nbsp;&nbsp;" + wl
        print(f"| {name} | " + " | ".join(cells) + " |")
    print()
    print(
        f"Cells: median of the successful runs (ratio to {base}'s median): wall time in seconds, "
        f"lower is better; for mix, operations per second, higher is better. FAIL: the run failed "
        f"(first error shown). Indented rows: the steps of the row above."
    )


def main(argv):
    cmds = {
        "cproj": (cmd_cproj, 3, 3),
        "mixtree": (cmd_mixtree, 5, 5),
        "sqlite": (cmd_sqlite, 3, 3),
        "imports": (cmd_imports, 1, 1),
        "fsx": (cmd_fsx, 3, 4),
        "mix": (cmd_mix, 6, 6),
    }
    if len(argv) >= 4 and argv[1] == "table":
        cmd_table(argv[2], argv[3:])
        return 0
    if len(argv) >= 2 and argv[1] in cmds:
        fn, lo, hi = cmds[argv[1]]
        if lo <= len(argv) - 2 <= hi:
            fn(*argv[2:])
            return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
