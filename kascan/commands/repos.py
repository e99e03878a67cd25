"""``kascan repos``: print the repositories a sweep would scan (after listing and sharding)."""

from __future__ import annotations

import click

from kascan.fleet import resolve_repos
from kascan.fleet_options import RepoQuery, repo_query_options
from kascan.model import scrub
from kascan.output import escape


@click.command()
@click.argument("repos", nargs=-1, metavar="[REPO]...")
@repo_query_options()
def repos(repos: tuple[str, ...], query: RepoQuery) -> int:
    """List the repositories (paths or clone URLs) that `kascan git` would scan, one a line.

    Takes the same selection options as `kascan git`: a dry run of a sweep or a shard.
    """

    def warn(msg: str) -> None:
        click.echo(f"kascan: warning: {escape(scrub(msg))}", err=True)

    sel = resolve_repos(repos, query, warn)
    for r in sel.repos:
        click.echo(escape(scrub(r)))
    where = f" (shard {sel.shard[0]}/{sel.shard[1]} of {sel.listed})" if sel.shard else ""
    click.echo(f"kascan: {len(sel.repos)} repositories{where}.", err=True)
    return 0
