"""One self-contained HTML page for people: a per-key table (status, repositories, first
introduction, every other place), a timeline of introductions and counts per repository, sortable
and filterable by a little inline script.

Safety: everything in the page that came from the scan (paths, repository names, author names and
emails, organization names; commit messages are never included) is either HTML-escaped by
:func:`html.escape` or carried in a JSON block whose ``<``, ``>`` and ``&`` are ``\\u`` escapes,
and put into the page with ``textContent`` only. A Content-Security-Policy allows only this
page's own script and style (by hash): the page loads nothing and sends nothing. Keys are
redacted unless ``--show-secrets``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from kascan import __version__
from kascan.model import STATUS_RANK, Finding
from kascan.report import ReportContext, RepoSummary, shown
from kascan.report.text_report import plural
from kascan.stats import human_bytes

_ASSETS = Path(__file__).with_name("assets")


def _asset(name: str) -> str:
    return (_ASSETS / name).read_text("utf-8")


def _json_for_script(doc: object) -> str:
    """JSON that cannot end the ``<script>`` element it sits in, nor open a comment or entity."""
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    return (
        text.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _csp_hash(source: str) -> str:
    import base64
    import hashlib

    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


def _loc(f: Finding) -> dict[str, object]:
    c = f.commit
    return {
        "repo": f.repo or "",
        "path": f.path,
        "line": f.line,
        "column": f.column,
        "commit": {"sha": c.sha, "author": c.author, "email": c.email, "date": c.date}
        if c
        else None,
    }


def _is_date(text: str) -> bool:
    from datetime import datetime

    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def page_data(findings: Sequence[Finding], ctx: ReportContext) -> dict[str, object]:
    from kascan.report.keys_report import key_rows

    rows = key_rows(findings)
    by_fp: dict[str, list[Finding]] = {}
    for f in sorted(findings, key=Finding.sort_key):
        by_fp.setdefault(f.fingerprint, []).append(f)
    keys = []
    intros = []
    for row in rows:
        key = shown(row.sample, ctx)
        first = row.first or by_fp[row.fingerprint][0]
        keys.append(
            {
                "status": row.verification.status,
                "rank": STATUS_RANK[row.verification.status],
                "organization": row.verification.organization or "",
                "key": key,
                "fingerprint": row.fingerprint,
                "repos": [r for r in row.locations if r],
                "first": _loc(first),
                "locations": [_loc(f) for f in by_fp[row.fingerprint]],
            }
        )
        if first.commit is not None and _is_date(first.commit.date):
            intros.append({"date": first.commit.date, "key": key, **_loc(first)})
    intros.sort(key=lambda x: str(x["date"]))
    return {"keys": keys, "repos": _repo_counts(findings, ctx.repos), "intros": intros}


def _repo_counts(
    findings: Sequence[Finding], repos: Sequence[RepoSummary]
) -> list[dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for r in repos:
        out[r.repo] = {
            "repo": r.repo,
            "commits": r.commits,
            "status": r.status,
            "error": r.error or "",
        }
    keys: dict[str, set[str]] = {}
    live: dict[str, set[str]] = {}
    n: dict[str, int] = {}
    for f in findings:
        repo = f.repo or ""
        keys.setdefault(repo, set()).add(f.fingerprint)
        if f.verification.status.startswith("live"):
            live.setdefault(repo, set()).add(f.fingerprint)
        n[repo] = n.get(repo, 0) + 1
    for repo in n:
        out.setdefault(repo, {"repo": repo, "commits": 0, "status": "scanned", "error": ""})
    for repo, d in out.items():
        d.update(
            keys=len(keys.get(repo, ())), live=len(live.get(repo, ())), findings=n.get(repo, 0)
        )
    return sorted(out.values(), key=lambda d: (-int(str(d["keys"])), str(d["repo"])))


def _summary(findings: Sequence[Finding], ctx: ReportContext) -> list[tuple[str, str]]:
    from html import escape

    s = ctx.stats
    distinct = len({f.fingerprint for f in findings})
    live = len({f.fingerprint for f in findings if f.verification.status.startswith("live")})
    repos = len({f.repo for f in findings if f.repo} | {r.repo for r in ctx.repos})
    cards = [("distinct keys", str(distinct)), ("findings", str(len(findings)))]
    if ctx.verified:
        cards.append(("live keys", str(live)))
    if repos:
        cards.append(("repositories", str(repos)))
    if "blobs" in s.extra:
        cards.append(("commits", str(s.extra.get("commits", 0))))
        cards.append(("blobs", str(s.extra["blobs"])))
    else:
        cards.append(("files", str(s.files)))
    cards.append(("scanned", human_bytes(s.bytes)))
    return [(escape(a), escape(b)) for a, b in cards]


def render(findings: Sequence[Finding], out: TextIO, ctx: ReportContext) -> None:
    from html import escape

    data = _json_for_script(page_data(findings, ctx))
    style, script = _asset("report.css"), _asset("report.js")
    csp = (
        "default-src 'none'; img-src data:; "
        f"style-src {_csp_hash(style)}; script-src {_csp_hash(script)}; "
        "form-action 'none'; base-uri 'none'"
    )
    cards = "".join(f"<div class=card><b>{v}</b>{k}</div>" for k, v in _summary(findings, ctx))
    s = ctx.stats
    dropped = ", ".join(f"{n} {why}" for why, n in sorted(s.dropped.items()) if n)
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(s.skipped.items()) if n)
    notes = [plural(s.candidates, "candidate") + (f", dropped {dropped}" if dropped else "")]
    if skipped:
        notes.append(f"skipped {skipped}")
    if s.unreadable:
        notes.append(f"WARNING: {s.unreadable} could not be read; the scan is incomplete")
    notes.extend(ctx.notes)
    notes_html = "".join(f"<li>{escape(n)}</li>" for n in notes)
    statuses = "".join(
        f"<option value={st}>{st}</option>"
        for st in ("live", "live-limited", "unknown", "unchecked", "inactive")
    )
    secrets = (
        "<p><b>This report shows full keys (--show-secrets): treat the file as a secret.</b></p>"
        if ctx.show_secrets
        else "<p class=muted>Keys are redacted (first four characters of the body); the "
        "fingerprint is the sha256 of the whole key.</p>"
    )
    out.write(
        f"""<!DOCTYPE html>
<html lang=en>
<head>
<meta charset=utf-8>
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name=referrer content=no-referrer>
<meta name=viewport content="width=device-width, initial-scale=1">
<title>kascan report: {len({f.fingerprint for f in findings})} keys</title>
<style>{style}</style>
</head>
<body>
<h1>kascan report</h1>
<div class=muted>kascan {escape(__version__)} · {escape(ctx.command)}</div>
<div class=cards>{cards}</div>
{secrets}
<noscript><p><b>The tables are drawn by this page's own script; without it, use
<code>-f json</code> or <code>-f keys</code>.</b></p></noscript>
<h2>Keys</h2>
<div class=controls>
<input type=search id=filter placeholder="Filter: path, repository, author, fingerprint…"
 aria-label="Filter keys">
<select id=status aria-label="Status"><option value="">any status</option>{statuses}</select>
<span id=shown class=muted></span>
</div>
<table id=keys>
<thead><tr><th>Status</th><th>Key</th><th>Repositories</th><th>First introduction</th>
<th>Where else it appears</th><th class=num>Places</th></tr></thead>
<tbody></tbody>
</table>
<h2>Timeline of introductions</h2>
<div id=timeline></div>
<h2>Per repository</h2>
<table id=repos>
<thead><tr><th>Repository</th><th class=num>Keys</th><th class=num>Live</th>
<th class=num>Findings</th><th class=num>Commits</th><th>Status</th></tr></thead>
<tbody></tbody>
</table>
<h2>Scan</h2>
<ul class=notes>{notes_html}</ul>
<script type="application/json" id="kascan-data">{data}</script>
<script>{script}</script>
</body>
</html>
"""
    )
