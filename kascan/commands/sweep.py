"""``kascan git`` over many repositories: the history of each, ``--jobs`` at once, one failure
reported without stopping the others, per-repository summaries, resumable with ``--state``."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from kascan.cli import Options, Reporter, load_baselines
from kascan.errors import KascanError
from kascan.fleet_options import RepoQuery
from kascan.model import Finding
from kascan.stats import ScanStats

if TYPE_CHECKING:
    from kascan.sources.decode import Decoders


def _config_parts(opts: Options, baseline: frozenset[str]) -> list[str | bytes]:
    """What a recorded scan depends on besides the refs (see ``fleet.config_fingerprint``)."""
    parts: list[str | bytes] = ["excludes", *opts.excludes, "baseline", *sorted(baseline)]
    for p in (*opts.rules, *((opts.config,) if opts.config else ())):
        try:
            parts += [str(p), p.read_bytes()]
        except OSError as exc:
            raise KascanError(f"cannot read {p}: {exc.strerror or exc}") from None
    return parts


def run_sweep(
    args: Sequence[str],
    opts: Options,
    *,
    query: RepoQuery,
    jobs: int,
    state_dir: Path | None,
    decoders: Decoders | None = None,
) -> int:
    from kascan.commands.git import _Mode, _open_target, _scan
    from kascan.fleet import (
        StateStore,
        config_fingerprint,
        resolve_repos,
        summary_line,
        sweep,
    )
    from kascan.rules import load_rules
    from kascan.suppress import suppress

    stats = ScanStats()
    reporter = Reporter(opts, stats)
    sel = resolve_repos(args, query, reporter.warn)
    rules = load_rules(opts.rules)
    baseline = load_baselines(opts.baselines, opts)
    state = (
        StateStore(state_dir, config_fingerprint(_config_parts(opts, baseline)))
        if state_dir is not None
        else None
    )
    mode = _Mode(False, None, None, False, False, decoders)
    repo_notes: dict[str, list[str]] = {}

    def scan_one(arg: str, rstats: ScanStats, warn: Callable[[str], None]) -> list[Finding]:
        with contextlib.ExitStack() as cleanup:  # a clone is removed as soon as it is scanned
            early: list[str] = []
            t = _open_target(arg, True, mode, opts, early, cleanup)
            for msg in early:
                warn(msg)
            bl = baseline
            if t.config is not None and t.config.baseline is not None:
                bl = bl | load_baselines([t.config.baseline])
            notes: list[str] = []
            found = list(suppress(_scan(t, mode, opts, rstats, warn, rules, notes), bl, rstats))
            repo_notes[arg] = notes
            return found

    outcomes = {}
    error: BaseException | None = None
    try:
        for out in sweep(sel.repos, scan_one, jobs=jobs, state=state, warn=reporter.warn):
            outcomes[out.repo] = out
            stats.merge(out.stats)
            for f in out.findings:
                reporter.add(f)
            if out.error:
                reporter.warn(f"{out.repo}: {out.error} (the other repositories go on)")
    except (KascanError, KeyboardInterrupt) as exc:
        error = exc
    reporter.findings.sort(key=Finding.sort_key)
    summaries = [outcomes[r].summary() for r in sel.repos if r in outcomes]
    reporter.ctx = replace(reporter.ctx, repos=tuple(summaries))
    failed = [s for s in summaries if s.status == "failed"]
    reused = sum(s.status == "reused" for s in summaries)
    shard = f" (shard {sel.shard[0]}/{sel.shard[1]} of {sel.listed})" if sel.shard else ""
    head = f"{len(sel.repos)} repositories{shard}"
    if reused:
        head += f", {reused} unchanged since the last sweep (findings reused)"
    if failed:
        head += f", {len(failed)} FAILED"
    notes = [n for r in sel.repos for n in repo_notes.get(r, [])]
    notes += [summary_line(s) for s in summaries] + [head + "."]
    reporter.finish(notes)
    if error is not None:
        raise error
    if failed:
        raise KascanError(
            f"{len(failed)} of {len(sel.repos)} repositories could not be scanned "
            f"({', '.join(s.repo for s in failed[:5])}{', …' if len(failed) > 5 else ''}); "
            "the report has the findings of the others"
        )
    return 1 if reporter.findings else 0
