"""``kascan merge REPORT.json ...``: shard reports in, one report out (any format)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import click

from kascan.cli import Reporter, _options, load_baselines
from kascan.errors import KascanError
from kascan.model import Finding
from kascan.report import FORMATS, RepoSummary
from kascan.stats import ScanStats


def finding_identity(f: Finding) -> tuple[object, ...]:
    """Two findings are the same if they agree on all of this (the key by its fingerprint)."""
    return (*f.sort_key(), f.fingerprint, f.decoded)


def merge_findings(groups: Sequence[Sequence[Finding]], stats: ScanStats) -> list[Finding]:
    """De-duplicate across reports; prefer the copy that carries the full key, if any does."""
    kept: dict[tuple[object, ...], Finding] = {}
    for group in groups:
        for f in group:
            ident = finding_identity(f)
            prior = kept.get(ident)
            if prior is None:
                kept[ident] = f
                continue
            stats.dropped["duplicate"] += 1
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


@click.command()
@click.argument("reports", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--by-key", is_flag=True, help="Per-key view on stdout (the same as -f keys).")
@click.option(
    "--baseline",
    "baselines",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="A JSON report written earlier by kascan: its keys are left out (repeatable).",
)
@click.option(
    "-f", "--format", "fmt", type=click.Choice(FORMATS), default=None, help="Format on stdout."
)
@click.option(
    "-o",
    "--output",
    "outputs",
    multiple=True,
    metavar="[FORMAT:]FILE",
    help="Write a report to FILE (format from FORMAT:, the extension, or --format); repeatable.",
)
@click.option("--show-secrets", is_flag=True, help="Print full keys where the reports have them.")
@click.option("-q", "--quiet", is_flag=True, help="No summary or warnings.")
@click.option(
    "--color", type=click.Choice(["auto", "always", "never"]), default="auto", show_default=True
)
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
def merge(reports: tuple[Path, ...], by_key: bool, **kw: object) -> int:
    """Combine JSON reports (e.g. one per shard) into one report in any format.

    Identical findings (same repo, path, line, column, rule, commit and key fingerprint) are
    reported once; summaries are added up; repositories are summarised one a line. Keys that the
    reports redacted stay redacted. Exit 1 if there are findings, 2 if a report cannot be read or
    a repository failed in a shard (after writing the merged report).
    """
    from kascan.fleet import summary_line
    from kascan.reportio import load_report

    if by_key:
        if kw.get("fmt") not in (None, "keys"):
            raise click.UsageError("--by-key is -f keys; give one or the other")
        kw["fmt"] = "keys"
    opts = _options("merge", **kw)
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
    findings = merge_findings([r.findings for r in loaded], stats)
    baseline = load_baselines(opts.baselines, opts)
    if baseline:
        before = len(findings)
        findings = [f for f in findings if f.fingerprint not in baseline]
        stats.dropped["baseline"] += before - len(findings)
    stats.reported = len(findings)
    repos = merge_repos([s for r in loaded for s in r.repos], findings, reporter.warn)
    reporter.ctx = replace(reporter.ctx, repos=tuple(repos))
    for f in findings:
        reporter.add(f)
    failed = [s for s in repos if s.status == "failed"]
    notes = [f"merged {len(loaded)} reports: {len(repos)} repositories, {len(findings)} findings."]
    notes += [summary_line(s) for s in repos]
    reporter.finish(notes)
    if failed:
        raise KascanError(
            f"{len(failed)} of {len(repos)} repositories failed in the merged sweep: "
            + ", ".join(s.repo for s in failed)
        )
    return 1 if findings else 0
