"""Progress lines, seen through a real terminal (pexpect's pty): the git counter, the tree
estimate, the sweep line; never on a pipe, never with ``-q``, every label escaped."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import pexpect

from kascan.progress import counted, eta_text, fit
from tests.conftest import GitRepo, Result

RunCli = Callable[..., Result]
CLEAR = b"\r\x1b[K"


def on_terminal(
    args: list[str], env: dict[str, str], cwd: Path | None = None, columns: int = 200
) -> tuple[int, bytes]:
    """The real CLI with stdout and stderr on a terminal: its exit status and every byte."""
    child = pexpect.spawn(
        sys.executable,
        ["-m", "kascan", *args],
        env=env,
        cwd=str(cwd) if cwd else None,
        timeout=120,
        dimensions=(24, columns),
    )
    seen = child.read()
    child.close()
    assert child.exitstatus is not None, child.signalstatus
    return child.exitstatus, seen


def only_clears(seen: bytes) -> bool:
    """Every ESC on the terminal is one of the line's own erase-line (no escape from a name)."""
    return seen.count(b"\x1b") == seen.count(b"\x1b[K")


def fast_import(path: Path, blobs: int, kib: int, env: dict[str, str]) -> None:
    """A bare repository of one commit with ``blobs`` blobs of ``kib`` KiB each (alike, so the
    pack is small and quick to write, but every one is read whole)."""
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True, env=env)
    proc = subprocess.Popen(
        ["git", "--git-dir", str(path), "fast-import", "--quiet"], stdin=subprocess.PIPE, env=env
    )
    assert proc.stdin is not None
    fill = b"nothing to see here, move along\n" * 32 * kib
    for i in range(blobs):
        data = b"file %d %s\n" % (i, os.urandom(8).hex().encode()) + fill
        proc.stdin.write(b"blob\nmark :%d\ndata %d\n%s\n" % (i + 1, len(data), data))
    proc.stdin.write(b"commit refs/heads/main\ncommitter T <t@example.com> 1700000000 +0000\n")
    proc.stdin.write(b"data 5\nmany\n\n")
    proc.stdin.write(
        b"".join(b"M 100644 :%d d%d/f%d.txt\n" % (i + 1, i % 50, i) for i in range(blobs))
    )
    proc.stdin.close()
    assert proc.wait() == 0


# --- the git counter ------------------------------------------------------------------------


def test_the_git_counter_advances_with_a_real_total(tmp_path: Path, env: dict[str, str]) -> None:
    repo = tmp_path / "big.git"
    # 1.25 GiB to read from a pack of a few MiB: on a fast machine (CI's read 625 MiB in 0.34 s,
    # at GiB/s) still several redraws (at most ten a second)
    fast_import(repo, 5000, 256, env)
    rc, seen = on_terminal(["git", str(repo)], env)
    assert rc == 0, seen[-2000:]
    counts = re.findall(rb"scanning [^:]*big\.git: (\d+)/(\d+) objects \((\d+)%\)", seen)
    assert counts, seen[-2000:]
    totals = {int(total) for _, total, _ in counts}
    assert totals == {5001}  # every blob and the commit, known from the first line on
    done = [int(d) for d, _, _ in counts]
    assert done == sorted(done) and done[-1] == 5001
    middle = {int(p) for _, _, p in counts} - {0, 100}
    assert middle, counts  # it advances: it does not sit at 0% until it jumps to 100%
    assert b"5001/5001 objects (100%)" in seen
    assert re.search(rb"[0-9.]+ [KMG]iB/s", seen), seen[-2000:]  # a fast machine reads GiB/s
    assert CLEAR + b"kascan: scanned 1 commit, 5000 blobs" in seen  # cleared before the summary
    assert only_clears(seen)
    for line in re.findall(rb"\r\x1b\[K(kascan: scanning [^\r]*)", seen):
        assert len(line) < 200  # cut to the terminal's width
        eta = re.search(rb"ETA (\S+)$", line)
        assert eta is None or re.fullmatch(rb"\d+s|\d+m\d\ds|\d+h\d\dm", eta.group(1))


def test_a_hostile_repository_name_is_escaped_and_no_line_on_a_pipe_or_with_q(
    tmp_path: Path, make_repo: Callable[[Path], GitRepo], env: dict[str, str], run_cli: RunCli
) -> None:
    name = "r\x1b]0;pwned\x07\x1b[2Jx"
    repo = make_repo(tmp_path / name)
    repo.commit("a", {f"f{i}.txt": f"{i}\n" for i in range(20)})
    rc, seen = on_terminal(["git", str(repo.path)], env)
    assert rc == 0
    assert b"r\\x1b]0;pwned\\x07\\x1b[2Jx: 21/21 objects (100%)" in seen
    assert b"\x1b]0;" not in seen and b"\x07" not in seen and b"\x1b[2J" not in seen
    assert only_clears(seen)
    # a pipe, or -q: no line at all
    piped = run_cli("git", repo.path)
    assert piped.returncode == 0
    assert "objects (" not in piped.stderr and "\x1b[K" not in piped.output
    rc, quiet = on_terminal(["git", str(repo.path), "-q"], env)
    assert rc == 0 and b"objects" not in quiet and b"\x1b[K" not in quiet


# --- trees ----------------------------------------------------------------------------------


def test_a_tree_scan_shows_its_total_once_the_walk_has_ended(
    tmp_path: Path, env: dict[str, str], key: str
) -> None:
    tree = tmp_path / "t"
    tree.mkdir()
    for i in range(300):
        (tree / f"a{i:03d}.txt").write_text(f"nothing to see here {i}\n")
        (tree / f"z{i:03d}.txt").write_text(f"nothing to see here {i}\n")
    (tree / "leak.env").write_text(f"KEY={key}\n")
    # 200 MiB of zeros in a gzip file of less than 1 MiB: a read long enough for a redraw in the
    # middle of the tree, whatever the machine (the small files alone take a few milliseconds;
    # a sparse file's holes are not read at all)
    packer = zlib.compressobj(1, zlib.DEFLATED, 31)
    with open(tree / "m.gz", "wb") as fh:
        for _ in range(200):
            fh.write(packer.compress(bytes(1 << 20)))
        fh.write(packer.flush())
    for jobs in ("1", "2"):
        rc, seen = on_terminal(["scan", str(tree), "--jobs", jobs], env)
        assert rc == 1
        # the walk runs ahead of the reads: the total is on the line while they go on
        pct = re.findall(rb"kascan: scanning: (\d+)/602 files \((\d+)%\), ", seen)
        assert any(int(p) < 100 for _, p in pct), seen[-2000:]
        finding = str(tree / "leak.env").encode() + b":1:5"
        assert CLEAR + finding in seen  # a finding is never glued to the line
        assert CLEAR + b"kascan: scanned 602 files" in seen
        assert only_clears(seen) and key[8:].encode() not in seen
    # -o /dev/stderr: a report goes where the line would be, so no line
    (tree / "m.gz").unlink()
    rc, seen = on_terminal(["scan", str(tree), "-o", "/dev/stderr"], env)
    assert rc == 1 and b"scanning:" not in seen and b"\x1b" not in seen


# --- sweeps ---------------------------------------------------------------------------------


def test_a_sweep_shows_its_line_on_a_terminal_only(
    tmp_path: Path,
    make_repo: Callable[[Path], GitRepo],
    env: dict[str, str],
    run_cli: RunCli,
    key: str,
) -> None:
    repos = [make_repo(tmp_path / f"r{i}") for i in range(3)]
    for i, r in enumerate(repos):
        r.commit("a", {"a.txt": f"{i}\n"})
    repos[1].commit("leak", {"leak.env": f"K={key}\n"})
    paths = [str(r.path) for r in repos]
    rc, seen = on_terminal(["git", *paths], env)
    assert rc == 1
    assert CLEAR + b"kascan: sweeping: 0/3 repositories (0%), 0 with findings, 0 failed" in seen
    assert b"kascan: sweeping: 3/3 repositories (100%), 1 with findings, 0 failed" in seen
    assert re.search(rb"sweeping: [12]/3 repositories \((33|66)%\)[^\r]*", seen)
    assert CLEAR + paths[1].encode() + b":leak.env:1:3" in seen  # cleared before the finding
    assert CLEAR + b"kascan: scanned 4 commits" in seen
    assert only_clears(seen) and key[8:].encode() not in seen
    # one that fails: counted, and its warning on a line of its own
    missing = str(tmp_path / "gone")
    rc, seen = on_terminal(["git", *paths, missing], env)
    assert rc == 2
    assert b"4/4 repositories (100%), 1 with findings, 1 failed" in seen
    assert CLEAR + b"kascan: warning: " + missing.encode() in seen
    # a pipe, or -q: none
    piped = run_cli("git", *paths)
    assert piped.returncode == 1 and "sweeping" not in piped.output and "\x1b" not in piped.output
    rc, quiet = on_terminal(["git", *paths, "-q"], env)
    assert rc == 1 and b"sweeping" not in quiet and b"\x1b" not in quiet


# --- the line's parts -----------------------------------------------------------------------


def test_the_line_fits_the_terminal() -> None:
    parts = ["151275/633644 objects (23%)", "268.3 MiB", "33.1 MiB/s", "ETA 25s"]
    name = "/srv/mirrors/u-boot.git"
    wide = fit("scanning", name, parts, (1, 2), 200)
    assert wide == f"kascan: scanning {name}: " + ", ".join(parts)
    for columns in range(20, 120):
        line = fit("scanning", name, parts, (1, 2), columns)
        assert len(line) <= columns - 1
    line = fit("scanning", name, parts, (1, 2), 80)
    assert line.startswith("kascan: scanning …") and "u-boot.git: 151275/633644" in line
    assert line.endswith("33.1 MiB/s, ETA 25s")  # the size went first
    assert fit("scanning", name, parts, (1, 2), 60) == (
        "kascan: scanning: 151275/633644 objects (23%), ETA 25s"
    )
    wide_name = "日本語のリポジトリ" * 4  # two columns a character
    line = fit("scanning", wide_name, parts, (1, 2), 80)
    assert len(line) + sum(c > "\u3000" for c in line) <= 79


def test_counts_and_estimates_read_plainly() -> None:
    assert counted(12, 300, "repository", "repositories") == "12/300 repositories (4%)"
    assert counted(1, None, "file") == "1 file" and counted(2, None, "file") == "2 files"
    assert counted(299, 300, "object") == "299/300 objects (99%)"  # 100% only when done
    assert counted(0, 0, "object") == "0/0 objects (100%)"
    assert [eta_text(s) for s in (0.2, 25, 245, 3 * 3600 + 300)] == [
        "ETA 0s",
        "ETA 25s",
        "ETA 4m05s",
        "ETA 3h05m",
    ]
