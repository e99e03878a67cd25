"""Human-readable report: ``path:line:col  rule  ka_live_Ab3d…`` and an honest summary.

Every field that comes from outside (names, rule ids, authors, notes, what the API said) is
scrubbed and then escaped (:func:`kascan.output.escape`) before it is put on a line: a control
character, ESC sequence or newline in a path cannot erase, hide or forge a line, nor start a
workflow command in a CI log.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

from kascan.model import Finding, scrub
from kascan.output import escape
from kascan.report import ReportContext, clean_finding, shown
from kascan.stats import ScanStats, human_bytes

_ADVICE = {
    "live": "LIVE: revoke it now in the Kubeadapt dashboard (Settings → API Keys), then rotate",
    "live-limited": "LIVE (limited scope): revoke it now in Settings → API Keys, then rotate",
    "inactive": "inactive: the API no longer accepts it (already revoked); remove it anyway",
    "unknown": "unknown: could not check; treat as live until proven otherwise",
}


def _style(text: str, code: str, ctx: ReportContext) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if ctx.color else text


def human(text: str) -> str:
    """Free text as a human-facing line may carry it: scrubbed, then escaped."""
    return escape(scrub(text))


def format_finding(f: Finding, ctx: ReportContext) -> str:
    key = escape(shown(f, ctx))
    f = clean_finding(f)
    where = f"{f.repo}:{f.path}" if f.repo else f.path
    loc = _style(escape(f"{where}:{f.line}:{f.column}"), "1", ctx)
    parts = [loc, _style(escape(f.rule_id), "33", ctx), _style(key, "31", ctx)]
    if f.decoded:
        parts.append(f"(decoded from {escape(f.decoded)})")
    if f.commit is not None:
        c = f.commit
        parts.append(f"commit {escape(c.sha[:12])} by {escape(c.author)} on {escape(c.date)}")
    status = f.verification.status
    if status != "unchecked":
        v = f.verification
        advice = _ADVICE.get(status, status)
        if status == "unknown" and v.detail:
            advice = (
                f"unknown ({escape(v.detail)}): could not check; treat as live until proven "
                "otherwise"
            )
        if v.organization or v.organization_id:
            org = " ".join(
                x for x in (v.organization, v.organization_id and f"id {v.organization_id}") if x
            )
            advice += f" [organization: {escape(org)}]"
        parts.append(_style(advice, "1;31" if status.startswith("live") else "2", ctx))
    return "  ".join(parts)


def plural(count: int, word: str) -> str:
    """``1 file``, ``2 files``, ``0 files``."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _seconds(t: float) -> str:
    if t < 10:
        return f"{t:.2f} s"
    if t < 120:
        return f"{t:.1f} s"
    return f"{int(t) // 60} min {int(t) % 60} s"


def summary_lines(stats: ScanStats, ctx: ReportContext, findings: int) -> list[str]:
    what = f"{plural(stats.files, 'file')}, {human_bytes(stats.bytes)}"
    if "blobs" in stats.extra:
        what = (
            f"{plural(stats.extra.get('commits', 0), 'commit')}, "
            f"{plural(stats.extra['blobs'], 'blob')}, {human_bytes(stats.bytes)}"
        )
    took = f" in {_seconds(ctx.elapsed)}" if ctx.elapsed is not None else ""
    lines = [f"kascan: scanned {what}{took}."]
    skipped = ", ".join(f"{n} {human(why)}" for why, n in sorted(stats.skipped.items()) if n)
    if skipped:
        lines.append(f"kascan: skipped {skipped}.")
    if stats.unreadable:
        lines.append(
            f"kascan: WARNING: {stats.unreadable} could not be read; the scan is incomplete."
        )
    limits = ", ".join(f"{n} {human(why)}" for why, n in sorted(stats.limits.items()) if n)
    if limits:
        lines.append(
            f"kascan: WARNING: limits kept content from being scanned ({limits}); "
            "the scan is incomplete."
        )
    dropped = ", ".join(f"{n} {human(why)}" for why, n in sorted(stats.dropped.items()) if n)
    lines.append(
        f"kascan: {plural(stats.candidates, 'candidate')}"
        + (f", dropped {dropped}" if dropped else "")
        + f"; {findings} reported."
    )
    lines.extend(f"kascan: {human(note)}" for note in ctx.notes)
    hook = any(n.startswith(("commit blocked", "push blocked")) for n in ctx.notes)
    if findings and not hook:  # a hook's own notes say what to do, once
        lines.append(
            "kascan: a leaked Kubeadapt key is a full credential: revoke it in the Kubeadapt "
            "dashboard (Settings → API Keys), mint a new one, and remove it from history."
        )
    elif findings:
        pass
    elif stats.files == 0 and not stats.extra.get("blobs") and not stats.extra.get("lines"):
        lines.append("kascan: WARNING: nothing was scanned.")
    elif stats.incomplete:
        lines.append("kascan: no leaked keys found in what was scanned.")
    else:
        lines.append("kascan: no leaked keys found.")
    return lines


def render(findings: Sequence[Finding], out: TextIO, ctx: ReportContext) -> None:
    for f in findings:
        out.write(format_finding(f, ctx) + "\n")
    for line in summary_lines(ctx.stats, ctx, len(findings)):
        out.write(line + "\n")
