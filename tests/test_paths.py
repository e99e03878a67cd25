"""Paths the user can open: kascan prints a tree's paths as the tree was named on the command
line (relative to the current directory, as ripgrep does), for one root or many; SARIF stays
repository-relative (``--path-prefix`` for a scan run below the repository root); git findings
stay repository-relative."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import GitRepo, Result, findings_of, write_files
from tests.sarif_util import assert_valid_sarif, location, results


def _kascan(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    # not run_cli: that one runs a scan of one absolute directory from inside it
    return subprocess.run(
        [sys.executable, "-m", "kascan", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def proj(tmp_path: Path, key: str) -> Path:
    write_files(
        tmp_path,
        {"proj/config_local.py": f"KEY = '{key}'\n", "proj/deep/er/x.env": f"K={key}\n"},
    )
    return tmp_path


def _paths(out: str) -> list[str]:
    return [str(f["path"]) for f in json.loads(out)["findings"]]


@pytest.mark.parametrize(
    ("arg", "prefix"),
    [("proj", "proj/"), ("proj/", "proj/"), ("./proj", "proj/"), ("proj/deep/..", "proj/deep/../")],
)
def test_one_root_prints_paths_from_the_current_directory(
    proj: Path, env: dict[str, str], key: str, arg: str, prefix: str
) -> None:
    res = _kascan(proj, env, "scan", arg, "-f", "json")
    assert res.returncode == 1, res.stderr
    assert _paths(res.stdout) == [f"{prefix}config_local.py", f"{prefix}deep/er/x.env"]
    for p in _paths(res.stdout):
        assert (proj / p).is_file()  # the user can open it from where they stand
    text = _kascan(proj, env, "scan", arg)
    assert f"{prefix}config_local.py:1:" in text.stdout
    assert key not in text.stdout + text.stderr


def test_the_same_rule_for_many_roots_and_for_dot(proj: Path, env: dict[str, str]) -> None:
    write_files(proj, {"other/a.txt": "nothing\n"})
    many = _kascan(proj, env, "scan", "proj", "other", "-f", "json")
    assert _paths(many.stdout) == ["proj/config_local.py", "proj/deep/er/x.env"]
    dot = _kascan(proj / "proj", env, "scan", ".", "-f", "json")
    assert _paths(dot.stdout) == ["config_local.py", "deep/er/x.env"]
    up = _kascan(proj / "proj" / "deep", env, "scan", "..", "-f", "json")
    assert _paths(up.stdout) == ["../config_local.py", "../deep/er/x.env"]


def test_an_absolute_root_prints_absolute_paths(proj: Path, env: dict[str, str]) -> None:
    res = _kascan(proj, env, "scan", str(proj / "proj"), "-f", "json")
    assert _paths(res.stdout) == [
        (proj / "proj/config_local.py").as_posix(),
        (proj / "proj/deep/er/x.env").as_posix(),
    ]


def test_sarif_is_repository_relative(proj: Path, env: dict[str, str]) -> None:
    # run at the repository root: the paths as printed are the repository's
    res = _kascan(proj, env, "scan", "proj", "-f", "sarif")
    doc = json.loads(res.stdout)
    assert_valid_sarif(doc)
    uris = sorted(location(r)[0] for r in results(doc))
    assert uris[0] == "proj/config_local.py"
    # run below it: --path-prefix names the directory kascan runs in
    sub = _kascan(proj / "proj", env, "scan", "deep", "-f", "sarif", "--path-prefix", "proj")
    doc = json.loads(sub.stdout)
    assert_valid_sarif(doc)
    assert [location(r)[0] for r in results(doc)] == ["proj/deep/er/x.env"]


def test_git_findings_stay_repository_relative(
    git_repo: GitRepo, tmp_path: Path, env: dict[str, str], key: str
) -> None:
    git_repo.commit("add", {"src/app.py": f"K = '{key}'\n"})
    for cwd, arg in ((tmp_path, "repo"), (git_repo.path / "src", "..")):
        res = _kascan(cwd, env, "git", arg, "-f", "json")
        assert res.returncode == 1, res.stderr
        assert [f["path"] for f in findings_of(Result(res.returncode, res.stdout, ""))] == [
            "src/app.py"
        ]
