"""Machine-readable report: ``{"tool": …, "findings": […], "summary": {…}}``, sorted, stable.

Every string is valid Unicode: a name that is not UTF-8 (a file or archive member name read
with ``surrogateescape``) is written with each undecodable byte as the four characters ``\\xNN``,
and its exact bytes go in ``path_bytes`` (``repo_bytes``), base64, next to it; readers that need
the name as the file system has it decode that field (``kascan merge`` does). Every string is
also scrubbed (:func:`kascan.report.clean_json`): keys, tokens and URL passwords in names never
appear in full; the finding's ``secret`` is the full key only with ``--show-secrets``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TextIO

from kascan import __version__
from kascan.model import Finding
from kascan.output import has_surrogates, raw_bytes
from kascan.report import (
    ReportContext,
    RepoSummary,
    clean_context,
    clean_finding,
    clean_json,
    clean_repo,
    shown,
)

BYTES_FIELDS = ("path", "repo")  # names that get a ``<name>_bytes`` twin when not UTF-8


def _lossless(d: dict[str, object]) -> dict[str, object]:
    """``d`` cleaned (:func:`clean_json`), with ``path_bytes``/``repo_bytes`` (base64 of the
    exact bytes) after a name that had undecodable bytes; the key in ``secret`` is kept."""
    import base64

    out: dict[str, object] = {}
    for k, v in d.items():
        out[k] = v if k == "secret" else clean_json(v)
        if k in BYTES_FIELDS and isinstance(v, str) and has_surrogates(v):
            out[k + "_bytes"] = base64.b64encode(raw_bytes(v)).decode("ascii")
    return out


def finding_dict(f: Finding, ctx: ReportContext) -> dict[str, object]:
    secret = shown(f, ctx)
    f = clean_finding(f)
    v = f.verification
    verification: dict[str, object] = {"status": v.status}
    if v.detail:
        verification["detail"] = v.detail
    if v.organization:
        verification["organization"] = v.organization
    if v.organization_id:
        verification["organization_id"] = v.organization_id
    return _lossless(
        {
            "rule_id": f.rule_id,
            "repo": f.repo,
            "path": f.path,
            "line": f.line,
            "column": f.column,
            "end_column": f.end_column,
            "secret": secret,
            "fingerprint": f.fingerprint,
            "decoded": f.decoded,
            "commit": f.commit.sha if f.commit else None,
            "author": f.commit.author if f.commit else None,
            "email": f.commit.email if f.commit else None,
            "date": f.commit.date if f.commit else None,
            "verification": verification,
        }
    )


def repo_dict(r: RepoSummary) -> dict[str, object]:
    r = clean_repo(r)
    return _lossless(
        {
            "repo": r.repo,
            "commits": r.commits,
            "blobs": r.blobs,
            "findings": r.findings,
            "live": r.live,
            "status": r.status,
            "error": r.error,
        }
    )


def render(findings: Sequence[Finding], out: TextIO, ctx: ReportContext) -> None:
    ctx = clean_context(ctx)
    doc: dict[str, object] = {
        "tool": {"name": "kascan", "version": __version__},
        "command": ctx.command,
        "findings": [finding_dict(f, ctx) for f in sorted(findings, key=Finding.sort_key)],
        "summary": clean_json(ctx.stats.as_dict()),
    }
    doc["repos"] = [repo_dict(r) for r in ctx.repos]  # always there: [] for one source
    json.dump(doc, out, indent=2, ensure_ascii=False)
    out.write("\n")
