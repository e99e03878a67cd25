"""``kascan git`` on real repositories built with the git CLI (fixed commit dates)."""

from __future__ import annotations

import os
import pty
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import GitRepo, Result, findings_of

RunCli = Callable[..., Result]


def hits(result: Result) -> list[tuple[object, ...]]:
    """(path, line, column, commit) of each finding, sorted."""
    return sorted((f["path"], f["line"], f["column"], f["commit"]) for f in findings_of(result))


def scan(run_cli: RunCli, repo: GitRepo, *args: str) -> Result:
    result = run_cli("git", *args, "-f", "json", cwd=repo.path)
    assert "Traceback" not in result.stderr, result.stderr
    return result


# --- whole history -----------------------------------------------------------------------------


def test_key_added_then_deleted_names_the_introducing_commit(
    run_cli: RunCli, git_repo: GitRepo, key: str
) -> None:
    git_repo.commit("readme", {"README.md": "hello\n"})
    c2 = git_repo.commit("config", {"app/settings.py": f"DEBUG = 1\n\nAPI_KEY = '{key}'\n"})
    git_repo.rm("app/settings.py")
    git_repo.commit("remove the key")
    result = scan(run_cli, git_repo)
    assert result.returncode == 1
    [f] = findings_of(result)
    assert (f["path"], f["line"], f["column"], f["commit"]) == ("app/settings.py", 3, 12, c2)
    assert f["author"] == "Test Author"
    assert f["email"] == "author@example.com"
    assert f["date"] == "2024-01-02T12:00:00+00:00"
    summary = result.json()["summary"]
    assert isinstance(summary, dict)
    assert summary["commits"] == 3
    assert summary["blobs"] == 2  # README.md and settings.py, each read once
    result.assert_no_leak(key)


def test_text_report_names_commit_and_never_the_key(
    run_cli: RunCli, git_repo: GitRepo, key: str
) -> None:
    c1 = git_repo.commit("add", {"a.env": f"KEY={key}\n"})
    result = run_cli("git", cwd=git_repo.path)
    assert result.returncode == 1
    assert f"a.env:1:5  kubeadapt-api-key  {key[:12]}…  commit {c1[:12]}" in result.stdout
    assert "scanned 1 commit, 1 blob," in result.stdout
    result.assert_no_leak(key)


def test_later_edits_of_the_file_do_not_reintroduce_the_key(
    run_cli: RunCli, git_repo: GitRepo, key: str
) -> None:
    c1 = git_repo.commit("add", {"f.py": f"x = 1\nk = '{key}'\n"})
    git_repo.commit("edit", {"f.py": f"x = 2\ny = 3\nk = '{key}'\n"})
    git_repo.commit("edit again", {"f.py": f"# top\nx = 2\ny = 3\nk = '{key}'\n"})
    assert hits(scan(run_cli, git_repo)) == [("f.py", 2, 6, c1)]


def test_key_only_on_a_side_branch(run_cli: RunCli, git_repo: GitRepo, key: str) -> None:
    git_repo.commit("base", {"a.txt": "a\n"})
    git_repo.git("checkout", "-q", "-b", "side")
    c2 = git_repo.commit("side work", {"b.txt": f"token: {key}\n"})
    git_repo.git("checkout", "-q", "main")
    assert not (git_repo.path / "b.txt").exists()
    assert hits(scan(run_cli, git_repo)) == [("b.txt", 1, 8, c2)]


def test_key_only_in_a_lightweight_tag_on_a_detached_commit(
    run_cli: RunCli, git_repo: GitRepo, key: str
) -> None:
    git_repo.commit("base", {"a.txt": "a\n"})
    git_repo.git("checkout", "-q", "--detach")
    c2 = git_repo.commit("detached", {"deploy.sh": f"#!/bin/sh\nexport K={key}\n"})
    git_repo.git("tag", "just-a-tag")
    git_repo.git("checkout", "-q", "main")
    assert hits(scan(run_cli, git_repo)) == [("deploy.sh", 2, 10, c2)]
    # only the tag made it reachable: without it the commit is not part of any history, but
    # HEAD's reflog (issue 18: scanned by default; --no-reflogs leaves it out)
    git_repo.git("tag", "-d", "just-a-tag")
    assert hits(scan(run_cli, git_repo)) == [("deploy.sh", 2, 10, c2)]
    assert scan(run_cli, git_repo, "--no-reflogs").returncode == 0


def test_key_only_in_a_stash(run_cli: RunCli, git_repo: GitRepo, key: str) -> None:
    git_repo.commit("base", {"a.txt": "a\n"})
    git_repo.write("a.txt", f"a\n{key}\n")
    git_repo.git("stash", "-q")
    git_repo.write("a.txt", "a\nb\n")
    git_repo.git("stash", "-q")  # the key is now only in stash@{1}
    result = scan(run_cli, git_repo)
    [(path, line, _col, sha)] = hits(result)
    assert (path, line) == ("a.txt", 2)
    assert sha == git_repo.git("rev-parse", "stash@{1}")


def test_same_key_in_two_paths_gives_two_findings(
    run_cli: RunCli, git_repo: GitRepo, key: str
) -> None:
    c1 = git_repo.commit("one", {"a/config.yaml": f"key: {key}\n"})
    c2 = git_repo.commit("copy", {"b/other.yaml": f"# copy\nkey: {key}\n"})
    assert hits(scan(run_cli, git_repo)) == [
        ("a/config.yaml", 1, 6, c1),
        ("b/other.yaml", 2, 6, c2),
    ]


def test_rename_does_not_create_a_second_introducing_commit(
    run_cli: RunCli, git_repo: GitRepo, key: str
) -> None:
    c1 = git_repo.commit("add", {"old.py": f"K = '{key}'\n"})
    git_repo.git("mv", "old.py", "new.py")
    git_repo.commit("rename")
    git_repo.commit("rename and edit", {"new.py": f"# moved\nK = '{key}'\n"})
    git_repo.git("mv", "new.py", "final.py")
    git_repo.write("final.py", f"# moved again\n\nK = '{key}'\n")
    git_repo.commit("rename with an edit")
    assert hits(scan(run_cli, git_repo)) == [("old.py", 1, 6, c1)]


def test_merge_commit_is_not_blamed(run_cli: RunCli, git_repo: GitRepo, key: str) -> None:
    git_repo.commit("base", {"a.txt": "a\n"})
    git_repo.git("checkout", "-q", "-b", "feature")
    c2 = git_repo.commit("feature adds key", {"f.txt": f"{key}\n"})
    git_repo.git("checkout", "-q", "main")
    git_repo.commit("main moves on", {"m.txt": "m\n"})
    git_repo.git("merge", "-q", "--no-ff", "-m", "merge feature", "feature")
    merge = git_repo.git("rev-parse", "HEAD")
    assert hits(scan(run_cli, git_repo)) == [("f.txt", 1, 1, c2)]
    assert merge != c2


def test_evil_merge_that_adds_a_key_is_blamed(run_cli: RunCli, git_repo: GitRepo, key: str) -> None:
    git_repo.commit("base", {"a.txt": "a\n"})
    git_repo.git("checkout", "-q", "-b", "feature")
    git_repo.commit("feature", {"f.txt": "f\n"})
    git_repo.git("checkout", "-q", "main")
    git_repo.commit("main", {"m.txt": "m\n"})
    git_repo.git("merge", "-q", "--no-ff", "--no-commit", "feature")
    git_repo.write("f.txt", f"f\n{key}\n")
    merge = git_repo.commit("merge with an extra line")
    assert hits(scan(run_cli, git_repo)) == [("f.txt", 2, 1, merge)]


def test_key_straddling_a_window_in_a_big_blob(
    run_cli: RunCli, git_repo: GitRepo, key: str
) -> None:
    filler = ("x" * 99 + "\n") * 60_000  # 6 MB: read from cat-file in windows
    c1 = git_repo.commit("big", {"big.txt": filler + f"at the end {key}\n"})
    assert hits(scan(run_cli, git_repo)) == [("big.txt", 60_001, 12, c1)]


def test_exclude_config_inline_allow_and_baseline(
    run_cli: RunCli, git_repo: GitRepo, keys: Callable[[int], list[str]], tmp_path: Path
) -> None:
    k1, k2, k3, k4 = keys(4)
    c1 = git_repo.commit(
        "keys",
        {
            "src/app.py": f"A = '{k1}'\nB = '{k2}'  # kascan:allow\n",
            "vendor/lib.py": f"V = '{k3}'\n",
            "fixtures/x.txt": f"{k4}\n",
            ".kascan.toml": 'exclude = ["vendor/"]\n',
        },
    )
    result = scan(run_cli, git_repo, "--exclude", "fixtures/*")
    assert hits(result) == [("src/app.py", 1, 6, c1)]
    summary = result.json()["summary"]
    assert isinstance(summary, dict)
    assert summary["dropped"] == {"excluded": 2, "inline-allow": 1}
    baseline = tmp_path / "baseline.json"
    baseline.write_text(result.stdout)
    again = scan(run_cli, git_repo, "--exclude", "fixtures/*", "--baseline", str(baseline))
    assert again.returncode == 0
    result.assert_no_leak(k1, k2, k3, k4)


def test_placeholder_dropped_random_key_kept(run_cli: RunCli, git_repo: GitRepo, key: str) -> None:
    placeholder = "ka_" + "live_" + "x" * 32
    c1 = git_repo.commit("doc", {"README.md": f"use {placeholder}\nreal {key}\n"})
    assert hits(scan(run_cli, git_repo)) == [("README.md", 2, 6, c1)]


# --- staged --------------------------------------------------------------------------------------


def test_staged_key_found_in_the_index_not_the_work_tree(
    run_cli: RunCli, git_repo: GitRepo, keys: Callable[[int], list[str]]
) -> None:
    old, new, unstaged = keys(3)
    git_repo.commit("base", {"conf.py": f"A = 1\nOLD = '{old}'\nB = 2\n"})
    git_repo.write("conf.py", f"A = 1\nOLD = '{old}'\nB = 2\nC = 3\nNEW = '{new}'\n")
    git_repo.git("add", "conf.py")
    # the work tree is cleaned after staging and gets an unstaged key: neither is what is staged
    git_repo.write("conf.py", f"A = 1\nB = 2\nU = '{unstaged}'\n")
    result = scan(run_cli, git_repo, "--staged")
    assert result.returncode == 1
    assert [(f["path"], f["line"], f["column"], f["commit"]) for f in findings_of(result)] == [
        ("conf.py", 5, 8, None)
    ]
    result.assert_no_leak(old, new, unstaged)
    text = run_cli("git", "--staged", cwd=git_repo.path)
    assert "conf.py:5:8" in text.stdout
    assert "Settings → API Keys" in text.stdout
    assert "scanned the staged change: 2 added line(s) in 1 file(s)" in text.stdout
    text.assert_no_leak(old, new, unstaged)


def test_staged_nothing_new_passes(run_cli: RunCli, git_repo: GitRepo, key: str) -> None:
    git_repo.commit("base", {"conf.py": f"K = '{key}'\n"})
    git_repo.write("conf.py", f"K = '{key}'\nX = 1\n")
    git_repo.git("add", "conf.py")
    result = scan(run_cli, git_repo, "--staged")
    assert result.returncode == 0
    assert findings_of(result) == []
    summary = result.json()["summary"]
    assert isinstance(summary, dict)
    assert summary["lines"] == 1


def test_staged_before_the_first_commit(run_cli: RunCli, git_repo: GitRepo, key: str) -> None:
    git_repo.write("first.txt", f"one\ntwo\nthree {key}\n")
    git_repo.write("other name.txt", "clean\n")
    git_repo.git("add", "-A")
    result = scan(run_cli, git_repo, "--staged")
    assert result.returncode == 1
    assert hits(result) == [("first.txt", 3, 7, None)]


def test_staged_rename_of_a_committed_key_is_not_new(
    run_cli: RunCli, git_repo: GitRepo, key: str
) -> None:
    git_repo.commit("base", {"a.py": f"K = '{key}'\n" + "x = 1\n" * 20})
    git_repo.git("mv", "a.py", "b.py")
    assert scan(run_cli, git_repo, "--staged").returncode == 0
    assert scan(run_cli, git_repo, "--staged", "b.py").returncode == 0


def test_staged_with_file_names_as_pre_commit_passes_them(
    run_cli: RunCli, git_repo: GitRepo, keys: Callable[[int], list[str]]
) -> None:
    committed, staged = keys(2)
    git_repo.commit("base", {"old.py": f"K = '{committed}'\n", "b.py": "b\n"})
    git_repo.write("b.py", f"b\nS = '{staged}'\n")
    git_repo.git("add", "b.py")
    # the staged files: only what they add
    only_staged = scan(run_cli, git_repo, "--staged", "b.py")
    assert hits(only_staged) == [("b.py", 2, 6, None)]
    # a file that is not staged (``pre-commit run --files``/``--all-files``): read whole
    both = scan(run_cli, git_repo, "--staged", "old.py", "b.py")
    assert hits(both) == [("b.py", 2, 6, None), ("old.py", 1, 6, None)]
    text = run_cli("git", "--staged", "old.py", cwd=git_repo.path)
    assert text.returncode == 1
    assert "old.py:1:6" in text.stdout
    assert "not all of them staged: scanned the whole staged content of 1" in text.stdout
    text.assert_no_leak(committed, staged)


def test_staged_honours_the_hooks_index_file(
    run_cli: RunCli, git_repo: GitRepo, key: str, tmp_path: Path
) -> None:
    """``git commit -a`` runs the hook with GIT_INDEX_FILE naming a temporary index."""
    git_repo.commit("base", {"a.txt": "a\n"})
    git_repo.write("a.txt", f"a\n{key}\n")
    alt = tmp_path / "alt-index"
    env = dict(git_repo.env, GIT_INDEX_FILE=str(alt))
    subprocess.run(["git", "read-tree", "HEAD"], cwd=git_repo.path, env=env, check=True)
    subprocess.run(["git", "add", "a.txt"], cwd=git_repo.path, env=env, check=True)
    assert scan(run_cli, git_repo, "--staged").returncode == 0  # the default index: nothing
    result = run_cli(
        "git",
        "--staged",
        "-f",
        "json",
        cwd=git_repo.path,
        extra_env={"GIT_INDEX_FILE": str(alt), "GIT_DIR": str(git_repo.path / ".git")},
    )
    assert hits(result) == [("a.txt", 2, 1, None)]


# --- ranges --------------------------------------------------------------------------------------


def test_range_scans_only_the_lines_its_commits_add(
    run_cli: RunCli, git_repo: GitRepo, keys: Callable[[int], list[str]]
) -> None:
    k0, k1, k2 = keys(3)
    c1 = git_repo.commit("base", {"a.txt": f"{k0}\n"})
    c2 = git_repo.commit("adds k1", {"a.txt": f"{k0}\n{k1}\n"})
    c3 = git_repo.commit("adds k2, removes k1", {"a.txt": f"{k0}\n\nmore {k2}\n"})
    assert hits(scan(run_cli, git_repo, "--range", f"{c1}..{c3}")) == [
        ("a.txt", 2, 1, c2),
        ("a.txt", 3, 6, c3),
    ]
    assert hits(scan(run_cli, git_repo, "--range", "HEAD~1..HEAD")) == [("a.txt", 3, 6, c3)]
    empty = scan(run_cli, git_repo, "--range", f"{c3}..{c3}")
    assert empty.returncode == 0
    assert findings_of(empty) == []
    text = run_cli("git", "--range", "main..main", cwd=git_repo.path)
    assert text.returncode == 0
    assert "has no commits" in text.stdout


def test_range_reports_a_key_once_per_path(run_cli: RunCli, git_repo: GitRepo, key: str) -> None:
    c1 = git_repo.commit("base", {"a.txt": "a\n"})
    c2 = git_repo.commit("add", {"a.txt": f"a\nk = {key}\n"})
    git_repo.commit("touch the line", {"a.txt": f"a\nk = {key}  # note\n"})
    assert hits(scan(run_cli, git_repo, "--range", f"{c1}..HEAD")) == [("a.txt", 2, 5, c2)]


# --- sources: URLs, several repositories ---------------------------------------------------------


def test_clone_via_file_url_and_clean_up(
    run_cli: RunCli, git_repo: GitRepo, key: str, tmp_path: Path
) -> None:
    c1 = git_repo.commit("add", {"s.txt": f"{key}\n"})
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    result = run_cli(
        "git", f"file://{git_repo.path}", "-f", "json", extra_env={"TMPDIR": str(tmpdir)}
    )
    assert result.returncode == 1
    assert hits(result) == [("s.txt", 1, 1, c1)]
    assert list(tmpdir.iterdir()) == []  # the temporary clone is gone
    result.assert_no_leak(key)


def test_shallow_clone_scans_what_is_there_and_says_so(
    run_cli: RunCli, git_repo: GitRepo, keys: Callable[[int], list[str]], tmp_path: Path
) -> None:
    old, new = keys(2)
    git_repo.commit("old", {"a.txt": f"{old}\n"})
    git_repo.commit("drop", {"a.txt": "clean\n"})
    c3 = git_repo.commit("new", {"b.txt": f"{new}\n"})
    shallow = tmp_path / "shallow"
    subprocess.run(
        ["git", "clone", "-q", "--depth", "1", f"file://{git_repo.path}", str(shallow)],
        env=git_repo.env,
        check=True,
    )
    result = run_cli("git", str(shallow))
    assert result.returncode == 1
    assert f"b.txt:1:1  kubeadapt-api-key  {new[:12]}…  commit {c3[:12]}" in result.stdout
    assert "a.txt" not in result.stdout
    assert result.stdout.count("shallow clone") == 1


def test_two_repos_in_one_call(
    run_cli: RunCli,
    make_repo: Callable[[Path], GitRepo],
    keys: Callable[[int], list[str]],
    tmp_path: Path,
) -> None:
    k1, k2 = keys(2)
    r1, r2 = make_repo(tmp_path / "one"), make_repo(tmp_path / "two")
    c1 = r1.commit("a", {"x.txt": f"{k1}\n"})
    c2 = r2.commit("b", {"y/z.txt": f"pad {k2}\n"})
    result = run_cli("git", "one", "two", "-f", "json", cwd=tmp_path)
    assert result.returncode == 1
    got = sorted((f["repo"], f["path"], f["line"], f["commit"]) for f in findings_of(result))
    assert got == [("one", "x.txt", 1, c1), ("two", "y/z.txt", 1, c2)]
    text = run_cli("git", "one", "two", cwd=tmp_path)
    assert "one:x.txt:1:1" in text.stdout
    assert "two:y/z.txt:1:5" in text.stdout
    assert "scanned 2 commits, 2 blobs" in text.stdout
    text.assert_no_leak(k1, k2)


def test_submodule_and_lfs_pointer_are_noted_once(
    run_cli: RunCli, make_repo: Callable[[Path], GitRepo], tmp_path: Path, key: str
) -> None:
    sub = make_repo(tmp_path / "sub")
    sub.commit("sub", {"s.txt": "s\n"})
    top = make_repo(tmp_path / "top")
    pointer = "version https://git-lfs.github.com/spec/v1\noid sha256:" + "a" * 64 + "\nsize 9\n"
    top.commit("lfs", {"big.bin": pointer})
    top.git("-c", "protocol.file.allow=always", "submodule", "add", "-q", str(sub.path), "sub")
    c = top.commit("sub", {"k.txt": f"{key}\n"})
    result = run_cli("git", str(top.path))
    assert result.returncode == 1
    assert f"k.txt:1:1  kubeadapt-api-key  {key[:12]}…  commit {c[:12]}" in result.stdout
    # issue 18: an initialised submodule's history is scanned too (--no-submodules: noted)
    assert result.stdout.count("scanned the history of 1 submodule(s) too (sub)") == 1
    assert result.stdout.count("Git LFS pointer") == 1
    off = run_cli("git", str(top.path), "--no-submodules")
    assert off.stdout.count("has submodules") == 1


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["git", "plain-dir"], "not a git repository: plain-dir"),
        (["git", "missing-dir"], "not a git repository: missing-dir"),
        (["git", "repo", "--range", "nope..HEAD"], "unknown revision 'nope'"),
        (["git", "repo", "--range", "HEAD"], "--range takes A..B"),
        (["git", "file:///nonexistent/repo.git"], "cannot clone file:///nonexistent/repo.git"),
        (
            ["git", "https://user:hunter2@127.0.0.1:1/x.git"],
            "cannot clone https://***@127.0.0.1:1/x.git",
        ),
    ],
)
def test_errors_exit_2_with_one_line(
    run_cli: RunCli, git_repo: GitRepo, args: list[str], message: str
) -> None:
    git_repo.commit("a", {"a.txt": "a\n"})
    (git_repo.path.parent / "plain-dir").mkdir()
    result = run_cli(*args, cwd=git_repo.path.parent)
    assert result.returncode == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "hunter2" not in result.output


def test_empty_repo_is_a_clean_pass(run_cli: RunCli, git_repo: GitRepo) -> None:
    result = run_cli("git", cwd=git_repo.path)
    assert result.returncode == 0
    assert "empty repository (no commits)" in result.stdout


# --- a hostile repository ------------------------------------------------------------------------


def test_hostile_repository_settings_never_run(
    run_cli: RunCli, git_repo: GitRepo, keys: Callable[[int], list[str]], tmp_path: Path
) -> None:
    k1, k2 = keys(2)
    marker = tmp_path / "pwned"
    script = tmp_path / "evil.sh"
    script.write_text(f'#!/bin/sh\necho "$0 $*" >> {marker}\ncat\n')
    script.chmod(0o755)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    for name in ("pre-commit", "post-checkout", "reference-transaction", "pre-auto-gc"):
        (hooks / name).write_text(f"#!/bin/sh\necho hook {name} >> {marker}\n")
        (hooks / name).chmod(0o755)
    c0 = git_repo.commit("attributes", {".gitattributes": "*.txt diff=evil\n"})
    c1 = git_repo.commit("a", {"a.txt": f"{k1}\n"})
    git_repo.write("b.txt", f"x\n{k2}\n")
    git_repo.git("add", "b.txt")  # staged before the repository turns hostile
    for setting, value in [
        ("core.hooksPath", str(hooks)),
        ("core.fsmonitor", str(script)),
        ("diff.external", str(script)),
        ("diff.evil.textconv", str(script)),
        ("diff.evil.command", str(script)),
        ("log.showSignature", "true"),
        ("gpg.program", str(script)),
        ("core.pager", str(script)),
        ("pager.log", str(script)),
        ("diff.noprefix", "true"),
    ]:
        git_repo.git("config", setting, value)
    history = scan(run_cli, git_repo)
    assert hits(history) == [("a.txt", 1, 1, c1)]
    staged = scan(run_cli, git_repo, "--staged")
    assert hits(staged) == [("b.txt", 2, 1, None)]
    ranged = scan(run_cli, git_repo, "--range", f"{c0}..HEAD")
    assert hits(ranged) == [("a.txt", 1, 1, c1)]
    url = run_cli("git", f"file://{git_repo.path}", "-f", "json")
    assert hits(url) == [("a.txt", 1, 1, c1)]
    assert not marker.exists(), marker.read_text()


# --- progress ------------------------------------------------------------------------------------


def test_progress_only_on_a_terminal(
    run_cli: RunCli, git_repo: GitRepo, env: dict[str, str]
) -> None:
    git_repo.commit("a", {f"f{i}.txt": f"{i}\n" for i in range(30)})
    plain = run_cli("git", cwd=git_repo.path)
    assert "objects" not in plain.stderr
    master, slave = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "kascan", "git"],
            cwd=git_repo.path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=slave,
            check=False,
            timeout=60,
        )
        os.close(slave)
        slave = -1
        tty = b""
        while True:
            try:
                block = os.read(master, 4096)
            except OSError:
                break
            if not block:
                break
            tty += block
    finally:
        if slave != -1:
            os.close(slave)
        os.close(master)
    assert proc.returncode == 0
    assert b"31/31 objects (100%)" in tty  # 30 blobs and a commit (its message is read too)
    quiet = run_cli("git", "--quiet", cwd=git_repo.path)
    assert quiet.stderr == ""


# --- pack order: blobs read without a walk, reachability decided for the few with a key ---------


def test_dangling_blob_with_a_key_is_skipped_and_counted(
    run_cli: RunCli, git_repo: GitRepo, keys: Callable[[int], list[str]]
) -> None:
    committed, dropped = keys(2)
    c1 = git_repo.commit("a", {"a.txt": f"{committed}\n"})
    git_repo.write("b.txt", f"x = '{dropped}'\n")
    git_repo.git("add", "b.txt")  # the blob is written to the object database...
    git_repo.git("rm", "-q", "--cached", "b.txt")  # ...and nothing refers to it any more
    result = scan(run_cli, git_repo)
    assert hits(result) == [("a.txt", 1, 1, c1)]
    summary = result.json()["summary"]
    assert isinstance(summary, dict)
    assert summary["skipped"] == {"unreachable-blob": 1}
    text = run_cli("git", cwd=git_repo.path)
    assert "1 blob(s) with a key that no ref, tag or stash entry reaches" in text.stdout
    text.assert_no_leak(committed, dropped)


def test_key_in_a_tag_of_a_blob_is_reported_without_a_commit(
    run_cli: RunCli, git_repo: GitRepo, keys: Callable[[int], list[str]]
) -> None:
    in_blob, in_tree = keys(2)
    git_repo.commit("a", {"a.txt": "a\n"})
    blob = git_repo.git("hash-object", "-w", "--stdin", input=f"K={in_blob}\n").strip()
    git_repo.git("tag", "a-blob", blob)
    git_repo.write("t/inner.txt", f"  {in_tree}\n")
    git_repo.git("add", "t/inner.txt")
    tree = git_repo.git("write-tree", "--prefix=t/").strip()
    git_repo.git("rm", "-q", "--cached", "t/inner.txt")
    git_repo.git("tag", "-a", "-m", "a tree", "a-tree", tree)
    result = scan(run_cli, git_repo)
    assert hits(result) == [("inner.txt", 1, 3, None), ("refs/tags/a-blob", 1, 3, None)]
    assert "2 key(s) found in objects no commit introduces" in result.stdout + result.stderr


def test_history_with_custom_rules_regex_and_path(
    run_cli: RunCli, git_repo: GitRepo, tmp_path: Path, key: str, rng: random.Random
) -> None:
    token, other = ("tok_" + "".join(rng.choices("0123456789", k=20)) for _ in range(2))
    c1 = git_repo.commit("a", {"a.txt": f"{token}\n{key}\n", "b.cfg": f"{other}\n"})
    git_repo.write("c.txt", f"{other}\n")
    git_repo.git("add", "c.txt")
    git_repo.git("rm", "-q", "--cached", "c.txt")  # dangling: never reported
    rules = tmp_path / "rules.toml"
    # a regex rule (not the built-in fast path): every blob goes to the matcher, in pack order
    rules.write_text("[[rules]]\nid = \"tok\"\nregex = 'tok_[0-9]{20}'\n")
    got = scan(run_cli, git_repo, "--rules", str(rules))
    assert sorted((f["rule_id"], f["path"], f["commit"]) for f in findings_of(got)) == [
        ("kubeadapt-api-key", "a.txt", c1),
        ("tok", "a.txt", c1),
        ("tok", "b.cfg", c1),
    ]
    # a rule limited to paths: blobs are listed with their paths by a walk first
    rules.write_text("[[rules]]\nid = \"tok\"\nregex = 'tok_[0-9]{20}'\npath = '\\.cfg$'\n")
    got = scan(run_cli, git_repo, "--rules", str(rules))
    assert sorted((f["rule_id"], f["path"], f["commit"]) for f in findings_of(got)) == [
        ("kubeadapt-api-key", "a.txt", c1),
        ("tok", "b.cfg", c1),
    ]


def test_big_and_small_blobs_in_one_stream(
    run_cli: RunCli, git_repo: GitRepo, keys: Callable[[int], list[str]]
) -> None:
    k = keys(6)
    line = "y" * 63 + "\n"
    files = {f"s{i}.txt": f"{i}\n" * (i * 3000) + f"K={k[0] if i == 7 else i}\n" for i in range(20)}
    # windows of 1 MiB: keys at the start, across the first window edge, and at the very end
    edge = (1 << 20) - 10
    big = f"{k[1]}\n" + line * (edge // 64) + "z" * (edge % 64 - len(k[1]) - 1) + f" {k[2]}\n"
    big += line * 40_000 + k[3]  # no newline at the end
    files["big.txt"] = big
    files["after.txt"] = f"then {k[4]}\n"
    files["empty.txt"] = ""
    c1 = git_repo.commit("many", files)
    git_repo.write("dangling.txt", line * 30_000 + k[5])  # a big blob nothing reaches
    git_repo.git("add", "dangling.txt")
    git_repo.git("rm", "-q", "--cached", "dangling.txt")
    found = hits(scan(run_cli, git_repo))
    big_lines = big.count("\n")
    assert found == [
        ("after.txt", 1, 6, c1),
        ("big.txt", 1, 1, c1),
        ("big.txt", 2 + edge // 64, edge % 64 - len(k[1]) + 1, c1),
        ("big.txt", big_lines + 1, 1, c1),
        ("s7.txt", 21_001, 3, c1),
    ]


def test_many_blobs_with_keys_are_attributed_from_the_whole_walk(
    run_cli: RunCli, git_repo: GitRepo, keys: Callable[[int], list[str]]
) -> None:
    ks = keys(70)  # more blobs with a key than are looked up one by one in the early walk
    git_repo.commit("base", {"README.md": "hi\n"})
    c2 = git_repo.commit("many", {f"k/{i:02d}.txt": f"{i}\n{k}\n" for i, k in enumerate(ks)})
    c3 = git_repo.commit("moved", {"moved.txt": f"{ks[0]}\n"})
    git_repo.rm("k/00.txt")
    c4 = git_repo.commit("rm")
    found = hits(scan(run_cli, git_repo))
    assert found == [(f"k/{i:02d}.txt", 2, 1, c2) for i in range(70)] + [("moved.txt", 1, 1, c3)]
    assert c4 not in {sha for *_, sha in found}
