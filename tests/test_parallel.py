"""``--jobs N`` reports exactly what ``--jobs 1`` reports, in the same order; the ignore fast path
agrees with pathspec."""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pathspec
import pytest

from kascan.ignore import _quick_test
from kascan.model import Candidate
from kascan.parallel import BATCH_FILES, TreeScanner
from kascan.rules import load_rules
from kascan.sources.base import FileRef
from kascan.stats import ScanStats

from .conftest import PREFIX, Result, findings_of, make_key


def plant_tree(root: Path, rng: random.Random) -> list[str]:
    """~600 files in nested and hidden dirs; keys in many, with duplicates, placeholders,
    binaries, an ignored directory and a file large enough to span windows."""
    keys: list[str] = []
    (root / ".gitignore").write_text("ignored/\n*.tmp\n")
    for d in range(12):
        sub = root / (f".hidden{d}" if d % 4 == 0 else f"pkg{d}") / f"mod{d % 3}"
        sub.mkdir(parents=True)
        for f in range(50):
            lines = [f"line {i} value={rng.randrange(10**9)}" for i in range(rng.randrange(1, 30))]
            ignored = f % 17 == 0  # *.tmp
            if rng.random() < 0.3:
                k = make_key(rng)
                if not ignored:
                    keys.append(k)
                lines.insert(rng.randrange(len(lines) + 1), f'API_KEY = "{k}"  # col')
                if rng.random() < 0.3:  # the same key twice on one line, and again later
                    lines.append(f"{k} {k}")
            if rng.random() < 0.05:
                lines.append(f"token = {PREFIX}{'x' * 32}")  # a placeholder: dropped
            name = f"f{f:03d}.tmp" if ignored else f"f{f:03d}.py"
            (sub / name).write_text("\n".join(lines) + "\n")
        blob = bytearray(rng.randbytes(5000))
        k = make_key(rng)
        keys.append(k)
        blob[100 : 100 + len(k) + 2] = b"\0" + k.encode() + b"\0"
        (sub / "data.bin").write_bytes(bytes(blob))
    (root / "ignored").mkdir()
    (root / "ignored" / "x.py").write_text(f"k = '{make_key(rng)}'\n")
    big = [f"{i} {'y' * 60}" for i in range(90_000)]  # ~6 MB: more than one 4 MiB window
    k = make_key(rng)
    keys.append(k)
    big[60_000] += f" {k}"
    (root / "big.txt").write_text("\n".join(big))
    return keys


@pytest.mark.slow
def test_jobs_2_gives_byte_identical_reports(
    tmp_path: Path, run_cli: Callable[..., Result], rng: random.Random
) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    keys = plant_tree(root, rng)
    one = run_cli("scan", "--jobs", "1", "-f", "json", root)
    two = run_cli("scan", "--jobs", "2", "-f", "json", root)
    three = run_cli("scan", "--jobs", "3", "-f", "json", root)
    assert one.returncode == two.returncode == three.returncode == 1, one.stderr
    assert two.stdout == one.stdout
    assert three.stdout == one.stdout
    found = findings_of(one)
    summary = one.json()["summary"]
    assert isinstance(summary, dict)
    assert summary["files"] > BATCH_FILES * 4  # the workers really had batches to share
    assert sum(summary["dropped"].values()) > 0  # placeholders: dropped, in both
    assert summary["skipped"]["ignored"] >= 2
    assert {f["fingerprint"] for f in found} == {
        "sha256:" + hashlib.sha256(k.encode()).hexdigest() for k in keys
    }
    assert any(str(f["path"]).endswith("big.txt") and f["line"] == 60_001 for f in found)
    # the text report streams findings in the same order too
    t1 = run_cli("scan", "--jobs", "1", root)
    t2 = run_cli("scan", "--jobs", "2", root)

    def untimed(text: str) -> str:  # the summary says how long each run took
        return re.sub(r" in [0-9.]+ (min [0-9]+ )?s\.$", ".", text, flags=re.M)

    assert untimed(t1.stdout) == untimed(t2.stdout)
    assert any(ln.startswith("kascan: scanned ") and " in " in ln for ln in t1.stdout.splitlines())
    assert t1.stdout.count("\n") > len(keys)
    for r in (one, two, three, t1, t2):
        r.assert_no_leak(*keys)


def test_jobs_must_be_positive(tmp_path: Path, run_cli: Callable[..., Result]) -> None:
    r = run_cli("scan", "--jobs", "0", tmp_path)
    assert r.returncode == 2
    assert "--jobs" in r.stderr
    r.assert_no_leak()


def _events(jobs: int, refs: list[FileRef | str]) -> tuple[list[str], ScanStats]:
    """What the reporter sees, in order: candidates and warnings, as one stream."""
    stats = ScanStats()
    seen: list[str] = []

    def warn(message: str) -> None:
        seen.append("warn: " + message)

    def walk(walk_warn: Callable[[str], None]) -> Iterator[FileRef]:
        for item in refs:
            if isinstance(item, str):
                walk_warn(item)
            else:
                yield item

    def show(c: Candidate) -> str:
        f = c.finding
        return f"{f.path}:{f.line}:{f.column} {f.secret.fingerprint} {c.drop}"

    from kascan.model import Decoders
    from kascan.pipeline import scan_file
    from kascan.sources.base import Run

    run = Run(load_rules(), stats, warn, Decoders(), None)
    with TreeScanner(run, jobs, scan_file) as scanner:
        seen.extend(show(c) for c in scanner.scan(walk))
    return seen, stats


def test_warnings_and_findings_keep_their_order(tmp_path: Path, rng: random.Random) -> None:
    """Walk warnings (between files) and read warnings (a file gone) land in the same places."""
    items: list[FileRef | str] = []
    for i in range(5 * BATCH_FILES):
        p = tmp_path / f"f{i:04d}.txt"
        if i % 7 == 0:
            p.write_text(f"k={make_key(rng)}\n")
        elif i % 31 == 0:
            pass  # never written: reading it fails with a warning
        else:
            p.write_text(f"nothing {i}\n")
        if i % 45 == 0:
            items.append(f"walk warning before {i}")
        items.append(FileRef(str(p), p.name))
    one, stats1 = _events(1, items)
    two, stats2 = _events(2, items)
    assert two == one
    assert stats2.as_dict() == stats1.as_dict()
    assert stats1.unreadable == sum(1 for i in range(5 * BATCH_FILES) if i % 7 and not i % 31)
    warns = [e for e in one if e.startswith("warn: ")]
    assert any("walk warning before 45" in w for w in warns)
    assert any("cannot read f0031.txt" in w for w in warns)
    assert one.index("warn: walk warning before 45") < next(
        i for i, e in enumerate(one) if e.startswith("f0049.txt:")
    )
    # a tree smaller than a batch is scanned without forking, with the same result
    small = items[:10]
    assert _events(2, small) == _events(1, small)


PATTERNS = [
    "*.log", "ignored-build/", "!keep.log", "/top", "a/**/b", "[abc]x?", "**/foo", "bar/",
    "!bar/x", "*.py[co]", "doc/*.txt", "\\#x", "build", "/dist/", "**/tmp/**", "*~", ".env*",
    "!.env.example", "x/y/", "?", ".*", "cscope.*", "*.tab.[ch]", "*.o.*", "\\#*#", "GTAGS",
    "fit-dtb.blob*", "!.gitignore", "*.a", "tmp/", "é*", "*[.]c", "?[!x]",
]  # fmt: skip
NAMES = ["a", "b", "x.log", "keep.log", "top", "foo", "bar", "x", "ax1", "doc", "y.txt", "build",
         "dist", "tmp", "z~", ".env", ".env.example", "m.pyc", "#x", "y", ".gitignore", "cscope.out",
         "p.tab.c", "m.o.cmd", "#y#", "GTAGS", "fit-dtb.blob.x", "lib.a", "é1", "q.c"]  # fmt: skip


def test_ignore_quick_test_never_hides_a_match(rng: random.Random) -> None:
    """The one-regex prefilter may say "maybe" too often, never "no" when pathspec says yes."""
    checked = matched = skipped = 0
    for _ in range(300):
        lines = rng.sample(PATTERNS, rng.randint(1, 8))
        spec = pathspec.GitIgnoreSpec.from_lines(lines, backend="simple")  # as kascan.ignore
        quick = _quick_test(lines)
        assert _quick_test(lines, spec) is not None  # (from a compiled spec too)
        assert quick is not None
        for _ in range(100):
            path = "/".join(rng.choices(NAMES, k=rng.randint(1, 4))) + rng.choice(["", "/"])
            verdict = spec.check_file(path).include
            checked += 1
            if verdict is not None:
                matched += 1
                assert quick(path) is not None, (lines, path)
            elif quick(path) is None:
                skipped += 1
    assert checked == 30_000
    assert matched > 3000  # the paths really exercise the patterns
    assert skipped > 3000  # and the prefilter really rules paths out


def test_a_directory_s_ignore_check_is_the_ignorer_s(tmp_path: Path, rng: random.Random) -> None:
    """``Ignorer.in_directory`` (one merged name test for a directory's entries, where only
    patterns naming one component can match below it) says exactly what ``Ignorer.ignored``
    says, for every entry, with nested ignore files, excludes and a scan root inside a
    repository; and it does take its fast path for most directories."""
    from kascan.ignore import Ignorer

    fast = exact = 0
    for i in range(120):
        repo = tmp_path / f"r{i}"
        (repo / ".git").mkdir(parents=True)
        root = repo / rng.choice(["", "a", "a/b"])
        chain = [""] + ["/".join(rng.choices(NAMES[:12], k=n)) for n in (1, 2, 3)]
        chain = [c for n, c in enumerate(chain) if not n or c.startswith(chain[n - 1])]
        for d in [repo, repo / "a", *(root / c for c in chain)]:  # the parents' files too
            d.mkdir(parents=True, exist_ok=True)
            if rng.random() < 0.7:
                lines = rng.sample(PATTERNS, rng.randint(1, 6))
                (d / ".gitignore").write_text("\n".join(lines) + "\n")
        ignorer = Ignorer.for_root(root, rng.sample(PATTERNS, rng.randint(0, 3)))
        dirs = []
        for c in chain:  # the walk pushes the ignore file of each directory it enters
            if (root / c / ".gitignore").is_file():
                ignorer.push(c, root / c / ".gitignore")
            dirs.append(c + "/" if c else "")
        for rel_dir in [*dirs, "zz/", *(rng.choice(NAMES) + "/" for _ in range(3))]:
            check = ignorer.in_directory(rel_dir)
            if check.__name__ == "exact":
                exact += 1
            else:
                fast += 1
            for name in NAMES:
                for is_dir in (False, True):
                    want = ignorer.ignored(rel_dir + name, is_dir)
                    assert check(name, is_dir) == want, (rel_dir, name, is_dir)
    assert fast > 100 and exact > 100, (fast, exact)  # both ways taken, many times


def test_a_big_file_read_by_threads_gives_what_one_thread_gives(
    tmp_path: Path, rng: random.Random, run_cli: Callable[..., Result]
) -> None:
    """A 72 MiB file (text with multi-byte characters, a hole, a 3 MiB line without a newline
    across a part's edge, binary runs) read in 1 to 4 parts side by side
    (``KASCAN_FILE_THREADS``), through the real CLI: the same findings, lines and columns, in
    the same order. Keys sit on each part's edge (where a part's first chunk starts, and where
    its first match may start, and where its first window is read), in plain text, base64
    and UTF-16."""
    import base64

    from kascan.sources.stream import CONTEXT, OVERLAP, WINDOW

    size = 72 << 20
    data = bytearray()
    while len(data) < size:
        kind = rng.randrange(4)
        if kind == 0:
            data += ("é€😀 text line\n" * rng.randint(1, 5000)).encode()
        elif kind == 1:
            data += rng.randbytes(rng.randint(1, 200_000)).replace(b"\n", b"\xff")
        elif kind == 2:
            data += b"\0" * rng.randint(1, 3 << 20)
        else:
            data += b"a = 1\n" * rng.randint(1, 20_000)
    del data[size:]
    windows = (size - WINDOW) // WINDOW
    keys: list[str] = []

    def plant(at: int, how: int, end: bytes = b"\n") -> None:
        k = make_key(rng)
        raw = [k.encode(), base64.b64encode(f"token={k}".encode()), k.encode("utf-16-le")][how]
        data[at : at + len(raw) + 2] = b" " + raw + end
        keys.append(k)

    data[4 << 20 : 8 << 20] = bytes(4 << 20)  # a hole (below)
    edges = sorted(
        {
            WINDOW - OVERLAP - CONTEXT + (j * windows // parts) * WINDOW
            for parts in (2, 3, 4)
            for j in range(1, parts)
        }
    )
    # a 3 MiB line across the middle edge: the columns of the keys after it count from 2 MiB back
    mid = edges[len(edges) // 2]
    data[mid - (2 << 20) : mid + (1 << 20)] = b"\xc3\xa9" * (3 << 19)
    for edge in edges:
        for at in (
            edge - 100,
            edge + CONTEXT - 30,
            edge + CONTEXT + 60,
            edge + CONTEXT + OVERLAP - 20,
        ):
            plant(at, len(keys) % 3, b" " if edge == mid else b"\n")  # mid: one line
    path = tmp_path / "big.bin"
    with path.open("wb") as fh:
        fh.write(data[: 4 << 20])
        fh.seek(4 << 20, 1)
        fh.write(data[8 << 20 :])
    outs = {}
    for threads in ("1", "2", "3", "4"):
        res = run_cli("scan", path, "-f", "json", extra_env={"KASCAN_FILE_THREADS": threads})
        assert res.returncode == 1, res.stderr
        outs[threads] = [
            (f["line"], f["column"], f["fingerprint"], f["decoded"]) for f in findings_of(res)
        ]
    res = run_cli("scan", path, "-f", "json", "--jobs", "1")  # one core: one thread
    assert res.returncode == 1, res.stderr
    outs["jobs 1"] = [
        (f["line"], f["column"], f["fingerprint"], f["decoded"]) for f in findings_of(res)
    ]
    assert outs["1"] == outs["2"] == outs["3"] == outs["4"] == outs["jobs 1"]
    found = {s for _l, _c, s, _d in outs["1"]}
    assert len(found) == len(set(keys))


def test_a_split_file_abandoned_or_truncated_half_way(tmp_path: Path, rng: random.Random) -> None:
    """A scan that stops reading a split file half-way leaves no thread behind (they are joined
    before the descriptor is closed); a file truncated while its parts are read ends without
    an error or a hang, with what was found before the cut."""
    import os
    import threading

    from kascan.sources.files import read_file
    from kascan.sources.stream import WINDOW

    path = tmp_path / "big.bin"
    lines = [f"line {i} {'z' * 50}\n" for i in range(800_000)]  # ~48 MiB
    for i in range(0, len(lines), 40_000):
        lines[i] = f"k = {make_key(rng)}\n"
    path.write_text("".join(lines))
    from kascan.sources.stream import _parts

    assert _parts(1) == 1  # --jobs 1: one thread
    os.environ["KASCAN_FILE_THREADS"] = "3"
    try:
        chunks = read_file(FileRef(str(path), "big.bin"), ScanStats(), print, quiet=True)
        first = next(iter(chunks))
        assert first.line == 1
        chunks.close()  # type: ignore[attr-defined]
        assert not [t for t in threading.enumerate() if t.name.startswith("kascan-part")]

        warnings: list[str] = []
        got = []
        for chunk in read_file(
            FileRef(str(path), "big.bin"), ScanStats(), warnings.append, quiet=True
        ):
            got.append(chunk.line)
            if len(got) == 2:
                os.truncate(path, 20 * WINDOW)
        assert len(got) >= 2 and got[0] == 1
        assert not [t for t in threading.enumerate() if t.name.startswith("kascan-part")]
    finally:
        del os.environ["KASCAN_FILE_THREADS"]


def test_a_split_file_shrunk_after_its_parts_were_read(tmp_path: Path, rng: random.Random) -> None:
    """A log rotated by copytruncate while split: the parts have read their chunks when the file
    shrinks under them. The chunk the new end falls in is handed on as the last one (tail 0), so
    a key just before the cut is found, as with one thread; nothing is handed on past it."""
    import os
    import time

    from kascan.match import find_candidates
    from kascan.rules import builtin_rules
    from kascan.sources.stream import iter_stream

    mib = 1 << 20
    path = tmp_path / "app.log"
    cut = 40 * mib + 123_456
    kept, late = make_key(rng), make_key(rng)

    def found(threads: str) -> set[str]:
        with path.open("wb") as fh:
            fh.write((b"some text line\n" * (64 * mib // 15))[: 64 * mib])
            for m in range(64):  # a needle in every window: every chunk is handed on
                fh.seek(m * mib + 777)
                fh.write(b" " + PREFIX.encode() + b"x ")
            fh.seek(cut - 1000)
            fh.write(f" {kept} ".encode())
            fh.seek(50 * mib)
            fh.write(f" {late} ".encode())  # cut off
        os.environ["KASCAN_FILE_THREADS"] = threads
        fd = os.open(path, os.O_RDONLY)
        try:
            chunks = iter_stream(lambda n: os.read(fd, n), "app.log", quiet=True, fd=fd)

            def shrinking() -> Iterator[object]:
                yield next(chunks)
                time.sleep(0.5)  # the parts' threads have read their parts by now
                os.truncate(path, cut)
                for chunk in chunks:
                    assert len(chunk.data) >= chunk.fresh + chunk.tail
                    yield chunk

            return {c.match for c in find_candidates(shrinking(), builtin_rules())}  # type: ignore[arg-type]
        finally:
            os.close(fd)
            del os.environ["KASCAN_FILE_THREADS"]

    for threads in ("1", "4"):
        got = found(threads)
        assert kept in got and late not in got, threads


def test_a_split_file_when_no_thread_can_be_started(
    tmp_path: Path, rng: random.Random, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process limit refuses the second part's thread: the first is cancelled and joined, and
    the caller's thread reads the whole file, finding what the threads would have."""
    import threading

    from kascan.sources.files import read_file

    path = tmp_path / "big.bin"
    lines = [f"line {i} {'z' * 50}\n" for i in range(1_300_000)]  # ~78 MB: three parts
    for i in range(0, len(lines), 40_000):
        lines[i] = f"k = {make_key(rng)}\n"
    path.write_text("".join(lines))
    start = threading.Thread.start
    started: list[str] = []

    def refuse(self: threading.Thread) -> None:
        if self.name.startswith("kascan-part"):
            started.append(self.name)
            if len(started) == 2:
                raise RuntimeError("can't start new thread")
        start(self)

    def lines_of(threads: str) -> list[tuple[int, int]]:
        monkeypatch.setenv("KASCAN_FILE_THREADS", threads)
        ref = FileRef(str(path), "big.bin")
        return [(c.line, c.column) for c in read_file(ref, ScanStats(), print, quiet=True)]

    want = lines_of("1")
    monkeypatch.setattr(threading.Thread, "start", refuse)
    assert lines_of("3") == want and len(want) >= 20
    assert started == ["kascan-part-1", "kascan-part-2"]
    assert not [t for t in threading.enumerate() if t.name.startswith("kascan-part")]
