"""History: every blob in any commit reachable from any ref, read once each; only the few blobs
that hold a candidate are then attributed to the commit that introduced each key at each path
(:class:`History`), with one ``git log --raw`` walk.
"""

from __future__ import annotations

import io
import re
import subprocess
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import IO, TYPE_CHECKING

from kascan.errors import KascanError
from kascan.ignore import why_excluded
from kascan.model import Candidate, Chunk, Commit, scrub
from kascan.progress import Progress
from kascan.sources.git.blobs import Blob, iter_blobs
from kascan.sources.git.process import (
    LFS_POINTER,
    GitRepo,
    finish,
    kill,
    last_line,
    popen,
    run_git,
)
from kascan.stats import ScanStats, Skipped, dropped, skipped

if TYPE_CHECKING:
    from kascan.rules import RuleSet

# ---------------------------------------------------------------------------------------------
# History: every distinct blob once, then attribution of the few that hold a key


class _Inventory:
    # a plain class: every dataclass costs the start-up of a hook ~0.5-1 ms
    __slots__ = ("blobs", "commits", "gitmodules")

    def __init__(self) -> None:
        self.blobs: list[Blob] = []
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


def _inventory(
    repo: GitRepo, revs: Sequence[str], partial: bool, progress: Progress | None = None
) -> _Inventory:
    """Commits and blobs reachable from ``revs``: rev-list piped into cat-file --batch-check."""
    listing = progress.listing if progress is not None and progress.enabled else None
    missing = ("--missing=allow-any",) if partial else ()  # never fetched: see NO_TRANSPORT
    revlist = popen(repo, "rev-list", "--objects", *missing, *revs, "--")
    assert revlist.stdout is not None
    check = popen(
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
                inv.blobs.append(Blob(parts[1].decode(), int(parts[2]), path))
                if listing is not None and not len(inv.blobs) & 0x3FF:
                    listing(len(inv.blobs))
                if path == ".gitmodules" or path.endswith("/.gitmodules"):
                    inv.gitmodules = True
            elif kind == b"commit":
                inv.commits += 1
        finish(repo, check, "cat-file --batch-check")
        finish(repo, revlist, "rev-list")
    finally:
        kill(check)
        kill(revlist)
    return inv


_Entry = tuple[str, str, str, str]  # src blob, dst blob, status, path


@dataclass(frozen=True, slots=True)
class Introduction:
    commit: Commit
    blob: str
    path: str


class History:
    """A whole-history scan of one repository.

    :meth:`chunks` yields every blob once ; :meth:`attribute` takes the
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
        wants: Callable[[bytes], bool] | None = None,
        warn: Callable[[str], None] | None = None,
        messages: bool = True,
        reflogs: bool = False,
        submodules: bool = False,
        note: Callable[[str], None] | None = None,
    ) -> None:
        self.repo = repo
        self.note = note  # -v: each object skipped and candidate dropped, one line
        self.submodules = submodules  # the caller scans the submodules (and notes them)
        # commit and tag objects too: messages and identities (``commit <id> message``)
        self.messages = messages
        self.reflogs = reflogs  # every reflog entry is a root too (``--reflog``)
        self.stats = stats
        # blobs without the rules' literal prefix are skipped unless ``wants`` them (a decoder's
        # first cheap test says an archive, base64 or UTF-16 may hide a key there)
        self.wants = wants
        self.label = label
        self.excluded = excluded
        self.progress = progress
        self.rules = rules
        self.notes: list[str] = []
        self.warn: Callable[[str], None] = warn if warn is not None else self.notes.append
        self._revs: list[str] = []
        self._paths: dict[str, str] = {}  # blob -> a path, for blobs read with a path
        self._empty = False
        self._early_walk: _EarlyWalk | None = None
        self._reflog_only: set[str] = set()  # commits that only reflog entries reach

    def chunks(self) -> Iterator[Chunk]:
        repo = self.repo
        self._revs = ["--all", *(["--reflog"] if self.reflogs else _stash_revs(repo))]
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
        if self.reflogs:
            self._reflog_notes()
        if repo.shallow:
            self.notes.append(
                f"{repo.display} is a shallow clone: history before its shallow boundary is not "
                "in it and was not scanned (keys there are attributed to the boundary commits)"
            )
        if partial:
            self.notes.append(
                f"{repo.display} is a partial clone: blobs that were not fetched were not scanned"
            )

    def _reflog_notes(self) -> None:
        """Say what the reflogs added: the commits only they reach (a reset, an amend, an old
        stash entry)."""
        proc = run_git(self.repo, "rev-list", "--reflog", "--not", "--all", "--", check=False)
        self._reflog_only = set(proc.stdout.decode("ascii", "replace").split())
        if self._reflog_only:
            n = len(self._reflog_only)
            self.notes.append(
                f"{self.repo.display}: {n} commit(s) that only reflog entries reach (reset or "
                "amended away, older stash entries) were scanned too (--no-reflogs: leave them out)"
            )

    def _pack_order(self) -> Iterator[Chunk]:
        """Every blob of the object database, in pack order; commits are counted alongside."""
        from kascan.match import fast_prefix
        from kascan.sources.git.blobstream import BlobStream

        repo, stats = self.repo, self.stats
        assert self.rules is not None
        progress = self.progress.update if self.progress and self.progress.enabled else None
        gate = fast_prefix(self.rules)
        wants = self.wants if gate else None
        stream = BlobStream(
            repo,
            gate=gate,
            wants=wants,
            label=self.label,
            progress=progress,
            objects=self.messages,
        )
        stream.start()  # git inflates blobs from here on, while the rest is set up
        try:
            # the attribution walk runs alongside, into a file: when some blob holds a key it
            # is (nearly) done by the end of the read; when none does it is stopped
            self._early_walk = _start_walk(repo, self._revs)
            yield from stream.chunks()
        finally:
            stream.stop()
            if self.progress is not None:
                self.progress.close()
        # the walk has (nearly always) gone through every commit by now: it counts them
        census = self._early_walk.census() if self._early_walk is not None else None
        commits, has_modules = census if census is not None else self._census()
        stats.extra["commits"] = stats.extra.get("commits", 0) + commits
        stats.extra["blobs"] = stats.extra.get("blobs", 0) + stream.blobs
        stats.bytes += stream.size
        self._empty = commits == 0
        if self._empty:
            return
        if has_modules and not self.submodules:
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
            if self.note is not None:
                self.note(Skipped(f"skipped {stream.missing} object(s) of {repo.display}: missing"))
            self.notes.append(f"{repo.display}: some objects were missing and were not scanned")

    def _census(self) -> tuple[int, bool]:
        """The commits and whether one changes ``.gitmodules``, without the walk's help."""
        repo = self.repo
        counter = popen(repo, "rev-list", "--count", *self._revs, "--")
        try:
            modules = popen(repo, "rev-list", "-1", *self._revs, "--", ".gitmodules")
            try:
                assert counter.stdout is not None and modules.stdout is not None
                count = counter.stdout.read().strip()
                has_modules = bool(modules.stdout.read().strip())
                finish(repo, counter, "rev-list --count")
                finish(repo, modules, "rev-list")
            finally:
                kill(modules)
        finally:
            kill(counter)
        return int(count or 0), has_modules

    def _walked(self, partial: bool) -> Iterator[Chunk]:
        """The blobs that ``rev-list --objects`` lists, each with a path."""
        repo, stats = self.repo, self.stats
        inv = _inventory(repo, self._revs, partial, self.progress)
        stats.extra["commits"] = stats.extra.get("commits", 0) + inv.commits
        stats.extra["blobs"] = stats.extra.get("blobs", 0) + len(inv.blobs)
        if inv.commits == 0:
            self._empty = True
            return
        if inv.gitmodules and not self.submodules:
            self.notes.append(
                f"{repo.display} has submodules: their repositories were not scanned "
                "(scan each one on its own)"
            )
        lfs = 0
        self._paths = {b.oid: b.path for b in inv.blobs}
        for chunk in iter_blobs(
            repo, inv.blobs, label=self.label, progress=self.progress, stats=stats, note=self.note
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
        if self.messages:
            yield from self._objects()

    def _objects(self) -> Iterator[Chunk]:
        """The messages and identities of every commit and tag object (one pass, pack order)."""
        from kascan.sources.git.blobstream import BlobStream

        gate = None
        if self.rules is not None:
            from kascan.match import fast_prefix

            gate = fast_prefix(self.rules)
        wants = self.wants if gate else None
        stream = BlobStream(
            self.repo, gate=gate, wants=wants, label=self.label, objects=True, blobs=False
        )
        yield from stream.chunks()

    def attribute(self, candidates: Iterable[Candidate]) -> Iterator[Candidate]:
        """Attribute every candidate; if reading stops with an error, what was found before it
        is still attributed and reported, then the error goes on. A finding in a commit that only
        a reflog entry reaches is named in the notes."""
        named: list[str] = []
        for cand in self._attributed(candidates):  # all read by now: the reflog set is known
            f = cand.finding
            if f.commit is not None and f.commit.sha in self._reflog_only:
                from kascan.sources.git.blobstream import printable  # a path is hostile

                named.append(
                    f"{printable(f.path)}:{f.line}:{f.column} (commit {f.commit.sha[:12]})"
                )
            yield cand
        if named:
            more = f" and {len(named) - 5} more" if len(named) > 5 else ""
            self.notes.append(
                f"{self.repo.display}: {len(named)} finding(s) only in reflog entries (no ref "
                f"reaches them; expire the reflog after rotating): {', '.join(named[:5])}{more}"
            )

    def _attributed(self, candidates: Iterable[Candidate]) -> Iterator[Candidate]:
        found: dict[str, list[Candidate]] = {}
        error: KascanError | None = None
        try:
            try:
                for cand in candidates:
                    found.setdefault(cand.origin or "", []).append(cand)
            except KascanError as exc:
                error = exc
            objects = {o: found.pop(o) for o in list(found) if o.startswith(_OBJECT_ORIGINS)}
            if found and not self._empty:
                try:
                    attributed = list(self._attribute(found))
                except KascanError as exc:  # a corrupt repository: report, without commits
                    attributed = self._unattributed(found, exc.format_message())
                yield from attributed
            elif found:
                self._unreachable(len(found), found)
            if objects:
                yield from self._in_objects(objects)
        finally:
            if self._early_walk is not None:
                self._early_walk.close()
                self._early_walk = None
        if error is not None:
            raise error

    # -- attribution ------------------------------------------------------------------------

    def _in_objects(self, found: dict[str, list[Candidate]]) -> Iterator[Candidate]:
        """Candidates in commit and tag objects: each is its own commit (no walk); those in an
        object that nothing reaches (dangling: a commit reset away and expired from the reflog,
        a deleted tag) are counted and skipped, as dangling blobs are."""
        try:
            commits = {o.partition(":")[2] for o in found if o.startswith("commit:")}
            tags = {o.partition(":")[2] for o in found if o.startswith("tag:")}
            reached = _reachable_commits(self.repo, commits, self._revs) | _named_objects(
                self.repo, tags
            )
            people = _identities(self.repo, commits & reached)
        except KascanError as exc:  # a corrupt repository: report them all, as read
            self.warn(
                f"{self.repo.display}: cannot tell which commit and tag objects are reachable "
                f"({exc.format_message()}): their findings are all reported"
            )
            reached, people = commits | tags, {}
        gone = 0
        out: list[Candidate] = []
        for origin, cands in found.items():
            oid = origin.partition(":")[2]
            if oid not in reached:
                gone += 1
                if self.note is not None:
                    self.note(skipped(f"{origin.partition(':')[0]} {oid[:12]}", _DANGLING))
                continue
            for cand in cands:
                f = cand.finding
                if self.excluded is not None and self.excluded(f.path):
                    self.stats.dropped["excluded"] += 1
                    if self.note is not None:
                        self.note(dropped(f, why_excluded(self.excluded, f.path)))
                    continue
                commit = people.get(oid, f.commit) if origin.startswith("commit:") else f.commit
                out.append(replace(cand, finding=replace(f, commit=commit, repo=self.label)))
        if gone:
            self.stats.skipped["unreachable-object"] += gone
            self.notes.append(
                f"{self.repo.display}: {gone} commit or tag object(s) with a key in a message or "
                "identity that no ref or reflog entry reaches (dangling) were not reported"
            )
        out.sort(key=lambda c: (c.finding.path, c.finding.line, c.finding.column))
        yield from out

    def _unattributed(self, found: dict[str, list[Candidate]], why: str) -> list[Candidate]:
        """Every candidate as read, named by its blob's path if known (else the blob's id),
        when the walk that attributes them fails: nothing found is lost."""
        out: list[Candidate] = []
        for oid, cands in found.items():
            known = self._paths.get(oid, "")
            for cand in cands:
                member = _member_suffix(cand.finding.path, known)
                f = replace(
                    cand.finding, path=(known or f"blob {oid[:12]}") + member, repo=self.label
                )
                out.append(replace(cand, finding=f))
        n = len(out)
        self.warn(
            f"{self.repo.display}: cannot attribute findings to commits ({why}): "
            f"{n} finding(s) reported without a commit"
        )
        return out

    def _unreachable(self, blobs: int, oids: Iterable[str] = ()) -> None:
        self.stats.skipped["unreachable-blob"] += blobs
        if self.note is not None:
            for oid in sorted(oids):
                self.note(skipped(f"blob {oid[:12]}", _DANGLING))
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
                self._unreachable(len(gone), gone)
                for oid in gone:
                    del found[oid]
        introduced = {k for k, _ in intros}
        pending = {c.finding.secret.value for cands in found.values() for c in cands} - introduced
        out: list[tuple[tuple[str, int, int, str], Candidate]] = []
        for (key, path), intro in intros.items():
            if self.excluded is not None and self.excluded(path):
                self.stats.dropped["excluded"] += 1
                if self.note is not None:
                    self._note_excluded(key, path, intro, found.get(intro.blob, ()))
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
        notes = _notes_commits(
            self.repo, {c.finding.commit.sha for _, c in out if c.finding.commit}
        )
        for _, cand in out:
            f = cand.finding
            if notes and f.commit is not None and f.commit.sha in notes:
                at = _note_location(f.path)
                if at is not None:
                    cand = replace(cand, finding=replace(f, path=at))
            yield cand

    def _note_excluded(
        self, key: str, path: str, intro: Introduction, cands: Iterable[Candidate]
    ) -> None:
        """The -v line of a key's introduction at an excluded path (one per count)."""
        assert self.note is not None and self.excluded is not None
        for cand in cands:
            if cand.finding.secret.value == key:
                member = _member_suffix(cand.finding.path, self._paths.get(intro.blob, ""))
                f = replace(cand.finding, path=path + member, commit=intro.commit, repo=self.label)
                self.note(dropped(f, why_excluded(self.excluded, path)))
                return

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
        give the same answer but costs git a third more. What a merge adds (diffed against its
        first parent) counts only for keys that no other commit introduces: merges are left
        out of the walk (their diffs are a fifth of its cost), and walked on their own
        afterwards only when a key is introduced by no other commit or a blob is in none of
        their changes (an "evil" merge, a stash entry's commits)."""
        early = self._early_walk
        self._early_walk = None
        find = [f"--find-object={oid}" for oid in sorted(keys)] if len(keys) <= 2000 else []
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

        def walk(args: Sequence[str], early: _EarlyWalk | None) -> None:
            proc: subprocess.Popen[bytes] | None = None
            if early is not None:
                stream: IO[bytes] = _walk_records(self.repo, early, set(keys))
            else:
                proc = popen(self.repo, *args, *find, *self._revs, "--")
                assert proc.stdout is not None
                stream = proc.stdout
            try:
                commit: Commit | None = None
                merge = False
                entries: list[_Entry] = []
                tokens = _nul_tokens(stream)
                # Positional: a record is "\x01SHA", "PARENTS", then (":META", "PATH") pairs. A
                # path (the only attacker-written field: names and dates are not in the walk) is
                # always consumed as the token after its META, so no byte in it can start a record.
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
                    finish(self.repo, proc, "log")
            finally:
                if proc is not None:
                    kill(proc)
                else:
                    stream.close()

        walk(_WALK_ARGS, early)
        if wanted - {k for k, _ in intros} or keys.keys() - seen:
            walk(_MERGES_WALK_ARGS, None)
        introduced = {k for k, _ in intros}
        for (key, path), intro in by_merges.items():
            if key not in introduced:
                intros.setdefault((key, path), intro)
        people = _identities(self.repo, {i.commit.sha for i in intros.values()})
        intros = {
            k: replace(i, commit=people.get(i.commit.sha, i.commit)) for k, i in intros.items()
        }
        return intros, seen


_DANGLING = "holds a key, but no ref, tag, stash or reflog entry reaches it (dangling)"

_HEX_NAME = re.compile(r"(?:[0-9a-f]{2}/)*[0-9a-f]+")


def _note_location(path: str) -> str | None:
    """``note 1a2b3c4d5e6f message`` for a note's path in a notes tree (the annotated object's
    id, maybe fanned out as ``1a/2b3c…``); None for another path."""
    name, bang, member = path.partition("!")
    if not _HEX_NAME.fullmatch(name) or len(name.replace("/", "")) not in (40, 64):
        return None
    return f"note {name.replace('/', '')[:12]} message" + bang + member


def _notes_commits(repo: GitRepo, shas: set[str]) -> set[str]:
    """Which of ``shas`` are commits of a notes ref's history (``refs/notes/*``)."""
    if not shas:
        return set()
    proc = run_git(repo, "for-each-ref", "--format=%(refname)", "refs/notes/", check=False)
    if not proc.stdout.strip():
        return set()
    listing = run_git(repo, "rev-list", "--glob=refs/notes/*", "--", check=False)
    return shas & set(listing.stdout.decode("ascii", "replace").split())


_OBJECT_ORIGINS = ("commit:", "tag:")  # Chunk.origin of a commit's or a tag's own chunks


def _reachable_commits(repo: GitRepo, shas: set[str], revs: Sequence[str]) -> set[str]:
    """Which of ``shas`` the roots ``revs`` reach: one ``rev-list`` walk, stopped once all are
    seen."""
    if not shas:
        return set()
    proc = popen(repo, "rev-list", *revs, "--")
    seen: set[str] = set()
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            sha = raw.strip().decode("ascii", "replace")
            if sha in shas:
                seen.add(sha)
                if len(seen) == len(shas):
                    return seen
        finish(repo, proc, "rev-list")
    finally:
        kill(proc)
    return seen


def _named_objects(repo: GitRepo, oids: set[str]) -> set[str]:
    """Which of ``oids`` (tag objects) a ref names, directly or through the tag it names (one
    level: a tag of a tag of a tag is not followed further)."""
    if not oids:
        return set()
    proc = run_git(repo, "for-each-ref", "--format=%(objectname) %(*objectname)")
    named = set(proc.stdout.decode("ascii", "replace").split())
    return named & oids


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
        # an identity is attacker-written and may hold a key: never carried whole into a report
        text = [scrub(t.decode("utf-8", "replace")) for t in (name, email, date)]
        out[sha_s] = Commit(sha_s, text[0], text[1], text[2].strip())
    return out


_LOG_ARGS = (
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
)
_WALK_ARGS = (*_LOG_ARGS, "--diff-merges=off")  # every commit, merges without their changes
_MERGES_WALK_ARGS = (*_LOG_ARGS, "--merges", "--diff-merges=first-parent")  # merges only


class _EarlyWalk:
    """``git log --raw`` of the whole history, run while the blobs are read, into a file."""

    __slots__ = ("err", "out", "proc")

    def __init__(self, proc: subprocess.Popen[bytes], out: IO[bytes], err: IO[bytes]) -> None:
        self.proc, self.out, self.err = proc, out, err

    def close(self) -> None:
        kill(self.proc)
        self.out.close()
        self.err.close()

    def census(self) -> tuple[int, bool] | None:
        """The commits the walk went through (what ``rev-list --count`` of the same roots says:
        it shows every commit once, merges too) and whether any of them changes a top-level
        ``.gitmodules``; None while it runs, or when it failed (the attribution says why)."""
        if self.proc.poll() is None or self.proc.returncode != 0:
            return None
        count, modules = 0, False
        rest = b""
        try:
            self.out.seek(0)
            while True:
                block = self.out.read(1 << 20)
                data = rest + block
                # up to the last record that starts here: a token never straddles the cut
                cut = _record_start(data, len(data) - 1, 1) if block else len(data)
                if cut <= 0:
                    if block:
                        rest = data
                        continue
                    cut = len(data)
                part, rest = data[:cut], data[cut:]
                count += sum(1 for _ in _RECORD.finditer(part))
                # a path is the only token that can be ".gitmodules"; each ends with a NUL
                modules = modules or b"\0.gitmodules\0" in part
                if not block:
                    break
            self.out.seek(0)
        except OSError:
            return None
        return count, modules


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
            raise KascanError(f"git log failed in {repo.display}: {last_line(walk.err.read())}")
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
