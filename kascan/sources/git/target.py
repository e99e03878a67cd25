"""One repository as the command line names it (a path or a clone URL), its config, and the
source that scans it: the whole history, the staged change, a range of commits or a push.

Where the config comes from:
- history and ``--staged``: the work tree (``.kascan.toml``, ``.kascanignore``), else ``HEAD``;
- ``--range A..B`` (the Action on a pull request): the **base** commit ``A``, never the head: a
  change cannot exempt itself by adding an exclude, an ignore line or a baseline entry;
- ``--config FILE`` on the command line always wins.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kascan.errors import KascanError
from kascan.model import Candidate, Chunk, Decoders
from kascan.sources.base import Run, Source
from kascan.sources.git.process import GitRepo

if TYPE_CHECKING:
    from kascan.config import Config
    from kascan.ignore import Excluder
    from kascan.sources.git.history import History

Warn = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Mode:
    """What of a repository is scanned."""

    staged: bool = False
    files: tuple[str, ...] | None = None  # --staged with file names
    rev_range: str | None = None
    pre_push: bool = False
    progress: bool = False
    messages: bool = True  # commit and tag messages and identities
    reflogs: bool | None = None  # what only reflogs reach; None: on for a local repository
    submodules: bool = True  # each initialised submodule's own history


@dataclass
class Target:
    arg: str
    label: str | None
    repo: GitRepo
    exclude: tuple[str, ...] = ()  # the config's excludes, .kascanignore, --exclude
    baseline: frozenset[str] = frozenset()  # the config's baseline
    baseline_files: tuple[Path, ...] = ()  # where it was read from (a file, not a blob)
    revs: list[str] = field(default_factory=list)  # --range / --pre-push, resolved
    what: str = ""  # what the revisions are, for the summary
    cloned: bool = False  # a clone of a URL (no reflogs of its own)
    tags: list[str] = field(default_factory=list)  # --pre-push: the tag object being pushed


def excluder(patterns: Sequence[str], warn: Warn | None = None) -> Excluder | None:
    """A matcher of gitignore patterns (a pattern that would backtrack for ever is refused
    with a warning: more is scanned, never less)."""
    lines = [p for p in patterns if p.strip() and not p.lstrip().startswith("#")]
    if not lines:
        return None
    from kascan.ignore import affordable

    lines = affordable(lines, warn, ".kascanignore/exclude")
    if not lines:
        return None
    import pathspec

    from kascan.ignore import Excluder

    return Excluder(pathspec.GitIgnoreSpec.from_lines(lines))


def _config_at(repo: GitRepo, rev: str, warn: Warn) -> tuple[Config, list[str], frozenset[str]]:
    """``.kascan.toml``, ``.kascanignore`` and the config's baseline as committed at ``rev``."""
    from kascan.config import Config, config_from_text
    from kascan.sources.git.repo import read_blob_at
    from kascan.suppress import baseline_from_text

    cfg = Config()
    data = read_blob_at(repo, f"{rev}:.kascan.toml")
    baseline: frozenset[str] = frozenset()
    if data is not None:
        source = f"{repo.display}:{rev[:12]}:.kascan.toml"
        cfg = config_from_text(data.decode("utf-8", "replace"), source, warn, root=Path())
        if cfg.baseline is not None:
            name = cfg.baseline.as_posix()
            blob = read_blob_at(repo, f"{rev}:{name}")
            if blob is None:
                warn(f"{source}: baseline {name} is not in that commit; none used")
            else:
                where = f"{repo.display}:{rev[:12]}:{name}"
                baseline = baseline_from_text(blob.decode("utf-8", "replace"), where)
            cfg = Config(cfg.source, cfg.exclude, None)
    blob = read_blob_at(repo, f"{rev}:.kascanignore")
    ignore = blob.decode("utf-8", "replace").splitlines() if blob is not None else []
    return cfg, ignore, baseline


def _repo_config(
    repo: GitRepo, explicit: Path | None, warn: Warn, base: str | None
) -> tuple[Config, list[str], frozenset[str]]:
    """The repository's config, ignore file and, for a config read from a commit, its baseline's
    fingerprints (a config file's baseline is a file: the pipeline reads it)."""
    from kascan.config import load_config

    if explicit is not None:
        return load_config(Path(), warn, explicit), [], frozenset()
    if base is not None:
        return _config_at(repo, base, warn)
    if repo.work_tree is None:
        return _config_at(repo, "HEAD", warn)
    top = Path(repo.work_tree)
    cfg = load_config(top, warn)
    from kascan.ignore import read_ignore_lines  # a FIFO or /dev/zero is not read

    return cfg, read_ignore_lines(top / ".kascanignore", warn), frozenset()


def relative_files(repo: GitRepo, files: Sequence[str], warn: Warn) -> list[str]:
    """File names as given (relative to the current directory) -> relative to the work tree."""
    if repo.work_tree is None:
        raise KascanError(f"--staged needs a repository with a work tree: {repo.display}")
    top = os.path.realpath(repo.work_tree)
    out: list[str] = []
    for f in files:
        rel = os.path.relpath(os.path.realpath(os.path.abspath(f)), top)
        if os.path.isabs(rel) or rel == ".." or rel.startswith(".." + os.sep):
            warn(f"{f} is outside the repository {repo.display}; not scanned")
            continue
        out.append(Path(rel).as_posix())
    return out


def parse_range(repo: GitRepo, rev_range: str) -> tuple[list[str], str]:
    """``A..B`` as revisions (``[B, ^A]``) and the base commit ``A``."""
    from kascan.sources.git.repo import resolve_commit

    if "..." in rev_range:
        raise KascanError(f"--range takes A..B (two dots), not {rev_range!r}")
    a, sep, b = rev_range.partition("..")
    if not sep:
        raise KascanError(f"--range takes A..B, not {rev_range!r}")
    a_sha = resolve_commit(repo, a or "HEAD")
    b_sha = resolve_commit(repo, b or "HEAD")
    return [b_sha, "^" + a_sha], a_sha


def push_revs(repo: GitRepo) -> tuple[list[str], str]:
    """The commits being pushed, from the refs pre-commit puts in the environment."""
    from kascan.sources.git.repo import resolve_commit

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


def pushed_tags(repo: GitRepo) -> list[str]:
    """The annotated tag being pushed, if what pre-commit says is pushed is a tag object (its
    message is new even when the commit it names was pushed before)."""
    from kascan.sources.git.process import run_git

    to_ref = os.environ.get("PRE_COMMIT_TO_REF", "").strip()
    if not to_ref or to_ref.startswith("-") or set(to_ref) == {"0"}:
        return []
    proc = run_git(repo, "cat-file", "-t", "--end-of-options", to_ref, check=False)
    if proc.returncode != 0 or proc.stdout.strip() != b"tag":
        return []
    sha = run_git(repo, "rev-parse", "--verify", "--end-of-options", to_ref, check=False)
    return [sha.stdout.decode("ascii", "replace").strip()] if sha.returncode == 0 else []


def open_target(
    arg: str,
    label: str | None,
    mode: Mode,
    explicit_config: Path | None,
    excludes: Sequence[str],
    warn: Warn,
    cleanup: contextlib.ExitStack,
) -> Target:
    """Open (or clone) the repository, read its config and resolve its revisions: everything is
    checked before anything is scanned."""
    from kascan.sources.git import repo as r

    bundle = os.path.isfile(arg) and r.is_bundle(arg)
    if bundle and (mode.staged or mode.pre_push):
        raise KascanError(f"{arg} is a git bundle: it has history, not a staged change or a push")
    if r.is_url(arg) or bundle:
        import shutil
        import tempfile

        tmp = tempfile.mkdtemp(prefix="kascan-clone-")  # private: mode 0700
        cleanup.callback(shutil.rmtree, tmp, True)
        repo = r.clone(arg, os.path.join(tmp, "repo.git"))
    else:
        repo = r.open_repo(arg, arg, inherit=arg == ".")
    if mode.staged and repo.work_tree is None:
        raise KascanError(f"--staged needs a repository with a work tree: {arg}")
    revs: list[str] = []
    what = ""
    base: str | None = None
    if mode.pre_push:
        revs, what = push_revs(repo)
    elif mode.rev_range:
        revs, base = parse_range(repo, mode.rev_range)
        what = f"the range {mode.rev_range}"
    cfg, ignore, baseline = _repo_config(repo, explicit_config, warn, base)
    exclude = (*cfg.exclude, *ignore, *excludes)
    files = (cfg.baseline,) if cfg.baseline is not None else ()
    tags = pushed_tags(repo) if mode.pre_push else []
    return Target(arg, label, repo, exclude, baseline, files, revs, what, r.is_url(arg), tags)


def may_hide(decoders: Decoders) -> Callable[[bytes], bool] | None:
    """Whether a whole blob without the key's prefix may still hide a key that the unwrap stage
    finds: an archive's magic bytes, or any decoder's needle in the engine's one pass over it
    (base64, UTF-16/32, percent, escapes, hex). The pack-order read hands on only such blobs,
    and blobs with the prefix; every other one would give no candidate."""
    if not (decoders.archives or decoders.decoding):
        return None
    from kascan.engine import hits
    from kascan.sources.archives import sniff

    archives, decoding = decoders.archives, decoders.decoding

    def hides(data: bytes) -> bool:
        if archives and sniff(data[:512]) is not None:
            return True
        return decoding and bool(hits(data))

    return hides


# --------------------------------------------------------------------------- the sources


@dataclass(frozen=True, slots=True)
class Submodule:
    path: str  # where it is in the superproject ("/" separators), escaped for display
    repo: GitRepo  # its own repository (its git dir under .git/modules)


MAX_NESTING = 4  # submodules of submodules: how deep they are followed


def submodules(repo: GitRepo, warn: Warn, prefix: str = "", depth: int = 0) -> list[Submodule]:
    """The initialised submodules of ``repo`` (and theirs, nested): each git dir under its
    ``modules/`` that ``.gitmodules`` (as committed at HEAD) names, with the submodule's path.

    Nothing of the attacker-written ``.gitmodules`` is run or followed out of ``modules/``: its
    names only pick directories there, its paths only become the prefix of the findings."""
    from kascan.sources.git.blobstream import printable
    from kascan.sources.git.process import run_git
    from kascan.sources.git.repo import open_repo

    top = os.path.realpath(os.path.join(repo.git_dir, "modules"))
    if depth >= MAX_NESTING or not os.path.isdir(top):
        return []
    proc = run_git(
        repo,
        "config",
        "-z",
        "--blob",
        "HEAD:.gitmodules",
        "--get-regexp",
        r"^submodule\..*\.path$",
        check=False,
    )
    out: list[Submodule] = []
    for rec in proc.stdout.split(b"\0"):
        key, _, value = rec.partition(b"\n")
        if not key.startswith(b"submodule.") or not key.endswith(b".path") or not value:
            continue
        name = key[len(b"submodule.") : -len(b".path")].decode("utf-8", "surrogateescape")
        where = os.path.realpath(os.path.join(top, name))
        if not where.startswith(top + os.sep) or not os.path.isfile(os.path.join(where, "HEAD")):
            continue  # not initialised here, or a name that leaves modules/
        path = prefix + printable(value.decode("utf-8", "replace").strip("/"))
        try:
            sub = open_repo(where, f"{repo.display} submodule {path}")
        except KascanError as exc:
            warn(f"submodule {path} of {repo.display} cannot be read: {exc.format_message()}")
            continue
        sub = GitRepo(sub.display, sub.git_dir, None, None, sub.shallow, sub.object_format)
        out.append(Submodule(path, sub))
        out.extend(submodules(sub, warn, path + "/", depth + 1))
    return out


class HistorySource(Source):
    """Every blob reachable from any ref, then attribution to the introducing commits; with
    ``--submodules`` (the default) the same for each initialised submodule's own repository,
    its findings' paths prefixed with the submodule's path (``libs/x/config.env``, ``libs/x/
    commit 1a2b3c4d5e6f message``), so that they name the file in the superproject's tree."""

    has_commits = True

    def __init__(self, target: Target, mode: Mode) -> None:
        super().__init__()
        self.target = target
        self.label = target.label
        self.baseline = target.baseline
        self.baseline_files = target.baseline_files
        self.progress = mode.progress
        self.mode = mode
        self._parts: list[tuple[History, str]] = []

    def _history(self, repo: GitRepo, run: Run, prefix: str, modules: bool) -> History:
        from kascan.progress import Progress
        from kascan.sources.git.history import History

        t = self.target
        excluded = excluder(t.exclude, run.warn)
        if excluded is not None and prefix:
            excluded = excluded.under(prefix)
        return History(
            repo,
            run.stats,
            label=t.label,
            excluded=excluded,
            progress=Progress(self.progress, repo.display),
            rules=run.rules,
            wants=may_hide(run.decoders),
            warn=run.warn,
            messages=self.mode.messages,
            reflogs=self.reflogs,
            submodules=modules,
            note=run.note,
        )

    def chunks(self, run: Run) -> Iterator[Chunk]:
        """Every repository's history set up now (``attribute`` is set up before the chunks are
        read), read in turn."""
        t = self.target
        subs = submodules(t.repo, run.warn) if self.mode.submodules else []
        main = self._history(t.repo, run, "", bool(subs))
        self._parts = [(main, "")]
        self.notes = main.notes
        for sub in subs:
            self._parts.append((self._history(sub.repo, run, sub.path + "/", True), sub.path))
        if subs:
            self.notes.append(
                f"{t.repo.display}: scanned the history of {len(subs)} submodule(s) too "
                f"({', '.join(s.path for s in subs[:5])}{', …' if len(subs) > 5 else ''}): "
                "their findings' paths start with the submodule's path"
            )
        return self._read()

    def _read(self) -> Iterator[Chunk]:
        from dataclasses import replace

        yield from self._parts[0][0].chunks()
        for i, (history, _) in enumerate(self._parts[1:], 1):
            tag = f"\0{i}\0"
            for chunk in history.chunks():
                yield replace(chunk, origin=tag + (chunk.origin or ""))

    @property
    def reflogs(self) -> bool:
        """``--reflogs``; by default on, but for a clone (it has none)."""
        return self.mode.reflogs if self.mode.reflogs is not None else not self.target.cloned

    def attribute(self, candidates: Iterable[Candidate]) -> Iterator[Candidate]:
        """Each repository's candidates attributed by its own history (a submodule's chunks
        carry its number in their origin), then a submodule's paths prefixed."""
        from dataclasses import replace

        if not self._parts:  # pragma: no cover - chunks() comes first
            raise KascanError("internal: history attributed before it was read")
        if len(self._parts) == 1:
            yield from self._parts[0][0].attribute(candidates)
            return
        buckets: list[list[Candidate]] = [[] for _ in self._parts]
        error: KascanError | None = None
        try:
            for cand in candidates:
                origin = cand.origin or ""
                if origin.startswith("\0"):
                    _, i, rest = origin.split("\0", 2)
                    buckets[int(i)].append(replace(cand, origin=rest or None))
                else:
                    buckets[0].append(cand)
        except KascanError as exc:  # what was read is still attributed and reported
            error = exc
        for (history, path), cands in zip(self._parts, buckets, strict=True):
            prefix = path + "/" if path else ""
            for cand in history.attribute(cands):
                if prefix:
                    f = cand.finding
                    cand = replace(cand, finding=replace(f, path=prefix + f.path))
                yield cand
        for history, _ in self._parts[1:]:  # a submodule's notes, its attribution's included
            self.notes.extend(history.notes)
        if error is not None:
            raise error


class StagedSource(Source):
    """The lines (and binary objects) the index adds to HEAD: what ``git commit`` would add."""

    def __init__(self, target: Target, files: Sequence[str] | None) -> None:
        super().__init__()
        self.target = target
        self.label = target.label
        self.baseline = target.baseline
        self.baseline_files = target.baseline_files
        self.files = files

    def chunks(self, run: Run) -> Iterator[Chunk]:
        from kascan.sources.git import patch as p

        repo, label, stats = self.target.repo, self.label, run.stats
        excluded = excluder(self.target.exclude, run.warn)
        pstats = p.PatchStats()
        rel = relative_files(repo, self.files, run.warn) if self.files is not None else None
        diff = p.StagedDiff(repo)  # one git process: what is staged, and its patch
        try:
            if rel is None:
                yield from diff.chunks(
                    stats, label=label, excluded=excluded, pstats=pstats, note=run.note
                )
                if pstats.lines or pstats.wholes:
                    self.notes.append(
                        f"scanned the staged change: {pstats.lines} added line(s) in "
                        f"{len(pstats.files)} file(s), read from the index"
                    )
                else:
                    self.notes.append("the index adds no lines to HEAD: nothing to scan")
                return
            if set(rel) <= diff.paths:
                # what ``git commit`` hands the hook: the added lines of these files
                yield from diff.chunks(
                    stats,
                    label=label,
                    excluded=excluded,
                    pstats=pstats,
                    only=frozenset(rel),
                    note=run.note,
                )
                self.notes.append(
                    f"scanned the staged change of the {len(rel)} file(s) named: "
                    f"{pstats.lines} added line(s), read from the index"
                )
                return
        finally:
            diff.close()
        # ``pre-commit run --files``/``--all-files``: files that are not all staged: read whole
        yield from p.iter_index_files(
            repo,
            rel,
            stats,
            run.warn,
            label=label,
            excluded=excluded,
            archives=run.limits,
            note=run.note,
        )
        self.notes.append(
            f"{len(rel)} file(s) named, not all of them staged: scanned the whole staged content "
            f"of {stats.files} of them (the work-tree copy for files not in the index)"
        )

    def attribute(self, candidates: Iterable[Candidate]) -> Iterator[Candidate]:
        from kascan.sources.git.patch import added_keys

        return added_keys(candidates)


class RangeSource(Source):
    """The lines (and binary objects) each commit of a range adds; a key reported for the
    first commit that adds it at a path."""

    has_commits = True

    def __init__(self, target: Target, messages: bool = True) -> None:
        super().__init__()
        self.target = target
        self.label = target.label
        self.baseline = target.baseline
        self.baseline_files = target.baseline_files
        self.messages = messages

    def chunks(self, run: Run) -> Iterator[Chunk]:
        from kascan.sources.git import patch as p

        t = self.target
        pstats = p.PatchStats()
        yield from p.iter_range(
            t.repo,
            t.revs,
            run.stats,
            label=t.label,
            excluded=excluder(t.exclude, run.warn),
            pstats=pstats,
            messages=self.messages,
            extra_tags=t.tags,
            note=run.note,
        )
        where = f" in {t.repo.display}" if t.label else ""
        tags = pstats.objects - pstats.commits
        if pstats.commits == 0 and tags <= 0:
            self.notes.append(f"{t.what}{where} has no commits: nothing to scan")
        else:
            said = f" and {tags} annotated tag(s)" if tags > 0 else ""
            msgs = f", their messages{said}" if self.messages else ""
            self.notes.append(
                f"scanned {t.what}{where}: {pstats.commits} commit(s), "
                f"{pstats.lines} added line(s) in {len(pstats.files)} file change(s){msgs}"
            )

    def attribute(self, candidates: Iterable[Candidate]) -> Iterator[Candidate]:
        from kascan.sources.git.patch import added_keys, first_introductions

        return first_introductions(added_keys(candidates))


class CommitMsgSource(Source):
    """The commit message being written (the commit-msg hook): one file, read whole, each line
    at its line (the ones git strips as comments too: they are on disk, in the editor's file).
    Its findings are named ``commit message`` (the commit does not exist yet)."""

    PATH = "commit message"
    CAP = 16 << 20

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def chunks(self, run: Run) -> Iterator[Chunk]:
        from kascan.safeio import read_regular, reason

        try:
            data = read_regular(self.path, self.CAP)
        except OSError as exc:
            raise KascanError(
                f"cannot read the commit message {self.path}: {reason(exc)}"
            ) from None
        run.stats.files += 1
        run.stats.bytes += len(data)
        yield Chunk(self.PATH, data)


def source_for(target: Target, mode: Mode) -> Source:
    if mode.staged:
        return StagedSource(target, mode.files)
    if target.revs:
        return RangeSource(target, mode.messages)
    return HistorySource(target, mode)
