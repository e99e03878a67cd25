"""Hostile input and faults: property tests against a reference, time limits, signals, pipes."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kascan.match import find_candidates, framed
from kascan.model import Chunk
from kascan.rules import builtin_rules
from kascan.sources.stream import iter_stream

from .conftest import ALNUM, PREFIX, Result, findings_of, make_key, write_files

Run = Callable[..., Result]
RULES = builtin_rules()
_REFERENCE = re.compile(rb"ka_live_[A-Za-z0-9]{32}(?![A-Za-z0-9])")
_WORD = re.compile(rb"[A-Za-z0-9_]")


def reference(data: bytes) -> list[tuple[int, int, str]]:
    """The spec, written the slow and obvious way."""
    out = []
    for m in _REFERENCE.finditer(data):
        # a word character before the prefix rejects it, unless it ends framing (an escape, an
        # ANSI sequence, a binary length byte: tests/test_carriers.py checks those)
        if m.start() and _WORD.match(data, m.start() - 1) and not framed(data, m.start()):
            continue
        before = data[: m.start()]
        line_start = before.rfind(b"\n") + 1
        col = len(before[line_start:].decode("utf-8", "replace")) + 1
        out.append((before.count(b"\n") + 1, col, m.group().decode()))
    return out


def kascan_windows(data: bytes, window: int) -> list[tuple[int, int, str]]:
    pos = 0

    def read(n: int) -> bytes:
        nonlocal pos
        block = data[pos : pos + min(n, window)]
        pos += len(block)
        return block

    chunks = iter_stream(read, "f", window=window)
    return [
        (c.finding.line, c.finding.column, c.finding.secret.value)
        for c in find_candidates(chunks, RULES)
    ]


_pieces = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"\n", b"\r\n", b"_", b"x", b" ", b"\xff", "é".encode(), b"ka_live_", b"ka_"]),
    st.text(alphabet=ALNUM, min_size=30, max_size=34).map(lambda s: (PREFIX + s).encode()),
    st.randoms(use_true_random=False).map(lambda r: make_key(r).encode()),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces=st.lists(_pieces, max_size=40), window=st.integers(min_value=48, max_value=300))
def test_matcher_equals_reference_at_any_window(pieces: list[bytes], window: int) -> None:
    data = b"".join(pieces)
    assert kascan_windows(data, window) == reference(data)
    assert kascan_windows(data, 1 << 20) == reference(data)


def test_hostile_user_rule_times_out_once_and_the_scan_goes_on(
    tmp_path: Path, run_cli: Run, key: str
) -> None:
    rules = tmp_path / "evil.toml"
    rules.write_text("[[rules]]\nid = 'evil'\nregex = '''(a|aa)+$'''\n")
    write_files(tmp_path / "t", {"a.txt": "a" * 40 + "!", "b.txt": "a" * 40 + "!\n", "c.txt": key})
    start = time.monotonic()
    res = run_cli("scan", tmp_path / "t", "--rules", rules, "-f", "json", timeout=60)
    assert time.monotonic() - start < 30
    assert res.returncode == 1
    assert [f["path"] for f in findings_of(res)] == ["c.txt"]
    assert res.stderr.count("rule 'evil' timed out") == 1
    res.assert_no_leak(key)


def test_ctrl_c_reports_what_was_found_and_exits_130(
    tmp_path: Path, env: dict[str, str], key: str
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "kascan", "scan", "-", "-f", "json"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdin is not None
    proc.stdin.write(f"token {key}\n".encode())
    proc.stdin.flush()
    time.sleep(1.5)  # the line is scanned; kascan now waits for more input
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    import json

    doc = json.loads(out)
    assert [f["line"] for f in doc["findings"]] == [1]
    assert b"Traceback" not in err and b"interrupted" in err
    assert key[len(PREFIX) :].encode() not in out + err


def test_broken_pipe_is_a_quiet_exit(
    tmp_path: Path, env: dict[str, str], rng: random.Random
) -> None:
    write_files(
        tmp_path, {f"f{i}.txt": "\n".join(make_key(rng) for _ in range(200)) for i in range(20)}
    )
    proc = subprocess.run(
        f"{sys.executable} -m kascan scan {tmp_path} | head -n 1",
        shell=True,
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert proc.stdout.count(b"\n") == 1
    assert b"Traceback" not in proc.stderr
    assert b"Error" not in proc.stderr


def test_failed_report_write_leaves_no_partial_file(tmp_path: Path, run_cli: Run, key: str) -> None:
    write_files(tmp_path / "t", {"a.txt": key})
    target = tmp_path / "out"
    target.mkdir()  # a directory where the report file should go: refused before the scan
    res = run_cli("scan", tmp_path / "t", "-f", "json", "-o", target)
    assert res.returncode == 2
    assert "cannot write report" in res.stderr and "it is a directory" in res.stderr
    assert list(target.iterdir()) == []
    # a write that fails after the scan (no such directory): the finding still reaches stderr
    res = run_cli("scan", tmp_path / "t", "-f", "json", "-o", tmp_path / "gone" / "r.json")
    assert res.returncode == 2
    assert "cannot write report" in res.stderr
    assert "a.txt:1:1" in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "t"]  # no temp file left
    res.assert_no_leak(key)


def test_file_vanishing_mid_scan_is_a_warning(tmp_path: Path, key: str) -> None:
    from kascan.sources.files import iter_tree, read_file
    from kascan.stats import ScanStats

    write_files(tmp_path, {"a.txt": key, "b.txt": key})
    stats = ScanStats()
    warnings: list[str] = []
    found = []
    for ref in iter_tree(tmp_path, "", None, stats, warnings.append):
        if ref.path == "a.txt":
            (tmp_path / "b.txt").unlink()
        found.extend(
            c.finding.path for c in find_candidates(read_file(ref, stats, warnings.append), RULES)
        )
    assert found == ["a.txt"]
    assert warnings == ["cannot read b.txt: No such file or directory"]
    assert stats.unreadable == 1


def test_reports_are_deterministic(tmp_path: Path, run_cli: Run, rng: random.Random) -> None:
    names = [f"d{i % 7}/f{i}.txt" for i in range(60)]
    rng.shuffle(names)
    write_files(tmp_path / "t", {n: f"x\n{make_key(rng)}\n" for n in names})
    first = run_cli("scan", tmp_path / "t", "-f", "json")
    second = run_cli("scan", tmp_path / "t", "-f", "json")
    assert first.stdout == second.stdout
    paths = [f["path"] for f in findings_of(first)]
    assert paths == sorted(paths) and len(paths) == 60


def test_usage_error_is_one_clear_line(tmp_path: Path, run_cli: Run) -> None:
    res = run_cli("scan", tmp_path, "--rules", tmp_path)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines()[-1].endswith("is a directory.")


def test_report_to_a_device_writes_through_and_a_fifo_is_refused(
    tmp_path: Path, run_cli: Run, key: str
) -> None:
    import stat

    write_files(tmp_path / "t", {"a.txt": key})
    res = run_cli("scan", tmp_path / "t", "-o", "json:/dev/null")
    assert res.returncode == 1
    assert stat.S_ISCHR(Path("/dev/null").stat().st_mode)  # still the device, not a report file
    # a FIFO kascan did not create is refused unopened (pipes: -o /dev/fd/N, test_output_safety)
    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    res = run_cli("scan", tmp_path / "t", "-o", f"json:{fifo}", timeout=30)
    assert res.returncode == 2 and "refusing to write report" in res.stderr
    assert stat.S_ISFIFO(fifo.stat().st_mode)


# -- decoders against the obvious reference: what was planted is what is found ----------------

_filler = st.text(alphabet=ALNUM + " :=\"'\n\t-_/.{}", max_size=60)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    before=_filler,
    after=_filler,
    lead=st.binary(max_size=5).filter(lambda b: b"ka_" not in b),
    trail=st.binary(max_size=5),
    urlsafe=st.booleans(),
    padded=st.booleans(),
    seed=st.integers(min_value=0, max_value=2**32),
    window=st.integers(min_value=64, max_value=400),
)
def test_base64_planted_at_any_alignment_is_found_where_it_is(
    before: str,
    after: str,
    lead: bytes,
    trail: bytes,
    urlsafe: bool,
    padded: bool,
    seed: int,
    window: int,
) -> None:
    import base64

    from kascan.sources.decode import Decoders, decode_chunks

    key = make_key(random.Random(seed))
    raw = lead + b" " + key.encode() + b" " + trail
    enc = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(raw)
    if not padded:
        enc = enc.rstrip(b"=")
    prefix = (before + " value: ").encode()
    data = prefix + enc + b"\n" + after.encode()
    pos = 0

    def read(n: int) -> bytes:
        nonlocal pos
        block = data[pos : pos + min(n, window)]
        pos += len(block)
        return block

    chunks = decode_chunks(iter_stream(read, "f", window=window), Decoders())
    found = [c.finding for c in find_candidates(chunks, RULES) if c.finding.decoded]
    assert [f.secret.value for f in found] == [key]
    line = prefix.count(b"\n") + 1
    assert found[0].line == line
    assert found[0].decoded == "base64"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    before=_filler,
    after=_filler,
    encoding=st.sampled_from(["utf-16-le", "utf-16-be"]),
    bom=st.booleans(),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_utf16_planted_is_found_on_its_line(
    before: str, after: str, encoding: str, bom: bool, seed: int
) -> None:
    from kascan.sources.decode import Decoders, decode_chunks

    key = make_key(random.Random(seed))
    text = ("\ufeff" if bom else "") + before + " key=" + key + " \r\n" + after
    data = text.encode(encoding)
    chunks = decode_chunks([Chunk("f", data)], Decoders())
    found = [c.finding for c in find_candidates(chunks, RULES)]
    assert [f.secret.value for f in found] == [key]
    assert found[0].line == before.count("\n") + 1
    assert found[0].decoded in ("utf-16le", "utf-16be")


# -- resources and concurrency ------------------------------------------------------------------


def _peak_rss_kib(argv: list[str], env: dict[str, str]) -> tuple[int, int, str]:
    """Run argv in a fresh wrapper process; the largest RSS among it and its descendants."""
    script = (
        "import resource, subprocess, sys\n"
        "p = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)\n"
        "sys.stderr.write(p.stderr.decode('utf-8', 'replace')[-2000:])\n"
        "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, *argv], env=env, capture_output=True, text=True, timeout=600
    )
    rc, rss = proc.stdout.split()
    return int(rc), int(rss), proc.stderr


@pytest.mark.slow
def test_100k_files_and_a_5gb_file_with_flat_memory(
    tmp_path: Path, env: dict[str, str], rng: random.Random
) -> None:
    tree = tmp_path / "tree"
    for d in range(100):
        sub = tree / f"d{d:02d}"
        sub.mkdir(parents=True)
        for f in range(1000):
            (sub / f"f{f:03d}.txt").write_bytes(b"x = 1\n")
    key = make_key(rng)
    (tree / "d42" / "f999.txt").write_text(f"k = {key}\n")
    rc, rss, err = _peak_rss_kib([sys.executable, "-m", "kascan", "scan", str(tree), "-q"], env)
    assert rc == 1, err
    assert rss < 50 * 1024, f"peak RSS {rss} KiB over 100,000 files"

    big = tmp_path / "big.img"
    with big.open("wb") as fh:  # sparse: 5 GiB of zeros, a key near the end
        fh.truncate(5 << 30)
        fh.seek((5 << 30) - 4096)
        fh.write(b"\n" + key.encode() + b"\n")
    rc, rss, err = _peak_rss_kib(
        [sys.executable, "-m", "kascan", "scan", str(big), "-q", "--no-archives"], env
    )
    assert rc == 1, err
    assert rss < 50 * 1024, f"peak RSS {rss} KiB over a 5 GiB file"


def test_concurrent_runs_on_one_tree_do_not_interfere(
    tmp_path: Path, env: dict[str, str], rng: random.Random
) -> None:
    write_files(tmp_path / "t", {f"d{i % 5}/f{i}.env": f"K={make_key(rng)}\n" for i in range(200)})
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kascan",
                "scan",
                str(tmp_path / "t"),
                "-q",
                "-f",
                "json",
                "-o",
                str(tmp_path / f"r{i}.json"),
                "--jobs",
                str(1 + i % 2),
            ],
            env=env,
        )
        for i in range(4)
    ]
    assert [p.wait(120) for p in procs] == [1, 1, 1, 1]
    reports = {(tmp_path / f"r{i}.json").read_bytes() for i in range(4)}
    assert len(reports) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "r0.json",
        "r1.json",
        "r2.json",
        "r3.json",
        "t",
    ]


def test_temporary_files_are_private_and_removed(
    tmp_path: Path, run_cli: Run, make_repo: Callable[[Path], object], key: str
) -> None:
    from .conftest import GitRepo

    repo = make_repo(tmp_path / "origin")
    assert isinstance(repo, GitRepo)
    repo.commit("leak", {"a.env": f"K={key}\n"})
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    seen: list[tuple[str, int]] = []
    # a clone goes to a private directory under TMPDIR and is removed afterwards
    res = run_cli(
        "git",
        f"file://{repo.path}",
        "-q",
        "--show-secrets",
        "-o",
        f"json:{tmp_path / 'r.json'}",
        extra_env={"TMPDIR": str(tmpdir)},
    )
    assert res.returncode == 1, res.stderr
    assert list(tmpdir.iterdir()) == []
    seen.append(("report with --show-secrets", (tmp_path / "r.json").stat().st_mode & 0o777))
    assert seen == [("report with --show-secrets", 0o600)]


def test_git_dying_mid_stream_is_one_clear_error(
    tmp_path: Path, run_cli: Run, make_repo: Callable[[Path], object], rng: random.Random
) -> None:
    import shutil

    from .conftest import GitRepo

    repo = make_repo(tmp_path / "repo")
    assert isinstance(repo, GitRepo)
    keys = [make_key(rng) for _ in range(3)]
    repo.commit(
        "keys", {f"f{i}.env": f"K={k}\n" + "filler line\n" * 2000 for i, k in enumerate(keys)}
    )
    real_git = shutil.which("git")
    assert real_git
    fake = tmp_path / "bin"
    fake.mkdir()
    # a git whose object stream dies after 30 KB (as if killed or out of memory)
    (fake / "git").write_text(
        "#!/bin/sh\n"
        'case "$*" in\n'
        f'  *"--batch-check"*) exec "{real_git}" "$@" ;;\n'
        f'  *"cat-file --batch"*) "{real_git}" "$@" | head -c 30000; exit 1 ;;\n'
        f'  *) exec "{real_git}" "$@" ;;\n'
        "esac\n"
    )
    (fake / "git").chmod(0o755)
    env_path = f"{fake}:{os.environ['PATH']}"
    res = run_cli("git", repo.path, "-f", "json", extra_env={"PATH": env_path}, timeout=60)
    assert res.returncode == 2, (res.stdout[-500:], res.stderr)
    assert "Traceback" not in res.stderr
    assert "git" in res.stderr.splitlines()[-1]
    # the first blob (24 KB) came through before git died: its key is still reported
    found = [f["secret"] for f in res.json()["findings"]]  # type: ignore[union-attr]
    assert len(found) == 1 and found[0] in {k[:12] + "…" for k in keys}
    res.assert_no_leak(*keys)
