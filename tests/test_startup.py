"""Start-up of the commit hook: what ``kascan git --staged --files -- NAMES`` (the pre-commit
hook's entry, run on every commit) loads and runs in a fresh interpreter. Guarded by what it
imports and how many git processes it starts, not by a timing (the machine's load would make
that flaky): each heavy module or extra git process is milliseconds of every commit."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import GitRepo

# the real CLI, as the console script runs it; the modules loaded are written at exit
HOOK = (
    "import atexit, sys\n"
    "atexit.register(lambda: sys.stderr.write('\\nMODULES ' + ' '.join(sorted(sys.modules))))\n"
    "sys.argv[0] = 'kascan'\n"
    "from kascan.cli import main\n"
    "main()\n"
)

# modules a small text change never needs (click and its own imports may stay)
HEAVY = {
    "hyperscan",  # a commit's few KB go through the bytes.find engine: no database to compile
    "kascan.sources.git.history",
    "kascan.sources.git.blobstream",
    "kascan.sources.git.blobs",  # text only: no blob is read whole
    "kascan.sources.files",
    "kascan.fleet",
    "kascan.parallel",
    "kascan.verify",
    "kascan.baselines",
    "kascan.github_api",
    "importlib.metadata",
    "importlib.resources",
    "tomllib",  # no .kascan.toml
    "pathspec",  # no exclude patterns
    "regex",  # no user rules
    "json",
    "base64",
    "hashlib",  # OpenSSL: only a fingerprint needs it
    "tempfile",
    "shutil",
    "tarfile",
    "zipfile",
    "gzip",
    "bz2",
    "lzma",
    "sqlite3",
    "multiprocessing",
    "concurrent.futures",
    "asyncio",
    "ssl",
    "http.client",
    "urllib.request",
    "email",
    "httpx",
}
HEAVY_PACKAGES = ("kascan.sources.containers", "kascan.sources.image", "kascan.commands.scan")


def hook_run(
    repo: GitRepo, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    e = dict(env or repo.env)
    e.pop("KASCAN_ENGINE", None)  # the engine a user gets (CI also runs with the fallback forced)
    proc = subprocess.run(
        [sys.executable, "-c", HOOK, "git", "--staged", *args],
        cwd=repo.path,
        env=e,
        capture_output=True,
        text=True,
        check=False,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    _, sep, listed = proc.stderr.rpartition("\nMODULES ")
    assert sep, proc.stderr
    return proc, set(listed.split())


def staged_change(repo: GitRepo, key: str) -> list[str]:
    """Ten small files committed, then a line added to each (a key in one) and staged."""
    names = [f"src/m{i}.py" for i in range(10)]
    repo.commit("base", {n: f"value = {i}\n" for i, n in enumerate(names)})
    for i, n in enumerate(names):
        extra = f"API_KEY = '{key}'\n" if i == 3 else f"more = {i}\n"
        repo.write(n, f"value = {i}\n{extra}")
    repo.git("add", "-A")
    return names


def heavy(modules: set[str]) -> set[str]:
    return {m for m in modules if m in HEAVY or m.startswith(HEAVY_PACKAGES)}


@pytest.mark.parametrize("form", ["hook", "plain"])
def test_commit_hook_loads_no_heavy_module(git_repo: GitRepo, key: str, form: str) -> None:
    names = staged_change(git_repo, key)
    args = ["--files", "--", *names] if form == "hook" else []
    proc, modules = hook_run(git_repo, *args)
    assert proc.returncode == 1, proc.stderr  # the key is found...
    assert "src/m3.py:2:" in proc.stdout
    assert "kascan.sources.git.patch" in modules  # ...by the staged-change source
    assert heavy(modules) == set()


def test_a_clean_commit_loads_no_heavy_module(git_repo: GitRepo) -> None:
    git_repo.commit("base", {"a.txt": "one\n"})
    git_repo.write("a.txt", "one\ntwo\n")
    git_repo.git("add", "-A")
    proc, modules = hook_run(git_repo, "--files", "--", "a.txt")
    assert proc.returncode == 0, proc.stderr
    assert heavy(modules) == set()


def test_a_big_change_loads_hyperscan_and_finds_the_same(git_repo: GitRepo, key: str) -> None:
    """Past the fallback's budget the one-pass engine takes over: same findings."""
    pytest.importorskip("hyperscan")
    git_repo.commit("base", {"big.txt": "x\n"})
    filler = "".join(f"line {i} of text\n" for i in range(8000))  # > 64 KiB of added lines
    git_repo.write("big.txt", f"x\n{filler}token = {key}\n{filler}")
    git_repo.git("add", "-A")
    proc, modules = hook_run(git_repo, "--files", "--", "big.txt")
    assert proc.returncode == 1, proc.stderr
    assert f"big.txt:{8002}:" in proc.stdout
    assert "hyperscan" in modules


def test_the_hook_starts_two_git_processes(git_repo: GitRepo, key: str, tmp_path: Path) -> None:
    """``rev-parse`` (the repository) and one ``diff --cached --raw -p`` (what is staged, and
    its lines): counted by a git on PATH that logs each run and hands on to the real one."""
    real = shutil.which("git")
    assert real is not None
    names = staged_change(git_repo, key)
    shim = tmp_path / "shim"
    shim.mkdir()
    log = tmp_path / "git.log"
    (shim / "git").write_text(f'#!/bin/sh\necho "$@" >> "{log}"\nexec "{real}" "$@"\n')
    (shim / "git").chmod(stat.S_IRWXU)
    env = {**git_repo.env, "PATH": f"{shim}{os.pathsep}{git_repo.env.get('PATH', '')}"}
    proc, _ = hook_run(git_repo, "--files", "--", *names, env=env)
    assert proc.returncode == 1, proc.stderr
    runs = log.read_text().splitlines()
    assert len(runs) == 2, runs
    assert " rev-parse " in runs[0] and " diff --cached --raw " in runs[1]
