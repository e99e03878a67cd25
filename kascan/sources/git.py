"""Git: every blob in history (read once each), the staged change, or a range of commits.

The scanned repository is treated as hostile: git runs with the ``GIT_*`` variables scrubbed from
its environment and with its hooks, fsmonitor, external diff, textconv and signature programs
switched off. Output is read with ``-z`` where git offers it.

History is read with ``git cat-file --batch``, one distinct blob at a time; only the few blobs
that hold a candidate are then attributed to the commit that introduced each key at each path
(:class:`History`), with one ``git log --raw --find-object`` walk.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import IO, TYPE_CHECKING

from kascan.errors import KascanError
from kascan.model import Candidate, Chunk, Commit
from kascan.sources.stream import WINDOW, iter_stream
from kascan.stats import ScanStats

if TYPE_CHECKING:
    from kascan.rules import RuleSet
    from kascan.sources.blobstream import BlobStream

Warn = Callable[[str], None]

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
EMPTY_TREE_SHA256 = "6ef19b41225c5369f1c104d45d8d85efa9b057b53b14b4b9b939dd74decc5321"
ZERO = "0" * 40
LFS_POINTER = b"version https://git-lfs.github.com/spec/v1"

# Settings of the scanned repository that could run a program or change what git prints.
SAFE_CONFIG: tuple[str, ...] = tuple(
    arg
    for setting in (
        "core.hooksPath=/dev/null",
        "core.fsmonitor=",
        "diff.external=",
        "core.pager=cat",
        "core.quotePath=false",
        "log.showSignature=false",
        "log.decorate=false",
        "diff.noprefix=false",
        "diff.mnemonicPrefix=false",
        "diff.relative=false",
        "diff.interHunkContext=0",
        "color.ui=false",
        "protocol.ext.allow=never",
        "gc.auto=0",
        "maintenance.auto=false",
    )
    for arg in ("-c", setting)
)

# Variables a user sets for how git reaches a server; everything else GIT_* is dropped.
_KEEP_ENV = frozenset(
    {
        "GIT_EXEC_PATH",
        "GIT_SSH",
        "GIT_SSH_COMMAND",
        "GIT_SSH_VARIANT",
        "GIT_ASKPASS",
        "GIT_SSL_CAINFO",
        "GIT_SSL_CAPATH",
        "GIT_SSL_NO_VERIFY",
        "GIT_HTTP_PROXY_AUTHMETHOD",
        "GIT_CONFIG_NOSYSTEM",
        "GIT_CONFIG_GLOBAL",
        "GIT_CONFIG_SYSTEM",
        "GIT_ALLOW_PROTOCOL",
    }
)


# No transport is allowed by this name: a git child that reads a scanned repository may not reach
# any remote, so a lazy fetch of a missing object (``remote.<name>.promisor``, a partial clone)
# cannot run that repository's ``remote.<name>.uploadpack`` or ``core.sshCommand``. The variable
# takes precedence over every ``protocol.*.allow`` setting of the repository's own config.
NO_TRANSPORT = "kascan-no-network"


def git_env(keep: Iterable[str] = (), *, network: bool = False) -> dict[str, str]:
    """The environment for a git child: no ``GIT_*`` from a hook, no prompts, no replacements,
    and, unless ``network`` (only ``git clone`` of a URL the user named), no transport at all."""
    kept = _KEEP_ENV | set(keep)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") or k in kept}
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["GIT_NO_REPLACE_OBJECTS"] = "1"  # read the objects as stored, not what refs/replace says
    env["GIT_OPTIONAL_LOCKS"] = "0"
    env["GIT_LITERAL_PATHSPECS"] = "1"
    if not network:
        env["GIT_ALLOW_PROTOCOL"] = NO_TRANSPORT
        env["GIT_NO_LAZY_FETCH"] = "1"  # git >= 2.45 knows it; GIT_ALLOW_PROTOCOL covers older
    return env


@dataclass(frozen=True, slots=True)
class GitRepo:
    display: str  # as given on the command line
    git_dir: str
    work_tree: str | None
    index_file: str | None = None  # the hook's GIT_INDEX_FILE (e.g. ``git commit -a``)
    shallow: bool = False
    object_format: str = "sha1"

    @property
    def empty_tree(self) -> str:
        return EMPTY_TREE_SHA256 if self.object_format == "sha256" else EMPTY_TREE

    def argv(self, *args: str) -> list[str]:
        base = ["git", f"--git-dir={self.git_dir}"]
        if self.work_tree:
            base.append(f"--work-tree={self.work_tree}")
        return [*base, *SAFE_CONFIG, *args]

    def env(self) -> dict[str, str]:
        env = git_env()
        if self.index_file:
            env["GIT_INDEX_FILE"] = self.index_file
        return env


def _last_line(stderr: bytes) -> str:
    from kascan.model import scrub

    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    fatal = [ln for ln in lines if ln.startswith(("fatal: ", "error: "))]
    text = fatal[0] if fatal else lines[-1] if lines else "git failed"
    for prefix in ("fatal: ", "error: "):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    return scrub(text)


def run_git(
    repo: GitRepo, *args: str, check: bool = True, input: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    try:
        proc = subprocess.run(
            repo.argv(*args), env=repo.env(), input=input, capture_output=True, check=False
        )
    except OSError as exc:
        raise KascanError(f"cannot run git: {exc.strerror or exc}") from None
    if check and proc.returncode != 0:
        raise KascanError(f"git {args[0]} failed in {repo.display}: {_last_line(proc.stderr)}")
    return proc


def _popen(
    repo: GitRepo, *args: str, stdin: int | IO[bytes] | None = subprocess.DEVNULL
) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(
            repo.argv(*args),
            env=repo.env(),
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=1 << 20,
        )
    except OSError as exc:
        raise KascanError(f"cannot run git: {exc.strerror or exc}") from None


def _finish(repo: GitRepo, proc: subprocess.Popen[bytes], what: str) -> None:
    """Wait for a streaming git child; a failure is fatal (a partial read must not look clean)."""
    stderr = proc.stderr.read() if proc.stderr else b""
    rc = proc.wait()
    if rc != 0:
        raise KascanError(f"git {what} failed in {repo.display}: {_last_line(stderr)}")


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(OSError):
            proc.kill()
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        proc.wait(timeout=5)
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()


# ---------------------------------------------------------------------------------------------
# Finding the repository


def open_repo(path: str, display: str | None = None, *, inherit: bool = False) -> GitRepo:
    """The repository at ``path`` (a work tree, a subdirectory of one, or a bare repository).

    With ``inherit`` (the default repository, ``.``), the ``GIT_DIR``/``GIT_WORK_TREE``/
    ``GIT_INDEX_FILE`` that a hook runs with are honoured: they name the repository and the index
    the commit is being made from. They are resolved here once and then passed explicitly.
    """
    display = display if display is not None else path
    if not os.path.isdir(path):
        what = "no such directory" if not os.path.exists(path) else "not a directory"
        raise KascanError(f"not a git repository: {display} ({what})")
    keep = ("GIT_DIR", "GIT_WORK_TREE") if inherit else ()
    env = git_env(keep)
    try:
        proc = subprocess.run(
            [
                *["git", "-C", path, *SAFE_CONFIG, "rev-parse"],
                "--absolute-git-dir",
                "--is-bare-repository",
                "--is-shallow-repository",
                "--show-object-format",
                "--show-toplevel",  # last: it fails (after the others) without a work tree
            ],
            env=env,
            capture_output=True,
            check=False,
        )
    except OSError as exc:
        raise KascanError(f"cannot run git: {exc.strerror or exc}") from None
    out = proc.stdout.decode("utf-8", "surrogateescape").splitlines()
    if len(out) < 4 or (proc.returncode != 0 and b"work tree" not in proc.stderr):
        reason = _last_line(proc.stderr)
        detail = "" if reason.startswith("not a git repository") else f" ({reason})"
        raise KascanError(f"not a git repository: {display}{detail}")
    git_dir, bare, shallow, fmt = out[:4]
    work_tree = out[4] if bare != "true" and proc.returncode == 0 and len(out) > 4 else None
    index_file = None
    if inherit and os.environ.get("GIT_INDEX_FILE"):
        index_file = os.path.abspath(os.environ["GIT_INDEX_FILE"])
    return GitRepo(display, git_dir, work_tree, index_file, shallow == "true", fmt)


def is_url(arg: str) -> bool:
    """A clone URL (``https://``, ``ssh://``, ``file://``, ``git@host:path``), not a local path."""
    if "://" in arg:
        return True
    if os.path.exists(arg):
        return False
    head, sep, _ = arg.partition(":")
    return bool(sep) and "/" not in head and len(head) > 1


_SCHEMES = ("https://", "http://", "ssh://", "git://", "file://", "git+ssh://", "ssh+git://")


def safe_url(url: str) -> str:
    """The URL without any password, for messages."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        userinfo, _, hostpart = rest.partition("@")
        user = userinfo.split(":", 1)[0]
        return f"{scheme}://{user}:***@{hostpart}" if ":" in userinfo else url
    return url


def clone(url: str, dest: str) -> GitRepo:
    """A bare clone of ``url`` in ``dest`` (a private temporary directory)."""
    shown = safe_url(url)
    if url.startswith("-") or ("://" in url and not url.lower().startswith(_SCHEMES)):
        raise KascanError(f"cannot clone {shown}: unsupported URL scheme")
    env = git_env(network=True)
    try:
        proc = subprocess.run(
            ["git", *SAFE_CONFIG, "clone", "--bare", "--quiet", "--no-local", "--", url, dest],
            env=env,
            capture_output=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except OSError as exc:
        raise KascanError(f"cannot run git: {exc.strerror or exc}") from None
    if proc.returncode != 0:
        reason = _last_line(proc.stderr).replace(url, shown)
        raise KascanError(f"cannot clone {shown}: {reason}")
    repo = open_repo(dest, shown)
    return replace(repo, display=shown)


def resolve_commit(repo: GitRepo, rev: str) -> str:
    if rev.startswith("-"):
        raise KascanError(f"unknown revision {rev!r} in {repo.display}")
    proc = run_git(
        repo, "rev-parse", "--verify", "--quiet", "--end-of-options", rev + "^{commit}", check=False
    )
    if proc.returncode != 0:
        raise KascanError(f"unknown revision {rev!r} in {repo.display}")
    return proc.stdout.decode().strip()


def head_commit(repo: GitRepo) -> str | None:
    proc = run_git(repo, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False)
    return proc.stdout.decode().strip() if proc.returncode == 0 else None


def read_blob_at(repo: GitRepo, spec: str) -> bytes | None:
    """``git cat-file blob <spec>`` (e.g. ``HEAD:.kascan.toml``); None when there is none."""
    proc = run_git(repo, "cat-file", "blob", spec, check=False)
    return proc.stdout if proc.returncode == 0 else None


# ---------------------------------------------------------------------------------------------
# Progress


class Progress:
    """``objects done/total, bytes/s`` on one stderr line; silent unless stderr is a TTY."""

    def __init__(self, enabled: bool, label: str) -> None:
        self.enabled = enabled
        self.label = label
        self.start = time.monotonic()
        self.last = 0.0
        self.shown = False

    def update(self, done: int, total: int, nbytes: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < 0.1 and done != total:
            return
        self.last = now
        from kascan.stats import human_bytes

        rate = nbytes / max(now - self.start, 1e-6)
        pct = 100 * done // total if total else 100
        import sys

        sys.stderr.write(
            f"\r\x1b[Kkascan: {self.label}: {done}/{total} objects ({pct}%), "
            f"{human_bytes(int(rate))}/s"
        )
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            import sys

            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self.shown = False


# ---------------------------------------------------------------------------------------------
# History: every distinct blob once, then attribution of the few that hold a key


@dataclass(frozen=True, slots=True)
class _Blob:
    oid: str
    size: int
    path: str  # one of the paths it appears at (rev-list's name); attribution finds all


class _Inventory:
    # a plain class: every dataclass costs the start-up of a hook ~0.5-1 ms
    __slots__ = ("blobs", "commits", "gitmodules")

    def __init__(self) -> None:
        self.blobs: list[_Blob] = []
        self.commits = 0
        self.gitmodules = False


def _stash_revs(repo: GitRepo) -> list[str]:
    """Every stash entry, not only the newest (``refs/stash`` is in ``--all``; its reflog isn't)."""
    proc = run_git(repo, "log", "-g", "--format=%H", "refs/stash", "--", check=False)
    if proc.returncode != 0:
        return []
    return [ln for ln in proc.stdout.decode().split() if ln]


def _partial_clone(repo: GitRepo) -> bool:
    proc = run_git(repo, "config", "--get", "extensions.partialclone", check=False)
    return proc.returncode == 0 and bool(proc.stdout.strip())


def _inventory(repo: GitRepo, revs: Sequence[str], partial: bool) -> _Inventory:
    """Commits and blobs reachable from ``revs``: rev-list piped into cat-file --batch-check."""
    missing = ("--missing=allow-any",) if partial else ()  # never fetched: see NO_TRANSPORT
    revlist = _popen(repo, "rev-list", "--objects", *missing, *revs, "--")
    assert revlist.stdout is not None
    check = _popen(
        repo,
        "cat-file",
        "--batch-check=%(objecttype) %(objectname) %(objectsize) %(rest)",
        stdin=revlist.stdout,
    )
    revlist.stdout.close()  # the pipe now belongs to cat-file
    inv = _Inventory()
    try:
        assert check.stdout is not None
        for raw in check.stdout:
            parts = raw.rstrip(b"\n").split(b" ", 3)
            kind = parts[0]
            if kind == b"blob" and len(parts) >= 3:
                path = parts[3].decode("utf-8", "surrogateescape") if len(parts) > 3 else ""
                inv.blobs.append(_Blob(parts[1].decode(), int(parts[2]), path))
                if path == ".gitmodules" or path.endswith("/.gitmodules"):
                    inv.gitmodules = True
            elif kind == b"commit":
                inv.commits += 1
        _finish(repo, check, "cat-file --batch-check")
        _finish(repo, revlist, "rev-list")
    finally:
        _kill(check)
        _kill(revlist)
    return inv


def iter_blobs(
    repo: GitRepo,
    blobs: Sequence[_Blob],
    *,
    label: str | None = None,
    on_blob: Callable[[_Blob], None] | None = None,
    progress: Progress | None = None,
    stats: ScanStats | None = None,
) -> Iterator[Chunk]:
    """Each blob's bytes through one ``git cat-file --batch``: whole, or in windows when big.

    ``on_blob`` is told which blob the following chunks come from before they are yielded.
    """
    import threading

    proc = _popen(repo, "cat-file", "--batch", stdin=subprocess.PIPE)
    stdin, out = proc.stdin, proc.stdout
    assert stdin is not None and out is not None

    def feed() -> None:
        try:
            for b in blobs:
                stdin.write(b.oid.encode() + b"\n")
            stdin.close()
        except (OSError, ValueError):
            pass

    writer = threading.Thread(target=feed, name="kascan-cat-file-feed", daemon=True)
    writer.start()
    total, done, nbytes = len(blobs), 0, 0
    try:
        for blob in blobs:
            header = out.readline()
            parts = header.split()
            if len(parts) == 2 and parts[1] == b"missing":
                if stats is not None:
                    stats.skipped["missing-object"] += 1
                done += 1
                continue
            if len(parts) != 3:
                raise KascanError(f"git cat-file gave an unexpected reply in {repo.display}")
            size = int(parts[2])
            if on_blob is not None:
                on_blob(blob)
            if size <= WINDOW:
                data = out.read(size)
                if len(data) != size:
                    raise KascanError(f"git cat-file stopped early in {repo.display}")
                out.read(1)
                yield Chunk(blob.path, data, repo=label)
            else:
                left = size

                def read(n: int) -> bytes:
                    nonlocal left
                    block = out.read(min(n, left)) if left > 0 else b""
                    left -= len(block)
                    return block

                yield from iter_stream(read, blob.path)
                while left > 0:
                    if not read(1 << 20):
                        raise KascanError(f"git cat-file stopped early in {repo.display}")
                out.read(1)
            done += 1
            nbytes += size
            if stats is not None:
                stats.bytes += size
            if progress is not None:
                progress.update(done, total, nbytes)
        writer.join()
        _finish(repo, proc, "cat-file --batch")
    finally:
        if progress is not None:
            progress.close()
        _kill(proc)


_Entry = tuple[str, str, str, str]  # src blob, dst blob, status, path


@dataclass(frozen=True, slots=True)
class Introduction:
    commit: Commit
    blob: str
    path: str


class History:
    """A whole-history scan of one repository.

    :meth:`chunks` yields every blob once (``iter_git_history``); :meth:`attribute` takes the
    candidates found in them and yields one per key, path and introducing commit: the earliest
    commit (date order, parents first) whose change added that key at that path. A key that leaves
    one path in the same commit that adds it at another (a rename or a move) is not introduced
    again, and merges are not blamed unless nothing else introduced the key (an "evil" merge, or a
    stash's work-tree commit).

    With rules that do not depend on paths (the default), the blobs are read from the object
    database in pack order, reachable or not, without walking the history first
    (:mod:`kascan.sources.blobstream`); the walk that attributes the few blobs with a candidate
    also tells which of them are reachable (from a ref, a tag or a stash entry), and candidates in
    blobs that nothing reaches (dangling: staged and dropped, rewritten away) are counted and
    skipped. Rules with a ``path`` need each blob's path while matching: their blobs are listed
    by a ``rev-list --objects`` walk first (which gives one path per blob), as in a partial clone.
    """

    def __init__(
        self,
        repo: GitRepo,
        stats: ScanStats,
        *,
        label: str | None = None,
        excluded: Callable[[str], bool] | None = None,
        progress: Progress | None = None,
        rules: RuleSet | None = None,
        gate: bool = True,
        wants: Callable[[bytes], bool] | None = None,
    ) -> None:
        self.repo = repo
        self.stats = stats
        # skip blobs without the rules' literal prefix: only when no decoder needs to look
        # inside them (an archive, base64 or UTF-16 blob does not contain the prefix as bytes)
        self.gate = gate
        self.wants = wants  # with the gate: a blob without the prefix that is handed on anyway
        self.label = label
        self.excluded = excluded
        self.progress = progress
        self.rules = rules
        self.notes: list[str] = []
        self._revs: list[str] = []
        self._paths: dict[str, str] = {}  # blob -> a path, for blobs read with a path
        self._blob: _Blob | None = None  # the blob being read (walked order)
        self._stream: BlobStream | None = None  # pack order
        self._empty = False
        self._early_walk: _EarlyWalk | None = None

    def _set_current(self, blob: _Blob) -> None:
        self._blob = blob

    def _current(self) -> str:
        if self._stream is not None:
            return self._stream.current
        assert self._blob is not None
        self._paths[self._blob.oid] = self._blob.path
        return self._blob.oid

    def chunks(self) -> Iterator[Chunk]:
        repo = self.repo
        self._revs = ["--all", *_stash_revs(repo)]
        partial = _partial_clone(repo)
        if self.rules is not None and not partial and _path_free(self.rules):
            yield from self._pack_order()
        else:
            yield from self._walked(partial)
        if self._empty:
            self.notes.insert(
                0, f"{repo.display} is an empty repository (no commits): nothing to scan"
            )
            return
        if repo.shallow:
            self.notes.append(
                f"{repo.display} is a shallow clone: history before its shallow boundary is not "
                "in it and was not scanned (keys there are attributed to the boundary commits)"
            )
        if partial:
            self.notes.append(
                f"{repo.display} is a partial clone: blobs that were not fetched were not scanned"
            )

    def _pack_order(self) -> Iterator[Chunk]:
        """Every blob of the object database, in pack order; commits are counted alongside."""
        from kascan.match import fast_prefix
        from kascan.sources.blobstream import BlobStream

        repo, stats = self.repo, self.stats
        assert self.rules is not None
        counter = _popen(repo, "rev-list", "--count", *self._revs, "--")
        modules = _popen(repo, "rev-list", "-1", *self._revs, "--", ".gitmodules")
        progress = self.progress.update if self.progress and self.progress.enabled else None
        gate = fast_prefix(self.rules) if self.gate else None
        wants = self.wants if gate else None
        stream = BlobStream(repo, gate=gate, wants=wants, label=self.label, progress=progress)
        self._stream = stream
        # the attribution walk runs alongside, into a file: when some blob holds a key it is
        # (nearly) done by the end of the read; when none does it is stopped
        self._early_walk = _start_walk(repo, self._revs)
        try:
            yield from stream.chunks()
            assert counter.stdout is not None and modules.stdout is not None
            count = counter.stdout.read().strip()
            has_modules = bool(modules.stdout.read().strip())
            _finish(repo, counter, "rev-list --count")
            _finish(repo, modules, "rev-list")
        finally:
            if self.progress is not None:
                self.progress.close()
            _kill(counter)
            _kill(modules)
        commits = int(count or 0)
        stats.extra["commits"] = stats.extra.get("commits", 0) + commits
        stats.extra["blobs"] = stats.extra.get("blobs", 0) + stream.blobs
        stats.bytes += stream.bytes
        self._empty = commits == 0
        if self._empty:
            return
        if has_modules:
            self.notes.append(
                f"{repo.display} has submodules: their repositories were not scanned "
                "(scan each one on its own)"
            )
        if stream.lfs:
            self.notes.append(
                f"{repo.display}: {stream.lfs} Git LFS pointer(s): the files they point to are not "
                "in git and were not scanned"
            )
        if stream.missing:
            self.stats.skipped["missing-object"] += stream.missing
            self.notes.append(f"{repo.display}: some objects were missing and were not scanned")

    def _walked(self, partial: bool) -> Iterator[Chunk]:
        """The blobs that ``rev-list --objects`` lists, each with a path."""
        repo, stats = self.repo, self.stats
        inv = _inventory(repo, self._revs, partial)
        stats.extra["commits"] = stats.extra.get("commits", 0) + inv.commits
        stats.extra["blobs"] = stats.extra.get("blobs", 0) + len(inv.blobs)
        if inv.commits == 0:
            self._empty = True
            return
        if inv.gitmodules:
            self.notes.append(
                f"{repo.display} has submodules: their repositories were not scanned "
                "(scan each one on its own)"
            )
        lfs = 0
        for chunk in iter_blobs(
            repo,
            inv.blobs,
            label=self.label,
            on_blob=self._set_current,
            progress=self.progress,
            stats=stats,
        ):
            if chunk.line == 1 and chunk.fresh == 0 and chunk.data.startswith(LFS_POINTER):
                lfs += 1
            yield chunk
        if lfs:
            self.notes.append(
                f"{repo.display}: {lfs} Git LFS pointer(s): the files they point to are not in "
                "git and were not scanned"
            )
        if stats.skipped.get("missing-object"):
            self.notes.append(f"{repo.display}: some objects were missing and were not scanned")

    def attribute(self, candidates: Iterable[Candidate]) -> Iterator[Candidate]:
        """Attribute every candidate; if reading stops with an error, what was found before it
        is still attributed and reported, then the error goes on."""
        found: dict[str, list[Candidate]] = {}
        error: KascanError | None = None
        try:
            try:
                for cand in candidates:
                    found.setdefault(self._current(), []).append(cand)
            except KascanError as exc:
                error = exc
            if found and not self._empty:
                yield from self._attribute(found)
            elif found:
                self._unreachable(len(found))
        finally:
            if self._early_walk is not None:
                self._early_walk.close()
                self._early_walk = None
        if error is not None:
            raise error

    # -- attribution ------------------------------------------------------------------------

    def _unreachable(self, blobs: int) -> None:
        self.stats.skipped["unreachable-blob"] += blobs
        self.notes.append(
            f"{self.repo.display}: {blobs} blob(s) with a key that no ref, tag or stash entry "
            "reaches (dangling: e.g. staged and never committed) were not reported"
        )

    def _attribute(self, found: dict[str, list[Candidate]]) -> Iterator[Candidate]:
        keys = {
            oid: frozenset(c.finding.secret.value for c in cands) for oid, cands in found.items()
        }
        all_keys: set[str] = set().union(*keys.values())
        intros, seen = self._walk(keys, all_keys)
        unseen = set(keys) - seen
        if unseen:
            # in no commit: reachable only from a ref that names a tree or a blob, or not at all
            direct = self._direct_objects(unseen)
            self._paths.update(direct)
            gone = unseen - direct.keys()
            if gone:
                self._unreachable(len(gone))
                for oid in gone:
                    del found[oid]
        introduced = {k for k, _ in intros}
        pending = {c.finding.secret.value for cands in found.values() for c in cands} - introduced
        out: list[tuple[tuple[str, int, int, str], Candidate]] = []
        for (key, path), intro in intros.items():
            if self.excluded is not None and self.excluded(path):
                self.stats.dropped["excluded"] += 1
                continue
            for cand in found.get(intro.blob, ()):
                if cand.finding.secret.value != key:
                    continue
                member = _member_suffix(cand.finding.path, self._paths.get(intro.blob, ""))
                f = replace(cand.finding, path=path + member, commit=intro.commit, repo=self.label)
                out.append(((path, f.line, f.column, intro.commit.sha), replace(cand, finding=f)))
        if pending:
            # reachable only in ways no commit diff shows (e.g. a tag that names a blob)
            for oid, cands in found.items():
                path = self._paths.get(oid, "") or oid
                for cand in cands:
                    if cand.finding.secret.value in pending:
                        member = _member_suffix(cand.finding.path, self._paths.get(oid, ""))
                        f = replace(cand.finding, path=path + member, repo=self.label)
                        out.append(((path, f.line, f.column, ""), replace(cand, finding=f)))
            self.notes.append(
                f"{self.repo.display}: {len(pending)} key(s) found in objects no commit introduces "
                "(reported without a commit)"
            )
        out.sort(key=lambda item: item[0])
        for _, cand in out:
            yield cand

    def _direct_objects(self, wanted: set[str]) -> dict[str, str]:
        """``blob -> path`` of the ``wanted`` blobs that a ref reaches without a commit (a tag of
        a tree: the path in it; a tag of a blob: the ref's name)."""
        proc = run_git(
            self.repo,
            "for-each-ref",
            "--format=%(objectname) %(objecttype) %(*objectname) %(*objecttype) %(refname)",
        )
        roots: dict[str, str] = {}  # ref -> the object it names once peeled (one level)
        for line in proc.stdout.decode("utf-8", "surrogateescape").splitlines():
            oid, kind, peeled, peeled_kind, ref = [*line.split(" ", 4), "", "", "", ""][:5]
            if kind != "commit" and not (kind == "tag" and peeled_kind == "commit"):
                roots[ref] = peeled or oid
        if not roots:
            return {}
        out = {oid: ref for ref, oid in roots.items() if oid in wanted}
        listing = run_git(self.repo, "rev-list", "--objects", *roots, "--")
        for raw in listing.stdout.split(b"\n"):
            oid, _, path = raw.decode("utf-8", "surrogateescape").partition(" ")
            if oid in wanted and path:
                out.setdefault(oid, path)
        return out

    def _walk(
        self, keys: dict[str, frozenset[str]], wanted: set[str]
    ) -> tuple[dict[tuple[str, str], Introduction], set[str]]:
        """One ``git log --raw`` walk: where each wanted key was first added, and which of the
        blobs in ``keys`` any commit's change shows (the reachable ones).

        The walk goes newest first (``--date-order``: no parent before its children) and a later
        commit replaces an earlier one's introduction, so the oldest wins; ``--reverse`` would
        give the same answer but costs git a third more. Merges are diffed against their first
        parent; what a merge adds counts only for keys that no other commit introduces."""
        early = self._early_walk
        self._early_walk = None
        proc: subprocess.Popen[bytes] | None = None
        if early is not None:
            stream: IO[bytes] = _walk_records(self.repo, early, set(keys))
        else:
            find = [f"--find-object={oid}" for oid in sorted(keys)] if len(keys) <= 2000 else []
            proc = _popen(self.repo, *_WALK_ARGS, *find, *self._revs, "--")
            assert proc.stdout is not None
            stream = proc.stdout
        intros: dict[tuple[str, str], Introduction] = {}
        by_merges: dict[tuple[str, str], Introduction] = {}
        seen: set[str] = set()
        empty: frozenset[str] = frozenset()

        def settle(commit: Commit | None, merge: bool, entries: list[_Entry]) -> None:
            if commit is None or not entries:
                return
            removed: set[str] = set()
            for src, dst, _status, _path in entries:
                removed |= keys.get(src, empty) - keys.get(dst, empty)
            target = by_merges if merge else intros
            for src, dst, _status, path in entries:
                added = keys.get(dst, empty) - keys.get(src, empty)
                for key in added:
                    if key in removed or key not in wanted:
                        continue  # moved here from another path in this commit: not new
                    target[(key, path)] = Introduction(commit, dst, path)  # older wins

        try:
            commit: Commit | None = None
            merge = False
            entries: list[_Entry] = []
            tokens = _nul_tokens(stream)
            # Positional: a record is "\x01SHA", "PARENTS", then (":META", "PATH") pairs. A path
            # (the only attacker-written field: names and dates are not in the walk) is always
            # consumed as the token after its META, so no byte in it can start a record.
            for tok in tokens:
                tok = tok.lstrip(b"\n")
                if tok.startswith(b"\x01"):
                    settle(commit, merge, entries)
                    entries = []
                    merge = b" " in next(tokens, b"").strip()
                    commit = Commit(tok[1:].decode("ascii", "replace"), "", "", "")
                elif tok.startswith(b":"):
                    path = next(tokens, b"").decode("utf-8", "surrogateescape")
                    meta = tok[1:].split()
                    if len(meta) < 5:
                        continue
                    src, dst, status = meta[2].decode(), meta[3].decode(), meta[4].decode()
                    if src in keys or dst in keys:
                        seen.update(oid for oid in (src, dst) if oid in keys)
                        entries.append((src, dst, status, path))
            settle(commit, merge, entries)
            if proc is not None:
                _finish(self.repo, proc, "log")
        finally:
            if proc is not None:
                _kill(proc)
            else:
                stream.close()
        introduced = {k for k, _ in intros}
        for (key, path), intro in by_merges.items():
            if key not in introduced:
                intros.setdefault((key, path), intro)
        people = _identities(self.repo, {i.commit.sha for i in intros.values()})
        intros = {
            k: replace(i, commit=people.get(i.commit.sha, i.commit)) for k, i in intros.items()
        }
        return intros, seen


def _identities(repo: GitRepo, shas: Collection[str]) -> dict[str, Commit]:
    """Author, e-mail and date of a few commits, read positionally from NUL-ended fields."""
    if not shas:
        return {}
    fields = 4
    proc = run_git(
        repo,
        "log",
        "--no-walk=unsorted",
        "--stdin",
        "--format=%H%x00%an%x00%ae%x00%aI%x00",
        input="".join(f"{sha}\n" for sha in sorted(shas)).encode(),
    )
    tokens = proc.stdout.split(b"\0")
    out: dict[str, Commit] = {}
    for i in range(0, len(tokens) - fields + 1, fields):
        sha, name, email, date = tokens[i : i + fields]
        sha_s = sha.strip().decode("ascii", "replace")
        text = [t.decode("utf-8", "replace") for t in (name, email, date)]
        out[sha_s] = Commit(sha_s, text[0], text[1], text[2].strip())
    return out


_WALK_ARGS = (
    "log",
    "--no-renames",
    "--raw",
    "-z",
    "--root",
    "--no-abbrev",
    "--date-order",
    "--no-textconv",
    "--no-ext-diff",
    "--format=%x01%H%x00%P",  # no names: they are attacker-written and looked up afterwards
    "--diff-merges=first-parent",
)


class _EarlyWalk:
    """``git log --raw`` of the whole history, run while the blobs are read, into a file."""

    __slots__ = ("err", "out", "proc")

    def __init__(self, proc: subprocess.Popen[bytes], out: IO[bytes], err: IO[bytes]) -> None:
        self.proc, self.out, self.err = proc, out, err

    def close(self) -> None:
        _kill(self.proc)
        self.out.close()
        self.err.close()


def _start_walk(repo: GitRepo, revs: Sequence[str]) -> _EarlyWalk | None:
    import tempfile

    out = tempfile.TemporaryFile(prefix="kascan-walk-")  # noqa: SIM115 - _EarlyWalk.close
    err = tempfile.TemporaryFile(prefix="kascan-walk-")  # noqa: SIM115 - _EarlyWalk.close
    try:
        proc = subprocess.Popen(
            repo.argv(*_WALK_ARGS, *revs, "--"),
            env=repo.env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
    except OSError:
        out.close()
        err.close()
        return None  # the walk will run after the read, as usual
    return _EarlyWalk(proc, out, err)


_FEW = 64  # up to this many blobs, their commits are found with bytes.find, not by parsing all

# Where a record of the walk starts: "\x01", a full object name, NUL, the parents (hex and
# spaces), NUL. A path that holds "\x01" and hex is followed by a ":META" token or by the next
# record's "\x01", never by a token of hex, so it cannot pass for a record's start.
_RECORD = re.compile(rb"\x01(?:[0-9a-f]{64}|[0-9a-f]{40})\0[0-9a-f ]*\0")


def _record_start(data: bytes, at: int, lo: int = 0) -> int:
    """The start of the record that holds ``data[at]`` (-1 when none starts at or after lo)."""
    pos = data.rfind(b"\x01", lo, at + 1)
    while pos != -1:
        if (pos == 0 or data[pos - 1] == 0) and _RECORD.match(data, pos):
            return pos
        pos = data.rfind(b"\x01", lo, pos)
    return -1


def _record_end(data: bytes, at: int) -> int:
    """Where the record after the one holding ``data[at]`` starts (``len(data)`` if none)."""
    pos = data.find(b"\x01", at)
    while pos != -1:
        if data[pos - 1] == 0 and _RECORD.match(data, pos):
            return pos
        pos = data.find(b"\x01", pos + 1)
    return len(data)


def _walk_records(repo: GitRepo, walk: _EarlyWalk, oids: set[str]) -> IO[bytes]:
    """The early walk's output, finished; with few blobs, only the commits that show them."""
    try:
        rc = walk.proc.wait()
        if rc != 0:
            walk.err.seek(0)
            raise KascanError(f"git log failed in {repo.display}: {_last_line(walk.err.read())}")
        walk.out.seek(0)
        if len(oids) > _FEW:
            whole = walk.out
            walk.out = io.BytesIO()  # the caller reads the file itself, and closes it
            return whole
        needles = [oid.encode() for oid in sorted(oids)]
        kept = io.BytesIO()
        done: set[int] = set()
        rest, offset = b"", 0
        while True:
            block = walk.out.read(1 << 20)
            data = rest + block
            # process up to the last record that starts here and is whole (its parents end)
            cut = _record_start(data, len(data) - 1, 1) if block else len(data)
            if cut <= 0:
                if block:
                    rest = data  # one commit's record is longer than a block: read on
                    continue
                cut = len(data)
            part, rest = data[:cut], data[cut:]
            found: list[tuple[int, int]] = []
            for oid in needles:
                at = part.find(oid)
                while at != -1:
                    start = _record_start(part, at)
                    end = _record_end(part, at + len(oid))
                    if start != -1 and offset + start not in done:
                        done.add(offset + start)
                        found.append((start, end))
                    at = part.find(oid, end)
            for start, end in sorted(found):  # in the walk's order
                kept.write(part[start:end].rstrip(b"\n") + b"\0")
            offset += len(part)
            if not block:
                break
        kept.seek(0)
        return kept
    finally:
        walk.close()


def _path_free(rules: RuleSet) -> bool:
    """Whether no rule or allowlist looks at a path (so a blob can be matched without one)."""
    allowlists = [*rules.allowlists, *(a for r in rules.rules for a in r.allowlists)]
    return all(r.path is None for r in rules.rules) and not any(a.paths for a in allowlists)


def _member_suffix(found_path: str, blob_path: str) -> str:
    """``!member/path`` of a finding inside an archive blob (its chunk path is blob!member)."""
    if found_path.startswith(blob_path + "!"):  # blob_path is "" for blobs read in pack order
        return found_path[len(blob_path) :]
    return ""


def _nul_tokens(stream: IO[bytes]) -> Iterator[bytes]:
    """NUL-separated fields of a stream, read in large blocks."""
    rest = b""
    while True:
        block = stream.read(1 << 20)
        if not block:
            if rest:
                yield rest
            return
        parts = (rest + block).split(b"\0")
        rest = parts.pop()
        yield from parts


def iter_git_history(
    repo: GitRepo, stats: ScanStats, *, label: str | None = None
) -> Iterator[Chunk]:
    """Every distinct blob reachable from any ref (branches, tags, remotes, stash), once."""
    yield from History(repo, stats, label=label).chunks()


# ---------------------------------------------------------------------------------------------
# Patches: the lines a change adds (staged, or each commit of a range)

_HUNK = re.compile(rb"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")

_DIFF_ARGS = (
    "-U0",
    "--no-color",
    "--no-ext-diff",
    "--no-textconv",
    "--text",
    "--inter-hunk-context=0",
    "-M",
    "--src-prefix=a/",
    "--dst-prefix=b/",
    "--no-relative",
)

_ESCAPES = {
    ord("a"): 7,
    ord("b"): 8,
    ord("t"): 9,
    ord("n"): 10,
    ord("v"): 11,
    ord("f"): 12,
    ord("r"): 13,
    ord('"'): 34,
    ord("\\"): 92,
}


def unquote_path(raw: bytes) -> bytes:
    """Undo git's C-style quoting of a path (``"b/t\\303\\251st"``)."""
    if not (raw.startswith(b'"') and raw.endswith(b'"') and len(raw) >= 2):
        return raw
    s, out, i = raw[1:-1], bytearray(), 0
    while i < len(s):
        c = s[i]
        if c == 92 and i + 1 < len(s):
            n = s[i + 1]
            if 48 <= n <= 55 and i + 3 < len(s) + 0 and s[i + 1 : i + 4].isdigit():
                out.append(int(s[i + 1 : i + 4], 8) & 0xFF)
                i += 4
                continue
            out.append(_ESCAPES.get(n, n))
            i += 2
            continue
        out.append(c)
        i += 1
    return bytes(out)


def _new_path(line: bytes) -> str | None:
    """The path of a ``+++ b/path`` line; None for ``/dev/null``."""
    raw = line[4:].rstrip(b"\n")
    if raw.endswith(b"\t"):
        raw = raw[:-1]
    raw = unquote_path(raw)
    if raw == b"/dev/null":
        return None
    if raw.startswith(b"b/"):
        raw = raw[2:]
    return raw.decode("utf-8", "surrogateescape")


@dataclass
class PatchStats:
    files: set[tuple[str, str]] = field(default_factory=set)
    lines: int = 0
    commits: int = 0


def iter_patch(
    stream: IO[bytes],
    *,
    label: str | None,
    stats: ScanStats,
    pstats: PatchStats,
    excluded: Callable[[str], bool] | None = None,
    only: Collection[str] | None = None,
) -> Iterator[Chunk]:
    """Chunks of the added lines of a ``-U0`` patch (``git diff`` or ``git log -p``), each at its
    line in the new file; ``log`` headers ``\\x01sha\\0name\\0email\\0date`` set the commit."""
    commit: Commit | None = None
    path: str | None = None
    minus = plus = 0
    newline = 0
    buf: list[bytes] = []
    buf_line = 0
    buf_size = 0

    def flush() -> Iterator[Chunk]:
        nonlocal buf, buf_size
        if not buf or path is None:
            buf, buf_size = [], 0
            return
        data = b"".join(buf)
        buf, buf_size = [], 0
        stats.bytes += len(data)
        if len(data) <= WINDOW:
            yield Chunk(path, data, line=buf_line, commit=commit, repo=label)
            return
        for ch in iter_stream(io.BytesIO(data).read, path):
            yield replace(ch, line=ch.line + buf_line - 1, commit=commit, repo=label)

    for raw in stream:
        if minus > 0 or plus > 0:
            c = raw[:1]
            if c == b"+":
                plus -= 1
                if path is not None:
                    if not buf:
                        buf_line = newline
                    buf.append(raw[1:])
                    buf_size += len(raw) - 1
                    pstats.lines += 1
                    pstats.files.add((commit.sha if commit else "", path))
                newline += 1
                if buf_size >= WINDOW and raw.endswith(b"\n"):
                    yield from flush()
                continue
            if c == b"-":
                minus -= 1
                continue
            if c == b"\\":
                continue
            if c == b" ":
                yield from flush()
                minus -= 1
                plus -= 1
                newline += 1
                continue
            minus = plus = 0  # not a hunk line after all: read it as a header
        if raw.startswith(b"\\"):
            continue
        yield from flush()
        if raw.startswith(b"@@ "):
            m = _HUNK.match(raw)
            if m is None:
                continue
            minus = int(m.group(2)) if m.group(2) is not None else 1
            plus = int(m.group(4)) if m.group(4) is not None else 1
            newline = int(m.group(3))
        elif raw.startswith(b"+++ "):
            path = _new_path(raw)
            if path is not None and only is not None and path not in only:
                path = None
            elif path is not None and excluded is not None and excluded(path):
                stats.skipped["excluded"] += 1
                path = None
        elif raw.startswith(b"diff --git "):
            path = None
        elif raw.startswith(b"\x01"):
            fields = raw[1:].rstrip(b"\n").split(b"\0")
            if len(fields) >= 4:
                commit = Commit(
                    fields[0].decode(),
                    fields[1].decode("utf-8", "replace"),
                    fields[2].decode("utf-8", "replace"),
                    fields[3].decode("utf-8", "replace"),
                )
                pstats.commits += 1
            path = None
    yield from flush()


def _patch_totals(stats: ScanStats, pstats: PatchStats) -> None:
    stats.files += len({p for _, p in pstats.files})
    stats.extra["lines"] = stats.extra.get("lines", 0) + pstats.lines


def staged_paths(repo: GitRepo) -> set[str]:
    """Paths with staged additions or changes (what pre-commit passes to a commit hook)."""
    proc = run_git(
        repo,
        "diff",
        "--cached",
        "--name-only",
        "-z",
        "-M",
        "--no-relative",
        "--diff-filter=ACMRTUXB",  # against HEAD, or the empty tree before the first commit
    )
    return {p.decode("utf-8", "surrogateescape") for p in proc.stdout.split(b"\0") if p}


def iter_staged(
    repo: GitRepo,
    stats: ScanStats,
    *,
    label: str | None = None,
    excluded: Callable[[str], bool] | None = None,
    pstats: PatchStats | None = None,
    only: Collection[str] | None = None,
) -> Iterator[Chunk]:
    """The lines the index adds to HEAD (to the empty tree before the first commit), read from
    the index, never the work tree; ``only`` narrows it to those paths (after rename detection
    over the whole change, so a file renamed into ``only`` does not count as all new)."""
    pstats = pstats if pstats is not None else PatchStats()
    # no base: HEAD, or the empty tree before the first commit (one git process fewer)
    proc = _popen(repo, "diff", "--cached", *_DIFF_ARGS, "--")
    try:
        assert proc.stdout is not None
        yield from iter_patch(
            proc.stdout, label=label, stats=stats, pstats=pstats, excluded=excluded, only=only
        )
        _finish(repo, proc, "diff --cached")
    finally:
        _kill(proc)
    _patch_totals(stats, pstats)


def iter_range(
    repo: GitRepo,
    revs: Sequence[str],
    stats: ScanStats,
    *,
    label: str | None = None,
    excluded: Callable[[str], bool] | None = None,
    pstats: PatchStats | None = None,
) -> Iterator[Chunk]:
    """The lines each commit of ``revs`` (e.g. ``[B, "^A"]``) adds, oldest commit first."""
    pstats = pstats if pstats is not None else PatchStats()
    args = [
        "log",
        "--reverse",
        "-p",
        *_DIFF_ARGS,
        "--diff-merges=off",
        "--format=%x01%H%x00%an%x00%ae%x00%aI",
        *revs,
        "--",
    ]
    proc = _popen(repo, *args)
    try:
        assert proc.stdout is not None
        yield from iter_patch(
            proc.stdout, label=label, stats=stats, pstats=pstats, excluded=excluded
        )
        _finish(repo, proc, "log")
    finally:
        _kill(proc)
    stats.extra["commits"] = stats.extra.get("commits", 0) + pstats.commits
    _patch_totals(stats, pstats)


def first_introductions(candidates: Iterable[Candidate]) -> Iterator[Candidate]:
    """In a range, a key at a path is reported for the first commit that adds it only."""
    first: dict[tuple[str, str | None, str], str] = {}
    for cand in candidates:
        f = cand.finding
        sha = f.commit.sha if f.commit else ""
        key = (f.fingerprint, f.repo, f.path)
        if first.setdefault(key, sha) == sha:
            yield cand


def index_entries(repo: GitRepo, files: Sequence[str]) -> dict[str, tuple[str, str]]:
    """``path -> (mode, blob)`` of the index entries for ``files`` (stage 0, else the newest)."""
    proc = run_git(repo, "ls-files", "-s", "-z", "--", *files)
    out: dict[str, tuple[str, str]] = {}
    for rec in proc.stdout.split(b"\0"):
        if not rec:
            continue
        meta, _, path = rec.partition(b"\t")
        parts = meta.split()
        if len(parts) != 3:
            continue
        name = path.decode("utf-8", "surrogateescape")
        if parts[2] == b"0" or name not in out:
            out[name] = (parts[0].decode(), parts[1].decode())
    return out


def iter_index_files(
    repo: GitRepo,
    files: Sequence[str],
    stats: ScanStats,
    warn: Warn,
    *,
    label: str | None = None,
    excluded: Callable[[str], bool] | None = None,
) -> Iterator[Chunk]:
    """The whole staged content of ``files`` (paths relative to the work tree top); a file that
    is not in the index is read from the work tree."""
    from kascan.sources.files import FileRef, read_file

    wanted = [f for f in files if not (excluded is not None and excluded(f))]
    stats.skipped["excluded"] += len(files) - len(wanted)
    entries = index_entries(repo, wanted) if wanted else {}
    blobs: list[_Blob] = []
    for f in wanted:
        entry = entries.get(f)
        if entry is None:
            if repo.work_tree is None:
                continue
            yield from read_file(
                FileRef(os.path.join(repo.work_tree, f), f), stats, warn, explicit=True
            )
            continue
        mode, oid = entry
        if mode == "160000":
            stats.skipped["submodule"] += 1
            continue
        blobs.append(_Blob(oid, 0, f))
    for chunk in iter_blobs(repo, blobs, label=label, stats=stats):
        if chunk.fresh == 0:
            stats.files += 1
        yield chunk
