"""The options that choose repositories for ``kascan git`` sweeps, and what they hold.

Apart from :mod:`kascan.fleet` so that the ``git`` command (a pre-commit hook, where every
millisecond counts) can declare them without importing the sweep machinery.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar, cast

import click

F = TypeVar("F", bound=Callable[..., object])


def _repo_params() -> list[Callable[[F], F]]:
    return [
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


def _sweep_params() -> list[Callable[[F], F]]:
    return [
        click.option(
            "--repo-jobs",
            type=click.IntRange(1, 64),
            default=min(4, os.cpu_count() or 1),
            show_default="min(4, CPUs)",
            help="Repositories cloned and scanned at once (a sweep).",
        ),
        click.option(
            "--state",
            "state_dir",
            type=click.Path(path_type=Path, file_okay=False),
            help="Resumable sweep: skip repositories whose refs have not changed since their "
            "last completed scan recorded in DIR (with the same options), and reuse their "
            "findings.",
        ),
    ]


@dataclass(frozen=True, slots=True)
class RepoQuery:
    """The repository-selection options."""

    repos_from: Path | None = None
    github_org: str | None = None
    github_user: str | None = None
    github_api_url: str = "https://api.github.com"
    include_forks: bool = False
    exclude_archived: bool = False
    shard: str | None = None

    @property
    def fleet(self) -> bool:
        return bool(self.repos_from or self.github_org or self.github_user or self.shard)


@dataclass(frozen=True, slots=True)
class SweepOptions:
    repo_jobs: int = 1
    state_dir: Path | None = None


def _query(kw: dict[str, object]) -> RepoQuery:
    return RepoQuery(
        repos_from=cast("Path | None", kw.pop("repos_from", None)),
        github_org=cast("str | None", kw.pop("github_org", None)),
        github_user=cast("str | None", kw.pop("github_user", None)),
        github_api_url=str(kw.pop("github_api_url", None) or "https://api.github.com"),
        include_forks=bool(kw.pop("include_forks", False)),
        exclude_archived=bool(kw.pop("exclude_archived", False)),
        shard=cast("str | None", kw.pop("shard", None)),
    )


def repo_query_options(sweep: bool = False) -> Callable[[F], F]:
    """The repository-selection options (and, with ``sweep``, ``--repo-jobs`` and ``--state``):
    the function receives ``query: RepoQuery`` (and ``sweep: SweepOptions``)."""

    def deco(f: F) -> F:
        @functools.wraps(f)
        def wrapper(*args: object, **kw: object) -> object:
            kw["query"] = _query(kw)
            if sweep:
                kw["sweep"] = SweepOptions(
                    int(cast("int", kw.pop("repo_jobs", 1))),
                    cast("Path | None", kw.pop("state_dir", None)),
                )
            return f(*args, **kw)

        out = cast("F", wrapper)
        for p in reversed([*_repo_params(), *(_sweep_params() if sweep else [])]):
            out = p(out)
        return out

    return deco
