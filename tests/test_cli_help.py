"""What a new user sees first: `kascan` alone, `--help` grouped with examples, completion."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Result


def test_plain_kascan_prints_its_help(run_cli: Callable[..., Result]) -> None:
    res = run_cli()
    assert res.returncode == 2
    assert res.stdout.startswith("Usage: kascan [OPTIONS] COMMAND [ARGS]...")
    assert "Commands:" in res.stdout and "scan" in res.stdout
    assert "Error:" not in res.output and "\\n" not in res.output


@pytest.mark.parametrize("command", ["scan", "git", "merge", "image"])
def test_help_groups_the_options_and_shows_examples(
    run_cli: Callable[..., Result], command: str
) -> None:
    res = run_cli(command, "--help")
    assert res.returncode == 0, res.output
    text = res.stdout
    assert "Examples:" in text and f"kascan {command}" in text.split("Examples:")[1]
    for section in ("Reports:", "Verification and exit status:"):
        assert section in text
    assert text.index("Options:") < text.index("Reports:") < text.index("Examples:")
    assert "[PATH]..." not in text.split("Options:")[1]  # arguments are not listed as options


def test_shell_completion_completes_commands(env: dict[str, str], tmp_path: Path) -> None:
    e = dict(env, COMP_WORDS="kascan sc", COMP_CWORD="1", _KASCAN_COMPLETE="bash_complete")
    exe = Path(sys.executable).parent / "kascan"
    out = subprocess.run([str(exe)], env=e, capture_output=True, text=True, check=False)
    assert "plain,scan" in out.stdout.split()
    script = subprocess.run(
        [str(exe)], env=dict(env, _KASCAN_COMPLETE="bash_source"), capture_output=True, text=True
    )
    assert "_kascan_completion()" in script.stdout and "complete " in script.stdout


def _run_on_pty(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, bytes, bytes]:
    """kascan with stderr on a real pseudo-terminal (stdout a pipe): what the terminal shows."""
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "kascan", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=slave,
        stdin=subprocess.DEVNULL,
    )
    os.close(slave)
    seen = b""
    while True:
        try:
            block = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not block:
            break
        seen += block
    out = proc.stdout.read() if proc.stdout else b""
    os.close(master)
    return proc.wait(), out, seen


def test_a_tree_scan_shows_progress_on_a_terminal_and_never_on_a_pipe(
    env: dict[str, str], tmp_path: Path, key: str
) -> None:
    tree = tmp_path / "t"
    for i in range(300):
        d = tree / f"d{i % 7}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}.txt").write_text("nothing to see here\n" * 400)
    (tree / "d0" / "leak.env").write_text(f"KEY={key}\n")
    rc, out, terminal = _run_on_pty(["scan", str(tree), "--jobs", "1"], env, tmp_path)
    assert rc == 1
    assert b"\r\x1b[Kkascan: scanning: " in terminal and b" file" in terminal
    assert b"/s" in terminal
    assert terminal.endswith(b"\r\x1b[K")  # the line is cleared before the summary
    assert b"kascan: scanned 301 files" in out
    assert b"leak.env:1:5" in out and b"scanning:" not in out
    # a pipe, or -q: no progress line at all
    piped = subprocess.run(
        [sys.executable, "-m", "kascan", "scan", str(tree)], env=env, capture_output=True
    )
    assert b"scanning:" not in piped.stderr and b"\x1b[K" not in piped.stderr
    rc, _, quiet = _run_on_pty(["scan", str(tree), "-q"], env, tmp_path)
    assert rc == 1 and b"scanning:" not in quiet
    assert key[8:].encode() not in terminal + out + quiet
