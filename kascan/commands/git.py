"""``kascan git``: whole history, the staged change (pre-commit), a range or a push (pre-push),
one repository or many (a sweep)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from kascan.fleet_options import RepoQuery, SweepOptions, repo_query_options
from kascan.options import GroupedCommand, RunOptions, run_options

if TYPE_CHECKING:
    from kascan.sources.git.target import Mode

_FALSE_POSITIVE = (
    "not a real key (a test fixture, an example): add 'kascan:allow' on its line (gitleaks:allow "
    "and 'pragma: allowlist secret' work too), or accept it with 'kascan baseline update "
    '.kascan-baseline.json\' and baseline = ".kascan-baseline.json" in .kascan.toml'
)
BLOCKED = (
    "commit blocked: the staged change adds the Kubeadapt API key(s) above.",
    "a real key: take it out of the file (load it from the environment or a secret store) and "
    "stage the file again; if it was ever pushed or shared, revoke it in the Kubeadapt dashboard "
    "(Settings → API Keys), mint a new one, and purge it from history.",
    _FALSE_POSITIVE + "; to skip this hook once: SKIP=kascan git commit.",
)
BLOCKED_MSG = (
    "commit blocked: the commit message above holds a Kubeadapt key: take it out of the message "
    "(git keeps the message in .git/COMMIT_EDITMSG); if it was ever shared, revoke it in the "
    "Kubeadapt dashboard (Settings → API Keys) and rotate it"
)
PUSH_BLOCKED = (
    "push blocked: a commit being pushed adds the Kubeadapt API key(s) above (commit, file, line).",
    "a real key: revoke it in the Kubeadapt dashboard (Settings → API Keys) and mint a new one, "
    "then rewrite those commits without it (git rebase -i / git commit --amend) before pushing.",
    _FALSE_POSITIVE + "; to skip this hook once: SKIP=kascan-push git push.",
)


@click.command(
    "git",
    cls=GroupedCommand,
    epilog="""\b
Examples:
  kascan git                            every commit reachable from any ref
  kascan git --staged                   what the next commit adds (the pre-commit hook)
  kascan git --range origin/main..HEAD  what a pull request adds
  kascan git https://host/org/repo.git  a clone URL, cloned bare into a private temp dir
  kascan git --repos-from repos.txt --repo-jobs 4 --state .kascan-state -o sweep.json
""",
)
@click.argument("repos", nargs=-1, metavar="[REPO]...")
@click.option(
    "--staged",
    is_flag=True,
    help="Only the lines the index adds to HEAD (for a pre-commit hook). File names after it "
    "(as pre-commit passes them) narrow the scan to those files; if some are not staged, "
    "the whole staged content of the files named is scanned.",
)
@click.option(
    "--files",
    "as_files",
    is_flag=True,
    help="With --staged: every argument is a file of the repository in the current directory, "
    "never a repository or an option (the hook runs 'kascan git --staged --files -- NAMES').",
)
@click.option(
    "--range",
    "rev_range",
    metavar="A..B",
    help="Only the lines added by the commits in A..B (a push or a pull request). The config, "
    ".kascanignore and baseline are read from A, the base, never from the change.",
)
@click.option(
    "--pre-push",
    is_flag=True,
    help="Only the commits being pushed: PRE_COMMIT_FROM_REF..PRE_COMMIT_TO_REF as set by "
    "pre-commit; for a new branch, its commits that are on no remote-tracking branch.",
)
@click.option(
    "--messages/--no-messages",
    default=True,
    show_default=True,
    help="Also scan commit messages, author and committer names and e-mails, and annotated "
    "tags' messages (history: every commit and tag object; --range/--pre-push: those of the "
    "change).",
)
@click.option(
    "--reflogs/--no-reflogs",
    default=None,
    help="Also scan what only the reflogs reach (a commit reset or amended away, a dropped "
    "stash entry). On by default for local repositories (a clone has no reflogs).",
)
@click.option(
    "--submodules/--no-submodules",
    default=True,
    show_default=True,
    help="Also scan the whole history of each initialised submodule (its repository under "
    ".git/modules); its findings' paths start with the submodule's path.",
)
@click.option(
    "--commit-msg",
    "commit_msg",
    is_flag=True,
    help="The one argument is the file of the commit message being written, never a "
    "repository or an option (the commit-msg hook runs 'kascan git --commit-msg -- FILE'; "
    "pre-commit passes .git/COMMIT_EDITMSG). Comment lines git would strip are scanned too.",
)
@repo_query_options(sweep=True)
@run_options("git")
def git(
    repos: tuple[str, ...],
    staged: bool,
    as_files: bool,
    rev_range: str | None,
    pre_push: bool,
    messages: bool,
    reflogs: bool | None,
    submodules: bool,
    commit_msg: bool,
    query: RepoQuery,
    sweep: SweepOptions,
    opts: RunOptions,
) -> int:
    """Scan git for Kubeadapt API keys: every commit reachable from any ref (the default), the
    staged change, a range of commits, or a push.

    REPO is a path (default .) or a clone URL, cloned bare into a private temporary directory,
    scanned and removed. Each history finding names the commit that introduced the key there.

    Several repositories (arguments, --repos-from, --github-org/--github-user) are scanned
    --repo-jobs at once; one that fails is reported and the others go on (exit 2 at the end).
    With --shard I/N only part I of N is scanned; with --state DIR unchanged repositories are
    skipped.
    """
    from kascan.sources.git.repo import is_url
    from kascan.sources.git.target import Mode

    if staged + bool(rev_range) + pre_push + commit_msg > 1:
        raise click.UsageError("choose one of --staged, --range, --pre-push and --commit-msg")
    if as_files and not staged:
        raise click.UsageError("--files goes with --staged")
    patch_mode = staged or rev_range is not None or pre_push or commit_msg
    if patch_mode and (query.fleet or sweep.state_dir is not None):
        raise click.UsageError(
            "--staged, --range, --pre-push and --commit-msg do not go with --repos-from, "
            "--github-org/-user, --shard or --state (those sweep whole histories)"
        )
    history = Mode(messages=messages, reflogs=reflogs, submodules=submodules)
    if not patch_mode and (query.fleet or sweep.state_dir is not None or len(repos) > 1):
        return _sweep(repos, opts, query, sweep, history)
    if commit_msg:
        if len(repos) != 1:
            raise click.UsageError("--commit-msg takes one argument: the message file")
        return _commit_msg(repos[0], opts)
    args = list(repos)
    files: tuple[str, ...] | None = None
    if as_files:
        args, files = [], tuple(repos) or None
    elif staged:
        # file names given by hand: a directory is a repository, anything else a file
        args = [a for a in repos if os.path.isdir(a) or is_url(a)]
        files = tuple(a for a in repos if a not in args) or None
        if any(is_url(a) for a in args):
            raise click.UsageError("--staged scans a local repository's index, not a URL")
        if files and len(args) > 1:
            raise click.UsageError("file names go with one repository only")
    args = args or ["."]
    from kascan.pipeline import progress_wanted

    mode = Mode(
        staged,
        files,
        rev_range,
        pre_push,
        not patch_mode and progress_wanted(opts),  # a history read: a progress line on a terminal
        messages=messages,
        reflogs=reflogs,
        submodules=submodules,
    )
    return _scan(args, mode, opts)


def _commit_msg(path: str, opts: RunOptions) -> int:
    """The message being written (the commit-msg hook), as a source of its own."""
    from kascan import pipeline
    from kascan.sources.git.target import CommitMsgSource
    from kascan.stats import ScanStats

    stats = ScanStats()
    src = CommitMsgSource(path)
    return pipeline.run(
        [src], opts, stats=stats, notes=lambda: [BLOCKED_MSG] * (stats.reported > 0)
    )


def _scan(args: Sequence[str], mode: Mode, opts: RunOptions) -> int:
    from kascan import pipeline
    from kascan.sources.git.target import open_target, source_for
    from kascan.stats import ScanStats

    stats = ScanStats()
    early: list[str] = []
    many = len(args) > 1

    def final_notes() -> Sequence[str]:
        if stats.reported and mode.staged:
            return list(BLOCKED)
        if stats.reported and mode.pre_push:
            return list(PUSH_BLOCKED)
        return []

    with contextlib.ExitStack() as cleanup:
        # every repository, clone, config and revision is checked before anything is scanned
        targets = [
            open_target(
                arg,
                arg if many else None,
                mode,
                opts.scan.config,
                opts.scan.excludes,
                early.append,
                cleanup,
            )
            for arg in args
        ]
        for t in targets:
            if many:
                t.label = t.repo.display
        sources = [source_for(t, mode) for t in targets]
        return pipeline.run(sources, opts, stats=stats, early=early, notes=final_notes)


def _state_parts(opts: RunOptions, mode: Mode) -> list[str | bytes]:
    """What a recorded scan depends on besides the refs: every option that changes what is
    found (see ``fleet.config_fingerprint``)."""
    from kascan.errors import KascanError

    d = opts.decoders
    parts: list[str | bytes] = [
        "decoders",
        f"archives={d.archives} base64={d.base64} utf16={d.utf16}",
        "excludes",
        *opts.scan.excludes,
        "git",
        f"messages={mode.messages} reflogs={mode.reflogs} submodules={mode.submodules}",
    ]
    files = [*opts.scan.rules, *opts.scan.baselines]
    if opts.scan.config is not None:
        files.append(opts.scan.config)
    for p in files:
        try:
            parts += [str(p), p.read_bytes()]
        except OSError as exc:
            raise KascanError(f"cannot read {p}: {exc.strerror or exc}") from None
    return parts


def _sweep(
    repos: Sequence[str],
    opts: RunOptions,
    query: RepoQuery,
    sweep: SweepOptions,
    mode: Mode,
) -> int:
    from kascan import pipeline
    from kascan.fleet import StateStore, config_fingerprint, resolve_repos
    from kascan.reporter import Reporter
    from kascan.sources.base import Source, Warn
    from kascan.sources.git.target import open_target, source_for
    from kascan.stats import ScanStats

    stats = ScanStats()
    reporter = Reporter(opts, stats)
    sel = resolve_repos(repos, query, reporter.warn)
    state = (
        StateStore(sweep.state_dir, config_fingerprint(_state_parts(opts, mode)))
        if sweep.state_dir is not None
        else None
    )

    def open_source(arg: str, cleanup: contextlib.ExitStack, warn: Warn) -> Source:
        t = open_target(arg, arg, mode, opts.scan.config, opts.scan.excludes, warn, cleanup)
        t.label = t.repo.display
        return source_for(t, mode)

    shard = f" (shard {sel.shard[0]}/{sel.shard[1]} of {sel.listed})" if sel.shard else ""
    return pipeline.run_sweep(
        sel.repos,
        open_source,
        opts,
        jobs=sweep.repo_jobs,
        state=state,
        reporter=reporter,
        head=f"{len(sel.repos)} repositories{shard}",
    )
