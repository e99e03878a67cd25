"""Shared fixtures: keys made at test time, real git repos, the real CLI in a subprocess."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import string
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

ALNUM = string.ascii_letters + string.digits
PREFIX = "ka_" + "live_"  # split so that no key-shaped literal is ever committed
ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT.parent / "shared" / "schemas"


def make_key(rng: random.Random) -> str:
    """A realistic key: the prefix and 32 random letters and digits (never a placeholder)."""
    from kascan.heuristics import is_placeholder

    while True:
        body = "".join(rng.choices(ALNUM, k=32))
        if not is_placeholder(body):
            return PREFIX + body


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> random.Random:
    return random.Random(request.node.nodeid)


@pytest.fixture
def key(rng: random.Random) -> str:
    return make_key(rng)


@pytest.fixture
def keys(rng: random.Random) -> Callable[[int], list[str]]:
    def make(n: int) -> list[str]:
        return [make_key(rng) for _ in range(n)]

    return make


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, object]:
        doc: dict[str, object] = json.loads(self.stdout)
        return doc

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def assert_no_leak(self, *secrets: str) -> None:
        assert "Traceback" not in self.stderr, self.stderr
        for s in secrets:
            body = s[len(PREFIX) :] if s.startswith(PREFIX) else s
            assert body not in self.stdout, "key body leaked on stdout"
            assert body not in self.stderr, "key body leaked on stderr"


_HYPERSCAN = importlib.util.find_spec("hyperscan") is not None


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "KASCAN_"))}
    if "KASCAN_ENGINE" in os.environ:  # CI runs the suite again with the fallback engine
        env["KASCAN_ENGINE"] = os.environ["KASCAN_ENGINE"]
    elif _HYPERSCAN:
        # without it, a process's first 64 KiB go through the fallback engine (a fast hook):
        # the suite's small inputs would then never meet Hyperscan. tests/test_startup.py runs
        # the engine a user gets, with the variable unset.
        env["KASCAN_ENGINE"] = "hyperscan"
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME="Test Author",
        GIT_AUTHOR_EMAIL="author@example.com",
        GIT_COMMITTER_NAME="Test Committer",
        GIT_COMMITTER_EMAIL="committer@example.com",
        NO_COLOR="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


@pytest.fixture
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    h = tmp_path_factory.mktemp("home")
    (h / ".config").mkdir()
    return h


@pytest.fixture
def env(home: Path) -> dict[str, str]:
    return clean_env(home)


class _Inside:
    def __init__(self, d: Path) -> None:
        self.dir = d


def from_inside(
    args: tuple[str | os.PathLike[str], ...], cwd: Path | None
) -> tuple[tuple[str | os.PathLike[str], ...], Path | None]:
    """The arguments and working directory a test's ``scan`` runs with (see _from_inside)."""
    if (args[:1] == ("scan",) or args[:2] == ("baseline", "update")) and cwd is None:
        moved = _from_inside(args)
        if moved and isinstance(moved[-1], _Inside):
            return moved[:-1], moved[-1].dir  # type: ignore[return-value]
    return args, cwd


def _from_inside(args: tuple[object, ...]) -> tuple[object, ...]:
    """``scan DIR`` of one absolute directory (a test's ``tmp_path``) runs as a user does, from
    inside it: ``cd DIR && kascan scan .``, so findings read ``config.json``, not the
    directory's absolute path (kascan prints paths as they were named; tests/test_paths.py
    covers the other spellings)."""
    dirs = [i for i, a in enumerate(args) if isinstance(a, Path) and a.is_absolute() and a.is_dir()]
    if len(dirs) != 1:
        return args
    i = dirs[0]
    d = args[i]
    assert isinstance(d, Path)
    return (*args[:i], ".", *args[i + 1 :], _Inside(d))


@pytest.fixture
def run_cli(env: dict[str, str]) -> Callable[..., Result]:
    """``run_cli("scan", path, cwd=..., input=...)``: the real CLI in a subprocess."""

    def run(
        *args: str | os.PathLike[str],
        cwd: Path | None = None,
        input: str | bytes | None = None,
        extra_env: dict[str, str] | None = None,
        timeout: float = 120,
    ) -> Result:
        e = dict(env)
        if extra_env:
            e.update(extra_env)
        args, cwd = from_inside(args, cwd)
        proc = subprocess.run(
            [sys.executable, "-m", "kascan", *map(str, args)],
            cwd=cwd,
            input=input.encode() if isinstance(input, str) else input,
            capture_output=True,
            env=e,
            timeout=timeout,
            check=False,
        )
        return Result(
            proc.returncode,
            proc.stdout.decode("utf-8", "replace"),
            proc.stderr.decode("utf-8", "replace"),
        )

    return run


class GitRepo:
    """A real repository made with the git CLI; commits get fixed, increasing dates."""

    def __init__(self, path: Path, env: dict[str, str]) -> None:
        self.path = path
        self.env = dict(env)
        self._tick = 0
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")
        self.git("config", "commit.gpgsign", "false")

    def git(self, *args: str, input: str | None = None) -> str:
        proc = subprocess.run(
            ["git", *args],
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            input=input,
            check=False,
        )
        if proc.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
        return proc.stdout.strip()

    def write(self, rel: str, content: str | bytes) -> Path:
        p = self.path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)
        return p

    def commit(self, message: str, files: dict[str, str | bytes] | None = None) -> str:
        for rel, content in (files or {}).items():
            self.write(rel, content)
        self.git("add", "-A")
        self._tick += 1
        date = f"2024-01-{self._tick:02d}T12:00:00+00:00"
        self.env["GIT_AUTHOR_DATE"] = date
        self.env["GIT_COMMITTER_DATE"] = date
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD")

    def rm(self, *rels: str) -> None:
        self.git("rm", "-q", *rels)


@pytest.fixture
def git_repo(tmp_path: Path, env: dict[str, str]) -> Iterator[GitRepo]:
    yield GitRepo(tmp_path / "repo", env)


@pytest.fixture
def make_repo(env: dict[str, str]) -> Callable[[Path], GitRepo]:
    def make(path: Path) -> GitRepo:
        return GitRepo(path, env)

    return make


def findings_of(result: Result) -> list[dict[str, object]]:
    doc = result.json()
    found = doc["findings"]
    assert isinstance(found, list)
    return found


def locations(result: Result) -> list[tuple[object, object, object]]:
    return [(f["path"], f["line"], f["column"]) for f in findings_of(result)]


def write_files(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)


__all__: Sequence[str] = [
    "ALNUM",
    "PREFIX",
    "GitRepo",
    "Result",
    "findings_of",
    "locations",
    "make_key",
    "write_files",
]
