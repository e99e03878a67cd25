"""Reporters: each module has ``render(findings, out, ctx) -> None``; chosen ones import lazily."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

from kascan.model import Finding
from kascan.stats import ScanStats

if TYPE_CHECKING:
    from kascan.rules import Rule

FORMATS = ("text", "json", "sarif", "github", "keys", "html")
EXTENSIONS = {".json": "json", ".sarif": "sarif", ".txt": "text", ".log": "text"}
EXTENSIONS |= {".html": "html", ".htm": "html"}


@dataclass(frozen=True)
class RepoSummary:
    """One repository of a multi-repository run (``kascan git`` over several repos, ``merge``)."""

    repo: str
    commits: int = 0
    blobs: int = 0
    findings: int = 0
    live: int = 0
    status: str = "scanned"  # scanned, reused (unchanged since the last sweep), failed
    error: str | None = None


@dataclass(frozen=True)
class ReportContext:
    stats: ScanStats
    show_secrets: bool = False
    color: bool = False
    command: str = "scan"
    verified: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)  # what could not be scanned, etc.
    rules: tuple[Rule, ...] = ()  # the rules in force (SARIF describes the ones used)
    sarif_category: str | None = None  # SARIF runAutomationDetails.id (code scanning category)
    path_prefix: str = ""  # SARIF/GitHub paths: prepended to make them repository-relative
    repos: tuple[RepoSummary, ...] = ()  # per-repository summary of a multi-repository run


Renderer = Callable[[Sequence[Finding], TextIO, ReportContext], None]


def renderer(fmt: str) -> Renderer:
    module = importlib.import_module(f"kascan.report.{fmt}_report")
    render: Renderer = module.render
    return render


def shown(finding: Finding, ctx: ReportContext) -> str:
    """The key as a report may show it: redacted unless ``--show-secrets``."""
    return finding.secret.value if ctx.show_secrets else finding.secret.redacted
