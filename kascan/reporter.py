"""The report stage: text findings streamed to the terminal as they come, every report written at
the end (atomically, to files), warnings shown once each."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import click

from kascan.model import Finding, scrub
from kascan.options import RunOptions
from kascan.output import escape
from kascan.report import ReportContext, RepoSummary
from kascan.stats import ScanStats, Skipped


class Reporter:
    """Streams text findings to the terminal as they are found; writes every report at the end."""

    def __init__(self, opts: RunOptions, stats: ScanStats) -> None:
        self.opts = opts
        self.report = opts.report
        self.stats = stats
        self.started = time.monotonic()
        self.findings: list[Finding] = []
        self.keep: tuple[Path, ...] = ()  # baselines in use: a JSON report over one merges in
        self._warned: set[str] = set()
        self.stream_text = any(o.path is None and o.fmt == "text" for o in self.report.outputs)
        color = self.report.color == "always" or (
            self.report.color == "auto" and sys.stdout.isatty() and "NO_COLOR" not in os.environ
        )
        self.ctx = ReportContext(
            stats,
            show_secrets=self.report.show_secrets,
            color=color,
            command=opts.command,
            verified=opts.verify.enabled,
            sarif_category=self.report.sarif_category,
            path_prefix=self.report.path_prefix,
        )

    def warn(self, message: str) -> None:
        """Each distinct warning once (workers may each meet the same timed-out rule); a
        ``-v`` line (:class:`Skipped`) every time, even with ``-q``, never counted."""
        if isinstance(message, Skipped):
            if self.report.verbose:
                from kascan.progress import paused

                with paused():  # a -v line starts on a clear line, the progress line after it
                    click.echo(f"kascan: {escape(scrub(message))}", err=True)
            return
        if message in self._warned:
            return
        self._warned.add(message)
        self.stats.warnings += 1
        self.stats.note(message)  # a limit that hid content makes the scan incomplete
        if not self.report.quiet:
            from kascan.progress import paused

            with paused():  # a progress line is cleared, then drawn again under the warning
                click.echo(f"kascan: warning: {escape(scrub(message))}", err=True)

    def add(self, finding: Finding) -> None:
        self.findings.append(finding)
        if self.stream_text:
            from kascan.progress import paused
            from kascan.report.text_report import format_finding

            line = format_finding(finding, self.ctx)
            with paused():  # the finding's line, then the progress line again
                # --color always: colour through a pipe too (click strips it from a pipe otherwise)
                click.echo(line, color=self.ctx.color or None)

    def set_repos(self, repos: Sequence[RepoSummary]) -> None:
        self.ctx = replace(self.ctx, repos=tuple(repos))

    def finish(self, notes: Sequence[str] = ()) -> None:
        from kascan.report import renderer
        from kascan.report.text_report import summary_lines

        ctx = replace(self.ctx, notes=tuple(notes), elapsed=time.monotonic() - self.started)
        for out in self.report.outputs:
            if out.path is None:
                if out.fmt == "text":
                    if not self.report.quiet:
                        for line in summary_lines(self.stats, ctx, len(self.findings)):
                            click.echo(line)
                    continue
                renderer(out.fmt)(self.findings, sys.stdout, replace(ctx, color=False))
                sys.stdout.flush()
            else:
                self._write_file(out.fmt, out.path, replace(ctx, color=False))
        if not self.stream_text and not self.report.quiet:
            for line in summary_lines(self.stats, ctx, len(self.findings)):
                click.echo(line, err=True)

    def _write_file(self, fmt: str, path: Path, ctx: ReportContext) -> None:
        from kascan.output import write_report
        from kascan.report import renderer
        from kascan.report.text_report import format_finding

        render = renderer(fmt)
        if fmt == "json" and self.keep:
            from kascan.baselines import keeping_entries, same_file

            if any(same_file(path, b) for b in self.keep):
                render = keeping_entries(render, path)

        def lost() -> None:  # a failed write: the findings still reach stderr
            for f in [] if self.stream_text else self.findings:
                click.echo(format_finding(f, ctx), err=True)

        write_report(path, lambda fh: render(self.findings, fh, ctx), ctx.show_secrets, lost)
