"""The per-key view for incident response: one block per distinct key (by fingerprint), live keys
first, with every repository and path it appears in and the first commit that introduced it.

Names, authors and organizations are scrubbed and escaped like the text report's."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TextIO

from kascan.model import STATUS_RANK, Commit, Finding, Verification
from kascan.output import escape
from kascan.report import ReportContext, clean_finding, shown
from kascan.stats import human_bytes


@dataclass
class KeyRow:
    fingerprint: str
    sample: Finding
    verification: Verification
    first: Finding | None = None  # the finding with the earliest commit
    locations: dict[str, list[str]] = field(default_factory=dict)  # repo -> "path:line:col"


def _when(c: Commit) -> tuple[int, float, str]:
    try:
        return (0, datetime.fromisoformat(c.date.replace("Z", "+00:00")).timestamp(), c.sha)
    except ValueError:
        return (1, 0.0, c.date + c.sha)


def key_rows(findings: Sequence[Finding]) -> list[KeyRow]:
    rows: dict[str, KeyRow] = {}
    for f in sorted(findings, key=Finding.sort_key):
        row = rows.get(f.fingerprint)
        if row is None:
            row = rows[f.fingerprint] = KeyRow(f.fingerprint, f, f.verification)
        if STATUS_RANK[f.verification.status] < STATUS_RANK[row.verification.status]:
            row.verification = f.verification  # one status per key: the most alarming seen
        if f.commit is not None and (
            row.first is None
            or row.first.commit is None
            or _when(f.commit) < _when(row.first.commit)
        ):
            row.first = f
        if f.secret.known and not row.sample.secret.known:
            row.sample = f  # a full key, should --show-secrets ask for it
        locs = row.locations.setdefault(f.repo or "", [])
        loc = f"{f.path}:{f.line}:{f.column}"
        if loc not in locs:
            locs.append(loc)
    return sorted(
        rows.values(),
        key=lambda r: (
            STATUS_RANK[r.verification.status],
            _when(r.first.commit) if r.first and r.first.commit else (2, 0.0, ""),
            r.fingerprint,
        ),
    )


def render(findings: Sequence[Finding], out: TextIO, ctx: ReportContext) -> None:
    findings = [clean_finding(f) for f in findings]  # the key itself is left to shown()
    rows = key_rows(findings)
    for row in rows:
        status = row.verification.status
        org = (
            f" [organization: {escape(row.verification.organization)}]"
            if row.verification.organization
            else ""
        )
        n_loc = sum(len(v) for v in row.locations.values())
        repos = [r for r in row.locations if r]
        where = f"{n_loc} location{'s' * (n_loc != 1)}"
        if repos:
            where += f" in {len(repos)} repo{'s' * (len(repos) != 1)}"
        out.write(
            f"{escape(shown(row.sample, ctx))}  {status.upper()}{org}  {where}  "
            f"{escape(row.fingerprint[:19])}…\n"
        )
        if row.first is not None and row.first.commit is not None:
            c = row.first.commit
            at = f"{row.first.repo}:{row.first.path}" if row.first.repo else row.first.path
            out.write(
                f"  first commit: {escape(c.date)} {escape(c.sha[:12])} by {escape(c.author)} "
                f"<{escape(c.email)}> in {escape(at)}\n"
            )
        for repo, locs in row.locations.items():
            out.write(escape(f"  {repo + ': ' if repo else ''}{', '.join(locs)}") + "\n")
    live = sum(r.verification.status.startswith("live") for r in rows)
    repos_total = {f.repo for f in findings if f.repo}
    tail = f" in {len(repos_total)} repositories" if repos_total else ""
    out.write(
        f"kascan: {len(rows)} distinct keys ({live} live){tail}; {len(findings)} findings; "
        f"scanned {human_bytes(ctx.stats.bytes)}.\n"
    )
