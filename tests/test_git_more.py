"""Git beyond the files (issue 18): commit and tag messages, identities, reflogs, stashes, notes,
submodules and every ref of a clone URL, on real repositories through the real CLI."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.conftest import GitRepo, Result, findings_of
from tests.sarif_util import assert_valid_sarif, results
from tests.test_verify import Api, make_api  # noqa: F401  (the loopback API fixture)

Run = Callable[..., Result]

Row = tuple[str, int, int, str | None]


def rows(result: Result) -> list[Row]:
    """(path, line, column, commit) of each finding in a JSON report, sorted."""
    return sorted(
        (str(f["path"]), int(str(f["line"])), int(str(f["column"])), f["commit"])  # type: ignore[misc]
        for f in findings_of(result)
    )


def only_location(res: dict[str, object]) -> dict[str, object]:
    locs = res["locations"]
    assert isinstance(locs, list) and len(locs) == 1
    loc = locs[0]
    assert isinstance(loc, dict)
    return loc


def scan(run_cli: Run, repo: GitRepo | Path, *args: str) -> Result:
    path = repo.path if isinstance(repo, GitRepo) else repo
    return run_cli("git", str(path), "-f", "json", *args)


def short(sha: str) -> str:
    return sha[:12]


# --- 1. commit and tag objects: messages and identities ---------------------------------------


def test_key_in_a_commit_message(run_cli: Run, git_repo: GitRepo, key: str) -> None:
    git_repo.commit("base", {"a.txt": "a\n"})
    msg = f"rotate the key\n\nthe old one was\n  {key} (revoked)\n"
    c2 = git_repo.commit(msg, {"b.txt": "b\n"})
    git_repo.commit("later", {"c.txt": "c\n"})
    result = scan(run_cli, git_repo)
    assert result.returncode == 1, result.output
    assert rows(result) == [(f"commit {short(c2)} message", 4, 3, c2)]
    (f,) = findings_of(result)
    assert (f["author"], f["email"]) == ("Test Author", "author@example.com")
    assert f["date"] == "2024-01-02T12:00:00+00:00"
    text = run_cli("git", str(git_repo.path))
    assert f"commit {short(c2)} message:4:3  kubeadapt-api-key  {key[:12]}…" in text.stdout
    result.assert_no_leak(key)
    text.assert_no_leak(key)


def test_a_message_is_read_once_however_many_refs_reach_it(
    run_cli: Run, git_repo: GitRepo, key: str
) -> None:
    c1 = git_repo.commit(f"add the key {key}", {"a.txt": "a\n"})
    for name in ("one", "two", "three"):
        git_repo.git("branch", name)
    git_repo.git("tag", "light")
    git_repo.commit("more", {"b.txt": "b\n"})
    assert rows(scan(run_cli, git_repo)) == [(f"commit {short(c1)} message", 1, 13, c1)]


def test_key_in_an_annotated_tag_message(run_cli: Run, git_repo: GitRepo, key: str) -> None:
    c1 = git_repo.commit("base", {"a.txt": "a\n"})
    git_repo.git("tag", "-a", "v1.2", "-m", f"release 1.2\n\ndeploy with {key}\n")
    git_repo.git("tag", "-a", "v1.3", "-m", "nothing here")
    result = scan(run_cli, git_repo)
    assert rows(result) == [("tag v1.2 message", 3, 13, c1)]
    (f,) = findings_of(result)
    assert f["author"] == "Test Committer"  # the tagger
    result.assert_no_leak(key)


def test_key_in_author_and_committer_identities(
    run_cli: Run, git_repo: GitRepo, keys: Callable[[int], list[str]]
) -> None:
    a, b = keys(2)
    git_repo.commit("base", {"x.txt": "x\n"})
    git_repo.env.update(GIT_AUTHOR_EMAIL=f"{a}@example.com", GIT_COMMITTER_NAME=f"bot {b}")
    c2 = git_repo.commit("ordinary", {"y.txt": "y\n"})
    result = scan(run_cli, git_repo)
    assert rows(result) == [
        (f"commit {short(c2)} author", 1, len("Test Author <") + 1, c2),
        (f"commit {short(c2)} committer", 1, len("bot ") + 1, c2),
    ]
    # the identity that holds a key is reported redacted, never whole
    (f, _) = findings_of(result)
    assert f["email"] == a[:12] + "…@example.com"
    result.assert_no_leak(a, b)
    sarif = run_cli("git", str(git_repo.path), "-f", "sarif")
    sarif.assert_no_leak(a, b)


def test_same_identity_as_author_and_committer_is_one_finding(
    run_cli: Run, git_repo: GitRepo, key: str
) -> None:
    git_repo.env.update(GIT_AUTHOR_NAME=f"x {key}", GIT_COMMITTER_NAME=f"x {key}")
    git_repo.env.update(GIT_COMMITTER_EMAIL="author@example.com")
    c1 = git_repo.commit("one", {"a.txt": "a\n"})
    assert rows(scan(run_cli, git_repo)) == [(f"commit {short(c1)} author", 1, 3, c1)]


def test_no_messages_scans_files_only(run_cli: Run, git_repo: GitRepo, key: str) -> None:
    git_repo.commit(f"message {key}", {"a.txt": "a\n"})
    git_repo.git("tag", "-a", "v1", "-m", f"tag {key}")
    assert scan(run_cli, git_repo).returncode == 1
    off = scan(run_cli, git_repo, "--no-messages")
    assert off.returncode == 0 and rows(off) == []


def test_message_findings_are_suppressed_like_file_findings(
    run_cli: Run, git_repo: GitRepo, keys: Callable[[int], list[str]], tmp_path: Path
) -> None:
    a, b, c, d = keys(4)
    c1 = git_repo.commit(f"vendored fixture {a}", {"a.txt": "a\n"})
    git_repo.commit(f"test data\n\n{b}  # kascan:allow test fixture\n", {"b.txt": "b\n"})
    git_repo.commit(f"docs {c} FIXTURE-ONLY", {"c.txt": "c\n"})
    c4 = git_repo.commit(f"real {d}", {"d.txt": "d\n"})
    rules = tmp_path / "rules.toml"
    rules.write_text(
        f'[[allowlists]]\ncommits = ["{c1}"]\n\n'
        "[[allowlists]]\nregexTarget = 'line'\nregexes = ['''FIXTURE-ONLY''']\n"
    )
    result = scan(run_cli, git_repo, "--rules", str(rules))
    assert rows(result) == [(f"commit {short(c4)} message", 1, 6, c4)]
    summary = result.json()["summary"]
    assert isinstance(summary, dict)
    assert summary["dropped"] == {"allowlist": 2, "inline-allow": 1}
    # a baseline written by an earlier scan keeps the same key out of the next one
    base = tmp_path / "baseline.json"
    first = run_cli("git", str(git_repo.path), "-q", "-o", f"json:{base}")
    assert first.returncode == 1
    again = scan(run_cli, git_repo, "--baseline", str(base))
    assert again.returncode == 0 and rows(again) == []
    summary = again.json()["summary"]
    assert isinstance(summary, dict)
    assert summary["dropped"] == {"baseline": 3, "inline-allow": 1}  # b was never reported


def test_verify_and_exit_status_apply_to_messages(
    run_cli: Run,
    git_repo: GitRepo,
    keys: Callable[[int], list[str]],
    make_api: Callable[..., Api],  # noqa: F811
) -> None:
    live, old = keys(2)
    git_repo.commit(f"oops {live}", {"a.txt": "a\n"})
    git_repo.git("tag", "-a", "v1", "-m", f"old key {old}")
    api = make_api({live: "live", old: "inactive"})
    args = ("--verify", "--api-url", api.url)
    result = scan(run_cli, git_repo, *args)
    got = {(str(f["path"]).split()[0], f["verification"]["status"]) for f in findings_of(result)}  # type: ignore[index]
    assert got == {("commit", "live"), ("tag", "inactive")}
    assert result.returncode == 1
    assert api.seen_keys() == {live, old} and api.count(live) == 1
    git_repo.git("commit", "-q", "--amend", "-m", "fixed")
    git_repo.git("tag", "-f", "-a", "v1", "-m", f"old key {old}")  # on the amended commit
    git_repo.git("reflog", "expire", "--expire=now", "--all")
    git_repo.git("gc", "-q", "--prune=now")
    only_old = scan(run_cli, git_repo, *args, "--fail-on", "live")
    assert [f["verification"]["status"] for f in findings_of(only_old)] == ["inactive"]  # type: ignore[index]
    assert only_old.returncode == 0


def test_sarif_names_a_logical_location(
    run_cli: Run, git_repo: GitRepo, keys: Callable[[int], list[str]]
) -> None:
    key, other = keys(2)
    git_repo.commit("base", {"a.txt": f"k={key}\n"})
    c2 = git_repo.commit(f"also here: {key} and {other}", {"b.txt": "b\n"})
    result = run_cli("git", str(git_repo.path), "-f", "sarif")
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    assert_valid_sarif(doc)
    by_kind: dict[str, dict[str, object]] = {}
    for res in results(doc):  # one result per key
        loc = only_location(res)
        by_kind["logical" if "logicalLocations" in loc else "file"] = res
    # a key only in a commit message: its location is the message (no file to point at)
    logical = by_kind["logical"]
    props = logical["properties"]
    assert isinstance(props, dict)
    assert (props["gitObjectLine"], props["gitObjectColumn"]) == (
        1,
        len(f"also here: {key} and ") + 1,
    )
    assert props["commit"] == c2 and props["locations"] == 1
    assert only_location(logical)["logicalLocations"] == [
        {"name": "message", "fullyQualifiedName": f"commit {short(c2)} message", "kind": "object"}
    ]
    # a key in a file and in a message: the file is the location, the message is named (a related
    # location needs a file)
    file = by_kind["file"]
    assert "physicalLocation" in only_location(file) and "relatedLocations" not in file
    props = file["properties"]
    assert isinstance(props, dict)
    assert props["locations"] == 2
    assert props["gitObjectLocations"] == [f"commit {short(c2)} message, line 1, column 12"]
    text = file["message"]["text"]  # type: ignore[index]
    assert f"2 places: here and commit {short(c2)} message, line 1." in text
    result.assert_no_leak(key, other)
    gh = run_cli("git", str(git_repo.path), "-f", "github")
    lines = gh.stdout.splitlines()
    assert len(lines) == 3  # annotations stay one per location
    line = next(x for x in lines if "commit%20" in x or "message" in x)
    assert line.startswith("::error title=") and "file=" not in line, line


def test_a_file_named_like_a_message_stays_a_file(
    run_cli: Run, git_repo: GitRepo, key: str
) -> None:
    """A path cannot pass for its own commit's message: its commit's id depends on it."""
    git_repo.commit("base", {"a.txt": "a\n"})
    c2 = git_repo.commit("plant", {"commit 0123456789ab message": f"{key}\n"})
    result = run_cli("git", str(git_repo.path), "-f", "sarif")
    (res,) = results(json.loads(result.stdout))
    loc = only_location(res)
    props = res["properties"]
    assert "physicalLocation" in loc and isinstance(props, dict) and props["commit"] == c2


def test_hostile_tag_name_is_escaped(run_cli: Run, git_repo: GitRepo, key: str) -> None:
    c1 = git_repo.commit("base", {"a.txt": "a\n"})
    evil = "v1\x1b]0;pwned\x07\x1b[2J"
    obj = (
        f"object {c1}\ntype commit\ntag {evil}\n"
        "tagger Eve <eve@example.com> 1704067200 +0000\n\n"
        f"notes: {key}\n"
    )
    oid = git_repo.git("hash-object", "-t", "tag", "-w", "--literally", "--stdin", input=obj)
    git_repo.git("update-ref", "refs/tags/evil", oid)
    text = run_cli("git", str(git_repo.path))
    assert text.returncode == 1
    assert "\x1b" not in text.stdout and "\x07" not in text.stdout
    assert "tag v1\\x1b]0;pwned\\x07\\x1b[2J message:1:8" in text.stdout
    text.assert_no_leak(key)


def test_dangling_commit_message_is_skipped_and_counted(
    run_cli: Run, git_repo: GitRepo, key: str
) -> None:
    git_repo.commit("base", {"a.txt": "a\n"})
    git_repo.commit(f"oops {key}", {"b.txt": "b\n"})
    git_repo.git("reset", "-q", "--hard", "HEAD~1")
    git_repo.git("reflog", "expire", "--expire=now", "--all")  # not collected: dangling
    obj = git_repo.path / ".git" / "objects"
    assert any(obj.iterdir())
    result = scan(run_cli, git_repo)
    assert result.returncode == 0 and rows(result) == []
    assert "1 commit or tag object(s) with a key in a message" in result.stderr
    summary = result.json()["summary"]
    assert isinstance(summary, dict) and summary["skipped"]["unreachable-object"] == 1


def test_commit_messages_with_path_rules_are_scanned_too(
    run_cli: Run, git_repo: GitRepo, key: str, tmp_path: Path
) -> None:
    """Rules that look at paths read the blobs by a walk: the objects are read all the same."""
    c1 = git_repo.commit(f"msg {key}", {"a.txt": "a\n"})
    rules = tmp_path / "rules.toml"
    rules.write_text("[[allowlists]]\npaths = ['''^vendor/''']\n")
    assert rows(scan(run_cli, git_repo, "--rules", str(rules))) == [
        (f"commit {short(c1)} message", 1, 5, c1)
    ]


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout.strip()


# --- 2. ranges, pushes and the message being written ----------------------------------------


def test_range_scans_its_commit_messages_and_new_tags(
    run_cli: Run, git_repo: GitRepo, keys: Callable[[int], list[str]]
) -> None:
    old, a, b, c = keys(4)
    base = git_repo.commit(f"before the range {old}", {"a.txt": "a\n"})
    git_repo.git("tag", "-a", "v0", "-m", f"old tag {old}")  # names a commit before the range
    c2 = git_repo.commit(f"one\n\n{a}\n", {"b.txt": "b\n"})
    git_repo.env["GIT_AUTHOR_EMAIL"] = f"{b}@example.com"
    c3 = git_repo.commit("two", {"c.txt": f"k = {c}\n"})
    git_repo.git("tag", "-a", "v1", "-m", f"release\n{a}")
    result = scan(run_cli, git_repo, "--range", f"{base}..{c3}")
    assert result.returncode == 1, result.output
    assert rows(result) == [
        ("c.txt", 1, 5, c3),
        (f"commit {short(c2)} message", 3, 1, c2),
        (f"commit {short(c3)} author", 1, len("Test Author <") + 1, c3),
        ("tag v1 message", 2, 1, c3),
    ]
    assert "their messages and 1 annotated tag(s)" in result.stderr
    result.assert_no_leak(old, a, b, c)
    off = scan(run_cli, git_repo, "--range", f"{base}..{c3}", "--no-messages")
    assert rows(off) == [("c.txt", 1, 5, c3)]


def test_range_message_allowlisted_by_its_commit(
    run_cli: Run, git_repo: GitRepo, key: str, tmp_path: Path
) -> None:
    base = git_repo.commit("base", {"a.txt": "a\n"})
    c2 = git_repo.commit(f"fixture {key}", {"b.txt": "b\n"})
    rules = tmp_path / "rules.toml"
    rules.write_text(f'[[allowlists]]\ncommits = ["{c2}"]\n')
    result = scan(run_cli, git_repo, "--range", f"{base}..{c2}", "--rules", str(rules))
    assert result.returncode == 0 and rows(result) == []
    summary = result.json()["summary"]
    assert isinstance(summary, dict) and summary["dropped"] == {"allowlist": 1}


def test_pre_push_scans_messages_and_a_pushed_tag(
    run_cli: Run, git_repo: GitRepo, keys: Callable[[int], list[str]]
) -> None:
    a, b = keys(2)
    base = git_repo.commit("base", {"a.txt": "a\n"})
    c2 = git_repo.commit(f"msg {a}", {"b.txt": "b\n"})
    refs = {"PRE_COMMIT_FROM_REF": base, "PRE_COMMIT_TO_REF": c2}
    pushed = run_cli("git", "--pre-push", "-f", "json", cwd=git_repo.path, extra_env=refs)
    assert pushed.returncode == 1
    assert rows(pushed) == [(f"commit {short(c2)} message", 1, 5, c2)]
    # a new tag of a commit pushed before: its message is what the push adds
    git_repo.git("tag", "-a", "v2", "-m", f"tag {b}", base)
    tag = git_repo.git("rev-parse", "v2")
    refs = {
        "PRE_COMMIT_FROM_REF": "0" * 40,
        "PRE_COMMIT_TO_REF": tag,
        "PRE_COMMIT_LOCAL_BRANCH": "refs/tags/v2",
        "PRE_COMMIT_REMOTE_BRANCH": "refs/tags/v2",
    }
    git_repo.git("update-ref", "refs/remotes/origin/main", c2)  # what the remote has
    tagged = run_cli("git", "--pre-push", "-f", "json", cwd=git_repo.path, extra_env=refs)
    assert tagged.returncode == 1, tagged.output
    assert rows(tagged) == [("tag v2 message", 1, 5, base)]
    tagged.assert_no_leak(a, b)


def test_commit_msg_mode(run_cli: Run, git_repo: GitRepo, key: str, tmp_path: Path) -> None:
    msg = tmp_path / "COMMIT_EDITMSG"
    msg.write_text(f"subject\n\nbody {key}\n# Please enter the commit message\n")
    result = run_cli("git", "--commit-msg", "--", str(msg), cwd=git_repo.path)
    assert result.returncode == 1
    assert f"commit message:3:6  kubeadapt-api-key  {key[:12]}…" in result.stdout
    assert "commit blocked: the commit message above" in result.output
    result.assert_no_leak(key)
    msg.write_text("subject\n")
    assert run_cli("git", "--commit-msg", "--", str(msg), cwd=git_repo.path).returncode == 0
    # a name that looks like an option is the file's name; a FIFO or a directory is refused
    dashed = git_repo.path / "--verify"
    dashed.write_text(f"x {key}\n")
    res = run_cli("git", "--commit-msg", "--", "--verify", cwd=git_repo.path)
    assert res.returncode == 1 and "verified" not in res.output
    bad = run_cli("git", "--commit-msg", "--", str(tmp_path), cwd=git_repo.path)
    assert bad.returncode == 2 and "cannot read the commit message" in bad.stderr
    assert "Traceback" not in bad.stderr
    two = run_cli("git", "--commit-msg", "--", str(msg), str(msg), cwd=git_repo.path)
    assert two.returncode == 2


# --- 3. reachability beyond refs: reflogs, stashes, notes, dangling objects, submodules -------


def test_reflog_only_commit_is_found_and_named(run_cli: Run, git_repo: GitRepo, key: str) -> None:
    git_repo.commit("base", {"a.txt": "a\n"})
    c2 = git_repo.commit("oops", {"secret.env": f"K={key}\n"})
    git_repo.git("reset", "-q", "--hard", "HEAD~1")  # only HEAD's and main's reflogs keep c2
    result = scan(run_cli, git_repo)
    assert result.returncode == 1, result.output
    assert rows(result) == [("secret.env", 1, 3, c2)]
    assert "1 commit(s) that only reflog entries reach" in result.stderr
    assert "1 finding(s) only in reflog entries" in result.stderr
    assert f"secret.env:1:3 (commit {short(c2)})" in result.stderr
    off = scan(run_cli, git_repo, "--no-reflogs")
    assert off.returncode == 0 and rows(off) == []
    assert "only reflog entries" not in off.stderr


def test_amended_message_is_found_in_the_reflog(run_cli: Run, git_repo: GitRepo, key: str) -> None:
    git_repo.commit("base", {"a.txt": "a\n"})
    c2 = git_repo.commit(f"deploy with {key}", {"b.txt": "b\n"})
    git_repo.git("commit", "-q", "--amend", "-m", "deploy")
    assert rows(scan(run_cli, git_repo)) == [(f"commit {short(c2)} message", 1, 13, c2)]
    assert rows(scan(run_cli, git_repo, "--no-reflogs")) == []


def test_a_clone_url_has_no_reflogs_by_default(run_cli: Run, git_repo: GitRepo, key: str) -> None:
    git_repo.commit("base", {"a.txt": "a\n"})
    git_repo.commit("oops", {"s.env": f"K={key}\n"})
    git_repo.git("reset", "-q", "--hard", "HEAD~1")
    url = git_repo.path.as_uri()
    result = run_cli("git", url, "-f", "json")
    assert result.returncode == 0 and rows(result) == []  # the server never sends it
    assert "only reflog entries" not in result.stderr


def test_key_in_every_stash_entry_and_in_a_stash_message(
    run_cli: Run, git_repo: GitRepo, keys: Callable[[int], list[str]]
) -> None:
    a, b = keys(2)
    git_repo.commit("base", {"a.txt": "a\n"})
    git_repo.write("a.txt", f"a\n{a}\n")
    git_repo.git("stash", "push", "-q", "-m", f"wip {b}")
    first = git_repo.git("rev-parse", "stash@{0}")
    git_repo.write("a.txt", "a\nb\n")
    git_repo.git("stash", "-q")  # the key is now only in stash@{1}
    for args in ((), ("--no-reflogs",)):  # every stash entry is read either way
        got = rows(scan(run_cli, git_repo, *args))
        assert ("a.txt", 2, 1, first) in got
        assert (f"commit {short(first)} message", 1, len("On main: wip ") + 1, first) in got


def test_key_in_a_note_is_named_as_a_note(run_cli: Run, git_repo: GitRepo, key: str) -> None:
    c1 = git_repo.commit("base", {"a.txt": "a\n"})
    git_repo.git("notes", "add", "-m", f"deployed with\n{key}", c1)
    notes_commit = git_repo.git("rev-parse", "refs/notes/commits")
    result = scan(run_cli, git_repo)
    assert rows(result) == [(f"note {short(c1)} message", 2, 1, notes_commit)]
    sarif = run_cli("git", str(git_repo.path), "-f", "sarif")
    doc = json.loads(sarif.stdout)
    assert_valid_sarif(doc)
    (res,) = results(doc)
    assert "logicalLocations" in only_location(res)


def _submodule(top: GitRepo, sub: GitRepo, path: str) -> None:
    top.git("-c", "protocol.file.allow=always", "submodule", "add", "-q", str(sub.path), path)
    top.commit(f"add {path}")


def test_key_only_in_a_submodules_history(
    run_cli: Run,
    make_repo: Callable[[Path], GitRepo],
    tmp_path: Path,
    keys: Callable[[int], list[str]],
) -> None:
    a, b, c = keys(3)
    sub = make_repo(tmp_path / "sub")
    s1 = sub.commit("add config", {"conf/app.env": f"X=1\nKEY={a}\n"})
    sub.commit("remove it", {"conf/app.env": "X=1\n"})
    s3 = sub.commit(f"note {b}", {"README": "sub\n"})
    inner = make_repo(tmp_path / "inner")
    i1 = inner.commit("inner", {"k.txt": f"{c}\n"})
    sub.git("-c", "protocol.file.allow=always", "submodule", "add", "-q", str(inner.path), "deep")
    sub.commit("add deep")
    top = make_repo(tmp_path / "top")
    top.commit("base", {"main.txt": "main\n"})
    _submodule(top, sub, "libs/sub")
    top.git(
        "-c", "protocol.file.allow=always", "submodule", "update", "-q", "--init", "--recursive"
    )
    result = scan(run_cli, top)
    assert result.returncode == 1, result.output
    assert rows(result) == [
        ("libs/sub/commit " + short(s3) + " message", 1, 6, s3),
        ("libs/sub/conf/app.env", 2, 5, s1),
        ("libs/sub/deep/k.txt", 1, 1, i1),
    ]
    assert "scanned the history of 2 submodule(s) too (libs/sub, libs/sub/deep)" in result.stderr
    result.assert_no_leak(a, b, c)
    sarif = run_cli("git", str(top.path), "-f", "sarif")
    doc = json.loads(sarif.stdout)
    assert_valid_sarif(doc)
    uris = sorted(
        str(loc["physicalLocation"]["artifactLocation"]["uri"])  # type: ignore[index]
        for loc in map(only_location, results(doc))
        if "physicalLocation" in loc
    )
    assert uris == ["libs/sub/conf/app.env", "libs/sub/deep/k.txt"]
    off = scan(run_cli, top, "--no-submodules")
    assert off.returncode == 0 and "has submodules: their repositories were not scanned" in (
        off.stderr
    )
    # an exclude of the superproject applies to the submodule's paths as they are reported
    excluded = scan(run_cli, top, "--exclude", "libs/sub/deep/")
    assert [r[0] for r in rows(excluded)] == [
        "libs/sub/commit " + short(s3) + " message",
        "libs/sub/conf/app.env",
    ]


def test_submodule_not_initialised_is_not_scanned(
    run_cli: Run, make_repo: Callable[[Path], GitRepo], tmp_path: Path, key: str
) -> None:
    sub = make_repo(tmp_path / "sub")
    sub.commit("k", {"k.txt": f"{key}\n"})
    top = make_repo(tmp_path / "top")
    top.commit("base", {"main.txt": "main\n"})
    _submodule(top, sub, "vendor/sub")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(top.path), str(clone)], check=True, env=top.env)
    result = run_cli("git", str(clone), "-f", "json")
    assert result.returncode == 0 and rows(result) == []
    assert "has submodules: their repositories were not scanned" in result.stderr


# --- 4. clone URLs: every ref the server advertises --------------------------------------------


def test_clone_url_mirrors_pull_request_refs(
    run_cli: Run, git_repo: GitRepo, tmp_path: Path, keys: Callable[[int], list[str]]
) -> None:
    a, b = keys(2)
    git_repo.commit("base", {"a.txt": "a\n"})
    git_repo.git("checkout", "-q", "-b", "pr")
    pr = git_repo.commit(f"wip {b}", {"pr.env": f"KEY={a}\n"})
    git_repo.git("checkout", "-q", "main")
    server = tmp_path / "server.git"
    subprocess.run(
        ["git", "clone", "-q", "--bare", str(git_repo.path), str(server)],
        check=True,
        env=git_repo.env,
    )
    # what a forge keeps for a closed pull request: a ref outside refs/heads and refs/tags
    _git("update-ref", "refs/pull/1/head", pr, cwd=server)
    _git("update-ref", "-d", "refs/heads/pr", cwd=server)
    assert _git("for-each-ref", "--format=%(refname)", cwd=server).split() == [
        "refs/heads/main",
        "refs/pull/1/head",
    ]
    result = run_cli("git", server.as_uri(), "-f", "json")
    assert result.returncode == 1, result.output
    assert rows(result) == [(f"commit {short(pr)} message", 1, 5, pr), ("pr.env", 1, 5, pr)]
    result.assert_no_leak(a, b)
