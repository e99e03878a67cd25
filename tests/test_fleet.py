"""Fleet sweeps: repository lists and shards, the GitHub listing, merge, the per-key view,
resumable state, the examples."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kascan.errors import KascanError
from kascan.fleet import (
    StateStore,
    canonical_repo,
    config_fingerprint,
    parse_shard,
    pick_shard,
    shard_of,
    sweep,
)
from kascan.model import Finding, Secret
from kascan.stats import ScanStats

from .conftest import ROOT, GitRepo, Result, findings_of

Run = Callable[..., Result]

# --- canonical names and shards -------------------------------------------------------------------


@pytest.mark.parametrize(
    "forms",
    [
        (
            "https://github.com/acme/widgets",
            "https://github.com/acme/widgets.git",
            "https://github.com/acme/widgets/",
            "https://GitHub.COM/acme/widgets.git/",
            "https://user:pw@github.com:443/acme/widgets",
            "git@github.com:acme/widgets.git",
            "ssh://git@github.com/acme/widgets",
            "ssh://git@github.com:22/acme/widgets.git",
            "git://github.com/acme/widgets",
        ),
        ("/srv/git/a", "/srv/git/a/", "/srv/git/a.git", "file:///srv/git/a", "/srv//git/./a"),
    ],
)
def test_canonical_names_agree_across_url_forms(forms: tuple[str, ...]) -> None:
    names = {canonical_repo(f) for f in forms}
    assert len(names) == 1, names
    assert len({shard_of(f, 7) for f in forms}) == 1


def test_canonical_names_keep_distinct_repositories_apart() -> None:
    a = canonical_repo("https://github.com/acme/widgets")
    assert a == "github.com/acme/widgets"
    assert canonical_repo("https://github.com/acme/Widgets") != a  # path case is the server's
    assert canonical_repo("https://gitlab.com/acme/widgets") != a
    assert canonical_repo("git@github.com:acme/gadgets") != a
    assert canonical_repo("./widgets") == "file:widgets"


def test_shards_are_disjoint_cover_the_list_and_ignore_order() -> None:
    repos = [f"https://github.com/acme/repo-{i}" for i in range(500)]
    n = 5
    parts = [pick_shard(repos, i, n) for i in range(n)]
    flat = [r for p in parts for r in p]
    assert sorted(flat) == sorted(repos)  # covering, and disjoint (no repo twice)
    assert all(40 < len(p) < 160 for p in parts), [len(p) for p in parts]  # roughly balanced
    shuffled = repos[:]
    random.Random(1).shuffle(shuffled)
    for i in range(n):
        assert set(pick_shard(shuffled, i, n)) == set(parts[i])
    # a repository's shard does not depend on the rest of the list
    assert set(pick_shard(repos[:100], 2, n)) == {r for r in parts[2] if r in repos[:100]}


def test_parse_shard_values() -> None:
    assert parse_shard("0/1", {}) == (0, 1)
    assert parse_shard("3/4", {}) == (3, 4)
    assert parse_shard("/4", {"JOB_COMPLETION_INDEX": "2"}) == (2, 4)
    assert parse_shard("1/4", {"JOB_COMPLETION_INDEX": "2"}) == (1, 4)  # explicit wins
    for bad in ("4/4", "-1/4", "0/0", "a/b", "4", "/4"):
        with pytest.raises(KascanError):
            parse_shard(bad, {})


def test_repos_command_lists_shards_from_file(tmp_path: Path, run_cli: Run) -> None:
    urls = [f"https://git.example.com/team/r{i}.git" for i in range(40)]
    listing = tmp_path / "repos.txt"
    dupes = "  https://git.example.com/team/r0/\ngit@git.example.com:team/r1.git\n"
    listing.write_text("# the fleet\n\n" + "\n".join(urls) + "\n" + dupes)
    full = run_cli("repos", "--repos-from", listing)
    assert full.returncode == 0, full.stderr
    assert full.stdout.split() == urls  # comments, blanks and duplicate spellings dropped
    seen: list[str] = []
    for i in range(3):
        res = run_cli("repos", "--repos-from", listing, "--shard", f"{i}/3")
        assert res.returncode == 0, res.stderr
        assert f"(shard {i}/3 of 40)" in res.stderr
        seen += res.stdout.split()
    assert sorted(seen) == sorted(urls)
    k8s = run_cli(
        "repos", "--repos-from", listing, "--shard", "/3", extra_env={"JOB_COMPLETION_INDEX": "1"}
    )
    assert k8s.stdout == run_cli("repos", "--repos-from", listing, "--shard", "1/3").stdout
    for bad in ("3/3", "x/3", "/3"):
        res = run_cli("repos", "--repos-from", listing, "--shard", bad)
        assert res.returncode == 2, (bad, res.stderr)
        assert "--shard" in res.stderr and "Traceback" not in res.stderr
    missing = run_cli("repos", "--repos-from", tmp_path / "nope.txt")
    assert missing.returncode == 2
    assert "cannot read --repos-from" in missing.stderr


# --- the GitHub listing ---------------------------------------------------------------------------


@dataclass
class FakeGitHub:
    """``/orgs/acme/repos`` in 3 pages (page 2 rate-limited once), ``/users/solo/repos``,
    ``/orgs/html/repos`` (an HTML page), ``/orgs/slow/repos`` (rate limited for an hour),
    ``/orgs/escape/repos`` (its next link leaves the host)."""

    url: str = ""
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    limited_once: set[str] = field(default_factory=set)
    local: list[str] = field(default_factory=list)  # clone URLs listed by /orgs/local/repos

    def repo(self, i: int, fork: bool = False, archived: bool = False) -> dict[str, object]:
        return {
            "full_name": f"acme/r{i}",
            "clone_url": f"https://github.example/acme/r{i}.git",
            "fork": fork,
            "archived": archived,
        }


def _github_handler(gh: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def send(self, code: int, body: object, headers: dict[str, str] | None = None) -> None:
            raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(code)
            ctype = "text/html" if isinstance(body, str) else "application/json; charset=utf-8"
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(raw)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:
            gh.requests.append((self.path, dict(self.headers)))
            path, _, query = self.path.partition("?")
            params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
            page = int(params.get("page", "1"))
            base = f"{gh.url}{path}?per_page=100&type={params.get('type')}"
            if path == "/orgs/acme/repos":
                if page == 2 and "acme2" not in gh.limited_once:
                    gh.limited_once.add("acme2")
                    reset = str(int(time.time()) + 1)
                    self.send(
                        403,
                        {"message": "API rate limit exceeded"},
                        {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset},
                    )
                    return
                items = {
                    1: [gh.repo(i) for i in range(100)],
                    2: [gh.repo(100), gh.repo(101, fork=True), gh.repo(102, archived=True)],
                    3: [gh.repo(103)],
                }[page]
                link = f'<{base}&page={page + 1}>; rel="next", <{base}&page=3>; rel="last"'
                self.send(200, items, {"Link": link} if page < 3 else {})
            elif path == "/orgs/local/repos":
                items = [{"full_name": u, "clone_url": u, "fork": False} for u in gh.local]
                half = len(items) // 2
                if page == 1:
                    self.send(200, items[:half], {"Link": f'<{base}&page=2>; rel="next"'})
                else:
                    self.send(200, items[half:])
            elif path == "/users/solo/repos":
                self.send(200, [gh.repo(7)])
            elif path == "/orgs/html/repos":
                self.send(200, "<html><body>Sign in</body></html>")
            elif path == "/orgs/slow/repos":
                reset = str(int(time.time()) + 3600)
                self.send(
                    403,
                    {"message": "limit"},
                    {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset},
                )
            elif path == "/orgs/escape/repos":
                self.send(
                    200, [gh.repo(1)], {"Link": '<https://evil.example/x?page=2>; rel="next"'}
                )
            else:
                self.send(404, {"message": "Not Found"})

    return Handler


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    gh = FakeGitHub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _github_handler(gh))
    gh.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield gh
    server.shutdown()
    server.server_close()


def test_github_org_listing_pages_rate_limit_filters(github: FakeGitHub, run_cli: Run) -> None:
    started = time.monotonic()
    res = run_cli(
        "repos",
        "--github-org",
        "acme",
        "--github-api-url",
        github.url,
        extra_env={"GITHUB_TOKEN": "test-token-123"},
    )
    assert res.returncode == 0, res.stderr
    got = res.stdout.split()
    expected = [f"https://github.example/acme/r{i}.git" for i in (*range(101), 102, 103)]
    assert got == expected  # 3 pages; the fork left out, the archived repository kept
    assert "rate limit" in res.stderr
    assert time.monotonic() - started >= 1.0  # it did wait for the reset
    paths = [p for p, _ in github.requests]
    assert paths[0] == "/orgs/acme/repos?per_page=100&type=all"
    assert paths.count("/orgs/acme/repos?per_page=100&type=all&page=2") == 2  # retried once
    auth = {h.get("Authorization") for _, h in github.requests}
    assert auth == {"Bearer test-token-123"}, auth
    assert "test-token-123" not in res.output

    first_run = len(github.requests)
    filtered = run_cli(
        "repos", "--github-org", "acme", "--github-api-url", github.url,
        "--include-forks", "--exclude-archived",
    )  # fmt: skip
    assert "https://github.example/acme/r101.git" in filtered.stdout.split()
    assert "https://github.example/acme/r102.git" not in filtered.stdout.split()
    no_token = [h for _, h in github.requests[first_run:]]
    assert len(no_token) == 3 and all("Authorization" not in h for h in no_token)

    user = run_cli("repos", "--github-user", "solo", "--github-api-url", github.url)
    assert user.stdout.split() == ["https://github.example/acme/r7.git"]
    assert github.requests[-1][0] == "/users/solo/repos?per_page=100&type=owner"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--github-org", "html"), "did not answer JSON (text/html)"),
        (("--github-org", "slow"), "rate limited for"),
        (("--github-org", "escape"), "on another host (evil.example)"),
        (("--github-org", "ghost"), "404 not found: Not Found"),
        (("--github-org", "../etc"), "not a GitHub org name"),
    ],
)
def test_github_listing_errors_are_one_line(
    github: FakeGitHub, run_cli: Run, args: tuple[str, ...], message: str
) -> None:
    res = run_cli("repos", *args, "--github-api-url", github.url, timeout=30)
    assert res.returncode == 2, res.stderr
    assert message in res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in res.stderr
    assert not any("evil.example" in p for p, _ in github.requests)


def test_github_api_url_must_be_https_or_loopback(run_cli: Run) -> None:
    res = run_cli("repos", "--github-org", "acme", "--github-api-url", "http://example.com/api")
    assert res.returncode == 2
    assert "must be an https URL (or http on a loopback address)" in res.stderr


# --- Secret read back from a report ---------------------------------------------------------------


def test_secret_from_report_keeps_redaction_and_fingerprint(key: str) -> None:
    full = Secret(key)
    back = Secret.from_report(full.redacted, full.fingerprint)
    assert back.fingerprint == full.fingerprint
    assert not back.known and full.known
    assert str(back) == repr(back)[8:-2] == full.redacted
    assert key[12:] not in repr(back) + str(back) + back.value
    assert Secret.from_report(key, full.fingerprint) == full  # a --show-secrets report
    # a full key whose fingerprint does not match is never kept in full
    odd = Secret.from_report(key, "sha256:" + "0" * 64)
    assert key[12:] not in odd.value and odd.fingerprint == "sha256:" + "0" * 64
    odd2 = Secret.from_report(key + "…", "sha256:" + "0" * 64)
    assert key[12:] not in odd2.value


# --- sweep runner and state (library level) -------------------------------------------------------


def _fake_scan(
    calls: list[str],
) -> Callable[[str, ScanStats, Callable[[str], None]], list[Finding]]:
    def scan_one(repo: str, stats: ScanStats, warn: Callable[[str], None]) -> list[Finding]:
        calls.append(repo)
        if "broken" in repo:
            raise KascanError(f"cannot read {repo}: broken on purpose")
        stats.extra["commits"] = 1
        text = Path(repo, "k.txt").read_text().strip()
        return [Finding("kubeadapt-api-key", "k.txt", 1, 1, Secret(text), repo=repo)]

    return scan_one


def test_sweep_failure_isolated_and_state_resumes(
    tmp_path: Path, make_repo: Callable[[Path], GitRepo], keys: Callable[[int], list[str]]
) -> None:
    ks = keys(3)
    repos = []
    for i, k in enumerate(ks):
        r = make_repo(tmp_path / f"r{i}")
        r.commit("init", {"k.txt": k + "\n"})
        repos.append(r)
    broken = make_repo(tmp_path / "broken")
    broken.commit("init", {"x": "y"})
    names = [str(r.path) for r in [*repos, broken]]
    state = StateStore(tmp_path / "state", config_fingerprint(["rules-v1"]))
    calls: list[str] = []
    out = {o.repo: o for o in sweep(names, _fake_scan(calls), jobs=2, state=state)}
    assert sorted(calls) == sorted(names)
    assert out[names[3]].error == f"cannot read {names[3]}: broken on purpose"
    assert [len(out[n].findings) for n in names[:3]] == [1, 1, 1]
    files = sorted((tmp_path / "state").iterdir())
    assert len(files) == 3  # the failed repository is not recorded
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in files)
    assert all(k[12:] not in f.read_text() for f in files for k in ks)

    repos[1].commit("more", {"other.txt": "x"})
    calls.clear()
    again = {o.repo: o for o in sweep(names, _fake_scan(calls), jobs=1, state=state)}
    assert sorted(calls) == sorted([names[1], names[3]])  # only the changed (and failed) ones
    assert again[names[0]].reused and not again[names[1]].reused
    reused = again[names[0]].findings[0]
    assert reused.fingerprint == Secret(ks[0]).fingerprint and not reused.secret.known
    assert again[names[0]].stats.extra["commits"] == 1

    other_rules = StateStore(tmp_path / "state", config_fingerprint(["rules-v2"]))
    calls.clear()
    list(sweep(names[:1], _fake_scan(calls), state=other_rules))
    assert calls == names[:1]  # other rules: the recorded scan is not reused


# --- kascan git over many repositories ------------------------------------------------------------


@dataclass
class Fleet:
    repos: list[GitRepo]
    urls: list[str]
    keys: list[str]
    listing: Path


@pytest.fixture
def fleet(
    tmp_path: Path, make_repo: Callable[[Path], GitRepo], keys: Callable[[int], list[str]]
) -> Fleet:
    """8 repositories; key 0 is committed in r0 (first) and later in r5 too; r3 has no key."""
    ks = keys(8)
    repos = []
    for i in range(8):
        r = make_repo(tmp_path / "fleet" / f"r{i}")
        r.commit("readme", {"README.md": f"repo {i}\n"})
        if i != 3:
            r.commit("config", {f"conf/{i}.env": f"KEY={ks[i]}\n"})
        repos.append(r)
    repos[5].commit("copy", {"copied.txt": f"x = {ks[0]}\n"})
    urls = [f"file://{r.path}" for r in repos]
    listing = tmp_path / "repos.txt"
    listing.write_text("# the fleet\n" + "\n".join(urls) + "\n")
    return Fleet(repos, urls, ks, listing)


def _report(path: Path) -> dict[str, object]:
    doc: dict[str, object] = json.loads(path.read_text())
    return doc


def test_shards_merged_equal_an_unsharded_sweep(tmp_path: Path, run_cli: Run, fleet: Fleet) -> None:
    whole = run_cli(
        "git", "--repos-from", fleet.listing, "-o", tmp_path / "all.json", "--repo-jobs", "2"
    )
    assert whole.returncode == 1, whole.stderr
    whole.assert_no_leak(*fleet.keys)
    shard_files = []
    for i in range(3):
        out = tmp_path / f"shard-{i}.json"
        res = run_cli(
            "git", "--repos-from", fleet.listing, "--shard", f"{i}/3", "-f", "json", "-o", out
        )
        assert res.returncode in (0, 1), res.stderr
        assert f"(shard {i}/3 of 8)" in res.output
        shard_files.append(out)
    shard_repos = [{r["repo"] for r in _report(f)["repos"]} for f in shard_files]  # type: ignore[union-attr]
    assert sum(len(s) for s in shard_repos) == 8 and set().union(*shard_repos) == set(fleet.urls)
    merged = run_cli("merge", *shard_files, shard_files[0], "-f", "json")  # shard 0 twice
    assert merged.returncode == 1, merged.stderr
    assert "is the same report as" in merged.stderr
    merged.assert_no_leak(*fleet.keys)
    unsharded = _report(tmp_path / "all.json")
    assert findings_of(merged) == unsharded["findings"]
    assert len(unsharded["findings"]) == 8  # type: ignore[arg-type]
    msum, usum = merged.json()["summary"], unsharded["summary"]
    assert isinstance(msum, dict) and isinstance(usum, dict)
    for k in ("commits", "blobs", "bytes", "candidates"):
        assert msum[k] == usum[k], k
    assert msum["reported"] == 8
    assert sorted(merged.json()["repos"], key=str) == sorted(unsharded["repos"], key=str)  # type: ignore[arg-type]

    by_key = run_cli("merge", *shard_files, "--by-key")
    assert by_key.returncode == 1
    by_key.assert_no_leak(*fleet.keys)
    block = by_key.stdout[by_key.stdout.index(fleet.keys[0][:12]) :].split("\n")
    assert "2 locations in 2 repos" in block[0]
    c0 = fleet.repos[0].git("rev-parse", "HEAD")
    assert f"first commit: 2024-01-02T12:00:00+00:00 {c0[:12]} by Test Author" in block[1]
    assert f"in {fleet.urls[0]}:conf/0.env" in block[1]
    assert block[2:4] == [
        f"  {fleet.urls[0]}: conf/0.env:1:5",
        f"  {fleet.urls[5]}: copied.txt:1:5",
    ]
    assert "7 distinct keys (0 live) in 7 repositories; 8 findings" in by_key.stdout


def test_a_failing_repository_does_not_stop_the_others(
    tmp_path: Path, run_cli: Run, fleet: Fleet
) -> None:
    bad = f"file://{tmp_path}/missing-repo"
    with fleet.listing.open("a") as fh:
        fh.write(bad + "\n")
    out = tmp_path / "out.json"
    res = run_cli("git", "--repos-from", fleet.listing, "-o", out, "--repo-jobs", "2")
    assert res.returncode == 2, res.stderr
    res.assert_no_leak(*fleet.keys)
    assert "1 of 9 repositories could not be scanned" in res.stderr
    doc = _report(out)
    assert len(doc["findings"]) == 8  # type: ignore[arg-type]
    status = {r["repo"]: r["status"] for r in doc["repos"]}  # type: ignore[union-attr]
    assert status[bad] == "failed" and [status[u] for u in fleet.urls] == ["scanned"] * 8
    assert f"repo {bad}: 0 commits" in res.stdout and "FAILED: cannot clone" in res.stdout


def test_resumed_sweep_rescans_only_the_changed_repository(
    tmp_path: Path, run_cli: Run, fleet: Fleet, key: str
) -> None:
    state = tmp_path / "state"
    first = run_cli("git", "--repos-from", fleet.listing, "--state", state, "-f", "json")
    assert first.returncode == 1, first.stderr
    assert {r["status"] for r in first.json()["repos"]} == {"scanned"}  # type: ignore[union-attr]
    files = list(state.iterdir())
    assert len(files) == 8 and all(f.stat().st_mode & 0o777 == 0o600 for f in files)
    assert not any(k[12:] in f.read_text() for f in files for k in fleet.keys)

    fleet.repos[3].commit("oops", {"late.env": f"K={key}\n"})
    again = run_cli("git", "--repos-from", fleet.listing, "--state", state, "-f", "json")
    assert again.returncode == 1, again.stderr
    status = {r["repo"]: r["status"] for r in again.json()["repos"]}  # type: ignore[union-attr]
    assert status == {u: "scanned" if i == 3 else "reused" for i, u in enumerate(fleet.urls)}
    got = {(f["repo"], f["path"], f["fingerprint"]) for f in findings_of(again)}
    before = {(f["repo"], f["path"], f["fingerprint"]) for f in findings_of(first)}
    assert got == before | {(fleet.urls[3], "late.env", Secret(key).fingerprint)}
    assert "7 unchanged since the last sweep (findings reused)" in again.stderr
    # other rules: nothing is reused
    rules = tmp_path / "rules.toml"
    rules.write_text("[[rules]]\nid = \"x\"\nregex = 'zzz_[0-9]{20}'\n")
    third = run_cli(
        "git", "--repos-from", fleet.listing, "--state", state, "--rules", rules, "-f", "json"
    )
    assert {r["status"] for r in third.json()["repos"]} == {"scanned"}  # type: ignore[union-attr]


def test_github_org_sweep_clones_the_listed_repositories(
    github: FakeGitHub, run_cli: Run, fleet: Fleet
) -> None:
    github.local = fleet.urls[:4]
    res = run_cli("git", "--github-org", "local", "--github-api-url", github.url, "-f", "json")
    assert res.returncode == 1, res.stderr
    assert {f["repo"] for f in findings_of(res)} == {fleet.urls[i] for i in (0, 1, 2)}
    assert [r["repo"] for r in res.json()["repos"]] == fleet.urls[:4]  # type: ignore[union-attr]


def test_repository_options_do_not_mix_with_patch_modes(
    tmp_path: Path, run_cli: Run, fleet: Fleet, key: str
) -> None:
    res = run_cli("git", "--repos-from", fleet.listing, "--staged")
    assert res.returncode == 2 and "do not go with --repos-from" in res.stderr
    # pre-commit passes file names after --staged: still the staged scan, not a sweep
    r0 = fleet.repos[0]
    r0.write("new.env", f"K={key}\n")
    r0.git("add", "new.env")
    staged = run_cli("git", "--staged", "new.env", "-f", "json", cwd=r0.path)
    assert staged.returncode == 1, staged.stderr
    assert [(f["path"], f["repo"]) for f in findings_of(staged)] == [("new.env", None)]
    assert staged.json()["repos"] == []  # always there, empty for one repository


# --- examples -------------------------------------------------------------------------------------

EXAMPLES = ROOT / "examples"


def test_github_workflow_example_is_valid() -> None:
    import yaml

    path = EXAMPLES / "github-actions" / "kascan-fleet.yml"
    doc = yaml.safe_load(path.read_text())
    doc["on"] = doc.pop(True)  # YAML 1.1 reads the key `on` as a boolean
    try:
        from importlib.resources import files

        import jsonschema

        schema_file = files("check_jsonschema.builtin_schemas.vendor") / "github-workflows.json"
        schema = json.loads(schema_file.read_text("utf-8"))
    except ModuleNotFoundError:
        schema = None
    if schema is not None:
        jsonschema.validate(doc, schema)
    jobs = doc["jobs"]
    shards = jobs["sweep"]["strategy"]["matrix"]["shard"]
    assert shards == list(range(int(doc["env"]["SHARDS"])))
    sweep_run = "\n".join(s.get("run", "") for s in jobs["sweep"]["steps"])
    assert '--shard "${{ matrix.shard }}/$SHARDS"' in sweep_run
    assert "--github-org" in sweep_run
    merge = jobs["merge"]
    assert merge["needs"] == "sweep"
    assert merge["permissions"]["security-events"] == "write"
    merge_run = "\n".join(s.get("run", "") for s in merge["steps"])
    assert "kascan merge shards/*.json" in merge_run and "-o kascan.sarif" in merge_run
    uses = [s.get("uses", "") for s in merge["steps"]]
    assert any(u.startswith("github/codeql-action/upload-sarif@") for u in uses)
    assert any(u.startswith("actions/download-artifact@") for u in uses)


def test_kubernetes_examples_are_indexed_job_and_merge() -> None:
    import yaml

    docs = list(yaml.safe_load_all((EXAMPLES / "kubernetes" / "sweep-job.yaml").read_text()))
    job = next(d for d in docs if d["kind"] == "Job")
    pvc = next(d for d in docs if d["kind"] == "PersistentVolumeClaim")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    n = spec["completions"]
    assert n >= 2 and 1 <= spec["parallelism"] <= n
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    container = pod["containers"][0]
    script = container["args"][0]
    assert f"--shard /{n}" in script and "$JOB_COMPLETION_INDEX.json" in script
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    claims = {
        v["name"]: v.get("persistentVolumeClaim", {}).get("claimName") for v in pod["volumes"]
    }
    assert claims["reports"] == pvc["metadata"]["name"] and mounts["reports"] == "/reports"
    merge = yaml.safe_load((EXAMPLES / "kubernetes" / "merge-job.yaml").read_text())
    assert merge["kind"] == "Job"
    merge_pod = merge["spec"]["template"]["spec"]
    assert "kascan merge /reports/shard-*.json" in merge_pod["containers"][0]["args"][0]
    assert merge_pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]


def test_dockerfile_copies_what_the_package_needs() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert text.startswith("#") and "FROM python:3.12-slim" in text
    assert "git" in text and 'ENTRYPOINT ["kascan"]' in text
    for line in text.splitlines():
        if line.startswith("COPY "):
            for src in line.split()[1:-1]:
                assert (ROOT / src).exists(), src
    assert "USER 10001" in text


def test_by_key_puts_live_keys_first(tmp_path: Path, run_cli: Run, fleet: Fleet) -> None:
    res = run_cli("git", *fleet.urls[:3], "--by-key", "-o", tmp_path / "a.json")
    assert res.returncode == 1, res.stderr
    assert res.stdout.count(" UNCHECKED ") == 3
    doc = _report(tmp_path / "a.json")
    found = doc["findings"]
    assert isinstance(found, list)
    live = next(f for f in found if f["repo"] == fleet.urls[2])
    live["verification"] = {"status": "live", "organization": "Acme"}  # as a verified run says
    (tmp_path / "a.json").write_text(json.dumps(doc))
    merged = run_cli("merge", tmp_path / "a.json", "-f", "keys")
    assert merged.returncode == 1, merged.stderr
    lines = merged.stdout.splitlines()
    assert lines[0].startswith(fleet.keys[2][:12] + "…  LIVE [organization: Acme]  1 location")
    assert "1 live" in lines[-1]
    bad = tmp_path / "bad.json"
    bad.write_text('{"findings": [{"secret": "x"}]}')
    err = run_cli("merge", tmp_path / "a.json", bad)
    assert err.returncode == 2 and "cannot read report" in err.stderr and str(bad) in err.stderr
