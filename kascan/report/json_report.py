"""Machine-readable report: ``{"tool": …, "findings": […], "summary": {…}}``, sorted, stable."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TextIO

from kascan import __version__
from kascan.model import Finding
from kascan.report import ReportContext, RepoSummary, shown


def finding_dict(f: Finding, ctx: ReportContext) -> dict[str, object]:
    v = f.verification
    verification: dict[str, object] = {"status": v.status}
    if v.detail:
        verification["detail"] = v.detail
    if v.organization:
        verification["organization"] = v.organization
    if v.organization_id:
        verification["organization_id"] = v.organization_id
    return {
        "rule_id": f.rule_id,
        "repo": f.repo,
        "path": f.path,
        "line": f.line,
        "column": f.column,
        "end_column": f.end_column,
        "secret": shown(f, ctx),
        "fingerprint": f.fingerprint,
        "decoded": f.decoded,
        "commit": f.commit.sha if f.commit else None,
        "author": f.commit.author if f.commit else None,
        "email": f.commit.email if f.commit else None,
        "date": f.commit.date if f.commit else None,
        "verification": verification,
    }


def repo_dict(r: RepoSummary) -> dict[str, object]:
    return {
        "repo": r.repo,
        "commits": r.commits,
        "blobs": r.blobs,
        "findings": r.findings,
        "live": r.live,
        "status": r.status,
        "error": r.error,
    }


def render(findings: Sequence[Finding], out: TextIO, ctx: ReportContext) -> None:
    doc = {
        "tool": {"name": "kascan", "version": __version__},
        "command": ctx.command,
        "findings": [finding_dict(f, ctx) for f in sorted(findings, key=Finding.sort_key)],
        "summary": ctx.stats.as_dict(),
    }
    doc["repos"] = [repo_dict(r) for r in ctx.repos]  # always there: [] for one source
    json.dump(doc, out, indent=2, ensure_ascii=False)
    out.write("\n")
