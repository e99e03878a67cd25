#!/usr/bin/env python3
"""The least a Python process must do for the benchmarks' tree and big-file rows: the floor
that any scanner written in Python stands on, timed beside ripgrep and kascan (``run.py``).

    python bench/floor.py tree ROOT N   # N processes (forked) walk ROOT with os.scandir (sorted,
                                        # .git skipped, no ignore files), each reading every
                                        # N-th regular file whole in one read, and test it for
                                        # the prefix with ``in``
    python bench/floor.py file PATH N   # N threads read their part of PATH with preadv into a
                                        # buffer of 1 MiB and scan it with Hyperscan for the
                                        # prefix (both release the GIL)

Prints how many files (tree) or matches (file) hold the prefix. No ignore rules, no decoders,
no archives, no line numbers, no report: what is left of kascan's time above these rows is
kascan's own; what is below them no Python program gets.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator

PREFIX = ("ka_" + "live_").encode()  # split: no key-shaped literal in the repository


def _walk(top: str) -> Iterator[str]:
    with os.scandir(top) as it:
        entries = sorted(it, key=lambda e: e.name)
    for e in entries:
        if e.is_dir(follow_symlinks=False):
            if e.name != ".git":
                yield from _walk(e.path)
        elif e.is_file(follow_symlinks=False):
            yield e.path


def tree(root: str, n: int) -> int:
    me = 0
    for i in range(1, n):
        if os.fork() == 0:
            me = i
            break
    found = 0
    for i, path in enumerate(_walk(root)):
        if i % n != me:
            continue
        fd = os.open(path, os.O_RDONLY)
        try:
            data = os.read(fd, os.fstat(fd).st_size + 1)
        finally:
            os.close(fd)
        found += PREFIX in data
    if me:
        os._exit(0)
    for _ in range(1, n):
        os.wait()
    return found


def file(path: str, n: int) -> int:
    import hyperscan

    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    db.compile(expressions=[PREFIX], ids=[0], elements=1, flags=0)
    serialized = hyperscan.dumpb(db)
    fd = os.open(path, os.O_RDONLY)
    size = os.fstat(fd).st_size
    found: list[int] = []

    def on_match(_id: int, _from: int, to: int, _flags: int, out: list[int]) -> None:
        out.append(to)

    def part(lo: int, hi: int) -> None:
        mine = hyperscan.loadb(serialized, mode=hyperscan.HS_MODE_BLOCK)
        mine.scratch = hyperscan.Scratch(mine)
        view = memoryview(bytearray(1 << 20))
        at = lo
        while at < hi:
            got = os.preadv(fd, [view[: min(len(view), hi - at + len(PREFIX) - 1)]], at)
            if not got:
                break
            mine.scan(view[:got], match_event_handler=on_match, context=found)
            at += min(got, len(view) - len(PREFIX) + 1)

    threads = [
        threading.Thread(target=part, args=(i * size // n, (i + 1) * size // n)) for i in range(n)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(found)


def main(argv: list[str]) -> int:
    what, path, n = argv[0], argv[1], int(argv[2]) if len(argv) > 2 else 2
    print(tree(path, n) if what == "tree" else file(path, n))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
