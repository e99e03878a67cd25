"""The benchmark's smoke run: ``python bench/run.py --quick`` builds its corpus and prints a table
with numeric ratios, with or without ripgrep installed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = ("name", "kascan", "rss", "ref", "ref_s", "ratio", "target", "met")


def run_bench(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--runs", "1",
         "--corpus", str(tmp_path / "corpus")],
        capture_output=True, text=True, env=env, timeout=240, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    return proc


def rows(stdout: str) -> list[dict[str, str]]:
    out = []
    for line in stdout.splitlines():
        if line.startswith("|") and not line.startswith(("| benchmark", "|---")):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            assert len(cells) == len(COLUMNS), line
            out.append(dict(zip(COLUMNS, cells)))
    return out


def tree_rows(table: list[dict[str, str]]) -> list[dict[str, str]]:
    start = next(i for i, r in enumerate(table) if r["name"].startswith("tree ("))
    return [table[start], table[start + 1]]


@pytest.mark.skipif(shutil.which("rg") is None, reason="ripgrep is not installed")
def test_quick_bench_prints_ratios_against_ripgrep(tmp_path: Path, env: dict[str, str]) -> None:
    proc = run_bench(tmp_path, {**env, "PYTHONPATH": str(ROOT)})
    table = rows(proc.stdout)
    first, second = tree_rows(table)
    assert re.fullmatch(r"\d+\.\d{3}", first["kascan"])
    assert re.fullmatch(r"\d+\.\d MiB", first["rss"].replace(" (!)", ""))
    assert first["ref"] == "`rg -F ka_live_`"
    assert second["ref"] == "`rg -uuu -a -F ka_live_`"
    for r in (first, second):
        assert re.fullmatch(r"\d+\.\d{3}", r["ref_s"])
        assert re.fullmatch(r"\d+\.\d\dx", r["ratio"]) and float(r["ratio"][:-1]) > 0
    startup = next(r for r in table if r["name"].startswith("start-up"))
    assert re.fullmatch(r"\d+\.\d\dx", startup["ratio"])
    assert "Machine: " in proc.stdout and "cores" in proc.stdout


def test_quick_bench_without_ripgrep_still_runs_kascan(tmp_path: Path, env: dict[str, str]) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("git",):  # everything the bench needs but rg
        found = shutil.which(tool)
        assert found is not None
        os.symlink(found, bin_dir / tool)
    proc = run_bench(tmp_path, {**env, "PYTHONPATH": str(ROOT), "PATH": str(bin_dir)})
    assert "ripgrep (rg) not found" in proc.stderr
    first, second = tree_rows(rows(proc.stdout))
    assert re.fullmatch(r"\d+\.\d{3}", first["kascan"])  # kascan still measured
    assert "rg not found" in first["ref"] and "rg not found" in second["ref"]
    startup = next(r for r in rows(proc.stdout) if r["name"].startswith("start-up"))
    assert re.fullmatch(r"\d+\.\d\dx", startup["ratio"])  # and compared with python itself
