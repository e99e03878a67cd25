"""What a new user sees first: `kascan` alone, `--help` grouped with examples, completion."""

from __future__ import annotations

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
