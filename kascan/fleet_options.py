"""The options that choose repositories for ``kascan git`` sweeps, and what they hold.

Apart from :mod:`kascan.fleet` so that the ``git`` command (a pre-commit hook, where every
millisecond counts) can declare them without importing the sweep machinery.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import click

F = TypeVar("F", bound=Callable[..., object])


def repo_source_options(f: F) -> F:
    opts = [
        click.option(
            "--repos-from",
            type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
            help="Read repository paths or clone URLs from FILE, one a line ('#' comments).",
        ),
        click.option("--github-org", metavar="ORG", help="Scan the repositories of a GitHub org."),
        click.option("--github-user", metavar="USER", help="Scan the repositories of a user."),
        click.option(
            "--github-api-url",
            default="https://api.github.com",
            show_default=True,
            help="GitHub (Enterprise) REST API root; https, or http on loopback only.",
        ),
        click.option("--include-forks", is_flag=True, help="Also scan forks (GitHub listing)."),
        click.option(
            "--exclude-archived", is_flag=True, help="Skip archived repositories (GitHub listing)."
        ),
        click.option(
            "--shard",
            metavar="I/N",
            help="Scan only part I of N (0-based; '/N' takes I from JOB_COMPLETION_INDEX).",
        ),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def sweep_options(f: F) -> F:
    opts = [
        click.option(
            "-j",
            "--jobs",
            type=click.IntRange(1, 64),
            default=min(4, os.cpu_count() or 1),
            show_default="min(4, CPUs)",
            help="Repositories cloned and scanned at once.",
        ),
        click.option(
            "--state",
            "state_dir",
            type=click.Path(path_type=Path, file_okay=False),
            help="Resumable sweep: skip repositories whose refs have not changed since their "
            "last completed scan recorded in DIR, and reuse their findings.",
        ),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


@dataclass(frozen=True)
class RepoQuery:
    """The repository-selection options (``repo_source_options``)."""

    repos_from: Path | None = None
    github_org: str | None = None
    github_user: str | None = None
    github_api_url: str = "https://api.github.com"
    include_forks: bool = False
    exclude_archived: bool = False
    shard: str | None = None

    @classmethod
    def pop_from(cls, kw: dict[str, object]) -> RepoQuery:
        """Take the options out of a click command's keyword arguments."""
        from dataclasses import fields

        values = {f.name: kw.pop(f.name) for f in fields(cls) if f.name in kw}
        q = cls(**values)  # type: ignore[arg-type]
        return replace(q, github_api_url=q.github_api_url or "https://api.github.com")

    @property
    def fleet(self) -> bool:
        return bool(self.repos_from or self.github_org or self.github_user or self.shard)
