"""Reporters: each module has ``render(findings, out, ctx) -> None``; chosen ones import lazily.

Every renderer passes what it shows through the report boundary here first: :func:`clean_finding`
and :func:`clean_context` apply the one redaction (:func:`kascan.model.scrub`) to every name,
label and free text a report can carry (paths, repositories and clone URLs, rule ids and
descriptions, authors, notes, ``--sarif-category``, ``--path-prefix``), so a key or a token in a
file name, a URL or a merged report never appears in full; only ``shown()`` may give the
finding's own key, and only under ``--show-secrets``. :func:`clean_json` does the same to a whole
JSON document, as the last step before it is written.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, TextIO

from kascan.model import Finding, scrub
from kascan.output import unsurrogate
from kascan.stats import ScanStats

if TYPE_CHECKING:
    from kascan.rules import Rule

FORMATS = ("text", "json", "sarif", "github", "keys", "html")
EXTENSIONS = {".json": "json", ".sarif": "sarif", ".txt": "text", ".log": "text"}
EXTENSIONS |= {".html": "html", ".htm": "html"}


@dataclass(frozen=True)
class RepoSummary:
    """One repository of a multi-repository run (``kascan git`` over several repos, ``merge``)."""

    repo: str
    commits: int = 0
    blobs: int = 0
    findings: int = 0
    live: int = 0
    status: str = "scanned"  # scanned, reused (unchanged since the last sweep), failed
    error: str | None = None


@dataclass(frozen=True)
class ReportContext:
    stats: ScanStats
    show_secrets: bool = False
    color: bool = False
    command: str = "scan"
    verified: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)  # what could not be scanned, etc.
    rules: tuple[Rule, ...] = ()  # the rules in force (SARIF describes the ones used)
    sarif_category: str | None = None  # SARIF runAutomationDetails.id (code scanning category)
    path_prefix: str = ""  # SARIF/GitHub paths: prepended to make them repository-relative
    repos: tuple[RepoSummary, ...] = ()  # per-repository summary of a multi-repository run
    elapsed: float | None = None  # seconds the run took (the text summary says it)


Renderer = Callable[[Sequence[Finding], TextIO, ReportContext], None]


def renderer(fmt: str) -> Renderer:
    module = importlib.import_module(f"kascan.report.{fmt}_report")
    render: Renderer = module.render
    return render


def shown(finding: Finding, ctx: ReportContext) -> str:
    """The key as a report may show it: redacted (and scrubbed) unless ``--show-secrets``."""
    if ctx.show_secrets:
        return unsurrogate(finding.secret.value)
    return unsurrogate(scrub(finding.secret.redacted))


def _opt(text: str | None) -> str | None:
    return None if text is None else scrub(text)


def clean_finding(f: Finding) -> Finding:
    """``f`` with every name and text it carries scrubbed (the key itself is left to ``shown``);
    ``f`` itself when there is nothing to hide (the common case: no copy)."""
    c, v = f.commit, f.verification
    rule_id, path, repo, decoded = scrub(f.rule_id), scrub(f.path), _opt(f.repo), _opt(f.decoded)
    changed = rule_id is not f.rule_id or path is not f.path
    changed = changed or repo is not f.repo or decoded is not f.decoded
    commit = c
    if c is not None:
        sha, author, email = scrub(c.sha), scrub(c.author), scrub(c.email)
        if sha is not c.sha or author is not c.author or email is not c.email:
            commit, changed = replace(c, sha=sha, author=author, email=email), True
    verification = v
    if v.detail or v.organization or v.organization_id:
        detail, org, org_id = _opt(v.detail), _opt(v.organization), _opt(v.organization_id)
        if detail is not v.detail or org is not v.organization or org_id is not v.organization_id:
            verification = replace(v, detail=detail, organization=org, organization_id=org_id)
            changed = True
    if not changed:
        return f
    return replace(
        f,
        rule_id=rule_id,
        path=path,
        repo=repo,
        decoded=decoded,
        commit=commit,
        verification=verification,
    )


def clean_repo(r: RepoSummary) -> RepoSummary:
    return replace(r, repo=scrub(r.repo), status=scrub(r.status), error=_opt(r.error))


def clean_context(ctx: ReportContext) -> ReportContext:
    """``ctx`` with its notes, labels, per-repository summaries and rules scrubbed."""
    return replace(
        ctx,
        notes=tuple(scrub(n) for n in ctx.notes),
        rules=tuple(
            replace(
                r,
                id=scrub(r.id),
                description=scrub(r.description),
                tags=tuple(scrub(t) for t in r.tags),
            )
            for r in ctx.rules
        ),
        sarif_category=_opt(ctx.sarif_category),
        path_prefix=scrub(ctx.path_prefix),
        repos=tuple(clean_repo(r) for r in ctx.repos),
        command=scrub(ctx.command),
    )


def clean_text(text: str) -> str:
    """Free text for a JSON report: scrubbed, and valid Unicode (no surrogate escapes)."""
    return unsurrogate(scrub(text))


def clean_json(value: object, _memo: dict[str, str] | None = None) -> object:
    """A JSON document with every string in it (keys too) passed through :func:`clean_text`."""
    memo: dict[str, str] = {} if _memo is None else _memo  # keys and values repeat a lot
    if isinstance(value, str):
        done = memo.get(value)
        if done is None:
            done = memo[value] = clean_text(value)
        return done
    if isinstance(value, dict):
        return {
            (clean_json(k, memo) if isinstance(k, str) else k): clean_json(v, memo)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [clean_json(v, memo) for v in value]
    return value
