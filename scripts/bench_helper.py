#!/usr/bin/env python3
"""Helpers for scripts/bench.sh: pick the files of the test layers and print
the result table.

  bench_helper.py select SRC CAP_MB         NUL-separated relative paths of SRC
                                            (pre-order, sorted) up to CAP_MB of
                                            file data (0: everything)
  bench_helper.py pick ROOT N [SKIP...]     N regular files of ROOT spread over
                                            the whole tree, one per line
  bench_helper.py table RESULTS TARGET...   the markdown table (medians, ratios
                                            to the first target)
"""

import os
import statistics
import sys


def walk_under(root, rel):
    """Relative paths under root/rel, pre-order, sorted by name; symlinks not followed."""
    full = os.path.join(root, rel)
    try:
        entries = sorted(os.scandir(full), key=lambda e: e.name)
    except OSError:
        return
    for e in entries:
        path = os.path.join(rel, e.name)
        yield path, e
        if e.is_dir(follow_symlinks=False):
            yield from walk_under(root, path)


def cmd_select(src, cap_mb):
    cap = int(cap_mb) * 1024 * 1024
    total = 0
    out = sys.stdout.buffer
    for path, e in walk_under(src, ""):
        try:
            st = e.stat(follow_symlinks=False)
        except OSError:
            continue
        if e.is_file(follow_symlinks=False):
            if cap and total + st.st_size > cap:
                break
            total += st.st_size
        elif not (e.is_dir(follow_symlinks=False) or e.is_symlink()):
            continue  # no devices, sockets or fifos in a layer copy
        out.write(os.fsencode(path) + b"\0")


def cmd_pick(root, n, skip):
    skip = set(skip)
    files = [
        p
        for p, e in walk_under(root, "")
        if e.is_file(follow_symlinks=False) and p not in skip and "\n" not in p
    ]
    n = int(n)
    if n <= 0 or not files:
        return
    if n >= len(files):
        chosen = files
    else:
        step = len(files) / n
        chosen = [files[int(i * step)] for i in range(n)]
    for p in chosen:
        print(p)


def fmt_secs(s):
    return f"{s:.3f} s" if s < 1 else f"{s:.2f} s"


def read_results(path):
    """A results file (workload \t target \t run \t value|FAIL|SKIP \t
    note, a line per run), also read by bench_programs.py: the workloads in
    order of appearance, and by (workload, target) the values, the notes of
    the failed runs and the note of a skipped one."""
    order, data, fails, skips = [], {}, {}, {}
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 4:
                continue
            wl, tgt, _run, val = parts[:4]
            note = parts[4] if len(parts) > 4 else ""
            if wl not in order:
                order.append(wl)
            if val == "FAIL":
                fails.setdefault((wl, tgt), []).append(note or "failed")
            elif val == "SKIP":
                skips[(wl, tgt)] = note
            else:
                data.setdefault((wl, tgt), []).append(float(val))
    return order, data, fails, skips


def cmd_table(results, targets):
    # workload "rss": the daemon's peak RSS (KiB), a row of its own
    order, data, fails, _ = read_results(results)
    rss = {tgt: v for (wl, tgt), v in data.items() if wl == "rss"}
    order = [wl for wl in order if wl != "rss"]
    base = targets[0]
    print("| workload | " + " | ".join(targets) + " |")
    print("|---" * (len(targets) + 1) + "|")
    for wl in order:
        cells = []
        ref = data.get((wl, base))
        ref_med = statistics.median(ref) if ref else None
        for tgt in targets:
            vals = data.get((wl, tgt))
            failed = fails.get((wl, tgt), [])
            why = failed[0].replace("|", "/")[:60] if failed else ""
            if not vals:
                cells.append(f"fails: {why}" if failed else "-")
                continue
            med = statistics.median(vals)
            if tgt == base or not ref_med:
                cell = fmt_secs(med)
            else:
                cell = f"{fmt_secs(med)} ({med / ref_med:.2f}x)"
            if failed:
                cell += f"; {len(failed)} of {len(failed) + len(vals)} runs fail: {why}"
            cells.append(cell)
        print(f"| {wl} | " + " | ".join(cells) + " |")
    if rss:
        cells = []
        for tgt in targets:
            vals = rss.get(tgt)
            cells.append(f"{statistics.median(vals) / 1024:.1f} MiB" if vals else "-")
        print("| daemon peak RSS after walk-cold | " + " | ".join(cells) + " |")
    print()
    print(f"Cells: median wall time of the successful runs (ratio to {base}'s median).")


def main(argv):
    if len(argv) >= 3 and argv[1] == "select":
        cmd_select(argv[2], argv[3] if len(argv) > 3 else "0")
    elif len(argv) >= 4 and argv[1] == "pick":
        cmd_pick(argv[2], argv[3], argv[4:])
    elif len(argv) >= 4 and argv[1] == "table":
        cmd_table(argv[2], argv[3:])
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
