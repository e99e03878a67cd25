"""The one place that composes the stages; every command hands it sources.

    source --Chunk--> unwrap --Chunk--> match --Candidate--> attribute --Candidate-->
    suppress --Finding--> verify --Finding--> report --> exit status

- **unwrap** (:func:`unwrap`): archives in whole objects (a file's archives are opened as it is
  read, :func:`scan_file`), then the decoders (base64, UTF-16);
- **match** (:func:`match`): the rules, confirmed around the prefilter's hits; content-only
  drops (placeholder, entropy, inline allow) are decided here;
- **attribute** (``Source.attribute``): a history source gives each candidate the paths and the
  commit that introduced it, a patch source keeps what the change adds;
- **suppress** (:func:`kascan.suppress.suppress`): allowlists (paths, commits, regexes), the
  baseline and duplicates, after attribution;
- **verify** (:func:`verify`), **report** (:class:`kascan.reporter.Reporter`) and the
  **exit status** (:func:`exit_status`, which the GitHub Action uses too).

:func:`run` drives sources one after the other (a tree's files on every core),
:func:`run_sweep` many repositories at once, and :func:`run_findings` findings that were read
back from reports (``merge``). All three end in the same verify/report/exit tail.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from kascan.errors import KascanError
from kascan.model import STATUSES, Candidate, Chunk, Finding
from kascan.options import RunOptions
from kascan.reporter import Reporter
from kascan.sources.base import Run, Source, TreeSource, Warn
from kascan.stats import ScanStats

if TYPE_CHECKING:
    from kascan.fleet import StateStore
    from kascan.progress import SweepProgress, TreeProgress
    from kascan.report import RepoSummary
    from kascan.rules import RuleSet
    from kascan.sources.base import FileRef


# --------------------------------------------------------------------------- the stages


def unwrap(chunks: Iterable[Chunk], run: Run) -> Iterator[Chunk]:
    """Whole objects that are archives opened (member by member), then what the decoders find."""
    if run.limits is not None:
        from kascan.sources.archives import open_archives

        chunks = open_archives(chunks, run.limits, run.warn)
    if not run.decoders.decoding:
        return iter(chunks)
    from kascan.sources.decode import decode_chunks

    return decode_chunks(chunks, run.decoders, run.warn)


def match(chunks: Iterable[Chunk], run: Run) -> Iterator[Candidate]:
    from kascan.match import find_candidates

    return find_candidates(chunks, run.rules, run.warn)


_Stage = Callable[..., Any]
_FILE_STAGES: list[tuple[_Stage, _Stage, _Stage, _Stage]] = []


def _file_stages() -> tuple[_Stage, _Stage, _Stage, _Stage]:
    """``skim``, ``read_file``, ``decode_chunks`` and ``find_candidates``, imported once: an
    import in a function costs 1-2 µs each time, a tenth of what a small file of a tree costs."""
    if not _FILE_STAGES:
        from kascan.match import find_candidates
        from kascan.sources.decode import decode_chunks
        from kascan.sources.files import read_file, skim

        _FILE_STAGES.append((skim, read_file, decode_chunks, find_candidates))
    return _FILE_STAGES[0]


def scan_file(ref: FileRef, run: Run) -> Iterable[Candidate]:
    """One file read (its archives opened as it is read), unwrapped and matched: the unit of
    work of a tree worker, and of a file named on the command line.

    With every rule the built-in one (``run.quiet``), a small file in which the engine finds no
    needle is read and done with (``skim``), without the stages' generators: most files."""
    skim, read_file, decode_chunks, find_candidates = _file_stages()
    quiet = run.quiet
    if quiet and skim(ref, run.stats, run.limits):
        return ()
    chunks = read_file(
        ref, run.stats, run.warn, archives=run.limits, note=run.note, quiet=quiet,
        threads=run.threads,
    )  # fmt: skip
    if run.decoders.decoding:  # (unwrap: a file's chunks are never whole objects to open)
        chunks = decode_chunks(chunks, run.decoders, run.warn)
    found: Iterator[Candidate] = find_candidates(chunks, run.rules, run.warn)
    return found


def candidates_of(source: Source, run: Run, jobs: int = 1) -> Iterator[Candidate]:
    """A source through unwrap, match and its attribution."""
    if isinstance(source, TreeSource):
        from kascan.parallel import TreeScanner

        if jobs > 1:  # what every worker needs, imported (and the engine's database
            from kascan.engine import warm  # compiled) once, before the workers are forked

            _file_stages()
            warm()

        def walk(warn: Warn) -> Iterable[FileRef]:
            return source.walk(warn, run.verbose)

        with TreeScanner(run, jobs, scan_file) as trees:
            yield from trees.scan(walk)
        return
    yield from source.attribute(match(unwrap(source.chunks(run), run), run))


def suppressed(
    candidates: Iterable[Candidate], run: Run, baseline: frozenset[str]
) -> Iterator[Finding]:
    from kascan.suppress import suppress

    return suppress(candidates, run.rules, baseline, run.stats, run.warn, note=run.note)


def verify(findings: Iterable[Finding], opts: RunOptions) -> Iterator[Finding]:
    if not opts.verify.enabled:
        return iter(findings)
    from kascan.verify import verify_findings

    v = opts.verify
    return verify_findings(
        findings, v.api_url, timeout=v.timeout, concurrency=v.concurrency, budget=v.max_time
    )


def exit_status(statuses: Sequence[str], fail_on: str) -> int:
    """1 when a finding counts under ``--fail-on``, given each finding's verification status,
    else 0. ``unchecked`` counts as unknown: a key nobody checked is not proven inactive."""
    if fail_on == "any":
        return 1 if statuses else 0
    failing = {"live", "live-limited"}
    if fail_on == "live-or-unknown":
        failing |= {"unknown", "unchecked"}
    return 1 if any(s in failing for s in statuses) else 0


def verification_notes(opts: RunOptions, findings: Sequence[Finding]) -> list[str]:
    if not opts.verify.enabled:
        return []
    from collections import Counter

    by_key = {f.fingerprint: f.verification.status for f in findings}
    counts = Counter(by_key.values())
    parts = ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s])
    notes = [
        f"verified {len(by_key)} distinct keys against {opts.verify.api_url}"
        + (f": {parts}." if parts else ".")
    ]
    if opts.fail_on != "any":
        notes.append(f"exit status counts only keys that are {opts.fail_on} (--fail-on).")
    return notes


def check_applies(source: Source, rules: RuleSet, warn: Warn) -> None:
    """An allowlist by commit cannot match in a source without commits: say so (once), rather
    than ignore it silently; the rest of that allowlist still applies."""
    if source.has_commits:
        return
    every = [*rules.allowlists, *(a for r in rules.rules for a in r.allowlists)]
    if any(a.commits for a in every):
        warn(
            "an allowlist by commits cannot apply here: this scan has no commits (they apply to "
            "kascan git on history, --range and --pre-push)"
        )


def load_baselines(paths: Iterable[Path]) -> frozenset[str]:
    from kascan.suppress import load_baseline

    out: frozenset[str] = frozenset()
    for p in dict.fromkeys(paths):
        out |= load_baseline(p)
    return out


def baselines_in_use(
    opts: RunOptions, sources: Sequence[Source], reporter: Reporter
) -> frozenset[str]:
    """The command line's baselines (each source adds its config's). A report written over a
    baseline in use keeps its entries (JSON) or, in any other format, is refused before anything
    is scanned; ``kascan baseline update`` scans with no baseline at all."""
    if opts.scan.ignore_baselines:
        for src in sources:
            src.baseline = frozenset()
        return frozenset()
    paths = [*opts.scan.baselines, *(p for src in sources for p in src.baseline_files)]
    if paths:
        from kascan.baselines import same_file

        for out in opts.report.outputs:
            hit = next((b for b in paths if out.path and same_file(out.path, b)), None)
            if hit is not None and out.fmt != "json":
                raise KascanError(
                    f"refusing to write a {out.fmt} report over the baseline {hit} in use "
                    "(its entries would be lost): write it elsewhere"
                )
        reporter.keep = tuple(paths)
    for src in sources:
        if src.baseline_files:
            src.baseline |= load_baselines(src.baseline_files)
    return load_baselines(opts.scan.baselines)


def make_run(opts: RunOptions, stats: ScanStats, warn: Warn) -> Run:
    from kascan.rules import load_rules

    limits = None
    verbose = opts.report.verbose
    if opts.decoders.archives:
        from kascan.sources.archives import DEFAULT_LIMITS

        limits = replace(DEFAULT_LIMITS, verbose=True) if verbose else DEFAULT_LIMITS
    return Run(load_rules(opts.scan.rules), stats, warn, opts.decoders, limits, verbose=verbose)


# --------------------------------------------------------------------------- the runs


def _tail(
    findings: Iterable[Finding],
    opts: RunOptions,
    reporter: Reporter,
    notes: Callable[[], Sequence[str]],
) -> int:
    """verify -> report -> exit status; whatever happens, what was found is written first."""
    error: BaseException | None = None
    try:
        for finding in verify(findings, opts):
            reporter.add(finding)
    except (KascanError, KeyboardInterrupt) as exc:
        error = exc
    reporter.finish([*notes(), *verification_notes(opts, reporter.findings)])
    if error is not None:
        raise error
    if opts.strict and reporter.stats.incomplete:
        if not opts.report.quiet:
            click.echo("kascan: the scan is incomplete: exit 2 (--strict)", err=True)
        return 2
    return exit_status([f.verification.status for f in reporter.findings], opts.fail_on)


def run(
    sources: Sequence[Source],
    opts: RunOptions,
    *,
    stats: ScanStats | None = None,
    jobs: int = 1,
    early: Sequence[str] = (),
    notes: Callable[[], Sequence[str]] = lambda: (),
) -> int:
    """Every source through every stage, one after the other; ``early`` are warnings met while
    the sources were opened (shown first)."""
    stats = stats if stats is not None else ScanStats()
    reporter = Reporter(opts, stats)
    for msg in early:
        reporter.warn(msg)
    base = baselines_in_use(opts, sources, reporter)
    r = replace(make_run(opts, stats, reporter.warn), threads=jobs)
    reporter.ctx = replace(reporter.ctx, rules=r.rules.rules)
    progress: TreeProgress | None = None
    walks = sum(isinstance(s, TreeSource) for s in sources)
    if walks and progress_wanted(opts):
        from kascan.progress import TreeProgress

        progress = TreeProgress(stats, walks)
        r = replace(r, tick=progress.tick)

    def findings() -> Iterator[Finding]:
        try:
            for src in sources:
                check_applies(src, r.rules, r.warn)
                if progress is not None and isinstance(src, TreeSource):
                    progress.next_walk()
                yield from suppressed(candidates_of(src, r, jobs), r, base | src.baseline)
        finally:
            if progress is not None:
                progress.close()

    def all_notes() -> Sequence[str]:
        return [*(n for src in sources for n in src.notes), *notes()]

    return _tail(findings(), opts, reporter, all_notes)


def progress_wanted(opts: RunOptions) -> bool:
    """A progress line (:mod:`kascan.progress`): stderr is a terminal, not ``-q``, and no report
    goes to stderr (``-o /dev/stderr``: the line would be in the middle of it)."""
    import sys

    if opts.report.quiet or not sys.stderr.isatty():
        return False
    from kascan.output import stream_fd

    return not any(o.path is not None and stream_fd(o.path) == 2 for o in opts.report.outputs)


OpenSource = Callable[[str, contextlib.ExitStack, Warn], Source]


def run_sweep(
    repos: Sequence[str],
    open_source: OpenSource,
    opts: RunOptions,
    *,
    jobs: int,
    state: StateStore | None,
    reporter: Reporter,
    head: str,
) -> int:
    """Many repositories, ``jobs`` at once: each one opened (cloned) by ``open_source``,
    unwrapped, matched, attributed and suppressed on its own (one that fails is reported and the
    others go on); all of them verified (one request per distinct key), reported and given one
    exit status together. ``head`` starts the summary line ("N repositories")."""
    from kascan.fleet import summary_line, sweep

    stats = reporter.stats
    base = baselines_in_use(opts, (), reporter)
    r = make_run(opts, stats, reporter.warn)
    reporter.ctx = replace(reporter.ctx, rules=r.rules.rules)
    repo_notes: dict[str, list[str]] = {}
    outcomes: dict[str, object] = {}

    def scan_one(arg: str, rstats: ScanStats, warn: Warn) -> list[Finding]:
        with contextlib.ExitStack() as cleanup:  # a clone is removed as soon as it is scanned
            src = open_source(arg, cleanup, warn)
            if opts.scan.ignore_baselines:
                src.baseline = frozenset()
            elif src.baseline_files:
                src.baseline |= load_baselines(src.baseline_files)
            one = replace(r, stats=rstats, warn=warn)
            found = list(suppressed(candidates_of(src, one), one, base | src.baseline))
            repo_notes[arg] = src.notes
            return found

    summaries: list[RepoSummary] = []

    def findings() -> Iterator[Finding]:
        got = {}
        line: SweepProgress | None = None
        if progress_wanted(opts):
            from kascan.progress import SweepProgress

            line = SweepProgress(len(repos))
        try:
            for out in sweep(repos, scan_one, jobs=jobs, state=state, warn=reporter.warn):
                got[out.repo] = out
                stats.merge(out.stats)
                if line is not None:
                    line.add(len(out.findings), out.error is not None, out.reused)
                if out.error:
                    reporter.warn(f"{out.repo}: {out.error} (the other repositories go on)")
                yield from out.findings
        finally:
            if line is not None:
                line.close()
        outcomes.update(got)

    def notes() -> Sequence[str]:
        from kascan.fleet import RepoOutcome

        done = [o for r_ in repos if isinstance(o := outcomes.get(r_), RepoOutcome)]
        summaries.extend(o.summary() for o in done)
        reporter.findings.sort(key=Finding.sort_key)
        reporter.set_repos(summaries)
        failed = [s for s in summaries if s.status == "failed"]
        reused = sum(s.status == "reused" for s in summaries)
        line = head
        if reused:
            line += f", {reused} unchanged since the last sweep (findings reused)"
        if failed:
            line += f", {len(failed)} FAILED"
        out = [n for r_ in repos for n in repo_notes.get(r_, [])]
        return [*out, *(summary_line(s) for s in summaries), line + "."]

    status = _tail(findings(), opts, reporter, notes)
    failed = [s for s in summaries if s.status == "failed"]
    if failed:
        more = ", …" if len(failed) > 5 else ""
        raise KascanError(
            f"{len(failed)} of {len(repos)} repositories could not be scanned "
            f"({', '.join(s.repo for s in failed[:5])}{more}); "
            "the report has the findings of the others"
        )
    return status


def run_findings(
    findings: Sequence[Finding],
    opts: RunOptions,
    reporter: Reporter,
    notes: Callable[[], Sequence[str]],
) -> int:
    """Findings read back from reports (``merge``): the baseline, then verify/report/exit."""
    base = baselines_in_use(opts, (), reporter)
    kept = list(findings)
    if base:
        kept = [f for f in findings if f.fingerprint not in base]
        reporter.stats.dropped["baseline"] += len(findings) - len(kept)
        if opts.report.verbose:
            from kascan.stats import dropped
            from kascan.suppress import DROP_WORDS

            for f in findings:
                if f.fingerprint in base:
                    reporter.warn(dropped(f, DROP_WORDS["baseline"]))
    reporter.stats.reported = len(kept)
    return _tail(kept, opts, reporter, notes)
