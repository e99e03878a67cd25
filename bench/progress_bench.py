"""What the progress line costs: a kascan command timed with stderr on a terminal (a pty: the
line is drawn) and on a pipe (no line), alternately, whole process, wall clock and CPU time of
kascan and its git children.

    python bench/progress_bench.py [--runs 8] [--python PY] -- scan TREE -f json -o /dev/null
    python bench/progress_bench.py -- git REPO.git -f json -o /dev/null

``--python`` runs another checkout's kascan (``PYTHONPATH=../main python``) for a before/after.
"""

from __future__ import annotations

import argparse
import os
import pty
import resource
import statistics
import subprocess
import sys
import threading
import time


def once(argv: list[str], env: dict[str, str], terminal: bool) -> tuple[float, float]:
    """Wall and CPU seconds of one run; on a terminal the pty is drained as the line is drawn."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    master = slave = -1
    if terminal:
        master, slave = pty.openpty()
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=slave if terminal else subprocess.PIPE,
    )
    if terminal:
        os.close(slave)

        def drain() -> None:
            while True:
                try:
                    if not os.read(master, 1 << 16):
                        return
                except OSError:
                    return

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        proc.wait()
        reader.join(5)
        os.close(master)
    else:
        proc.communicate()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("args", nargs=argparse.REMAINDER)
    ns = ap.parse_args()
    args = ns.args[1:] if ns.args[:1] == ["--"] else ns.args
    py = ns.python.split()
    env = dict(os.environ)
    for word in list(py):
        if "=" in word:  # PYTHONPATH=... before the interpreter
            k, _, v = word.partition("=")
            env[k] = v
            py.remove(word)
    argv = [*py, "-m", "kascan", *args]
    got: dict[str, list[tuple[float, float]]] = {"terminal": [], "pipe": []}
    for _ in range(ns.runs):
        for name in got:
            got[name].append(once(argv, env, name == "terminal"))
    for name, runs in got.items():
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        print(
            f"{name:9} wall min {min(walls):.3f} median {statistics.median(walls):.3f}  "
            f"cpu min {min(cpus):.3f} median {statistics.median(cpus):.3f}  ({len(runs)} runs)"
        )


if __name__ == "__main__":
    main()
