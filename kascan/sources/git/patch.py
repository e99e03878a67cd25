"""Patches: the lines a change adds (the staged change, or each commit of a range), and the whole
new objects of the files it changes that are binary (an archive, UTF-16 text), each at its
path and commit."""

from __future__ import annotations

import io
import itertools
import os
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from kascan.model import Candidate, Chunk, Commit, scrub
from kascan.sources.git.process import GitRepo, finish, kill, popen, run_git
from kascan.sources.stream import WINDOW, iter_stream
from kascan.stats import ScanStats

if TYPE_CHECKING:
    from kascan.sources.archives import Limits
    from kascan.sources.git.blobs import Blob

Warn = Callable[[str], None]

# ---------------------------------------------------------------------------------------------
# Patches: the lines a change adds (staged, or each commit of a range)

_HUNK = re.compile(rb"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")

_DIFF_ARGS = (
    "-U0",
    "--no-color",
    "--no-ext-diff",
    "--no-textconv",
    "--full-index",  # the objects' full names: a binary file is read whole from its new blob
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


def _diff_path(line: bytes) -> str | None:
    """The path of a ``diff --git a/P b/P`` line when both sides name the same path (a rename
    names its new path on a ``rename to`` line)."""
    rest = line[len(b"diff --git ") :].rstrip(b"\n")
    quoted = rest.startswith(b'"')
    lead, mid = (b'"a/', b'" "b/') if quoted else (b"a/", b" b/")
    n = (len(rest) - len(lead) - len(mid) - (1 if quoted else 0)) // 2
    if n <= 0:
        return None
    name = rest[len(lead) : len(lead) + n]
    if rest != lead + name + mid + name + (b'"' if quoted else b""):
        return None
    raw = unquote_path(b'"' + name + b'"') if quoted else name
    return raw.decode("utf-8", "surrogateescape")


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


NULL_OID = frozenset({"0" * 40, "0" * 64})


@dataclass(frozen=True, slots=True)
class Whole:
    """A file the change makes binary (an archive, UTF-16 text): read whole from its new blob,
    and from its old one, so that only the keys the change adds are reported."""

    path: str
    old: str  # the blob before the change (all zeros: none)
    new: str
    commit: Commit | None


@dataclass
class PatchStats:
    files: set[tuple[str, str]] = field(default_factory=set)
    lines: int = 0
    commits: int = 0
    wholes: list[Whole] = field(default_factory=list)
    seen: list[Commit] = field(default_factory=list)  # the range's commits, oldest first
    objects: int = 0  # commit and tag objects whose messages were scanned


def iter_patch(
    stream: Iterable[bytes],
    *,
    label: str | None,
    stats: ScanStats,
    pstats: PatchStats,
    excluded: Callable[[str], bool] | None = None,
    only: Collection[str] | None = None,
    note: Warn | None = None,
) -> Iterator[Chunk]:
    """Chunks of the added lines of a ``-U0`` patch (``git diff`` or ``git log -p``), each at its
    line in the new file; ``log`` headers ``\\x01sha\\0name\\0email\\0date`` set the commit;
    ``note`` (``-v``) hears of each excluded file."""
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

    # the file being read: its blobs (from the ``index`` line), a path when ``+++`` has none
    # (a binary file), whether it was already handed on whole
    old_oid = new_oid = ""
    guess: str | None = None
    recorded = False

    def record(at: str | None) -> None:
        nonlocal recorded
        if recorded or at is None or not new_oid or new_oid in NULL_OID:
            return
        if only is not None and at not in only:
            return
        if excluded is not None and excluded(at):
            return
        recorded = True
        pstats.wholes.append(Whole(at, old_oid, new_oid, commit))
        pstats.files.add((commit.sha if commit else "", at))

    for raw in stream:
        if minus > 0 or plus > 0:
            c = raw[:1]
            if c == b"+":
                plus -= 1
                if path is not None:
                    if not buf:
                        buf_line = newline
                    if not recorded and b"\0" in raw:  # binary after all (an attribute said text)
                        record(path)
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
                if note is not None:
                    _note_excluded(note, excluded, path, commit)
                path = None
        elif raw.startswith(b"diff --git "):
            path = None
            old_oid = new_oid = ""
            guess = _diff_path(raw)
            recorded = False
        elif raw.startswith(b"index "):
            oids = raw[6:].split(b" ", 1)[0].split(b"..")
            if len(oids) == 2:
                old_oid, new_oid = (
                    oids[0].decode("ascii", "replace"),
                    oids[1].decode("ascii", "replace"),
                )
        elif raw.startswith(b"rename to "):
            guess = unquote_path(raw[10:].rstrip(b"\n")).decode("utf-8", "surrogateescape")
        elif raw.startswith(b"Binary files "):
            record(guess)
        elif raw.startswith(b"\x01"):
            fields = raw[1:].rstrip(b"\n").split(b"\0")
            if len(fields) >= 4:
                commit = Commit(  # the identity may hold a key: redacted (see scrub)
                    fields[0].decode(),
                    scrub(fields[1].decode("utf-8", "replace")),
                    scrub(fields[2].decode("utf-8", "replace")),
                    fields[3].decode("utf-8", "replace"),
                )
                pstats.commits += 1
                pstats.seen.append(commit)
            path = None
    yield from flush()


def _note_excluded(
    note: Warn, excluded: Callable[[str], bool], path: str, commit: Commit | None
) -> None:
    from kascan.ignore import why_excluded
    from kascan.stats import skipped

    at = f" (commit {commit.sha[:12]})" if commit is not None else ""
    note(skipped(path + at, why_excluded(excluded, path)))


def iter_wholes(
    repo: GitRepo,
    wholes: Sequence[Whole],
    stats: ScanStats,
    *,
    label: str | None,
    note: Warn | None = None,
) -> Iterator[Chunk]:
    """The old blobs of ``wholes`` (``origin`` ``old:<id>``: what was there before), then the new
    ones, each a whole chunk at its path and commit, so that archives in them are opened."""
    if not wholes:  # the common case (text only): the blob reader is not even imported
        return
    from kascan.sources.git.blobs import Blob, iter_blobs

    for side in ("old", "new"):
        blobs: list[Blob] = []
        commits: dict[tuple[str, str], Commit | None] = {}
        for w in wholes:
            oid = w.old if side == "old" else w.new
            if not oid or oid in NULL_OID:
                continue
            blobs.append(Blob(oid, 0, w.path))
            commits.setdefault((oid, w.path), w.commit)
        if not blobs:
            continue
        new = side == "new"
        got = iter_blobs(
            repo, blobs, label=label, stats=stats if new else None, note=note if new else None
        )
        for chunk in got:
            origin = chunk.origin or ""
            commit = commits.get((origin, chunk.path))
            yield replace(chunk, commit=commit, origin=("old:" if side == "old" else "") + origin)


def added_keys(candidates: Iterable[Candidate]) -> Iterator[Candidate]:
    """The attribution of a change's whole objects: a key that the old blob already had at the
    same path (and member) in the same commit is not added by the change; the old blob's own
    candidates are never reported."""
    before: set[tuple[str, str, str]] = set()
    for cand in candidates:
        f = cand.finding
        origin = cand.origin
        if origin is None:
            yield cand
            continue
        ident = (f.commit.sha if f.commit else "", f.path, f.secret.value)
        if origin.startswith("old:"):
            before.add(ident)
        elif ident not in before:
            yield cand


def _patch_totals(stats: ScanStats, pstats: PatchStats) -> None:
    stats.files += len({p for _, p in pstats.files})
    stats.extra["lines"] = stats.extra.get("lines", 0) + pstats.lines


def _raw_paths(lines: Iterator[bytes]) -> tuple[set[str], bytes | None]:
    """The paths of the ``--raw`` part of ``git diff --raw -p`` that the change adds or changes
    (every status but ``D``, a rename's new name: what ``--name-only --diff-filter=ACMRTUXB``
    lists, what pre-commit passes a commit hook), and the first line after that part (the empty
    line before the patch; None at the end of the output)."""
    paths: set[str] = set()
    for line in lines:
        if not line.startswith(b":"):
            return paths, line
        meta, _, names = line.rstrip(b"\n").partition(b"\t")
        if names and not meta.rsplit(b" ", 1)[-1].startswith(b"D"):
            # a path with a tab in it is quoted: the last field is the new name
            new = unquote_path(names.rsplit(b"\t", 1)[-1])
            paths.add(new.decode("utf-8", "surrogateescape"))
    return paths, None


class StagedDiff:
    """The staged change as one ``git diff --cached --raw -p`` (HEAD, or the empty tree before
    the first commit): :attr:`paths` (its raw part: what the index adds or changes) are read as
    it starts, so that a caller can decide whether to read its patch (:meth:`chunks`) or not
    (:meth:`close`); one git process for both."""

    def __init__(self, repo: GitRepo) -> None:
        self.repo = repo
        self.proc = popen(repo, "diff", "--cached", "--raw", *_DIFF_ARGS, "--")
        try:
            assert self.proc.stdout is not None
            self._lines: Iterator[bytes] = iter(self.proc.stdout)
            self.paths, first = _raw_paths(self._lines)
            if first is None:  # no change (or git failed: say so now, not as "nothing staged")
                finish(repo, self.proc, "diff --cached")
            elif first != b"\n":  # not the separator: a patch line, read as one
                self._lines = itertools.chain((first,), self._lines)
        except BaseException:
            kill(self.proc)
            raise

    def chunks(
        self,
        stats: ScanStats,
        *,
        label: str | None = None,
        excluded: Callable[[str], bool] | None = None,
        pstats: PatchStats | None = None,
        only: Collection[str] | None = None,
        note: Warn | None = None,
    ) -> Iterator[Chunk]:
        """The lines the index adds to HEAD, read from the index, never the work tree; ``only``
        narrows it to those paths (after rename detection over the whole change, so a file
        renamed into ``only`` does not count as all new); ``note`` (``-v``) hears of each
        excluded file."""
        pstats = pstats if pstats is not None else PatchStats()
        try:
            yield from iter_patch(
                self._lines,
                label=label,
                stats=stats,
                pstats=pstats,
                excluded=excluded,
                only=only,
                note=note,
            )
            finish(self.repo, self.proc, "diff --cached")
        finally:
            kill(self.proc)
        yield from iter_wholes(self.repo, pstats.wholes, stats, label=label, note=note)
        _patch_totals(stats, pstats)

    def close(self) -> None:
        """The patch is not read: git is ended."""
        kill(self.proc)


def iter_range(
    repo: GitRepo,
    revs: Sequence[str],
    stats: ScanStats,
    *,
    label: str | None = None,
    excluded: Callable[[str], bool] | None = None,
    pstats: PatchStats | None = None,
    messages: bool = True,
    extra_tags: Sequence[str] = (),
    note: Warn | None = None,
) -> Iterator[Chunk]:
    """The lines each commit of ``revs`` (e.g. ``[B, "^A"]``) adds, oldest commit first; with
    ``messages``, then each commit's message and identities, and those of the annotated tags
    that name one of its commits (and ``extra_tags``: a tag being pushed)."""
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
    proc = popen(repo, *args)
    try:
        assert proc.stdout is not None
        yield from iter_patch(
            proc.stdout, label=label, stats=stats, pstats=pstats, excluded=excluded, note=note
        )
        finish(repo, proc, "log")
    finally:
        kill(proc)
    yield from iter_wholes(repo, pstats.wholes, stats, label=label, note=note)
    if messages:
        tags = [*extra_tags, *range_tags(repo, {c.sha for c in pstats.seen})]
        yield from iter_objects(repo, pstats.seen, list(dict.fromkeys(tags)), pstats, label=label)
    stats.extra["commits"] = stats.extra.get("commits", 0) + pstats.commits
    _patch_totals(stats, pstats)


def range_tags(repo: GitRepo, shas: Collection[str]) -> list[str]:
    """The annotated tags (their objects) that name a commit of the range: new with it."""
    if not shas:
        return []
    proc = run_git(
        repo, "for-each-ref", "--format=%(objectname) %(objecttype) %(*objectname)", "refs/tags"
    )
    out: list[str] = []
    for line in proc.stdout.decode("ascii", "replace").splitlines():
        oid, kind, peeled = [*line.split(" "), "", ""][:3]
        if kind == "tag" and peeled in shas:
            out.append(oid)
    return out


def iter_objects(
    repo: GitRepo,
    commits: Sequence[Commit],
    tags: Sequence[str],
    pstats: PatchStats,
    *,
    label: str | None,
) -> Iterator[Chunk]:
    """The messages and identities of ``commits`` and of the tag objects ``tags``: each object
    read once with ``cat-file --batch`` and cut as the history scan cuts it
    (:func:`kascan.sources.git.blobstream.object_chunks`), each chunk at its commit."""
    from kascan.sources.git.blobs import Blob, iter_blobs
    from kascan.sources.git.blobstream import SHORT, object_chunks

    known = {c.sha: c for c in commits}
    kinds = {c.sha: "commit" for c in commits} | {t: "tag" for t in tags}
    blobs = [Blob(oid, 0, "") for oid in kinds]
    for chunk in iter_blobs(repo, blobs):
        oid = chunk.origin or ""
        kind = kinds.get(oid, "commit")
        if chunk.whole:
            pstats.objects += 1
            for part in object_chunks(kind, oid, chunk.data, label):
                commit = known.get(oid, part.commit) if kind == "commit" else part.commit
                yield replace(part, commit=commit)
        else:  # bigger than a window (hostile): the whole object, streamed
            where = f"{kind} {oid[:SHORT]} object"
            commit = known.get(oid) if kind == "commit" else None
            yield replace(chunk, path=where, repo=label, commit=commit, origin=f"{kind}:{oid}")


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
    archives: Limits | None = None,
    note: Warn | None = None,
) -> Iterator[Chunk]:
    """The whole staged content of ``files`` (paths relative to the work tree top); a file that
    is not in the index is read from the work tree (its archives opened with ``archives``)."""
    from kascan.sources.base import FileRef
    from kascan.sources.files import read_file
    from kascan.sources.git.blobs import Blob, iter_blobs

    wanted = [f for f in files if not (excluded is not None and excluded(f))]
    stats.skipped["excluded"] += len(files) - len(wanted)
    if note is not None and excluded is not None:
        for f in files:
            if excluded(f):
                _note_excluded(note, excluded, f, None)
    entries = index_entries(repo, wanted) if wanted else {}
    blobs: list[Blob] = []
    for f in wanted:
        entry = entries.get(f)
        if entry is None:
            if repo.work_tree is None:
                continue
            yield from read_file(
                FileRef(os.path.join(repo.work_tree, f), f),
                stats,
                warn,
                explicit=True,
                archives=archives,
                note=note,
            )
            continue
        mode, oid = entry
        if mode == "160000":
            stats.skipped["submodule"] += 1
            if note is not None:
                from kascan.stats import skipped

                note(skipped(f, "a submodule (its own repository: scan it on its own)"))
            continue
        blobs.append(Blob(oid, 0, f))
    for chunk in iter_blobs(repo, blobs, label=label, stats=stats, note=note):
        if chunk.fresh == 0:
            stats.files += 1
        yield chunk
