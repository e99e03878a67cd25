"""The real pre-commit framework runs kascan's hooks, installed from this checkout at its HEAD."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, GitRepo, Result

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hook_rev() -> str:
    """The commit pre-commit installs kascan from: this checkout's HEAD (commit before testing)."""
    return subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


@pytest.fixture(scope="module")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One pre-commit cache for the module, so kascan's hook environment is built once."""
    yield tmp_path_factory.mktemp("pre-commit-home")


@pytest.fixture
def hooked(git_repo: GitRepo, env: dict[str, str], hook_rev: str, pre_commit_home: Path) -> GitRepo:
    """A repository whose pre-commit and pre-push hooks are kascan's, installed by pre-commit."""
    git_repo.env["PRE_COMMIT_HOME"] = str(pre_commit_home)
    git_repo.env["PATH"] = str(Path(sys.executable).parent) + ":" + env.get("PATH", "")
    git_repo.env.pop("PYTHONPATH", None)  # the hook must run the kascan pre-commit installed
    git_repo.write(
        ".pre-commit-config.yaml",
        f"repos:\n- repo: {ROOT}\n  rev: {hook_rev}\n  hooks:\n"
        "  - id: kascan\n  - id: kascan-push\n",
    )
    git_repo.commit("pre-commit config")
    pre_commit(git_repo, "install", "--hook-type", "pre-commit", "--hook-type", "pre-push")
    pre_commit(git_repo, "install-hooks")
    return git_repo


def pre_commit(repo: GitRepo, *args: str, check: bool = True) -> Result:
    return run(repo, [sys.executable, "-m", "pre_commit", *args], check=check)


def run(repo: GitRepo, argv: list[str], check: bool = False) -> Result:
    proc = subprocess.run(
        argv, cwd=repo.path, env=repo.env, capture_output=True, timeout=600, check=False
    )
    result = Result(
        proc.returncode,
        proc.stdout.decode("utf-8", "replace"),
        proc.stderr.decode("utf-8", "replace"),
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{argv} failed: {result.output}")
    return result


def git_commit(repo: GitRepo, message: str) -> Result:
    repo._tick += 1
    date = f"2024-02-{repo._tick:02d}T12:00:00+00:00"
    repo.env["GIT_AUTHOR_DATE"] = repo.env["GIT_COMMITTER_DATE"] = date
    return run(repo, ["git", "commit", "-m", message])


def test_commit_adding_a_key_is_blocked(hooked: GitRepo, key: str) -> None:
    head = hooked.git("rev-parse", "HEAD")
    hooked.write("app/settings.py", f"DEBUG = False\nAPI_KEY = '{key}'\n")
    hooked.git("add", "-A")
    result = git_commit(hooked, "add settings")
    assert result.returncode != 0, result.output
    assert hooked.git("rev-parse", "HEAD") == head  # nothing was committed
    assert "kascan (Kubeadapt API keys in the staged change)" in result.output
    assert "Failed" in result.output
    assert "app/settings.py:2:12" in result.output
    assert "Settings → API Keys" in result.output
    assert "commit blocked" in result.output
    # one block: where, a real leak, a false positive; never two overlapping remedies
    assert "a real key: take it out of the file" in result.output
    assert "not a real key" in result.output and "kascan:allow" in result.output
    assert "SKIP=kascan git commit" in result.output
    assert "is a full credential" not in result.output
    result.assert_no_leak(key)


def test_clean_commit_passes(hooked: GitRepo) -> None:
    hooked.write("notes.md", "nothing secret here\n")
    hooked.git("add", "-A")
    result = git_commit(hooked, "notes")
    assert result.returncode == 0, result.output
    assert "Passed" in result.output
    assert hooked.git("log", "-1", "--format=%s") == "notes"


def test_commit_all_with_a_key_in_the_work_tree_is_blocked(hooked: GitRepo, key: str) -> None:
    """``git commit -a`` stages into a temporary index (GIT_INDEX_FILE) that the hook must read."""
    hooked.commit("file", {"conf.ini": "[a]\nx = 1\n"})
    hooked.write("conf.ini", f"[a]\nx = 1\nkey = {key}\n")
    result = run(hooked, ["git", "commit", "-a", "-m", "edit"])
    assert result.returncode != 0, result.output
    assert "conf.ini:3:7" in result.output
    result.assert_no_leak(key)


def test_run_files_scans_the_files_named(hooked: GitRepo, key: str) -> None:
    # a key committed before the hook existed: the commit hook never saw it
    hooked.write("legacy.cfg", f"token={key}\n")
    hooked.write("clean.txt", "clean\n")
    hooked.git("add", "-A")
    hooked.git("commit", "-q", "--no-verify", "-m", "legacy")
    files = pre_commit(
        hooked, "run", "kascan", "--verbose", "--files", "legacy.cfg", "clean.txt", check=False
    )
    assert files.returncode == 1, files.output
    assert "legacy.cfg:1:7" in files.output
    assert "2 file(s) named, not all of them staged: scanned the whole staged content of 2" in (
        files.output
    )
    files.assert_no_leak(key)
    everything = pre_commit(hooked, "run", "kascan", "--all-files", check=False)
    assert everything.returncode == 1
    assert "legacy.cfg:1:7" in everything.output
    clean = pre_commit(hooked, "run", "kascan", "--verbose", "--files", "clean.txt", check=False)
    assert clean.returncode == 0, clean.output
    assert "scanned the whole staged content of 1" in clean.output


def test_pre_push_blocks_exactly_the_commits_pushed(
    hooked: GitRepo, key: str, tmp_path: Path
) -> None:
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True, env=hooked.env)
    hooked.git("remote", "add", "origin", str(remote))
    # a new branch with its root commit: every commit is scanned, all clean
    first = run(hooked, ["git", "push", "-q", "origin", "main"])
    assert first.returncode == 0, first.output
    base = hooked.git("rev-parse", "HEAD")
    # a key committed past the commit hook, on a new branch
    hooked.git("checkout", "-q", "-b", "feature")
    hooked.write("deploy.env", f"KUBEADAPT_KEY={key}\n")
    hooked.git("add", "-A")
    hooked.git("commit", "-q", "--no-verify", "-m", "deploy env")
    bad = hooked.git("rev-parse", "HEAD")
    pushed = run(hooked, ["git", "push", "origin", "feature"])
    assert pushed.returncode != 0, pushed.output
    assert "deploy.env:1:15" in pushed.output
    assert f"commit {bad[:12]}" in pushed.output
    assert "push blocked" in pushed.output
    pushed.assert_no_leak(key)
    heads = subprocess.run(
        ["git", "-C", str(remote), "for-each-ref", "--format=%(refname)"],
        capture_output=True,
        text=True,
        check=True,
        env=hooked.env,
    ).stdout.split()
    assert heads == ["refs/heads/main"]
    # a clean push to the existing branch passes: the key on feature is not part of it
    hooked.git("checkout", "-q", "main")
    hooked.write("ok.txt", "ok\n")
    hooked.git("add", "-A")
    assert git_commit(hooked, "ok").returncode == 0
    clean = run(hooked, ["git", "push", "origin", "main"])
    assert clean.returncode == 0, clean.output
    # the same check run by hand over the range
    ranged = pre_commit(
        hooked,
        "run",
        "kascan-push",
        "--hook-stage",
        "pre-push",
        "--from-ref",
        base,
        "--to-ref",
        bad,
        check=False,
    )
    assert ranged.returncode == 1
    assert "deploy.env:1:15" in ranged.output
    ranged.assert_no_leak(key)


def test_hooks_file_describes_both_hooks() -> None:
    import yaml

    hooks = {h["id"]: h for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    assert hooks["kascan"]["entry"] == "kascan git --staged --files --"
    assert hooks["kascan-push"]["entry"] == "kascan git --pre-push --"
    assert hooks["kascan"]["stages"] == ["pre-commit"]
    assert hooks["kascan-push"]["stages"] == ["pre-push"]
    assert hooks["kascan-push"]["pass_filenames"] is False
    assert {h["language"] for h in hooks.values()} == {"python"}


def test_file_names_that_look_like_options_are_paths(hooked: GitRepo, key: str) -> None:
    """A tracked file named like an option must not become one (``--exclude=*`` would hide the
    key, ``--output=README.md`` would overwrite a file with the key, ``--verify`` send it)."""
    readme = "# project\n"
    hooked.write("README.md", readme)
    hooked.write("app.cfg", f"token={key}\n")
    for name in ("--exclude=*", "--show-secrets", "--output=README.md", "--verify", "-q"):
        hooked.write(name, "harmless\n")
    hooked.git("add", "-A")
    hooked.git("commit", "-q", "--no-verify", "-m", "names")
    result = pre_commit(hooked, "run", "kascan", "--all-files", "--verbose", check=False)
    assert result.returncode == 1, result.output
    assert "app.cfg:1:7" in result.output
    assert "verified" not in result.output
    assert (hooked.path / "README.md").read_text() == readme
    assert "Error:" not in result.output
    result.assert_no_leak(key)
    # and a name that is a directory (a submodule path, say) is a path too, not a repository
    staged = pre_commit(hooked, "run", "kascan", "--files", "app.cfg", ".", check=False)
    assert staged.returncode == 1, staged.output
    assert "app.cfg:1:7" in staged.output


# --- commit messages and tags (issue 18) -------------------------------------------------------


@pytest.fixture
def msg_hooked(
    git_repo: GitRepo, env: dict[str, str], hook_rev: str, pre_commit_home: Path
) -> GitRepo:
    """A repository with all three of kascan's hooks: pre-commit, commit-msg and pre-push."""
    git_repo.env["PRE_COMMIT_HOME"] = str(pre_commit_home)
    git_repo.env["PATH"] = str(Path(sys.executable).parent) + ":" + env.get("PATH", "")
    git_repo.env.pop("PYTHONPATH", None)
    git_repo.write(
        ".pre-commit-config.yaml",
        f"repos:\n- repo: {ROOT}\n  rev: {hook_rev}\n  hooks:\n"
        "  - id: kascan\n  - id: kascan-msg\n  - id: kascan-push\n",
    )
    git_repo.commit("pre-commit config")
    pre_commit(
        git_repo,
        "install",
        *("--hook-type", "pre-commit", "--hook-type", "commit-msg", "--hook-type", "pre-push"),
    )
    pre_commit(git_repo, "install-hooks")
    return git_repo


def test_hooks_file_describes_the_commit_msg_hook() -> None:
    import yaml

    hooks = {h["id"]: h for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    msg = hooks["kascan-msg"]
    assert msg["entry"] == "kascan git --commit-msg --"  # the file name comes after --
    assert msg["stages"] == ["commit-msg"] and msg["pass_filenames"] is True


def test_commit_msg_hook_blocks_a_key_in_the_message(msg_hooked: GitRepo, key: str) -> None:
    head = msg_hooked.git("rev-parse", "HEAD")
    msg_hooked.write("notes.md", "clean\n")
    msg_hooked.git("add", "-A")
    result = git_commit(msg_hooked, f"rotate the key\n\nold one: {key}\n")
    assert result.returncode != 0, result.output
    assert msg_hooked.git("rev-parse", "HEAD") == head  # nothing was committed
    assert "kascan (Kubeadapt API keys in the commit message)" in result.output
    assert "commit message:3:10" in result.output
    assert "the commit message above holds a Kubeadapt key" in result.output
    result.assert_no_leak(key)
    # the same change with a clean message passes all three hooks
    ok = git_commit(msg_hooked, "rotate the key")
    assert ok.returncode == 0, ok.output
    assert msg_hooked.git("log", "-1", "--format=%s") == "rotate the key"
    # an allowed line is allowed in a message too
    msg_hooked.write("more.md", "x\n")
    msg_hooked.git("add", "-A")
    allowed = git_commit(msg_hooked, f"fixture {key}  # kascan:allow documented test key")
    assert allowed.returncode == 0, allowed.output


def test_pre_push_blocks_a_key_in_a_message_or_a_tag(
    msg_hooked: GitRepo, keys: Callable[[int], list[str]], tmp_path: Path
) -> None:
    a, b = keys(2)
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True, env=msg_hooked.env)
    msg_hooked.git("remote", "add", "origin", str(remote))
    assert run(msg_hooked, ["git", "push", "-q", "origin", "main"]).returncode == 0
    # a message with a key, committed past the commit-msg hook
    msg_hooked.write("x.txt", "x\n")
    msg_hooked.git("add", "-A")
    msg_hooked.git("commit", "-q", "--no-verify", "-m", f"deploy\n\nwith {a}")
    bad = msg_hooked.git("rev-parse", "HEAD")
    pushed = run(msg_hooked, ["git", "push", "origin", "main"])
    assert pushed.returncode != 0, pushed.output
    assert f"commit {bad[:12]} message:3:6" in pushed.output
    assert "push blocked" in pushed.output
    pushed.assert_no_leak(a)
    # rewritten without it: the push passes; then a tag whose message holds a key is blocked
    msg_hooked.git("commit", "-q", "--amend", "--no-verify", "-m", "deploy")
    assert run(msg_hooked, ["git", "push", "-q", "origin", "main"]).returncode == 0
    # (pre-commit runs no pre-push hook for a tag of commits the remote has: nothing to push,
    # it says; a tag of new commits is pushed with them, and its message is scanned)
    msg_hooked.write("y.txt", "y\n")
    msg_hooked.git("add", "-A")
    assert git_commit(msg_hooked, "release").returncode == 0
    msg_hooked.git("tag", "-a", "v1.0", "-m", f"release\n\nkey {b}")
    tagged = run(msg_hooked, ["git", "push", "origin", "v1.0"])
    assert tagged.returncode != 0, tagged.output
    assert "tag v1.0 message:3:5" in tagged.output
    tagged.assert_no_leak(b)
    refs = subprocess.run(
        ["git", "-C", str(remote), "for-each-ref", "--format=%(refname)"],
        capture_output=True,
        text=True,
        check=True,
        env=msg_hooked.env,
    ).stdout.split()
    assert refs == ["refs/heads/main"]
