"""A git bundle (``git bundle create``) is scanned as the history it carries."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.conftest import GitRepo, Result, findings_of


def test_a_bundle_is_scanned_as_history(
    git_repo: GitRepo, run_cli: Callable[..., Result], key: str, tmp_path: Path
) -> None:
    git_repo.commit("one", {"README": "hi\n"})
    sha = git_repo.commit("two", {"deploy/app.env": f"KEY={key}\n"})
    git_repo.git("checkout", "-q", "-b", "topic")
    topic = git_repo.commit("three", {"notes.txt": f"old {key}\n"})  # only on a branch
    bundle = tmp_path / "backup.bundle"
    git_repo.git("bundle", "create", str(bundle), "--all")
    result = run_cli("git", bundle, "-f", "json")
    assert result.returncode == 1, result.output
    got = sorted((f["path"], f["commit"]) for f in findings_of(result))
    assert got == [("deploy/app.env", sha), ("notes.txt", topic)]
    result.assert_no_leak(key)
    ranged = run_cli("git", bundle, "--range", f"{sha}..{topic}", "-f", "json")
    assert [(f["path"], f["commit"]) for f in findings_of(ranged)] == [("notes.txt", topic)]
    # a file that only looks like a bundle by name is not one
    fake = tmp_path / "fake.bundle"
    fake.write_text("not a bundle\n")
    bad = run_cli("git", fake)
    assert bad.returncode == 2 and "not a git repository" in bad.stderr
