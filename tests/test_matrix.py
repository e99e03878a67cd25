"""The capability matrix (issue 13): every source crossed with every capability, black-box,
through the real CLI (and the Action's real entry point), on real files, real git repositories
and a real API server on 127.0.0.1.

A cell asserts the exact findings (rule, repository, path with archive members, line, column,
decoding, commit, verification status), the exact drop reasons in the JSON summary and the exit
status; a combination that cannot apply must be refused with one clear error line and exit 2.
Adding a source is one ``SOURCES`` entry, adding a capability one ``CAPS`` entry (and, when it
needs new bytes, one builder in ``LAYOUTS``).

Cells that fail on today's code are listed in ``KNOWN_FAILURES`` with the bug in one line; they
run as ``xfail(strict=True)``, so a fix turns them into XPASS(strict) failures: then delete the
entry.
"""

from __future__ import annotations

import json
import os
import random
import re
import shlex
import string
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests import matrix_util as mu
from tests.conftest import PREFIX, ROOT, GitRepo, Result, clean_env, make_key
from tests.sarif_util import (
    assert_valid_sarif,
    every_location,
    location,
    results,
    unescape_command,
)
from tests.test_verify import Api, make_api  # noqa: F401  (make_api: the loopback API fixture)

# --- the cells that fail today, by cause: when a cell XPASSes, take it out of its bug's list ---

PATCH = ("staged", "range", "pre_push", "action_push", "action_pr")  # sources of added lines
NO_COMMITS = ("tree", "file", "stdin", "staged")
HISTORY_SWEEPS = ("history", "bundle", "sweep_paths", "sweep_urls", "merge")  # merge: of shards
SWEEPS = ("sweep_paths", "sweep_urls", "merge")
ACTIONS = ("action_push", "action_pr")
ALL_SOURCES = (
    "tree", "file", "stdin", "history", "bundle", "staged", "range", "pre_push",
    "sweep_paths", "sweep_urls", "merge", "action_push", "action_pr",
)  # fmt: skip


def _cells(sources: Iterable[str], caps: Iterable[str]) -> list[tuple[str, str]]:
    return [(s, c) for s in sources for c in caps]


# (the bug in one line, the cells it breaks)
BUGS: list[tuple[str, list[tuple[str, str]]]] = [
    # (reason, cells): a cell listed here must fail (strict xfail); fixed bugs leave the table
]

KNOWN_FAILURES: dict[tuple[str, str], str] = {}
for _reason, _where in BUGS:
    for _cell in _where:
        _prior = KNOWN_FAILURES.get(_cell)
        KNOWN_FAILURES[_cell] = f"{_prior}; AND {_reason}" if _prior else _reason

# cells that cannot apply: the command must refuse them (exit 2, one error line matching this)
NOT_APPLICABLE: dict[tuple[str, str], str] = {
    **dict.fromkeys(
        _cells(ACTIONS, ("text_stdout", "json_stdout", "sarif_stdout", "keys_stdout")), r"format|-f"
    ),
}

RULE = "kubeadapt-api-key"
TOKEN_RULE = "matrix-token"
ERROR_LINE = re.compile(r"^(Error: |kascan: error|::error::)")


def redacted(key: str) -> str:
    return key[: len(PREFIX) + 4] + "…"


# --- layouts: the bytes each capability scans -------------------------------------------------
# Each builder gets its own deterministic rng (seeded by the layout's name) and returns the files,
# how they are committed, and every finding or drop a full scan of them must produce.

APP = "config/app.env"
Builder = Callable[[random.Random], mu.Layout]


def _keys(rng: random.Random, n: int) -> list[str]:
    return [make_key(rng) for _ in range(n)]


def _app(lines: list[tuple[str, str]], expect: list[tuple[int, str, str, str | None]]) -> mu.Layout:
    """``config/app.env`` with ``NAME=value`` lines; ``expect``: (line, key, status, drop)."""
    col = {i + 1: len(name) + 2 for i, (name, _) in enumerate(lines)}
    return mu.Layout(
        (((APP, mu.env_lines(lines)),),),
        APP,
        tuple(
            mu.Expect(APP, APP, line, col[line], key, status=status, drop=drop)
            for line, key, status, drop in expect
        ),
    )


def _zip(rng: random.Random) -> mu.Layout:
    (key,) = _keys(rng, 1)
    data, member, line, col = mu.deflated_zip(key)
    return mu.one_file("dist/bundle.zip", data, f"dist/bundle.zip!{member}", line, col, key)


def _wheel_jar(rng: random.Random) -> mu.Layout:
    (key,) = _keys(rng, 1)
    whl, member, line, col, jar = mu.wheel_with_jar(key, rng)
    assert jar > 256 << 10 and len(whl) > 256 << 10  # real sizes, far over 64 KiB
    name = "dist/pkg-1.0-py3-none-any.whl"
    return mu.one_file(name, whl, f"{name}!{member}", line, col, key)


def _gz(rng: random.Random) -> mu.Layout:
    (key,) = _keys(rng, 1)
    data, line, col = mu.gz_log(key)
    return mu.one_file("logs/app.log.1.gz", data, "logs/app.log.1.gz", line, col, key, "gzip")


def _tar_gz(rng: random.Random) -> mu.Layout:
    (key,) = _keys(rng, 1)
    data, member, line, col = mu.tar_gz(key)
    return mu.one_file("backup.tar.gz", data, f"backup.tar.gz!{member}", line, col, key)


def _base64(rng: random.Random) -> mu.Layout:
    (key,) = _keys(rng, 1)
    data, line, col = mu.k8s_secret(key)
    return mu.one_file("k8s/secret.yaml", data, "k8s/secret.yaml", line, col, key, "base64")


def _utf16(rng: random.Random) -> mu.Layout:
    (key,) = _keys(rng, 1)
    data, line, col = mu.utf16_script(key)
    return mu.one_file("win/setup.ps1", data, "win/setup.ps1", line, col, key, "utf-16le")


def _framed(rng: random.Random) -> mu.Layout:
    (key,) = _keys(rng, 1)
    data, line, col = mu.slack_export(key)
    name = "export/general/2024-01-01.json"
    return mu.one_file(name, data, name, line, col, key)


def _percent(rng: random.Random) -> mu.Layout:
    (key,) = _keys(rng, 1)
    data, line, col = mu.access_log(key)
    return mu.one_file(
        "logs/access.log", data, "logs/access.log", line, col, key, "percent-encoding"
    )


def _escapes(rng: random.Random) -> mu.Layout:
    (key,) = _keys(rng, 1)
    data, line, col = mu.js_bundle(key)
    return mu.one_file("web/main.3f9a.js", data, "web/main.3f9a.js", line, col, key, "escapes")


def _hex(rng: random.Random) -> mu.Layout:
    (key,) = _keys(rng, 1)
    data, line, col = mu.pg_dump(key)
    return mu.one_file("db/dump.sql", data, "db/dump.sql", line, col, key, "hex")


def _mime(rng: random.Random) -> mu.Layout:
    (key,) = _keys(rng, 1)
    data, line, col = mu.mime_mail(key)
    return mu.one_file("mail/incident.eml", data, "mail/incident.eml", line, col, key, "base64")


def _utf16be(rng: random.Random) -> mu.Layout:
    (key,) = _keys(rng, 1)
    data, line, col = mu.binary_plist(key)
    return mu.one_file("ios/Config.plist", data, "ios/Config.plist", line, col, key, "utf-16be")


def _utf32(rng: random.Random) -> mu.Layout:
    (key,) = _keys(rng, 1)
    data, line, col = mu.utf32_config(key)
    return mu.one_file("win/app.cfg", data, "win/app.cfg", line, col, key, "utf-32le")


def _helm(rng: random.Random) -> mu.Layout:
    (key,) = _keys(rng, 1)
    data, line, col = mu.helm_release(key)
    return mu.one_file(
        "k8s/release.yaml", data, "k8s/release.yaml", line, col, key, "base64 → base64 → gzip"
    )


def _tools(make: Callable[[str, Path], tuple[bytes, str, int, int]], name: str) -> Builder:
    """A container made by its real tool in a scratch directory: the member path is inside it."""

    def build(rng: random.Random) -> mu.Layout:
        import tempfile

        (key,) = _keys(rng, 1)
        with tempfile.TemporaryDirectory() as tmp:
            data, member, line, col = make(key, Path(tmp))
        return mu.one_file(name, data, f"{name}!{member}", line, col, key)

    return build


def _member_of(
    make: Callable[[str], tuple[bytes, str, int, int]], name: str, decoded: str | None = None
) -> Builder:
    def build(rng: random.Random) -> mu.Layout:
        (key,) = _keys(rng, 1)
        data, member, line, col = make(key)
        return mu.one_file(name, data, f"{name}!{member}", line, col, key, decoded)

    return build


def _stream_of(make: Callable[[str], tuple[bytes, int, int]], name: str, how: str) -> Builder:
    def build(rng: random.Random) -> mu.Layout:
        (key,) = _keys(rng, 1)
        data, line, col = make(key)
        return mu.one_file(name, data, name, line, col, key, how)

    return build


def _plain(rng: random.Random) -> mu.Layout:
    """One key, line 2, column 19: what the format cells render."""
    (k,) = _keys(rng, 1)
    return _app([("APP_NAME", "demo"), ("KUBEADAPT_API_KEY", k)], [(2, k, "unchecked", None)])


def _verify(rng: random.Random) -> mu.Layout:
    """A live key on lines 1 and 3 (one request), an inactive one on line 2."""
    a, b = _keys(rng, 2)
    return _app(
        [("API_KEY", a), ("OLD_KEY", b), ("API_KEY_AGAIN", a)],
        [(1, a, "live", None), (2, b, "inactive", None), (3, a, "live", None)],
    )


def _fail_on_live(rng: random.Random) -> mu.Layout:
    """Only revoked keys: found and reported, but nothing to fail on."""
    a, b = _keys(rng, 2)
    return _app(
        [("OLD_KEY", a), ("OLDER_KEY", b)], [(1, a, "inactive", None), (2, b, "inactive", None)]
    )


def _fail_on_live_or_unknown(rng: random.Random) -> mu.Layout:
    """A revoked key, and a token of another service (``TOKEN_RULES``): the API cannot check it,
    so it stays unchecked, which is not proven inactive."""
    (a,) = _keys(rng, 1)
    token = "mxt_" + "".join(rng.choices(string.ascii_lowercase + string.digits, k=40))
    base = _app([("OLD_KEY", a), ("OTHER_TOKEN", token)], [(1, a, "inactive", None)])
    other = mu.Expect(APP, APP, 2, len("OTHER_TOKEN") + 2, token, rule=TOKEN_RULE)
    return mu.Layout(base.commits, base.main, (*base.expect, other))


def _allow_paths(rng: random.Random) -> mu.Layout:
    """``fixtures/`` is allowlisted by path (``ALLOW_PATHS``), ``config/`` is not."""
    a, b = _keys(rng, 2)
    fixture = "fixtures/test.env"
    return mu.Layout(
        (((fixture, mu.env_lines([("TEST_KEY", a)])), (APP, mu.env_lines([("KEY", b)]))),),
        fixture,
        (mu.Expect(fixture, fixture, 1, 10, a, drop="allowlist"), mu.Expect(APP, APP, 1, 5, b)),
    )


def _allow_regexes(rng: random.Random) -> mu.Layout:
    """The first key's line carries the marker that ``ALLOW_REGEXES`` allows."""
    a, b = _keys(rng, 2)
    return _app(
        [("TEST_KEY", a + "  # FIXTURE-ONLY"), ("KEY", b)],
        [(1, a, "unchecked", "allowlist"), (2, b, "unchecked", None)],
    )


def _allow_commits(rng: random.Random) -> mu.Layout:
    """Commit 1 (allowlisted by its sha) adds key a, commit 2 adds key b."""
    a, b = _keys(rng, 2)
    vendored = "vendor/old.env"
    return mu.Layout(
        (((vendored, mu.env_lines([("OLD", a)])),), ((APP, mu.env_lines([("KEY", b)])),)),
        APP,
        (mu.Expect(vendored, vendored, 1, 5, a, drop="allowlist"), mu.Expect(APP, APP, 1, 5, b)),
    )


def _inline_allow(rng: random.Random) -> mu.Layout:
    a, b = _keys(rng, 2)
    return _app(
        [("TEST_KEY", a + "  # kascan:allow test fixture"), ("KEY", b)],
        [(1, a, "unchecked", "inline-allow"), (2, b, "unchecked", None)],
    )


def _baseline(rng: random.Random) -> mu.Layout:
    """OLD is in the baseline an earlier run wrote (``Matrix.baseline``); NEW is not."""
    a, b = _keys(rng, 2)
    return _app(
        [("OLD", a), ("NEW", b)], [(1, a, "unchecked", "baseline"), (2, b, "unchecked", None)]
    )


PLACEHOLDER = PREFIX + "abcdefghijklmnopqrstuvwxyz123456"  # a sequence: a placeholder


def _verbose(rng: random.Random) -> mu.Layout:
    """A key reported, a placeholder and an inline-allowed key dropped: what -v names."""
    a, b = _keys(rng, 2)
    return _app(
        [("KEY", a), ("DOC_KEY", PLACEHOLDER), ("TEST_KEY", b + "  # kascan:allow fixture")],
        [(1, a, "unchecked", None), (2, PLACEHOLDER, "unchecked", "placeholder"),
         (3, b, "unchecked", "inline-allow")],
    )  # fmt: skip


def _commit_message(rng: random.Random) -> mu.Layout:
    """Issue 18: a revoked key in the message of the commit that adds a file with another key
    (line 3 of the message, after the subject and a blank line)."""
    a, b = _keys(rng, 2)
    head = "the old key "
    return mu.Layout(
        (((APP, mu.env_lines([("KEY", b)])),),),
        APP,
        (
            mu.Expect(APP, "commit {} message", 3, len(head) + 1, a, message=True),
            mu.Expect(APP, APP, 1, 5, b),
        ),
        (f"configure the service\n\n{head}{a} is revoked\n",),
    )


def _same_key(rng: random.Random) -> mu.Layout:
    """Issue 17: one key on two lines, another once; SARIF has one result per key."""
    a, b = _keys(rng, 2)
    return _app(
        [("API_KEY", a), ("OTHER_KEY", b), ("API_KEY_AGAIN", a)],
        [(1, a, "unchecked", None), (2, b, "unchecked", None), (3, a, "unchecked", None)],
    )


LAYOUTS: dict[str, Builder] = {
    "zip": _zip,
    "wheel_jar": _wheel_jar,
    "gz": _gz,
    "tar_gz": _tar_gz,
    "base64": _base64,
    "utf16": _utf16,
    "framed": _framed,
    "percent": _percent,
    "escapes": _escapes,
    "hex": _hex,
    "mime": _mime,
    "utf16be": _utf16be,
    "utf32": _utf32,
    "helm": _helm,
    "zstd": _stream_of(mu.zstd_log, "logs/app.log.1.zst", "zstd"),
    "lz4": _stream_of(mu.lz4_log, "logs/app.log.1.lz4", "lz4"),
    "sevenz": _tools(mu.sevenz, "backup/etc.7z"),
    "deb": _tools(lambda k, t: mu.deb(k, t), "dist/app_1.0_all.deb"),
    "rpm": _tools(mu.rpm, "dist/app-1.0-1.noarch.rpm"),
    "crx": _member_of(mu.crx, "ext/app.crx"),
    "pdf": _member_of(mu.pdf, "docs/runbook.pdf"),
    "sqlite": _tools(mu.sqlite_db, "data/app.db"),
    "docx": _member_of(mu.docx, "docs/runbook.docx", "text"),
    "plain": _plain,
    "verify": _verify,
    "fail_on_live": _fail_on_live,
    "fail_on_live_or_unknown": _fail_on_live_or_unknown,
    "allow_paths": _allow_paths,
    "allow_regexes": _allow_regexes,
    "allow_commits": _allow_commits,
    "inline_allow": _inline_allow,
    "baseline": _baseline,
    "commit_message": _commit_message,
    "same_key": _same_key,
    "verbose": _verbose,
}


# --- capabilities (columns) ------------------------------------------------------------------

TOKEN_RULES = """
[[rules]]
id = "matrix-token"
description = "a token of another service: the Kubeadapt API cannot check it"
regex = '''(?:^|[^a-z0-9_])(mxt_[a-z0-9]{40})(?:[^a-z0-9]|$)'''
secretGroup = 1
entropy = 3.0
keywords = ["mxt_"]
"""

ALLOW_PATHS = "[[allowlists]]\ndescription = 'test fixtures'\npaths = ['''^fixtures/''']\n"
ALLOW_REGEXES = "[[allowlists]]\nregexTarget = 'line'\nregexes = ['''FIXTURE-ONLY''']\n"


@dataclass(frozen=True)
class Cap:
    name: str
    layout: str
    fmt: str = "json"  # the report checked
    to_file: bool = False  # through -o FILE instead of stdout
    verify: bool = False  # against a loopback API answering by key
    fail_on: str = "any"
    rules: Callable[[mu.Built], str] | None = None  # a --rules file (gitleaks format)
    baseline: bool = False
    grouped: bool = False  # SARIF: one result per key, its other places related locations
    verbose: bool = False  # -v: the findings are the same, each drop is a line on stderr

    @property
    def is_format(self) -> bool:
        """A format cell checks one report's exact shape; the others the findings (as JSON)."""
        return self.layout == "plain"


def _format_caps() -> list[Cap]:
    return [
        Cap(f"{fmt}_{'file' if to_file else 'stdout'}", "plain", fmt, to_file)
        for fmt in ("text", "json", "sarif", "github", "keys")
        for to_file in (False, True)
    ]


CAPS: dict[str, Cap] = {
    c.name: c
    for c in [
        Cap("zip", "zip"),
        Cap("wheel_jar", "wheel_jar"),
        Cap("gz", "gz"),
        Cap("tar_gz", "tar_gz"),
        Cap("base64", "base64"),
        Cap("utf16", "utf16"),
        Cap("framed", "framed"),
        Cap("percent", "percent"),
        Cap("escapes", "escapes"),
        Cap("hex", "hex"),
        Cap("mime", "mime"),
        Cap("utf16be", "utf16be"),
        Cap("utf32", "utf32"),
        Cap("helm", "helm"),
        Cap("zstd", "zstd"),
        Cap("lz4", "lz4"),
        Cap("sevenz", "sevenz"),
        Cap("deb", "deb"),
        Cap("rpm", "rpm"),
        Cap("crx", "crx"),
        Cap("pdf", "pdf"),
        Cap("sqlite", "sqlite"),
        Cap("docx", "docx"),
        Cap("verify", "verify", verify=True),
        Cap("fail_on_live", "fail_on_live", verify=True, fail_on="live"),
        Cap(
            "fail_on_live_or_unknown",
            "fail_on_live_or_unknown",
            verify=True,
            fail_on="live-or-unknown",
            rules=lambda _b: TOKEN_RULES,
        ),
        Cap("allow_paths", "allow_paths", rules=lambda _b: ALLOW_PATHS),
        Cap("allow_regexes", "allow_regexes", rules=lambda _b: ALLOW_REGEXES),
        Cap(
            "allow_commits",
            "allow_commits",
            rules=lambda b: f'[[allowlists]]\ncommits = ["{b.shas[0]}"]\n',
        ),
        Cap("inline_allow", "inline_allow"),
        Cap("baseline", "baseline", baseline=True),
        Cap("commit_message", "commit_message"),
        Cap("sarif_one_result_per_key", "same_key", "sarif", to_file=True, grouped=True),
        Cap("verbose", "verbose", verbose=True),
        *_format_caps(),
    ]
}


# --- the session: every layout built once, in each place a source reads it from -------------


@dataclass
class Matrix:
    root: Path
    env: dict[str, str]
    _layouts: dict[str, mu.Layout] = field(default_factory=dict)
    _trees: dict[str, Path] = field(default_factory=dict)
    _repos: dict[str, mu.Built] = field(default_factory=dict)
    _staged: dict[str, Path] = field(default_factory=dict)
    _baseline: Path | None = None
    _clean: Path | None = None

    def layout(self, name: str) -> mu.Layout:
        if name not in self._layouts:
            self._layouts[name] = LAYOUTS[name](random.Random(f"kascan-matrix:{name}"))
        return self._layouts[name]

    def tree(self, name: str) -> Path:
        """The layout as a directory (no .git)."""
        if name not in self._trees:
            top = self.root / "trees" / name
            for rel, data in self.layout(name).files.items():
                p = top / rel
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(data)
            self._trees[name] = top
        return self._trees[name]

    def repo(self, name: str) -> mu.Built:
        """The layout committed: a README commit, then one commit per group of files."""
        if name not in self._repos:
            repo = GitRepo(self.root / "repos" / name, self.env)
            base = repo.commit("initial commit", {"README.md": "# service\n"})
            lay = self.layout(name)
            shas = [
                repo.commit(lay.message(i) or f"add {', '.join(n for n, _ in group)}", dict(group))
                for i, group in enumerate(lay.commits)
            ]
            self._repos[name] = mu.Built(repo.path, base, tuple(shas))
        return self._repos[name]

    def staged(self, name: str) -> Path:
        """The layout added to the index on top of a README commit, not committed."""
        if name not in self._staged:
            repo = GitRepo(self.root / "staged" / name, self.env)
            repo.commit("initial commit", {"README.md": "# service\n"})
            for rel, data in self.layout(name).files.items():
                repo.write(rel, data)
            repo.git("add", "-A")
            self._staged[name] = repo.path
        return self._staged[name]

    def clean_repo(self) -> Path:
        """A second repository for sweeps: two commits, no key."""
        if self._clean is None:
            repo = GitRepo(self.root / "repos" / "zz-clean", self.env)
            repo.commit("initial commit", {"README.md": "# other\n"})
            repo.commit("docs", {"docs/index.md": "nothing secret here\n"})
            self._clean = repo.path
        return self._clean

    def baseline(self) -> Path:
        """A JSON report from an earlier run, over a tree that held only the old key."""
        if self._baseline is None:
            old = next(e for e in self.layout("baseline").expect if e.drop == "baseline")
            top = self.root / "earlier"
            (top / "config").mkdir(parents=True)
            (top / APP).write_bytes(mu.env_lines([("OLD", old.key)]))
            out = self.root / "baseline.json"
            r = cli(self, "scan", ".", "-q", "-o", f"json:{out}", cwd=top)
            assert r.returncode == 1, r.output
            self._baseline = out
        return self._baseline


@pytest.fixture(scope="session")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Matrix:
    root = tmp_path_factory.mktemp("matrix")
    home = root / "home"
    (home / ".config").mkdir(parents=True)
    return Matrix(root, clean_env(home))


def cli(
    m: Matrix,
    *args: str | os.PathLike[str],
    cwd: Path,
    input: bytes | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> Result:
    env = {**m.env, **(extra_env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "kascan", *map(str, args)],
        cwd=cwd,
        input=input,
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )
    return Result(proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode())


# --- sources (rows) --------------------------------------------------------------------------


@dataclass(frozen=True)
class Opts:
    """What a cell asks for besides the report: passed as each source takes it."""

    rules: Path | None = None
    api_url: str | None = None  # --verify against this API
    fail_on: str = "any"
    baseline: Path | None = None
    verbose: bool = False

    def args(self, *, baseline: bool = True) -> list[str]:
        out: list[str] = ["-v"] if self.verbose else []
        if self.rules is not None:
            out += ["--rules", str(self.rules)]
        if self.api_url is not None:
            out += ["--verify", "--api-url", self.api_url]
        if self.fail_on != "any":
            out += ["--fail-on", self.fail_on]
        if baseline and self.baseline is not None:
            out += ["--baseline", str(self.baseline)]
        return out


@dataclass(frozen=True)
class Ask:
    """One cell's run: the layout, the options, and the report to check."""

    layout: str
    opts: Opts
    fmt: str
    to_file: bool
    cell: Path  # a fresh directory for this cell's reports
    findings: bool = True  # the findings are checked (as JSON), not a format

    def report_args(self) -> list[str]:
        if self.to_file:  # .txt on purpose: an explicit --format must win over the extension
            return ["-f", self.fmt, "-o", str(self.cell / "report.txt")]
        return ["-f", self.fmt]


@dataclass
class Outcome:
    result: Result
    report: str  # the report checked: stdout or the -o file
    repo: str | None  # the repository label findings carry (sweeps, merge)
    outputs: dict[str, str] | None = None  # the Action's step outputs


def _report(ask: Ask, r: Result) -> str:
    if ask.to_file:
        p = ask.cell / "report.txt"
        return p.read_text("utf-8") if p.exists() else ""
    return r.stdout


def _scan_tree(m: Matrix, ask: Ask) -> Outcome:
    top = m.tree(ask.layout)
    r = cli(m, "scan", ".", *ask.opts.args(), *ask.report_args(), cwd=top)
    return Outcome(r, _report(ask, r), None)


def _scan_file(m: Matrix, ask: Ask) -> Outcome:
    top, main = m.tree(ask.layout), m.layout(ask.layout).main
    r = cli(m, "scan", main, *ask.opts.args(), *ask.report_args(), cwd=top)
    return Outcome(r, _report(ask, r), None)


def _scan_stdin(m: Matrix, ask: Ask) -> Outcome:
    lay = m.layout(ask.layout)
    args = ["scan", "-", "--stdin-name", lay.main, *ask.opts.args(), *ask.report_args()]
    r = cli(m, *args, cwd=ask.cell, input=lay.files[lay.main])
    return Outcome(r, _report(ask, r), None)


def _git_history(m: Matrix, ask: Ask) -> Outcome:
    b = m.repo(ask.layout)
    r = cli(m, "git", b.path, *ask.opts.args(), *ask.report_args(), cwd=ask.cell)
    return Outcome(r, _report(ask, r), None)


_BUNDLES: dict[Path, Path] = {}


def _git_bundle(m: Matrix, ask: Ask) -> Outcome:
    """The same history carried in a git bundle file (``git bundle create --all``)."""
    b = m.repo(ask.layout)
    bundle = _BUNDLES.get(b.path)
    if bundle is None:
        bundle = b.path.parent / f"{b.path.name}.bundle"
        subprocess.run(
            ["git", "-C", str(b.path), "bundle", "create", str(bundle), "--all"],
            capture_output=True,
            check=True,
        )
        _BUNDLES[b.path] = bundle
    r = cli(m, "git", bundle, *ask.opts.args(), *ask.report_args(), cwd=ask.cell)
    return Outcome(r, _report(ask, r), None)


def _git_staged(m: Matrix, ask: Ask) -> Outcome:
    top = m.staged(ask.layout)
    r = cli(m, "git", "--staged", *ask.opts.args(), *ask.report_args(), cwd=top)
    return Outcome(r, _report(ask, r), None)


def _git_range(m: Matrix, ask: Ask) -> Outcome:
    b = m.repo(ask.layout)
    span = f"{b.base}..{b.head}"
    r = cli(m, "git", b.path, "--range", span, *ask.opts.args(), *ask.report_args(), cwd=ask.cell)
    return Outcome(r, _report(ask, r), None)


def _git_pre_push(m: Matrix, ask: Ask) -> Outcome:
    b = m.repo(ask.layout)
    refs = {"PRE_COMMIT_FROM_REF": b.base, "PRE_COMMIT_TO_REF": b.head}
    args = ["git", "--pre-push", *ask.opts.args(), *ask.report_args()]
    r = cli(m, *args, cwd=b.path, extra_env=refs)
    return Outcome(r, _report(ask, r), None)


def _sweep(m: Matrix, ask: Ask, url: bool) -> Outcome:
    b = m.repo(ask.layout)
    repos = (
        [b.path.as_uri(), m.clean_repo().as_uri()] if url else [str(b.path), str(m.clean_repo())]
    )
    r = cli(m, "git", *repos, *ask.opts.args(), *ask.report_args(), cwd=ask.cell)
    return Outcome(r, _report(ask, r), repos[0])


def _merge(m: Matrix, ask: Ask) -> Outcome:
    """Two shards of a sweep (one holds the repository, the other none), merged; the scan options
    go to the shards, the baseline, --fail-on and the report to the merge."""
    b = m.repo(ask.layout)
    shards = []
    for i in range(2):
        out = ask.cell / f"shard-{i}.json"
        args = ["git", str(b.path), "--shard", f"{i}/2", *ask.opts.args(baseline=False)]
        r = cli(m, *args, "-q", "-o", f"json:{out}", cwd=ask.cell)
        assert r.returncode in (0, 1) and out.exists(), r.output
        shards.append(out)
    extra = ["--fail-on", ask.opts.fail_on] if ask.opts.fail_on != "any" else []
    if ask.opts.baseline is not None:
        extra += ["--baseline", str(ask.opts.baseline)]
    r = cli(m, "merge", *shards, *extra, *ask.report_args(), cwd=ask.cell)
    return Outcome(r, _report(ask, r), str(b.path))


def _action(m: Matrix, ask: Ask, event: str) -> Outcome:
    """``python -m kascan.action`` as the runner starts it, with a real event payload file."""
    b = m.repo(ask.layout)
    if event == "push":
        payload: dict[str, object] = {
            "ref": "refs/heads/main", "before": b.base, "after": b.head, "created": False,
        }  # fmt: skip
    else:
        payload = {
            "action": "synchronize",
            "number": 7,
            "pull_request": {"number": 7, "base": {"sha": b.base}, "head": {"sha": b.head}},
        }
    runner = ask.cell / "runner"
    runner.mkdir()
    (runner / "event.json").write_text(json.dumps(payload))
    out, summary = runner / "output.txt", runner / "summary.md"
    out.touch()
    summary.touch()
    args: list[str] = []
    if ask.opts.rules is not None:
        args += ["--rules", str(ask.opts.rules)]
    if ask.opts.verbose:
        args.append("-v")
    report = ask.cell / "report.txt"
    if ask.to_file:
        args += ["-o", f"{ask.fmt}:{report}"]
    elif ask.findings:
        args += ["-o", f"json:{report}"]
    elif ask.fmt != "github":
        args += ["-f", ask.fmt]  # cannot apply: the Action's stdout is its annotations
    env = {
        **m.env,
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": event,
        "GITHUB_EVENT_PATH": str(runner / "event.json"),
        "GITHUB_WORKSPACE": str(b.path),
        "GITHUB_OUTPUT": str(out),
        "GITHUB_STEP_SUMMARY": str(summary),
        "RUNNER_TEMP": str(runner),
        "PYTHONPATH": str(ROOT),
        "INPUT_SARIF_FILE": str(ask.cell / "kascan.sarif"),
        "INPUT_ARGS": shlex.join(args),
    }
    if ask.opts.api_url is not None:
        env |= {"INPUT_VERIFY": "true", "INPUT_API_URL": ask.opts.api_url}
    if ask.opts.fail_on != "any":
        env["INPUT_FAIL_ON"] = ask.opts.fail_on
    if ask.opts.baseline is not None:
        env["INPUT_BASELINE"] = str(ask.opts.baseline)
    proc = subprocess.run(
        [sys.executable, "-m", "kascan.action"],
        cwd=b.path,
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    r = Result(proc.returncode, proc.stdout.decode(), proc.stderr.decode())
    if ask.to_file or ask.findings:
        text = report.read_text("utf-8") if report.exists() else ""
    else:
        text = r.stdout
    outputs = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    return Outcome(r, text, None, outputs)


@dataclass(frozen=True)
class Source:
    run: Callable[[Matrix, Ask], Outcome]
    commits: bool = False  # findings name the commit that introduced the key
    main_only: bool = False  # reads only the layout's main file


SOURCES: dict[str, Source] = {
    "tree": Source(_scan_tree),
    "file": Source(_scan_file, main_only=True),
    "stdin": Source(_scan_stdin, main_only=True),
    "history": Source(_git_history, commits=True),
    "bundle": Source(_git_bundle, commits=True),
    "staged": Source(_git_staged),
    "range": Source(_git_range, commits=True),
    "pre_push": Source(_git_pre_push, commits=True),
    "sweep_paths": Source(lambda m, a: _sweep(m, a, url=False), commits=True),
    "sweep_urls": Source(lambda m, a: _sweep(m, a, url=True), commits=True),
    "merge": Source(_merge, commits=True),
    "action_push": Source(lambda m, a: _action(m, a, "push"), commits=True),
    "action_pr": Source(lambda m, a: _action(m, a, "pull_request"), commits=True),
}
assert tuple(SOURCES) == ALL_SOURCES


# --- what a cell must see ----------------------------------------------------------------------

Row = tuple[str, str | None, str, int, int, str | None, str | None, str]


def expected(
    m: Matrix, source: Source, layout: str, repo: str | None
) -> tuple[list[Row], Counter[str]]:
    """The findings (rule, repo, path, line, column, decoded, commit, status) and the drops."""
    lay = m.layout(layout)
    shas = m.repo(layout).shas if source.commits else None
    rows: list[Row] = []
    drops: Counter[str] = Counter()
    for e in lay.expect:
        if source.main_only and e.file != lay.main:
            continue
        if e.message and shas is None:
            continue  # no commits, no messages
        if e.drop is not None and not (layout == "allow_commits" and not source.commits):
            drops[e.drop] += 1
            continue
        commit = shas[lay.commit_index(e.file)] if shas is not None else None
        path = e.path.format(commit[:12]) if e.message and commit else e.path
        rows.append((e.rule, repo, path, e.line, e.column, e.decoded, commit, e.status))
    return sorted(rows, key=_row_key), drops


def _row_key(row: Row) -> tuple[str, ...]:
    return tuple("" if v is None else f"{v:08d}" if isinstance(v, int) else v for v in row)


def got_rows(doc: Mapping[str, object]) -> list[Row]:
    found = doc["findings"]
    assert isinstance(found, list)
    rows: list[Row] = [
        (
            f["rule_id"],
            f["repo"],
            f["path"],
            f["line"],
            f["column"],
            f["decoded"],
            f["commit"],
            f["verification"]["status"],
        )
        for f in found
    ]
    return sorted(rows, key=_row_key)


def exit_status(rows: list[Row], fail_on: str) -> int:
    statuses = {r[7] for r in rows}
    if fail_on == "live":
        return 1 if statuses & {"live", "live-limited"} else 0
    if fail_on == "live-or-unknown":
        return 1 if statuses & {"live", "live-limited", "unknown", "unchecked"} else 0
    return 1 if rows else 0


# --- the matrix --------------------------------------------------------------------------------


def _params() -> Iterator[object]:
    for s in SOURCES:
        for c in CAPS:
            marks = []
            reason = KNOWN_FAILURES.get((s, c))
            if reason is not None:
                marks.append(pytest.mark.xfail(strict=True, reason=reason))
            yield pytest.param(s, c, id=f"{s}-{c}", marks=marks)


def test_known_failures_name_real_cells() -> None:
    for s, c in (*KNOWN_FAILURES, *NOT_APPLICABLE):
        assert s in SOURCES and c in CAPS, (s, c)


@pytest.mark.parametrize(("source_name", "cap_name"), list(_params()))
def test_cell(
    matrix: Matrix,
    make_api: Callable[..., Api],  # noqa: F811
    tmp_path: Path,
    source_name: str,
    cap_name: str,
) -> None:
    source, cap = SOURCES[source_name], CAPS[cap_name]
    lay = matrix.layout(cap.layout)
    api: Api | None = None
    if cap.verify:
        how = {"live": "live", "inactive": "inactive"}
        api = make_api({e.key: how[e.status] for e in lay.expect if e.status in how})
    rules = None
    if cap.rules is not None:
        rules = tmp_path / "rules.toml"
        rules.write_text(cap.rules(matrix.repo(cap.layout)))
    opts = Opts(
        rules=rules,
        api_url=api.url if api is not None else None,
        fail_on=cap.fail_on,
        baseline=matrix.baseline() if cap.baseline else None,
        verbose=cap.verbose,
    )
    report = cap.is_format or cap.grouped
    ask = Ask(cap.layout, opts, cap.fmt, cap.to_file, tmp_path, findings=not report)
    out = source.run(matrix, ask)
    out.result.assert_no_leak(*lay.keys)
    for k in lay.keys:  # nor in a report file (none of these runs asks for --show-secrets)
        assert k[len(PREFIX) :] not in out.report, "key body leaked into the report"
    if cap_name == "allow_commits" and not source.commits:
        # no commit to match: the allowlist cannot apply, and the scan says so
        assert "an allowlist by commits cannot apply here" in out.result.stderr, out.result.output
    refused = NOT_APPLICABLE.get((source_name, cap_name))
    if refused is not None:
        check_refused(out, refused)
    elif cap.grouped:
        check_grouped(matrix, source, cap, out)
    elif cap.is_format:
        check_format(matrix, source, cap, out)
    else:
        check_findings(matrix, source, cap, out, api)
    if cap.verbose:
        check_verbose(matrix, source_name, source, cap, out)


def check_refused(out: Outcome, pattern: str) -> None:
    r = out.result
    assert r.returncode == 2, f"exit {r.returncode}, want a refusal (exit 2)\n{r.output}"
    errors = [line for line in r.output.splitlines() if ERROR_LINE.match(line)]
    assert len(errors) == 1, r.output
    assert re.search(pattern, errors[0], re.I), errors[0]


def check_findings(m: Matrix, source: Source, cap: Cap, out: Outcome, api: Api | None) -> None:
    r = out.result
    want, drops = expected(m, source, cap.layout, out.repo)
    assert out.report, f"no JSON report (exit {r.returncode})\n{r.output}"
    doc = json.loads(out.report)
    assert got_rows(doc) == want, r.stderr
    summary = doc["summary"]
    assert isinstance(summary, dict)
    assert summary["dropped"] == dict(drops)
    assert summary["reported"] == len(want)
    assert r.returncode == exit_status(want, cap.fail_on), r.output
    if out.outputs is not None:
        assert out.outputs["findings"] == str(len(want))
        live = sum(1 for row in want if row[7] in ("live", "live-limited"))
        assert out.outputs["live"] == str(live)
    if api is not None:  # exactly one request per distinct key found, none for anything else
        lay = m.layout(cap.layout)
        found = {
            e.key
            for e in lay.expect
            if e.rule == RULE and (e.file == lay.main or not source.main_only)
        }
        assert api.seen_keys() == found
        for k in found:
            assert api.count(k) == 1, f"{api.count(k)} requests for one key, want 1"


def check_grouped(m: Matrix, source: Source, cap: Cap, out: Outcome) -> None:
    """SARIF: one result per key (in each repository), at its first place in report order, each
    other place a related location; as many places as the JSON report has findings."""
    r = out.result
    assert r.returncode == 1, r.output
    doc = json.loads(out.report)
    assert_valid_sarif(doc)
    rows, _ = expected(m, source, cap.layout, out.repo)
    base = "" if out.repo is None else f"{_repo_dir(out.repo)}/"
    expect = m.layout(cap.layout).expect
    want: dict[str, list[tuple[str, int, int]]] = {}
    for _rule, _repo, path, line, col, *_ in rows:
        key = next(e.key for e in expect if (e.line, e.column) == (line, col))
        want.setdefault(redacted(key), []).append((base + path, line, col))
    got = {}
    for res in results(doc):
        props = res["properties"]
        assert isinstance(props, dict)
        places = [(p, reg["startLine"], reg["startColumn"]) for p, reg, _ in every_location(res)]
        assert props["locations"] == len(places)
        if len(places) > 1:
            assert f"The same key is in {len(places)} places" in str(res["message"])
        got[props["secret"]] = places
    assert got == want


def _repo_dir(repo: str) -> str:
    """Where a repository's files are in a SARIF report over several: its path, without ``/``."""
    from urllib.parse import unquote, urlsplit

    return (unquote(urlsplit(repo).path) if "://" in repo else repo).lstrip("/")


def check_verbose(m: Matrix, source_name: str, source: Source, cap: Cap, out: Outcome) -> None:
    """The findings and drops of a -v run are the ones every cell expects (checked above); each
    drop is also one line on stderr, naming where and why, the key only redacted (a merge's
    drops happen in its shards, whose stderr is theirs)."""
    lines = [ln for ln in out.result.stderr.splitlines() if ln.startswith("kascan: dropped ")]
    if source_name == "merge":
        assert not lines, lines
        return
    lay = m.layout(cap.layout)
    shas = m.repo(cap.layout).shas if source.commits else None
    words = {"placeholder": "a placeholder", "inline-allow": "a kascan:allow comment"}
    want = []
    for e in lay.expect:
        if e.drop is None or (source.main_only and e.file != lay.main):
            continue
        repo = f"{out.repo}:" if out.repo else ""
        commit = f" (commit {shas[lay.commit_index(e.file)][:12]})" if shas is not None else ""
        want.append(
            f"kascan: dropped a candidate in {repo}{e.path}:{e.line}:{e.column}{commit} "
            f"({redacted(e.key)}): {words[e.drop]}"
        )
    assert len(lines) == len(want), out.result.stderr
    for line, head in zip(sorted(lines), sorted(want)):
        assert line.startswith(head), (line, head)


def check_format(m: Matrix, source: Source, cap: Cap, out: Outcome) -> None:
    r = out.result
    ((rule, repo, path, line, col, _dec, commit, _status),), _ = expected(
        m, source, cap.layout, out.repo
    )
    (e,) = m.layout(cap.layout).expect
    red = redacted(e.key)
    text = out.report
    assert r.returncode == 1, r.output
    assert text, f"empty {cap.fmt} report\n{r.output}"
    if cap.fmt == "text":
        first = text.splitlines()[0]
        want = f"{repo + ':' if repo else ''}{path}:{line}:{col}  {rule}  {red}"
        if commit is None:
            assert first == want
        else:
            assert first.startswith(f"{want}  commit {commit[:12]} by Test Author on 2024-01-"), (
                first
            )
        assert "kascan: 1 candidate; 1 reported." in (text if cap.to_file else r.output)
    elif cap.fmt == "json":
        doc = json.loads(text)
        assert sorted(doc) == ["command", "findings", "repos", "summary", "tool"]
        (f,) = doc["findings"]
        assert (f["repo"], f["path"], f["line"], f["column"], f["commit"]) == (
            repo,
            path,
            line,
            col,
            commit,
        )
        assert f["secret"] == red and f["end_column"] == col + len(e.key)
    elif cap.fmt == "sarif":
        doc = json.loads(text)
        assert_valid_sarif(doc)
        (res,) = results(doc)  # one run, one key: one result (its other places related)
        uri, region = location(res)
        # over several repositories (a sweep, a merge) a file is under its repository's directory
        want = path if repo is None else f"{_repo_dir(repo)}/{path}"
        assert (uri, region["startLine"], region["startColumn"]) == (want, line, col)
        assert res["ruleId"] == rule
        assert repo is None or res["properties"]["repo"] == repo  # type: ignore[index]
        message = res["message"]
        assert isinstance(message, dict)
        msg = str(message["text"])
        assert red in msg and (commit is None or commit[:12] in msg)
    elif cap.fmt == "github":
        notes = [x for x in text.splitlines() if x.startswith("::error ")]
        assert len(notes) == 1, text
        kind, props, data = unescape_command(notes[0])
        assert kind == "error"
        assert props["file"] == path and props["line"] == str(line) and props["col"] == str(col)
        assert props["endColumn"] == str(col + len(e.key))
        assert red in data and (commit is None or f"commit {commit[:12]}" in data)
        assert repo is None or f"in repository {repo}" in data
    elif cap.fmt == "keys":
        lines = text.splitlines()
        assert lines[0].startswith(f"{red}  UNCHECKED  1 location"), lines[0]
        where = f"  {repo + ': ' if repo else ''}{path}:{line}:{col}"
        assert where in lines, text
        if commit is not None:
            assert any(x.startswith("  first commit: ") and commit[:12] in x for x in lines), text
    else:  # pragma: no cover
        raise AssertionError(cap.fmt)
