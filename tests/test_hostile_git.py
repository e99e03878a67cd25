"""A hostile repository: its own config, names and metadata never run code or hide a key."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import GitRepo, Result, findings_of


def _plant_lazy_fetch(repo: GitRepo, marker: Path, missing_file: str) -> None:
    """Make ``repo`` a 'partial clone' whose promisor remote runs a command when git fetches a
    missing object: the blob of ``missing_file`` is deleted from the object database."""
    blob = repo.git("rev-parse", f"HEAD:{missing_file}")
    obj = repo.path / ".git" / "objects" / blob[:2] / blob[2:]
    assert obj.exists(), "the blob must be loose to be removed"
    obj.unlink()
    upstream = repo.path.parent / "upstream"
    upstream.mkdir()
    repo.git("init", "-q", "--bare", str(upstream))
    cmd = f"touch {marker}; git-upload-pack"
    repo.git("config", "core.repositoryformatversion", "1")
    repo.git("remote", "add", "origin", str(upstream))
    repo.git("config", "remote.origin.promisor", "true")
    repo.git("config", "remote.origin.uploadpack", cmd)
    repo.git("config", "extensions.partialclone", "origin")
    # the same through ssh: a second promisor remote whose transport is core.sshCommand
    repo.git("remote", "add", "evil", "ssh://example.invalid/x.git")
    repo.git("config", "remote.evil.promisor", "true")
    repo.git("config", "core.sshCommand", f"touch {marker}; false")
    # and a repository that allows every protocol in its own config
    repo.git("config", "protocol.allow", "always")
    repo.git("config", "protocol.file.allow", "always")


@pytest.mark.parametrize("mode", ["history", "staged", "staged-missing", "bare"])
def test_a_lazy_fetch_never_runs_the_repository_s_commands(
    git_repo: GitRepo,
    run_cli: Callable[..., Result],
    key: str,
    tmp_path: Path,
    mode: str,
) -> None:
    marker = tmp_path / "PWNED"
    git_repo.commit("init", {"app.env": f"KEY={key}\n", "gone.txt": "missing later\n"})
    _plant_lazy_fetch(git_repo, marker, "gone.txt")
    # the attack works against plain git (so the test proves something)
    git_repo.git("config", "--unset", "core.sshCommand")
    blob = "HEAD:gone.txt"
    env = dict(git_repo.env)
    import subprocess

    subprocess.run(
        ["git", "cat-file", "-p", blob],
        cwd=git_repo.path,
        env=env,
        check=False,
        capture_output=True,
    )
    assert marker.exists(), "plain git should have run the promisor remote's upload-pack"
    marker.unlink()
    git_repo.git("config", "core.sshCommand", f"touch {marker}; false")

    if mode == "history":
        result = run_cli("git", git_repo.path, "-f", "json")
    elif mode.startswith("staged"):
        git_repo.write("new.txt", f"token {key}\n")
        git_repo.git("add", "new.txt")
        if mode == "staged-missing":
            # the staged diff compares against HEAD, whose gone.txt is missing: git wants it
            git_repo.write("gone.txt", "changed\n")
            git_repo.git("add", "gone.txt")
        result = run_cli("git", "--staged", "-f", "json", cwd=git_repo.path)
    else:
        bare = tmp_path / "bare.git"
        os.rename(git_repo.path / ".git", bare)
        subprocess.run(["git", "--git-dir", str(bare), "config", "core.bare", "true"], check=True)
        result = run_cli("git", bare, "-f", "json")
    assert not marker.exists(), "kascan let git run a command from the scanned repository"
    assert "Traceback" not in result.stderr
    result.assert_no_leak(key)
    if mode == "staged-missing":  # a corrupt repository: one line, exit 2, still no fetch
        assert result.returncode == 2, result.output
        assert "Error: git diff --cached failed in .: unable to read" in result.stderr
        return
    assert result.returncode == 1, result.output
    assert {f["path"] for f in findings_of(result)} >= (
        {"new.txt"} if mode == "staged" else {"app.env"}
    )


@pytest.mark.parametrize(
    "path, author",
    [
        ("conf/\x01evil.env", "Mallory"),
        ("conf/app.env", "Mal\x01lory"),
        ("\x01" + "0" * 40 + "/a.env", "\x01" + "f" * 40),
        ("line\nbreak/\x01.env", "Mal\x01\x01lory"),
    ],
)
@pytest.mark.parametrize("extra_blobs", [0, 80])  # few blobs with a key, and many
def test_control_bytes_in_names_never_hide_a_key_from_history(
    git_repo: GitRepo,
    run_cli: Callable[..., Result],
    keys: Callable[[int], list[str]],
    path: str,
    author: str,
    extra_blobs: int,
) -> None:
    key, *others = keys(1 + extra_blobs)
    git_repo.commit("before", {"README": "hello\n"})
    git_repo.env["GIT_AUTHOR_NAME"] = author
    sha = git_repo.commit("add", {path: f"KEY={key}\n"})
    git_repo.env["GIT_AUTHOR_NAME"] = "Test Author"
    if others:
        git_repo.commit("more", {f"more/{i}.txt": f"k={k}\n" for i, k in enumerate(others)})
    git_repo.commit("after", {"README": "bye\n"})
    result = run_cli("git", git_repo.path, "-f", "json")
    assert result.returncode == 1, result.output
    found = [
        f for f in findings_of(result) if f["path"] != "README" and "more/" not in str(f["path"])
    ]
    assert len(found) == 1, result.output
    assert found[0]["line"] == 1 and found[0]["column"] == 5
    assert found[0]["commit"] == sha
    assert "unreachable" not in result.stderr
    assert len([f for f in findings_of(result) if "more/" in str(f["path"])]) == extra_blobs


def test_a_missing_tree_degrades_attribution_but_loses_nothing(
    git_repo: GitRepo, run_cli: Callable[..., Result], key: str
) -> None:
    """A corrupt repository (a tree object gone): the key is still reported, without a commit,
    with one line that says why; never '0 candidates'."""
    git_repo.commit("one", {"docs/a.txt": "hello\n"})
    git_repo.commit("two", {"conf/app.env": f"KEY={key}\n"})
    tree = git_repo.git("rev-parse", "HEAD~1:docs")
    (git_repo.path / ".git" / "objects" / tree[:2] / tree[2:]).unlink()
    result = run_cli("git", git_repo.path, "-f", "json")
    assert "Traceback" not in result.stderr
    result.assert_no_leak(key)
    doc = result.json()
    found = doc["findings"]
    assert isinstance(found, list) and len(found) == 1, result.output
    assert found[0]["line"] == 1 and found[0]["column"] == 5
    summary = doc["summary"]
    assert isinstance(summary, dict) and summary["candidates"] == 1
    assert result.returncode in (1, 2), result.output
    assert "cannot attribute" in result.stderr or "Error:" in result.stderr
