"""``kascan git``: whole history, the staged change (pre-commit), a range or a push (pre-push)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import click

from kascan.cli import (
    Options,
    Reporter,
    _options,
    common_options,
    decoder_options,
    decoders_from,
    exclude_option,
    load_baselines,
    run_pipeline,
)
from kascan.errors import KascanError
from kascan.fleet_options import RepoQuery, repo_source_options, sweep_options
from kascan.stats import ScanStats

if TYPE_CHECKING:
    from kascan.config import Config
    from kascan.model import Candidate, Chunk
    from kascan.rules import RuleSet
    from kascan.sources.decode import Decoders
    from kascan.sources.git import GitRepo

Excluded = Callable[[str], bool]

BLOCKED = (
    "commit blocked: remove the key from the file and line above and stage the file again "
    "(load it from the environment or a secret store instead); if it was ever pushed or shared, "
    "revoke it in the Kubeadapt dashboard (Settings → API Keys) and rotate it"
)
PUSH_BLOCKED = (
    "push blocked: a commit being pushed adds a Kubeadapt key (commit, file and line above). "
    "Revoke it in the Kubeadapt dashboard (Settings → API Keys) and rotate it, then rewrite "
    "those commits without it (git rebase -i / git commit --amend) before pushing"
)


@dataclass
class _Target:
    arg: str
    label: str | None
    repo: GitRepo
    config: Config | None = None
    ignore: tuple[str, ...] = ()
    revs: list[str] = field(default_factory=list)  # --range / --pre-push, resolved
    what: str = ""  # what the revisions are, for the summary


def _excluder(patterns: Sequence[str]) -> Excluded | None:
    lines = [p for p in patterns if p.strip() and not p.lstrip().startswith("#")]
    if not lines:
        return None
    import pathspec

    spec = pathspec.GitIgnoreSpec.from_lines(lines)

    def excluded(path: str) -> bool:
        return bool(spec.match_file(path))

    return excluded


def _repo_config(
    repo: GitRepo, opts: Options, warn: Callable[[str], None]
) -> tuple[Config, list[str]]:
    """The repository's config and .kascanignore: from its work tree, else from HEAD."""
    from kascan.config import Config, _parse, load_config

    if repo.work_tree is not None:
        top = Path(repo.work_tree)
        cfg = load_config(top, warn, opts.config)
        from kascan.ignore import read_ignore_lines  # a FIFO or /dev/zero is not read

        return cfg, read_ignore_lines(top / ".kascanignore", warn)
    if opts.config is not None:
        return load_config(Path(), warn, opts.config), []
    from kascan.sources.git import read_blob_at

    cfg = Config()
    data = read_blob_at(repo, "HEAD:.kascan.toml")
    if data is not None:
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover
            import tomli as tomllib

        source = f"{repo.display}:HEAD:.kascan.toml"
        try:
            table = tomllib.loads(data.decode("utf-8", "replace"))
        except tomllib.TOMLDecodeError as exc:
            raise KascanError(f"bad config {source}: not valid TOML ({exc})") from None
        cfg = _parse(table, source, Path(), warn)
        if cfg.baseline is not None:
            warn(f"{source}: baseline ignored for a repository without a work tree")
            cfg = Config(cfg.source, cfg.exclude, None)
    blob = read_blob_at(repo, "HEAD:.kascanignore")
    ignore = blob.decode("utf-8", "replace").splitlines() if blob is not None else []
    return cfg, ignore


def _relative_files(repo: GitRepo, files: Sequence[str], warn: Callable[[str], None]) -> list[str]:
    """File names as given (relative to the current directory) -> relative to the work tree."""
    assert repo.work_tree is not None
    top = os.path.realpath(repo.work_tree)
    out: list[str] = []
    for f in files:
        rel = os.path.relpath(os.path.realpath(os.path.abspath(f)), top)
        if os.path.isabs(rel) or rel == ".." or rel.startswith(".." + os.sep):
            warn(f"{f} is outside the repository {repo.display}; not scanned")
            continue
        out.append(Path(rel).as_posix())
    return out


def _parse_range(repo: GitRepo, rev_range: str) -> list[str]:
    from kascan.sources.git import resolve_commit

    if "..." in rev_range:
        raise KascanError(f"--range takes A..B (two dots), not {rev_range!r}")
    a, sep, b = rev_range.partition("..")
    if not sep:
        raise KascanError(f"--range takes A..B, not {rev_range!r}")
    a_sha = resolve_commit(repo, a or "HEAD")
    b_sha = resolve_commit(repo, b or "HEAD")
    return [b_sha, "^" + a_sha]


def _push_revs(repo: GitRepo) -> tuple[list[str], str]:
    """The commits being pushed, from the refs pre-commit puts in the environment."""
    from kascan.sources.git import resolve_commit

    from_ref = os.environ.get("PRE_COMMIT_FROM_REF", "").strip()
    to_ref = (
        os.environ.get("PRE_COMMIT_TO_REF", "").strip()
        or os.environ.get("PRE_COMMIT_LOCAL_BRANCH", "").strip()
        or "HEAD"
    )
    to_sha = resolve_commit(repo, to_ref)
    if from_ref and set(from_ref) != {"0"}:
        from_sha = resolve_commit(repo, from_ref)
        return [to_sha, "^" + from_sha], f"the commits pushed ({from_sha[:12]}..{to_sha[:12]})"
    return [to_sha, "--not", "--remotes"], (
        f"the commits of {to_ref} that are on no remote-tracking branch (a new branch)"
    )


@click.command("git")
@click.argument("repos", nargs=-1, metavar="[REPO]...")
@click.option(
    "--staged",
    is_flag=True,
    help="Only the lines the index adds to HEAD (for a pre-commit hook). File names after it "
    "(as pre-commit passes them) narrow the scan to those files; if some are not staged, "
    "the whole staged content of the files named is scanned.",
)
@click.option(
    "--range",
    "rev_range",
    metavar="A..B",
    help="Only the lines added by the commits in A..B (a push or a pull request).",
)
@click.option(
    "--pre-push",
    is_flag=True,
    help="Only the commits being pushed: PRE_COMMIT_FROM_REF..PRE_COMMIT_TO_REF as set by "
    "pre-commit; for a new branch, its commits that are on no remote-tracking branch.",
)
@exclude_option
@repo_source_options
@sweep_options
@click.option("--by-key", is_flag=True, help="Per-key view on stdout (the same as -f keys).")
@decoder_options
@common_options
def git(
    repos: tuple[str, ...], staged: bool, rev_range: str | None, pre_push: bool, **kw: object
) -> int:
    """Scan git for Kubeadapt API keys: every commit reachable from any ref (the default), the
    staged change, a range of commits, or a push.

    REPO is a path (default .) or a clone URL, cloned bare into a private temporary directory,
    scanned and removed. Each history finding names the commit that introduced the key there.

    Several repositories (arguments, --repos-from, --github-org/--github-user) are scanned
    --jobs at once; one that fails is reported and the others go on (exit 2 at the end). With
    --shard I/N only part I of N is scanned; with --state DIR unchanged repositories are skipped.
    """
    from kascan.sources.git import is_url

    decoders = decoders_from(kw)
    query = RepoQuery.pop_from(kw)
    jobs = int(kw.pop("jobs", 1))  # type: ignore[call-overload]
    state_dir: Path | None = kw.pop("state_dir", None)  # type: ignore[assignment]
    if kw.pop("by_key", False):
        if kw.get("fmt") not in (None, "keys"):
            raise click.UsageError("--by-key is -f keys; give one or the other")
        kw["fmt"] = "keys"
    opts = _options("git", **kw)
    if staged + bool(rev_range) + pre_push > 1:
        raise click.UsageError("choose one of --staged, --range and --pre-push")
    patch_mode = staged or rev_range is not None or pre_push
    if patch_mode and (query.fleet or state_dir is not None):
        raise click.UsageError(
            "--staged, --range and --pre-push do not go with --repos-from, --github-org/-user, "
            "--shard or --state (those sweep whole histories)"
        )
    if not patch_mode and (query.fleet or state_dir is not None or len(repos) > 1):
        from kascan.commands.sweep import run_sweep

        return run_sweep(
            repos, opts, query=query, jobs=jobs, state_dir=state_dir, decoders=decoders
        )
    args = list(repos)
    files: list[str] | None = None
    if staged:
        # pre-commit appends file names: a directory is a repository, anything else a file
        args = [a for a in repos if os.path.isdir(a) or is_url(a)]
        named = [a for a in repos if a not in args]
        files = named or None
        if any(is_url(a) for a in args):
            raise click.UsageError("--staged scans a local repository's index, not a URL")
        if files and len(args) > 1:
            raise click.UsageError("file names go with one repository only")
    args = args or ["."]
    many = len(args) > 1
    stats = ScanStats()
    early: list[str] = []
    notes: list[str] = []
    mode = _Mode(
        staged, files, rev_range, pre_push, sys.stderr.isatty() and not opts.quiet, decoders
    )

    def final_notes() -> Sequence[str]:
        out = list(notes)
        if stats.reported and staged:
            out.append(BLOCKED)
        elif stats.reported and pre_push:
            out.append(PUSH_BLOCKED)
        return out

    with contextlib.ExitStack() as cleanup:
        # every repository, clone, config and revision is checked before anything is scanned
        targets = [_open_target(arg, many, mode, opts, early, cleanup) for arg in args]
        baseline_paths = list(opts.baselines)
        for t in targets:
            cfg_baseline = t.config.baseline if t.config is not None else None
            if cfg_baseline is not None and cfg_baseline not in baseline_paths:
                baseline_paths.append(cfg_baseline)
        baseline = load_baselines(baseline_paths)

        def matched(rep: Reporter, rules: RuleSet) -> Iterator[Candidate]:
            for msg in early:
                rep.warn(msg)
            for t in targets:
                yield from _scan(t, mode, opts, stats, rep.warn, rules, notes)

        return run_pipeline(
            opts, stats, lambda _rep: iter(()), baseline, final_notes, matched=matched
        )


def _open_target(
    arg: str,
    many: bool,
    mode: _Mode,
    opts: Options,
    early: list[str],
    cleanup: contextlib.ExitStack,
) -> _Target:
    from kascan.sources import git as g

    if g.is_url(arg):
        import shutil
        import tempfile

        tmp = tempfile.mkdtemp(prefix="kascan-clone-")  # private: mode 0700
        cleanup.callback(shutil.rmtree, tmp, True)
        repo = g.clone(arg, os.path.join(tmp, "repo.git"))
    else:
        repo = g.open_repo(arg, arg, inherit=arg == ".")
    if mode.staged and repo.work_tree is None:
        raise KascanError(f"--staged needs a repository with a work tree: {arg}")
    config, ignore = _repo_config(repo, opts, early.append)
    revs: list[str] = []
    what = ""
    if mode.pre_push:
        revs, what = _push_revs(repo)
    elif mode.rev_range:
        revs, what = _parse_range(repo, mode.rev_range), f"the range {mode.rev_range}"
    return _Target(arg, repo.display if many else None, repo, config, tuple(ignore), revs, what)


@dataclass(frozen=True)
class _Mode:
    staged: bool
    files: list[str] | None
    rev_range: str | None
    pre_push: bool
    progress: bool
    decoders: Decoders | None = None  # None: every decoder on


def _unwrap(
    chunks: Iterable[Chunk],
    decoders: Decoders | None,
    warn: Callable[[str], None],
    whole: bool = True,
) -> Iterator[Chunk]:
    """Archives in whole blobs, then base64 and UTF-16: what ``kascan scan`` looks inside.
    Added lines of a patch (``whole=False``) are never an archive: the hook path skips that
    layer and its import."""
    from kascan.sources.decode import Decoders, decode_chunks

    decoders = decoders or Decoders()
    if decoders.archives and whole:
        from kascan.sources.archives import DEFAULT_LIMITS, open_archives

        chunks = open_archives(chunks, DEFAULT_LIMITS, warn)
    return decode_chunks(chunks, decoders, warn)


def _may_hide(decoders: Decoders) -> Callable[[bytes], bool] | None:
    """Whether a whole blob without the key's prefix may still hide a key that ``_unwrap`` finds:
    the first, cheap test of each layer (an archive's magic bytes, an encoded prefix for base64,
    NULs and the UTF-16 prefix). The pack-order read hands on only such blobs, and blobs with the
    prefix; every other one would give no candidate."""
    if not (decoders.archives or decoders.base64 or decoders.utf16):
        return None
    from kascan.sources.archives import sniff
    from kascan.sources.decode import _SNIFF_NUL, _UTF16, might_hide_base64

    archives, base64, utf16 = decoders.archives, decoders.base64, decoders.utf16

    def may_hide(data: bytes) -> bool:
        if archives and sniff(data[:512]) is not None:
            return True
        binary = data.find(b"\0", 0, _SNIFF_NUL) != -1
        if base64 and might_hide_base64(data, 0, not binary):
            return True
        return utf16 and binary and _UTF16 in data

    return may_hide


def _scan(
    t: _Target,
    mode: _Mode,
    opts: Options,
    stats: ScanStats,
    warn: Callable[[str], None],
    rules: RuleSet,
    notes: list[str],
) -> Iterator[Candidate]:
    from kascan.match import find_candidates
    from kascan.sources import git as g
    from kascan.sources.decode import Decoders

    repo = t.repo
    patterns = (*(t.config.exclude if t.config else ()), *t.ignore, *opts.excludes)
    excluded = _excluder(patterns)
    if mode.staged:
        yield from _scan_staged(repo, t.label, mode, excluded, stats, warn, rules, notes)
    elif t.revs:
        where = f" in {repo.display}" if t.label else ""
        pstats = g.PatchStats()
        chunks = g.iter_range(repo, t.revs, stats, label=t.label, excluded=excluded, pstats=pstats)
        chunks = _unwrap(chunks, mode.decoders, warn, whole=False)
        yield from g.first_introductions(find_candidates(chunks, rules, warn))
        if pstats.commits == 0:
            notes.append(f"{t.what}{where} has no commits: nothing to scan")
        else:
            notes.append(
                f"scanned {t.what}{where}: {pstats.commits} commit(s), "
                f"{pstats.lines} added line(s) in {len(pstats.files)} file change(s)"
            )
    else:
        progress = g.Progress(mode.progress, f"scanning {repo.display}")
        decoders = mode.decoders or Decoders()
        history = g.History(
            repo,
            stats,
            label=t.label,
            excluded=excluded,
            progress=progress,
            rules=rules,
            wants=_may_hide(decoders),
        )
        chunks = _unwrap(history.chunks(), mode.decoders, warn)
        yield from history.attribute(find_candidates(chunks, rules, warn))
        notes.extend(history.notes)


def _scan_staged(
    repo: GitRepo,
    label: str | None,
    mode: _Mode,
    excluded: Excluded | None,
    stats: ScanStats,
    warn: Callable[[str], None],
    rules: RuleSet,
    notes: list[str],
) -> Iterator[Candidate]:
    from kascan.match import find_candidates
    from kascan.sources import git as g

    pstats = g.PatchStats()
    files = mode.files
    if files is None:
        chunks = g.iter_staged(repo, stats, label=label, excluded=excluded, pstats=pstats)
        yield from find_candidates(_unwrap(chunks, mode.decoders, warn, False), rules, warn)
        n = len(pstats.files)
        if pstats.lines:
            notes.append(
                f"scanned the staged change: {pstats.lines} added line(s) in {n} file(s), "
                "read from the index"
            )
        else:
            notes.append("the index adds no lines to HEAD: nothing to scan")
        return
    rel = _relative_files(repo, files, warn)
    staged = g.staged_paths(repo)
    if set(rel) <= staged:
        # what ``git commit`` hands the hook: the added lines of these files
        chunks = g.iter_staged(
            repo, stats, label=label, excluded=excluded, pstats=pstats, only=frozenset(rel)
        )
        yield from find_candidates(_unwrap(chunks, mode.decoders, warn, False), rules, warn)
        notes.append(
            f"scanned the staged change of the {len(rel)} file(s) named: {pstats.lines} added "
            "line(s), read from the index"
        )
        return
    # ``pre-commit run --files``/``--all-files``: files that are not all staged are read whole
    chunks = g.iter_index_files(repo, rel, stats, warn, label=label, excluded=excluded)
    yield from find_candidates(_unwrap(chunks, mode.decoders, warn), rules, warn)
    notes.append(
        f"{len(rel)} file(s) named, not all of them staged: scanned the whole staged content "
        f"of {stats.files} of them (the work-tree copy for files not in the index)"
    )
