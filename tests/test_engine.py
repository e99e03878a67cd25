"""The one-pass needle engine: Hyperscan and the ``bytes.find`` fallback give the same hits as a
brute-force search, in block and streaming mode, on random bytes with keys planted in every
encoding (also across chunk edges); and whole scans report the same findings with either engine
and with any ``--jobs``."""

from __future__ import annotations

import base64
import json
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kascan import engine
from kascan.engine import Hits, Stream, needles, scan_hyperscan, scan_python
from kascan.sources.stream import OVERLAP, WINDOW
from tests.conftest import ALNUM, PREFIX, GitRepo, Result, findings_of, make_key

Run = Callable[..., Result]
ENGINES = ("hyperscan", "python")
SCANS = {"hyperscan": scan_hyperscan, "python": scan_python}


def brute(data: bytes) -> Hits:
    """Ground truth: every needle at every offset, by ``startswith``."""
    texts = needles()
    found = Hits()
    for at in range(len(data)):
        for id, text in enumerate(texts):
            if data.startswith(text, at):
                found.add(id, at)
    return found


def encodings(key: str, pad: int) -> list[bytes]:
    """The key in every form the decoders look for; ``pad`` bytes before it shift the base64
    alignment."""
    raw = b"=" * pad + key.encode()
    b64 = base64.b64encode(raw)
    return [
        key.encode(),
        b64,
        base64.urlsafe_b64encode(raw),
        base64.b64encode(b"x" * pad + b64),  # base64 of base64
        base64.urlsafe_b64encode(b64),
        key.encode("utf-16-le"),
        key.encode("utf-16-be"),
        "\ufeff".encode("utf-16-le") + key.encode("utf-16-le"),
    ]


keys = st.text(alphabet=ALNUM, min_size=32, max_size=32).map(lambda b: PREFIX + b)
plants = st.lists(
    st.tuples(st.floats(0, 1), keys, st.integers(0, 5), st.integers(0, 7)), max_size=6
)


def planted(noise: bytes, items: list[tuple[float, str, int, int]]) -> bytes:
    data = bytearray(noise)
    for where, key, pad, form in items:
        at = int(where * len(data))
        data[at:at] = encodings(key, pad)[form]
    return bytes(data)


@pytest.mark.parametrize("name", ENGINES)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(noise=st.binary(max_size=1500), items=plants)
def test_block_scan_finds_every_needle_exactly(
    name: str, noise: bytes, items: list[tuple[float, str, int, int]]
) -> None:
    data = planted(noise, items)
    got = SCANS[name](data)
    assert got == brute(data)
    assert got == SCANS["python" if name == "hyperscan" else "hyperscan"](data)


@pytest.mark.parametrize("name", ENGINES)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    noise=st.binary(max_size=1500),
    items=plants,
    cuts=st.lists(st.integers(0, 1600), max_size=8),
)
def test_stream_finds_needles_across_chunk_edges(
    name: str, noise: bytes, items: list[tuple[float, str, int, int]], cuts: list[int]
) -> None:
    data = planted(noise, items)
    # also a cut inside every planted form: the needle then straddles two blocks
    edges = sorted({min(c, len(data)) for c in cuts} | {len(data)})
    lengths = [len(t) for t in needles()]
    stream = Stream(name)  # type: ignore[arg-type]
    fed: list[tuple[int, int]] = []
    last = 0
    for edge in edges:
        fed.extend(stream.feed(data[last:edge]))
        last = edge
    stream.close()
    whole = brute(data)
    want = [(p, 0) for p in whole.prefix]
    want += [(s, i + 1) for s, i in whole.base64]
    nb = len(engine.base64_needles())
    want += [(p, nb + 1) for p in whole.utf16]
    want += [(p, nb + 2) for p in whole.utf32]
    want += [(s, i + nb + 3) for s, i in whole.extra]
    key = lambda h: (h[0] + lengths[h[1]], h[1], h[0])  # noqa: E731
    assert sorted(fed, key=key) == sorted(want, key=key)
    ends = [s + lengths[i] for s, i in fed]
    assert ends == sorted(ends)  # reported in the order they end


@pytest.mark.parametrize("name", ENGINES)
def test_overlapping_and_dense_needles(name: str) -> None:
    rng = random.Random(5)
    dense = PREFIX.encode() * 300 + b"\0" + ("ka_live_" * 3).encode("utf-16-le")
    b64 = b"".join(base64.b64encode(make_key(rng).encode()) for _ in range(200))
    for data in (dense, b64, b"V" * 5000 + b"W" * 5000, b"\0" * 100_000, b""):
        assert SCANS[name](data) == brute(data) if len(data) < 20_000 else True
        assert SCANS[name](data) == SCANS["python"](data)


def test_hits_are_scanned_once_per_chunk() -> None:
    data = b"x" * 100 + PREFIX.encode() + b"y" * 100
    first = engine.hits(data)
    assert engine.hits(data) is first  # the matcher and each decoder share one scan
    assert first.prefix == [100]
    other = bytes(bytearray(data))  # equal bytes, another object: scanned again
    assert engine.hits(other) is not first and engine.hits(other) == first


def _engine_in_subprocess(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )


def test_engine_choice(env: dict[str, str]) -> None:
    env.pop("KASCAN_ENGINE", None)  # the choice a user gets (the suite forces one)
    show = "from kascan import engine; print(engine.engine_name())"
    assert _engine_in_subprocess(show, env).stdout.strip() == "hyperscan"
    forced = _engine_in_subprocess(show, {**env, "KASCAN_ENGINE": "python"})
    assert forced.stdout.strip() == "python"
    # hyperscan missing (no wheel for the platform): the fallback, unless it was asked for
    missing = "import sys; sys.modules['hyperscan'] = None; " + show
    assert _engine_in_subprocess(missing, env).stdout.strip() == "python"
    asked = _engine_in_subprocess(missing, {**env, "KASCAN_ENGINE": "hyperscan"})
    assert asked.returncode != 0 and "hyperscan module cannot be imported" in asked.stderr


def test_cli_without_hyperscan_is_one_line_exit_2(
    run_cli: Run, tmp_path: Path, env: dict[str, str]
) -> None:
    env.pop("KASCAN_ENGINE", None)  # the choice a user gets (the suite forces one)
    (tmp_path / "a.txt").write_text("nothing\n")
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "hyperscan.py").write_text("raise ImportError('no wheel here')\n")
    r = run_cli(
        "scan",
        tmp_path / "a.txt",
        extra_env={"KASCAN_ENGINE": "hyperscan", "PYTHONPATH": str(blocker)},
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "KASCAN_ENGINE=hyperscan" in r.stderr
    ok = run_cli("scan", tmp_path / "a.txt", extra_env={"PYTHONPATH": str(blocker)})
    assert ok.returncode == 0, ok.stderr  # missing: the fallback runs


# --------------------------------------------------------------------------- whole scans


FOUND_FORMS = 6  # forms a whole scan reports: not big-endian UTF-16 without a BOM mid-file


def _edge_file(rng: random.Random) -> tuple[bytes, int]:
    """~4 MiB of binary noise with a key straddling each window edge (where a chunk's fresh bytes
    end, and where its bytes end), cycling through the forms, and more at random places."""
    targets = [
        (k * WINDOW - d, j)
        for j, (k, d) in enumerate((k, d) for k in (1, 2, 3, 4) for d in (OVERLAP, 0))
    ]
    targets += [(rng.randrange(4 * WINDOW), j) for j in range(FOUND_FORMS)]
    out = bytearray(b"\1\0" * 4)  # binary from its first bytes: UTF-16 is looked for
    for edge, j in sorted(targets):
        enc = b"\n" + encodings(make_key(rng), j % 3)[j % FOUND_FORMS] + b"\n"
        fill = max(edge - len(enc) // 2 - len(out), 0)
        out += rng.randbytes(fill).replace(b"ka_", b"kb_").replace(b"k\0a", b"k\0b") + enc
    out += rng.randbytes(1000)
    return bytes(out), len(targets)


def test_same_findings_with_both_engines_across_window_edges(
    run_cli: Run, tmp_path: Path, rng: random.Random
) -> None:
    data, n = _edge_file(rng)
    f = tmp_path / "edges.bin"
    f.write_bytes(data)
    runs = {
        name: run_cli("scan", f, "-f", "json", extra_env={"KASCAN_ENGINE": name})
        for name in ENGINES
    }
    for r in runs.values():
        assert r.returncode == 1, r.stderr
    found = {name: findings_of(r) for name, r in runs.items()}
    assert found["hyperscan"] == found["python"]
    assert len(found["python"]) == n
    # stdin, read line by line as it arrives: where its chunks end depends on the pipe's timing,
    # and with it whether a chunk looks binary (UTF-16 is looked for only then); text is not
    text = b"".join(
        rng.randbytes(3000).hex().encode() + b"\n" + encodings(make_key(rng), i % 3)[i % 5] + b"\n"
        for i in range(40)
    )
    piped = {
        name: run_cli("scan", "-", "-f", "json", input=text, extra_env={"KASCAN_ENGINE": name})
        for name in ENGINES
    }
    assert findings_of(piped["python"]) == findings_of(piped["hyperscan"])
    assert len(findings_of(piped["python"])) == 40


def test_line_numbers_at_window_edges_of_a_sparse_text_file(
    run_cli: Run, tmp_path: Path, rng: random.Random
) -> None:
    """Keys in lines that straddle window edges, after holes and after runs without a newline
    that span windows: every line and column as counted over the whole file, with both engines,
    with the windows without a needle left out (the built-in rule) or all matched (a user rule
    too)."""
    import os

    f = tmp_path / "sparse.log"
    places = sorted(
        [k * WINDOW - d for k in range(1, 7) for d in (OVERLAP + 7, OVERLAP, 300, 40, 0)]
        + [rng.randrange(7 * WINDOW) for _ in range(5)]
    )
    keys: list[tuple[int, int]] = []  # (line, column) of each key
    with f.open("wb") as fh:
        pos = lines = 0
        last_nl = -1
        for i, at in enumerate(places):
            if at - pos > 3 * OVERLAP and i % 3 == 0:  # a hole (NUL bytes, no newline)
                fh.seek(at - pos - 2 * OVERLAP, os.SEEK_CUR)
                pos = at - 2 * OVERLAP
            if i % 3 == 1:  # a run without a newline up to the key's line
                fill = b"y" * max(at - pos - 20, 0)
            else:
                words = rng.choices([b"alpha ", b"beta\n", b"gamma delta ", b"\n"], k=at - pos)
                fill = b"".join(words)[: max(at - pos - 20, 0)]
            fh.write(fill)
            lines += fill.count(b"\n")
            nl = fill.rfind(b"\n")
            last_nl = pos + nl if nl != -1 else last_nl
            pos += len(fill)
            text = b"token=" + make_key(rng).encode() + b" end\n"
            keys.append((lines + 1, pos + len(b"token=") - last_nl))
            fh.write(text)
            lines += 1
            last_nl = pos + len(text) - 1
            pos += len(text)
        fh.seek(WINDOW, os.SEEK_CUR)  # ends in a hole
        fh.write(b"\n")
    user = tmp_path / "rules.toml"
    user.write_text("[[rules]]\nid = \"other\"\nregex = 'zz_[0-9]{12}'\n")
    for name in ENGINES:
        for extra in ((), ("--rules", user)):
            r = run_cli("scan", f, "-f", "json", *extra, extra_env={"KASCAN_ENGINE": name})
            assert r.returncode == 1, r.stderr
            got = [(x["line"], x["column"]) for x in findings_of(r)]
            assert got == keys, (name, extra)


def test_jobs_n_equals_jobs_1_with_both_engines(
    run_cli: Run, tmp_path: Path, rng: random.Random
) -> None:
    tree = tmp_path / "tree"
    for i in range(60):
        d = tree / f"d{i % 7}"
        d.mkdir(parents=True, exist_ok=True)
        forms = encodings(make_key(rng), i % 3)
        body = rng.randbytes(200).hex().encode() + b"\n" + forms[i % 5] + b"\n"
        if i % 10 == 0:
            body = "\ufeff".encode("utf-16-le") + ("x = " + make_key(rng) + "\n").encode(
                "utf-16-le"
            )
        (d / f"f{i:02d}.txt").write_bytes(body)
    outs = {}
    for name in ENGINES:
        for jobs in ("1", "2"):
            r = run_cli(
                "scan", tree, "--jobs", jobs, "-f", "json", extra_env={"KASCAN_ENGINE": name}
            )
            assert r.returncode == 1, r.stderr
            outs[name, jobs] = json.loads(r.stdout)["findings"]
    first = outs["hyperscan", "1"]
    assert len(first) == 60
    assert all(v == first for v in outs.values())


def test_history_same_findings_with_both_engines(
    run_cli: Run, git_repo: GitRepo, rng: random.Random
) -> None:
    """The blob stream in streaming mode: keys in every form, in blobs around a blob bigger than
    a window (read past the stream, which then starts anew)."""
    n = 0
    for c in range(4):
        files: dict[str, str | bytes] = {}
        for form in range(7):
            if form < FOUND_FORMS:
                enc = encodings(make_key(rng), form % 3)[form]
                files[f"c{c}/k{form}.bin"] = b"\0\1" + enc + b"\n"
                n += 1
        if c == 1:
            big = bytearray(rng.randbytes(WINDOW + 5000).replace(b"ka_", b"kb_"))
            big[WINDOW - 20 : WINDOW - 20] = make_key(rng).encode()
            files["big.bin"] = bytes(big)
            n += 1
        files[f"c{c}/plain.txt"] = "nothing here\n" * (c + 1)
        git_repo.commit(f"c{c}", files)
    outs = {
        name: run_cli("git", git_repo.path, "-f", "json", extra_env={"KASCAN_ENGINE": name})
        for name in ENGINES
    }
    for r in outs.values():
        assert r.returncode == 1, r.stderr
    found = {name: findings_of(r) for name, r in outs.items()}
    assert found["hyperscan"] == found["python"]
    assert len(found["python"]) == n


# --------------------------------------------------------------------------- windows of a stream


def reference_windows(data: bytes, window: int) -> list[tuple[bytes, int, int, int, int]]:
    """The windows of ``data`` as a plain read-and-copy loop cuts them (what ``iter_stream`` did
    before it read into one buffer, left out quiet windows and counted newlines lazily):
    (bytes, line, column, fresh, tail) of every chunk."""
    from kascan.sources.stream import CONTEXT, _columns

    out = []
    pos = 0
    ctx = pending = b""
    line, column = 1, 0
    while True:
        block = data[pos : pos + window]
        pos += len(block)
        if not block:
            if pending or not ctx:
                out.append((ctx + pending, line, column, len(ctx), 0))
            return out
        pending += block
        if len(pending) < window:
            continue
        cut = len(pending) - OVERLAP
        chunk = ctx + pending
        out.append((chunk, line, column, len(ctx), len(pending) - cut))
        end = len(ctx) + cut
        start = max(end - CONTEXT, 0)
        nl = chunk.rfind(b"\n", 0, start)
        line += chunk.count(b"\n", 0, start)
        column = column + _columns(chunk[:start]) if nl == -1 else _columns(chunk[nl + 1 : start])
        ctx = chunk[start:end]
        pending = pending[cut:]


_runs = st.one_of(
    st.binary(max_size=300),
    st.text(alphabet="ab é€\n\t😀", max_size=400).map(lambda s: s.encode()),
    st.integers(1, 20000).map(lambda n: b"x" * n),  # long runs without a newline
    st.integers(1, 20000).map(lambda n: ("é" * n).encode()[1:]),  # cut characters
    st.integers(1, 40000).map(lambda n: -n),  # a hole of a sparse file (NUL bytes)
    keys.map(lambda k: k.encode()),
    keys.map(lambda k: base64.b64encode(k.encode())),
    keys.map(lambda k: k.encode("utf-16-le")),
)


def _windows_of(
    path: Path, window: int, quiet: bool, is_file: bool, threads: int = 1
) -> list[tuple[bytes, int, int, int, int]]:
    """``iter_stream`` over ``path`` as ``read_file`` calls it (``is_file``: the descriptor is
    handed on, read in place), or as a stream that only ``read`` reads. ``threads`` > 1: a
    quiet regular file is split into that many parts of at least two windows, read side by side
    (whatever the engine)."""
    import os

    from kascan.sources import stream
    from kascan.sources.stream import iter_stream

    if threads > 1:
        kept_split, kept_env = stream.SPLIT_FROM, os.environ.get("KASCAN_FILE_THREADS")
        stream.SPLIT_FROM = 2 * window
        os.environ["KASCAN_FILE_THREADS"] = str(threads)
        try:
            return _windows_of(path, window, quiet, is_file)
        finally:
            stream.SPLIT_FROM = kept_split
            if kept_env is None:
                del os.environ["KASCAN_FILE_THREADS"]
            else:
                os.environ["KASCAN_FILE_THREADS"] = kept_env
    fd = os.open(path, os.O_RDONLY)
    pos = 0

    def read(n: int) -> bytes:
        nonlocal pos
        block = os.read(fd, n) if is_file else os.pread(fd, n, pos)
        pos += len(block)
        return block

    try:
        return [
            (c.data, c.line, c.column, c.fresh, c.tail)
            for c in iter_stream(read, "f", window=window, quiet=quiet, fd=fd if is_file else None)
        ]
    finally:
        os.close(fd)


@pytest.mark.parametrize("name", ENGINES)
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(runs=st.lists(_runs, max_size=24), window=st.integers(OVERLAP + 1, 4 * OVERLAP))
def test_windows_are_the_same_however_they_are_read(
    name: str, runs: list[bytes | int], window: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A regular file (read in place, holes skipped, newlines and columns counted again only
    when a chunk is handed on) and a stream give exactly the windows of the plain loop, each
    with its line and column; ``quiet`` leaves out exactly the windows without a needle."""
    import os

    from kascan.sources import stream

    engine.reset()
    os.environ["KASCAN_ENGINE"] = name
    kept = stream._RANGES, stream._HELD, stream._HOLD_FROM
    # past so many ranges, or held bytes, they are counted there and then
    stream._RANGES, stream._HELD, stream._HOLD_FROM = len(runs) % 3, window * (len(runs) % 4), 64
    try:
        path = tmp_path_factory.mktemp("w") / "f.bin"
        with path.open("wb") as fh:
            for run in runs:
                if isinstance(run, int):
                    fh.seek(-run, os.SEEK_CUR)
                else:
                    fh.write(run)
            fh.truncate()
        data = path.read_bytes()
        want = reference_windows(data, window)
        quiet = [w for w in want if engine.hits(w[0])]
        for is_file in (True, False):
            for q in (False, True):
                got = _windows_of(path, window, q, is_file)
                assert got == (quiet if q else want), (is_file, q)
        for threads in (2, 3):  # a big file's parts read by threads: the same quiet windows
            assert _windows_of(path, window, True, True, threads) == quiet, threads
    finally:
        stream._RANGES, stream._HELD, stream._HOLD_FROM = kept
        del os.environ["KASCAN_ENGINE"]
        engine.reset()


def test_windows_of_big_sparse_and_binary_files(tmp_path: Path, rng: random.Random) -> None:
    """The same on files of many windows: holes, binary runs without a newline (kept to count
    their characters later, or counted past a cap), cut characters, keys between them."""
    import os

    from kascan.sources import stream

    kept = stream._HELD, stream._HOLD_FROM
    stream._HELD, stream._HOLD_FROM = 3 * OVERLAP, 64
    try:
        for i in range(12):
            path = tmp_path / f"f{i}.bin"
            with path.open("wb") as fh:
                for _ in range(rng.randint(5, 25)):
                    kind = rng.randrange(6)
                    if kind == 0:
                        fh.seek(rng.randint(1, 12 * OVERLAP), os.SEEK_CUR)
                    elif kind == 1:
                        fh.write(rng.randbytes(rng.randint(1, 8 * OVERLAP)).replace(b"\n", b"\xff"))
                    elif kind == 2:
                        fh.write(("é€😀 a\n" * rng.randint(1, 3000)).encode()[rng.randrange(3) :])
                    elif kind == 3:
                        fh.write(b"x" * rng.randint(1, 8 * OVERLAP))
                    else:
                        fh.write(b" " + make_key(rng).encode() + b"\n" * rng.randrange(2))
                fh.truncate()
            window = rng.randint(OVERLAP + 1, 3 * OVERLAP)
            want = reference_windows(path.read_bytes(), window)
            assert len(want) > 3
            quiet = [w for w in want if engine.hits(w[0])]
            for is_file in (True, False):
                assert _windows_of(path, window, False, is_file) == want, (i, is_file)
                assert _windows_of(path, window, True, is_file) == quiet, (i, is_file)
            for threads in (2, 3, 4):
                assert _windows_of(path, window, True, True, threads) == quiet, (i, threads)
    finally:
        stream._HELD, stream._HOLD_FROM = kept


def test_no_needle_ends_in_a_nul_byte() -> None:
    """What lets a hole of a sparse file go unscanned: NUL bytes end no needle."""
    assert all(t[-1] != 0 for t in needles())
