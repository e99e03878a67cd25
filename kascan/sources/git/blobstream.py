"""Every blob of a repository's object database in pack order, read as one stream.

``git cat-file --batch-all-objects --batch-check --unordered`` lists the objects in the order they
are stored (no history walk); a feeder thread passes the blobs' ids on to ``git cat-file --batch
--buffer``, which inflates them in the child while the parent reads its output in large blocks and
parses the headers itself. Only blobs that can hold a finding become :class:`Chunk` records: with
``gate`` set (the built-in rule alone) a blob is handed on only when its bytes contain ``gate``,
found with one ``find`` over the buffer for many blobs at once, or when ``wants`` says it may
hide a key in another form (an archive, base64, UTF-16: the decoders' own cheap first tests).
Nothing is kept per blob, so memory stays flat whatever the number of objects.

This reads *every* blob in the database, reachable or not: the caller decides afterwards, for the
few blobs that hold a candidate, whether any ref reaches them (``History``).

With ``objects`` set, the commit and annotated tag objects come through the same stream and the
same gate: one that holds a needle is cut by :func:`object_chunks` into its message and identity
lines, each a chunk whose path names where it is (``commit 1a2b3c4d5e6f message``, ``commit
1a2b3c4d5e6f author``, ``tag v1.2 message``) and whose ``origin`` is ``commit:<id>`` or
``tag:<id>``; they are found once each, as the objects are stored, with no walk.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import IO, TYPE_CHECKING

from kascan.errors import KascanError
from kascan.model import Chunk
from kascan.sources.stream import WINDOW, iter_stream

if TYPE_CHECKING:
    from kascan.sources.git.process import GitRepo

READ = 1 << 20  # bytes per read of the cat-file stream
_F_SETPIPE_SZ = 1031  # Linux: a 1 MiB pipe lets git run ahead of the parent
LFS_POINTER = b"version https://git-lfs.github.com/spec/v1"
_BLOB, _COMMIT = ord("b"), ord("c")  # the first letter of an object's type in cat-file's header
SHORT = 12  # hex digits of an object id in a location (``commit 1a2b3c4d5e6f message``)
# the last word of a location that is in a git object, not in a file
OBJECT_PARTS = ("message", "author", "committer", "tagger", "object")


def printable(text: str) -> str:
    """``text`` with control, format (bidi) and escape characters as ``\\xNN``/``\\uNNNN``: a
    tag name is attacker-written and becomes part of a location shown on a terminal."""
    import unicodedata

    out = []
    for ch in text:
        if ch == "\\" or (ch.isascii() and (ch < " " or ch == "\x7f")):
            out.append(f"\\x{ord(ch):02x}")
        elif not ch.isascii() and unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def _iso(epoch: bytes, tz: bytes) -> str:
    """``1704067200 +0100`` as ISO 8601 (``2024-01-01T01:00:00+01:00``); '' when malformed."""
    from datetime import datetime, timedelta, timezone

    try:
        sign = -1 if tz[:1] == b"-" else 1
        hours, minutes = int(tz[1:3]), int(tz[3:5])
        zone = timezone(sign * timedelta(hours=hours, minutes=minutes))
        return datetime.fromtimestamp(int(epoch), zone).isoformat()
    except (ValueError, OverflowError, OSError):
        return ""


def _ident(value: bytes) -> tuple[bytes, str]:
    """``Name <email> 1704067200 +0000`` -> (``Name <email>``, the date in ISO 8601)."""
    gt = value.rfind(b">")
    if gt == -1:
        return value, ""
    when = value[gt + 1 :].split()
    date = _iso(when[0], when[1]) if len(when) == 2 else ""
    return value[: gt + 1], date


def _split_ident(who: bytes) -> tuple[str, str]:
    """Name and e-mail, anything key-shaped in them redacted (they go into reports)."""
    from kascan.model import scrub

    name, _, email = who.partition(b" <")
    return scrub(name.decode("utf-8", "replace")), scrub(
        email.rstrip(b">").decode("utf-8", "replace")
    )


def object_chunks(kind: str, oid: str, data: bytes, label: str | None) -> Iterator[Chunk]:
    """The message and identity lines of one commit or annotated tag object, each a chunk.

    A commit gives ``commit <id> message`` (line 1 is the subject) and ``commit <id> author``
    (the ``Name <email>`` of the author line; ``committer`` too when it differs); a tag gives
    ``tag <name> message`` and ``tag <name> tagger``. A commit's chunks carry the commit (its
    identity is filled in by the attribution); a tag's carry the commit it names, with the
    tagger as its author. Nothing in the object is parsed but these fixed header names.
    """
    from kascan.model import Commit

    head, _, body = data.partition(b"\n\n")
    headers: dict[bytes, bytes] = {}
    for line in head.split(b"\n"):
        if line[:1] == b" ":
            continue  # a continuation line (gpgsig, mergetag): never an identity
        name, _, value = line.partition(b" ")
        headers.setdefault(name, value)
    origin = f"{kind}:{oid}"
    if kind == "commit":
        where = f"commit {oid[:SHORT]}"
        commit = Commit(oid, "", "", "")
        yield Chunk(f"{where} message", body, repo=label, commit=commit, origin=origin)
        author = _ident(headers[b"author"])[0] if b"author" in headers else None
        if author is not None:
            yield Chunk(f"{where} author", author, repo=label, commit=commit, origin=origin)
        if b"committer" in headers:
            committer = _ident(headers[b"committer"])[0]
            if committer != author:
                yield Chunk(
                    f"{where} committer", committer, repo=label, commit=commit, origin=origin
                )
        return
    tag = printable(headers.get(b"tag", oid[:SHORT].encode()).decode("utf-8", "replace"))
    target = headers.get(b"object", b"").decode("ascii", "replace")
    tagger, date = _ident(headers[b"tagger"]) if b"tagger" in headers else (None, "")
    tagged = None
    if headers.get(b"type") == b"commit" and target:
        tagged = Commit(target, *_split_ident(tagger or b""), date)
    yield Chunk(f"tag {tag} message", body, repo=label, commit=tagged, origin=origin)
    if tagger is not None:
        yield Chunk(f"tag {tag} tagger", tagger, repo=label, commit=tagged, origin=origin)


class BlobStream:
    """One pass over the object database's blobs; counts what it saw.

    Each chunk's ``origin`` is the id of the blob it comes from.
    """

    def __init__(
        self,
        repo: GitRepo,
        *,
        gate: bytes | None,
        wants: Callable[[bytes], bool] | None = None,
        label: str | None = None,
        progress: Callable[[int, int | None, int], None] | None = None,
        objects: bool = False,
        blobs: bool = True,
    ) -> None:
        self.repo = repo
        # which objects the feeder passes on: blobs, and commits and tags with ``objects``
        kinds = (b"blob ",) if blobs else ()
        self.kinds: tuple[bytes, ...] = (*kinds, *((b"commit ", b"tag ") if objects else ()))
        self.gate = gate
        self.wants = wants  # with a gate: whether a blob without it is handed on all the same
        self.label = label
        self.progress = progress
        self.blobs = 0  # blobs read
        self.bytes = 0  # their bytes
        self.lfs = 0  # Git LFS pointers among them
        self.missing = 0
        self.objects = 0  # commits and tags read
        self._listed = 0  # blob ids the feeder has passed on
        self.total: int | None = None  # objects to read, once known (the progress line's total)
        self._error: BaseException | None = None

    # -- the feeder: object list -> blob ids -> cat-file --batch --------------------------------

    def _feed(self, listing: IO[bytes], sink: IO[bytes]) -> None:
        rest = b""
        kinds = self.kinds
        import re

        # one C-level pass over each block for the ids of the kinds wanted (trees are skipped)
        wanted = re.compile(
            rb"^(?:" + b"|".join(k.strip() for k in kinds) + rb") ([0-9a-f]+)$", re.MULTILINE
        )
        try:
            while block := listing.read(1 << 16):
                if kinds == (b"blob ",):
                    lines = (rest + block).split(b"\n")
                    rest = lines.pop()
                    ids = [ln[5:] for ln in lines if ln.startswith(b"blob ")]
                else:
                    data = rest + block
                    cut = data.rfind(b"\n") + 1
                    rest = data[cut:]
                    ids = wanted.findall(data, 0, cut)
                if ids:
                    ids.append(b"")
                    sink.write(b"\n".join(ids))
                    self._listed += len(ids) - 1
            if rest.startswith(kinds):
                sink.write(rest.partition(b" ")[2] + b"\n")
                self._listed += 1
            self.total = self._listed  # exact, if the count below has not ended first
        except (OSError, ValueError) as exc:  # the reader stopped early (an error, or a break)
            self._error = exc
        finally:
            with contextlib.suppress(OSError, ValueError):
                sink.close()

    def _counter(self) -> subprocess.Popen[bytes]:
        """The progress total, before the feeder knows it (its listing waits on the reads, so it
        ends with them): a second listing of the database, of each object's type alone, counted
        by a thread. Only with a progress line (a terminal): git lists a million objects in
        about a second, alongside the read."""
        from kascan.sources.git.process import popen

        args = ("--batch-all-objects", "--unordered", "--batch-check=%(objecttype)")
        proc = popen(self.repo, "cat-file", *args)
        name = "kascan-object-count"
        threading.Thread(target=self._count, args=(proc,), name=name, daemon=True).start()
        return proc

    def _count(self, listing: subprocess.Popen[bytes]) -> None:
        """One letter tells the kinds apart ("l" is in ``blob`` only, "c" in ``commit``, "g" in
        ``tag``), so each block of the listing is counted in C."""
        letters = [b"l"] if b"blob " in self.kinds else []
        letters += [b"c", b"g"] if b"commit " in self.kinds else []
        found = 0
        assert listing.stdout is not None
        with contextlib.suppress(OSError, ValueError):
            while block := listing.stdout.read(1 << 16):
                for letter in letters:
                    found += block.count(letter)
            if listing.wait() == 0 and self.total is None:
                self.total = found

    def _tick(self, blobs: int, nbytes: int) -> None:
        assert self.progress is not None
        self.progress(blobs + self.objects + self.missing, self.total, nbytes)

    def chunks(self) -> Iterator[Chunk]:
        from kascan.sources.git.process import finish, kill, popen

        repo = self.repo
        listing = popen(
            repo,
            "cat-file",
            "--batch-all-objects",
            "--unordered",
            "--batch-check=%(objecttype) %(objectname)",
        )
        cat = popen(repo, "cat-file", "--batch", "--buffer", stdin=subprocess.PIPE)
        assert listing.stdout is not None and cat.stdin is not None and cat.stdout is not None
        fd = cat.stdout.fileno()
        with contextlib.suppress(OSError):
            import fcntl

            fcntl.fcntl(fd, _F_SETPIPE_SZ, READ)
        feeder = threading.Thread(
            target=self._feed, args=(listing.stdout, cat.stdin), name="kascan-blob-ids", daemon=True
        )
        feeder.start()
        counter = self._counter() if self.progress is not None else None
        try:
            yield from self._parse(fd)
            feeder.join()
            finish(repo, listing, "cat-file --batch-all-objects")
            finish(repo, cat, "cat-file --batch")
            if self._error is not None:
                raise KascanError(f"git cat-file stopped early in {repo.display}")
        finally:
            kill(cat)
            kill(listing)
            if counter is not None:
                kill(counter)

    # -- the reader ----------------------------------------------------------------------------

    def _parse(self, fd: int) -> Iterator[Chunk]:
        """``<id> blob <size>\\n<bytes>\\n`` records, from large reads, without a line reader.

        With a gate, every read is scanned once, as it arrives, for every needle (the prefix and
        the decoders' encoded forms: :class:`kascan.engine.Stream`, Hyperscan's streaming mode);
        ``hits`` holds the needles not yet passed, by absolute offset in the stream (``base`` is
        that of ``buf[0]``). A blob is handed on when the prefix starts in it, or when another
        needle does or its first bytes are an archive's and ``wants`` then says so; most blobs
        cost no search of their own.
        """
        from collections import deque

        from kascan.engine import PREFIX_ID, Stream, needles

        gate, wants, label, display = self.gate, self.wants, self.label, self.repo.display
        objects = self.kinds != (b"blob ",)
        stream = Stream() if gate else None
        lengths = tuple(len(n) for n in needles())
        hits: deque[tuple[int, int]] = deque()
        base = 0
        sniff: Callable[[bytes], str | None] | None = None
        if wants is not None:
            from kascan.sources.archives import sniff
        read = os.read
        buf = bytearray()
        pos = 0  # start of the next record in buf
        blobs = nbytes = lfs = 0
        progress = self.progress
        while True:
            nl = buf.find(b"\n", pos)
            if nl == -1:
                block = read(fd, READ)
                if not block:
                    if pos != len(buf):
                        raise KascanError(f"git cat-file stopped early in {display}")
                    break
                del buf[:pos]  # O(1) in CPython: the bytearray moves its start
                base += pos
                pos = 0
                buf += block
                if stream is not None:
                    hits.extend(stream.feed(block))
                if progress is not None:
                    self._tick(blobs, nbytes)
                continue
            sp = buf.rfind(b" ", pos, nl)
            try:
                size = int(buf[sp + 1 : nl])
            except ValueError:
                if not buf.endswith(b" missing", pos, nl):
                    raise KascanError(
                        f"git cat-file gave an unexpected reply in {display}"
                    ) from None
                self.missing += 1
                pos = nl + 1
                continue
            start = nl + 1
            end = start + size
            otype = buf[buf.find(b" ", pos) + 1] if objects else _BLOB  # b, c(ommit) or t(ag)
            if otype == _BLOB:
                blobs += 1
                nbytes += size
            else:
                self.objects += 1
            if size > WINDOW:
                oid = buf[pos : buf.find(b" ", pos)].decode()
                take = min(len(buf) - start, size)
                first = bytes(buf[start : start + take])
                del buf[: start + take]
                pos = 0
                yield from self._big(fd, first, size - take, oid, otype)
                if not buf:
                    buf += read(fd, READ)
                if buf[:1] != b"\n":
                    raise KascanError(f"git cat-file gave an unexpected reply in {display}")
                pos = 1
                if stream is not None:  # the big blob was read past the stream: a new one
                    stream.close()
                    stream = Stream(stream.engine)
                    hits.clear()
                    base = 0
                    hits.extend(stream.feed(buf))
                continue
            if end >= len(buf):  # the record is not all in the buffer yet
                del buf[:pos]
                base += pos
                start -= pos
                end -= pos
                pos = 0
                while len(buf) <= end:
                    block = read(fd, max(READ, end + 1 - len(buf)))
                    if not block:
                        raise KascanError(f"git cat-file stopped early in {display}")
                    buf += block
                    if stream is not None:
                        hits.extend(stream.feed(block))
                    if progress is not None:  # most reads end inside a record: counted here
                        self._tick(blobs, nbytes)
            if otype != _BLOB:
                if stream is not None:
                    kinds = 0
                    blob_lo, blob_hi = base + start, base + end
                    while hits and hits[0][0] + lengths[hits[0][1]] <= blob_hi:
                        at, id = hits.popleft()
                        if at >= blob_lo:
                            kinds |= 1 if id == PREFIX_ID else 2
                    if not kinds:
                        pos = end + 1
                        continue
                data = bytes(buf[start:end])
                if stream is not None and not kinds & 1 and (wants is None or not wants(data)):
                    pos = end + 1
                    continue
                oid = buf[pos : buf.find(b" ", pos)].decode()
                pos = end + 1
                yield from object_chunks("commit" if otype == _COMMIT else "tag", oid, data, label)
                continue
            if size < 256 and buf.startswith(LFS_POINTER, start):
                lfs += 1
            if stream is not None:
                kinds = 0  # 1: the prefix starts in this blob; 2: another needle does
                blob_lo, blob_hi = base + start, base + end
                while hits and hits[0][0] + lengths[hits[0][1]] <= blob_hi:
                    at, id = hits.popleft()
                    if at >= blob_lo:
                        kinds |= 1 if id == PREFIX_ID else 2
                if kinds & 1:
                    data = bytes(buf[start:end])
                else:
                    # the decoders' first tests: another needle, or an archive's magic bytes
                    maybe = sniff is not None and (
                        kinds > 0 or sniff(bytes(buf[start : start + 512])) is not None
                    )
                    data = bytes(buf[start:end]) if maybe else b""
                    if not maybe or wants is None or not wants(data):
                        pos = end + 1
                        continue
            else:
                data = bytes(buf[start:end])
            oid = buf[pos : buf.find(b" ", pos)].decode()
            pos = end + 1
            yield Chunk("", data, repo=label, origin=oid, whole=True)
        self.blobs, self.bytes, self.lfs = blobs, nbytes, lfs
        if progress is not None:
            done = blobs + self.objects + self.missing
            progress(done, done, nbytes)

    def _big(
        self, fd: int, first: bytes, remaining: int, oid: str, otype: int = 98
    ) -> Iterator[Chunk]:
        """A blob bigger than a window, streamed in windows: ``first`` is what the buffer held of
        it, ``remaining`` the bytes of it still in the pipe. A commit or tag object that big (a
        hostile one) is streamed whole as ``commit <id> object``: lines count from its first
        header line, as ``git cat-file -p`` shows it."""
        from kascan.model import Commit

        path, origin, commit = "", oid, None
        if otype != _BLOB:
            kind = "commit" if otype == _COMMIT else "tag"
            path, origin = f"{kind} {oid[:SHORT]} object", f"{kind}:{oid}"
            commit = Commit(oid, "", "", "") if kind == "commit" else None
        pending = [first] if first else []

        def read(n: int) -> bytes:
            nonlocal remaining
            if pending:
                return pending.pop()
            if remaining <= 0:
                return b""
            block = os.read(fd, min(n, remaining))
            if not block:
                raise KascanError(f"git cat-file stopped early in {self.repo.display}")
            remaining -= len(block)
            return block

        for chunk in iter_stream(read, path):
            yield replace(chunk, repo=self.label, origin=origin, commit=commit)
        while remaining > 0:
            read(READ)
