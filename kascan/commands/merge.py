"""``kascan merge REPORT.json ...``: shard reports in, one report out (any format)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import click

from kascan.errors import KascanError
from kascan.model import Finding
from kascan.options import GroupedCommand, RunOptions, run_options
from kascan.report import RepoSummary
from kascan.stats import ScanStats


def finding_identity(f: Finding) -> tuple[object, ...]:
    """Two findings are the same if they agree on all of this (the key by its fingerprint)."""
    return (*f.sort_key(), f.fingerprint, f.decoded)


def merge_findings(
    groups: Sequence[Sequence[Finding]],
    stats: ScanStats,
    note: Callable[[str], None] | None = None,
) -> list[Finding]:
    """De-duplicate across reports; prefer the copy that carries the full key, if any does;
    ``note`` (``-v``) hears of each duplicate."""
    kept: dict[tuple[object, ...], Finding] = {}
    for group in groups:
        for f in group:
            ident = finding_identity(f)
            prior = kept.get(ident)
            if prior is None:
                kept[ident] = f
                continue
            stats.dropped["duplicate"] += 1
            if note is not None:
                from kascan.stats import dropped

                note(dropped(f, "a duplicate: the same finding is in an earlier report"))
            if f.secret.known and not prior.secret.known:
                kept[ident] = f
    return sorted(kept.values(), key=Finding.sort_key)


def merge_repos(
    summaries: Sequence[RepoSummary], findings: Sequence[Finding], warn: Callable[[str], None]
) -> list[RepoSummary]:
    """One summary per repository: commits and blobs from the reports, findings and live counted
    from the merged findings (so that duplicates are not counted twice)."""
    by_repo: dict[str, RepoSummary] = {}
    for s in summaries:
        if s.repo in by_repo:
            warn(f"repository {s.repo} is in several reports (overlapping shards?): counted once")
            if by_repo[s.repo].status != "failed":
                continue
        by_repo[s.repo] = s
    counts: dict[str, list[int]] = {}
    for f in findings:
        if f.repo:
            c = counts.setdefault(f.repo, [0, 0])
            c[0] += 1
            c[1] += f.verification.status.startswith("live")
    for repo in counts:
        by_repo.setdefault(repo, RepoSummary(repo))
    return [
        replace(s, findings=counts.get(s.repo, [0, 0])[0], live=counts.get(s.repo, [0, 0])[1])
        for s in sorted(by_repo.values(), key=lambda s: s.repo)
    ]


@click.command(
    cls=GroupedCommand,
    epilog="""\b
Examples:
  kascan merge shard-*.json -o kascan.sarif -o report.html
  kascan merge shard-*.json --by-key --fail-on live
""",
)
@click.argument("reports", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@run_options("merge", groups=("report", "verify", "baseline"))
def merge(reports: tuple[Path, ...], opts: RunOptions) -> int:
    """Combine JSON reports (e.g. one per shard) into one report in any format.

    Identical findings (same repo, path, line, column, rule, commit and key fingerprint) are
    reported once; summaries are added up; repositories are summarised one a line. Keys that the
    reports redacted stay redacted (and --verify keeps the status they recorded). Exit 1 if
    there are findings, 2 if a report cannot be read or a repository failed in a shard (after
    writing the merged report).
    """
    from kascan import pipeline
    from kascan.fleet import summary_line
    from kascan.reporter import Reporter
    from kascan.reportio import load_report

    loaded = [load_report(p) for p in reports]
    stats = ScanStats()
    reporter = Reporter(opts, stats)
    seen: dict[str, Path] = {}
    unique = []
    for rep in loaded:
        if rep.digest in seen:
            reporter.warn(f"{rep.path} is the same report as {seen[rep.digest]}: read once")
            continue
        seen[rep.digest] = rep.path
        unique.append(rep)
    loaded = unique
    for rep in loaded:
        stats.merge(rep.stats)
    note = reporter.warn if opts.report.verbose else None
    findings = merge_findings([r.findings for r in loaded], stats, note)
    repos: list[RepoSummary] = []

    def notes() -> list[str]:
        repos.extend(
            merge_repos([s for r in loaded for s in r.repos], reporter.findings, reporter.warn)
        )
        reporter.set_repos(repos)
        out = [
            f"merged {len(loaded)} reports: {len(repos)} repositories, "
            f"{len(reporter.findings)} findings."
        ]
        return out + [summary_line(s) for s in repos]

    status = pipeline.run_findings(findings, opts, reporter, notes)
    failed = [s for s in repos if s.status == "failed"]
    if failed:
        raise KascanError(
            f"{len(failed)} of {len(repos)} repositories failed in the merged sweep: "
            + ", ".join(s.repo for s in failed)
        )
    return status
