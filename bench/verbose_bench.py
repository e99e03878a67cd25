#!/usr/bin/env python3
"""What ``-v`` costs: ``kascan scan`` of a 10,000-file tree (a .gitignore, ignored directories and
files, symlinks), by two checkouts of kascan, alternating, warm cache; medians of the wall time.

    python bench/verbose_bench.py OLD_CHECKOUT NEW_CHECKOUT [--runs 15] [--jobs N]

Each run is ``python -m kascan scan TREE -q`` with PYTHONPATH set to the checkout (and, for the
new one, once more with ``-v``, its lines sent to /dev/null). The tree is built in /tmp:
outside any repository, whose ignore files would apply.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import string
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = Path(os.environ.get("KASCAN_VERBOSE_TREE", "/tmp/kascan-verbose-tree"))  # outside a repo
PREFIX = "ka_" + "live_"


def build(root: Path, files: int = 10_000) -> Path:
    marker = root / ".built"
    if marker.exists():
        return root
    rng = random.Random("kascan-verbose-bench")
    words = ["alpha", "beta", "gamma", "delta", "config", "server", "value", "token"]
    for i in range(files):
        d = root / f"pkg{i % 40:02d}" / f"mod{i % 7}"
        d.mkdir(parents=True, exist_ok=True)
        body = "\n".join(" ".join(rng.choices(words, k=12)) for _ in range(rng.randint(20, 120)))
        if i % 997 == 0:
            alnum = string.ascii_letters + string.digits
            body += f"\nKEY={PREFIX}{''.join(rng.choices(alnum, k=32))}\n"
        (d / f"f{i:05d}.txt").write_text(body + "\n")
    (root / ".gitignore").write_text("*.log\nbuild/\n")
    for i in range(40):
        (root / f"pkg{i:02d}" / "debug.log").write_text("ignored\n")
        b = root / f"pkg{i:02d}" / "build"
        b.mkdir(exist_ok=True)
        (b / "out.txt").write_text("ignored\n")
        (root / f"pkg{i:02d}" / "link").symlink_to("mod0")
    marker.write_text("ok\n")
    return root


def once(checkout: str, tree: Path, extra: list[str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system, the process and its workers) of one run."""
    env = {**os.environ, "PYTHONPATH": checkout}
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "kascan", "scan", str(tree), "-q", *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    took = time.perf_counter() - start
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    assert code == 1, code
    return took, usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--jobs", type=int, default=0)
    args = ap.parse_args()
    tree = build(CORPUS)
    jobs = ["--jobs", str(args.jobs)] if args.jobs else []
    cases = {
        "old": (args.old, jobs),
        "new": (args.new, jobs),
        "new -v": (args.new, [*jobs, "-v"]),
    }
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in cases}
    for co, extra in cases.values():  # warm up
        once(co, tree, extra)
    for _ in range(args.runs):
        for name, (co, extra) in cases.items():
            times[name].append(once(co, tree, extra))
    for name, ts in times.items():
        wall = [t for t, _ in ts]
        cpu = [c for _, c in ts]
        print(
            f"{name:8s} wall median {statistics.median(wall):.3f} s (min {min(wall):.3f}), "
            f"cpu median {statistics.median(cpu):.3f} s (min {min(cpu):.3f})  ({len(ts)} runs)"
        )


if __name__ == "__main__":
    main()
