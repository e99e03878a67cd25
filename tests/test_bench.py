"""The benchmark's smoke run: ``python bench/run.py --quick`` builds its corpus and prints a table
with numeric ratios, with or without ripgrep installed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import GitRepo

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = ("name", "kascan", "rss", "ref", "ref_s", "ratio", "target", "met")


def run_bench(tmp_path: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--runs", "1",
         "--corpus", str(tmp_path / "corpus"), *extra],
        capture_output=True, text=True, env=env, timeout=240, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    return proc


def rows(stdout: str) -> list[dict[str, str]]:
    out = []
    for line in stdout.split("The same runs in CPU seconds")[0].splitlines():
        if line.startswith("|") and not line.startswith(("| benchmark", "|---")):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            assert len(cells) == len(COLUMNS), line
            out.append(dict(zip(COLUMNS, cells)))
    return out


def tree_rows(table: list[dict[str, str]]) -> list[dict[str, str]]:
    start = next(i for i, r in enumerate(table) if r["name"].startswith("tree ("))
    return [table[start], table[start + 1]]


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
    # the same runs in CPU seconds, the decoders' cost among them (kascan against itself)
    cpu = proc.stdout.split("The same runs in CPU seconds")[1]
    decoders = next(ln for ln in cpu.splitlines() if "every decoder off" in ln)
    assert re.search(r"\| \d+\.\d{3} \| \d+\.\d\dx \|$", decoders), decoders


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


def test_real_corpora_are_built_from_a_git_directory(
    tmp_path: Path, env: dict[str, str], git_repo: GitRepo
) -> None:
    """--history-repo: the tree is ``git archive`` of one commit with keys planted (all found:
    the bench checks kascan's count), the history every object of an older commit plus keys."""
    for i in range(40):
        git_repo.write(
            f"src/d{i % 4}/f{i:02d}.c", "".join(f"int v{j} = {i * j};\n" for j in range(30))
        )
    old = git_repo.commit("first")
    git_repo.write("docs/readme.txt", "hello\n" * 50)
    git_repo.write(".gitignore", "build/\n")
    new = git_repo.commit("second")
    args = ("--history-repo", str(git_repo.path), "--tree-rev", new, "--history-rev", old)
    proc = run_bench(tmp_path, {**env, "PYTHONPATH": str(ROOT)}, *args, "--tree-keys", "20",
                     "--only", "tree", "--only", "history")  # fmt: skip
    table = rows(proc.stdout)
    tree = next(r for r in table if r["name"].startswith("tree (real: "))
    assert "44 files" in tree["name"] and "20 keys" in tree["name"]  # 42 + 2 new UTF-16 ones
    assert re.fullmatch(r"\d+\.\d\dx", tree["ratio"])
    hist = next(r for r in table if r["name"].startswith("history (real: "))
    # first commit: 40 blobs, 6 trees, 1 commit; the added commit: 3 blobs, 3 trees, 1 commit;
    # the commit that removes them again (its tree is the first commit's)
    assert hist["name"] == "history (real: 55 objects)"
    assert re.fullmatch(r"\d+\.\d\dx", hist["ratio"])
    corpus = tmp_path / "corpus" / "quick"
    planted = sorted((corpus / "real-tree").rglob("bench-settings-*.txt"))
    assert len(planted) == 2  # a tenth of the keys in UTF-16 files
    assert planted[0].read_bytes().startswith(b"\xff\xfe")
    again = run_bench(tmp_path, {**env, "PYTHONPATH": str(ROOT)}, *args, "--tree-keys", "20",
                      "--only", "tree")  # fmt: skip
    assert "building" not in again.stderr  # built once, reused while the recipe is the same
