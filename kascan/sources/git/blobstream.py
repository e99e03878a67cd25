"""Every blob of a repository's object database in pack order, read as one stream.

``git cat-file --batch-all-objects --batch-check --unordered`` lists the objects in the order they
are stored (no history walk); a feeder thread passes the blobs' ids on to ``git cat-file --batch
--buffer`` (two of them on two cores or more, ``TURN`` ids to each in turn: the inflating is the
floor's cost, and two processes share it; see :meth:`BlobStream._side_by_side`), which inflates them
in the child while the parent reads its output in large blocks and parses the headers itself.
Only blobs that can hold a finding become :class:`Chunk` records: with
``gate`` set (the built-in rule alone) a blob is handed on only when its bytes contain ``gate``,
found by one streaming pass of the engine over everything read, or when ``wants`` says it may
hide a key in another form (an archive, base64, UTF-16: the decoders' own cheap first tests).
Nothing is kept per blob, so memory stays flat whatever the number of objects.

Why a feeder and not ``git cat-file --batch-all-objects --batch`` itself (one process, no ids
on stdin): that also inflates and writes every tree, which the scan never needs (u-boot's
153,000 trees are 444 MB of its 2.3 GB). Measured on that history (294,000 objects), git and
the reader together spend 2.3-2.5 CPU-seconds with the feeder against 3.0-3.1 without it; the
listing costs git 0.2 s of that. The cost of the read is in the pipe, not the parsing: git
writes each blob's header and then 16 KiB pieces, and the reader sleeps briefly after a short
read rather than being woken for each (see :meth:`BlobStream._parse`).

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
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import IO, TYPE_CHECKING

from kascan.errors import KascanError
from kascan.model import Chunk
from kascan.sources.stream import WINDOW, iter_stream

if TYPE_CHECKING:
    from kascan.sources.git.process import GitRepo

READ = 1 << 20  # bytes per read of the cat-file stream (at most)
LOW = READ // 4  # a read shorter than this is followed by a nap before the next one
NAP = 0.0005  # seconds: git fills ~0.5 MiB of the pipe meanwhile, with no wakeup per write
# git's listing, its cat-file --batch processes, and the thread feeding the ids to them
_Procs = tuple["subprocess.Popen[bytes]", list["subprocess.Popen[bytes]"], threading.Thread]
TURN = 4096  # ids the feeder hands one cat-file before it turns to the next
# the reader's one buffer: a record up to a window (bigger ones are streamed), then a read
CAPACITY = WINDOW + READ + 4096
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


def readers() -> int:
    """How many ``cat-file --batch`` processes inflate side by side: one per core, at most two
    (``KASCAN_GIT_READERS`` sets it: 1 reads in the caller's thread, as on one core)."""
    wanted = os.environ.get("KASCAN_GIT_READERS", "")
    if wanted.isdigit() and 1 <= int(wanted) <= 8:
        return int(wanted)
    return 2 if (os.cpu_count() or 1) > 1 else 1


class _Counts:
    """What one reader has seen so far (published at each read, whole at its end)."""

    __slots__ = ("blobs", "bytes", "lfs", "missing", "objects")

    def __init__(self) -> None:
        self.blobs = self.bytes = self.lfs = self.missing = self.objects = 0


_DONE = object()  # a reader thread's last item on the queue


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
        self._counts: list[_Counts] = []  # one per reader
        self._listed = 0  # blob ids the feeder has passed on
        self.total: int | None = None  # objects to read, once known (the progress line's total)
        self._error: BaseException | None = None
        self._procs: _Procs | None = None  # after start()
        self._counting: subprocess.Popen[bytes] | None = None  # the progress total's listing

    # what every reader saw, together
    @property
    def blobs(self) -> int:
        return sum(c.blobs for c in self._counts)

    @property
    def size(self) -> int:
        """The blobs' bytes."""
        return sum(c.bytes for c in self._counts)

    @property
    def lfs(self) -> int:
        return sum(c.lfs for c in self._counts)

    @property
    def missing(self) -> int:
        return sum(c.missing for c in self._counts)

    @property
    def objects(self) -> int:
        return sum(c.objects for c in self._counts)

    # -- the feeder: object list -> blob ids -> cat-file --batch --------------------------------

    def _feed(self, listing: IO[bytes], sinks: list[IO[bytes]]) -> None:
        """The ids of the kinds wanted, ``TURN`` at a time to each ``cat-file`` in turn: big
        enough runs that a delta chain's bases are mostly inflated by one process."""
        rest = b""
        kinds = self.kinds
        turn = sent = 0
        sink = sinks[0]
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
                    sink.flush()  # git starts on the first ids, not when a buffer is full
                    self._listed += len(ids) - 1
                    sent += len(ids) - 1
                    if sent >= TURN:
                        turn, sent = (turn + 1) % len(sinks), 0
                        sink = sinks[turn]
            if rest.startswith(kinds):
                sink.write(rest.partition(b" ")[2] + b"\n")
                self._listed += 1
            self.total = self._listed  # exact, if the count below has not ended first
        except (OSError, ValueError) as exc:  # the reader stopped early (an error, or a break)
            self._error = exc
        finally:
            for each in sinks:
                with contextlib.suppress(OSError, ValueError):
                    each.close()

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

    def _tick(self) -> None:
        assert self.progress is not None
        counts = self._counts
        done = sum(c.blobs + c.objects + c.missing for c in counts)
        self.progress(done, self.total, sum(c.bytes for c in counts))

    def start(self) -> None:
        """Start git: the listing, ``cat-file --batch`` and the feeder thread between them.
        :meth:`chunks` calls it if the caller did not (a caller that starts the stream first
        has git inflating blobs while it sets up the rest) and ends it; a caller that starts
        it and then never reads must call :meth:`stop`."""
        if self._procs is not None:
            return
        from kascan.sources.git.process import kill, popen

        repo = self.repo
        listing = popen(
            repo,
            "cat-file",
            "--batch-all-objects",
            "--unordered",
            "--batch-check=%(objecttype) %(objectname)",
        )
        cats: list[subprocess.Popen[bytes]] = []
        try:
            for _ in range(readers()):
                cat = popen(repo, "cat-file", "--batch", "--buffer", stdin=subprocess.PIPE)
                cats.append(cat)
                assert cat.stdin is not None and cat.stdout is not None
                with contextlib.suppress(OSError):
                    import fcntl

                    fcntl.fcntl(cat.stdout.fileno(), _F_SETPIPE_SZ, READ)
                    # the ids too: the feeder thread wakes (and takes the GIL) once per ~20,000 ids
                    fcntl.fcntl(cat.stdin.fileno(), _F_SETPIPE_SZ, READ)
        except BaseException:
            for cat in cats:
                kill(cat)
            kill(listing)
            raise
        assert listing.stdout is not None
        sinks = [cat.stdin for cat in cats if cat.stdin is not None]
        feeder = threading.Thread(
            target=self._feed, args=(listing.stdout, sinks), name="kascan-blob-ids", daemon=True
        )
        self._procs = (listing, cats, feeder)
        feeder.start()
        self._counting = self._counter() if self.progress is not None else None

    def stop(self) -> None:
        """End git (after :meth:`start`): what was not read is dropped."""
        if self._procs is not None:
            from kascan.sources.git.process import kill

            listing, cats, _feeder = self._procs
            for cat in cats:
                kill(cat)
            kill(listing)
            if self._counting is not None:
                kill(self._counting)

    def chunks(self) -> Iterator[Chunk]:
        from kascan.sources.git.process import finish

        repo = self.repo
        self.start()
        assert self._procs is not None
        listing, cats, feeder = self._procs
        try:
            if len(cats) == 1:
                assert cats[0].stdout is not None
                tick = self._tick if self.progress is not None else None
                yield from self._parse(cats[0].stdout.fileno(), tick=tick)
            else:
                yield from self._side_by_side(cats)
            feeder.join()
            finish(repo, listing, "cat-file --batch-all-objects")
            for cat in cats:
                finish(repo, cat, "cat-file --batch")
            if self._error is not None:
                raise KascanError(f"git cat-file stopped early in {repo.display}")
            if self.progress is not None:
                done = self.blobs + self.objects + self.missing
                self.progress(done, done, self.size)
        finally:
            self.stop()

    def _side_by_side(self, cats: list[subprocess.Popen[bytes]]) -> Iterator[Chunk]:
        """Each ``cat-file``'s output parsed by a thread of its own, the chunks handed to the
        caller through one short queue (at most ``4`` chunks, each a blob up to a window or a
        window of a bigger one, wait there: memory stays flat). git's inflating is what the
        floor spends its time on, and two processes do it on two cores; the threads hold the
        GIL only to parse headers (the reads and Hyperscan's scans release it). The order of
        the chunks between the two is not fixed; the attribution sorts what it reports.
        The progress line is drawn from the caller's thread only."""
        import queue

        items: queue.Queue[object] = queue.Queue(maxsize=4)
        stopping = threading.Event()

        def put(item: object) -> bool:
            while not stopping.is_set():
                with contextlib.suppress(queue.Full):
                    items.put(item, timeout=0.1)
                    return True
            return False

        def read(cat: subprocess.Popen[bytes]) -> None:
            assert cat.stdout is not None
            try:
                for chunk in self._parse(cat.stdout.fileno()):
                    if not put(chunk):
                        return
                put(_DONE)
            except BaseException as exc:  # handed to the caller's thread, raised there
                put(exc)

        threads = [
            threading.Thread(target=read, args=(cat,), name=f"kascan-cat-file-{i}", daemon=True)
            for i, cat in enumerate(cats)
        ]
        for thread in threads:
            thread.start()
        running, last = len(threads), 0.0
        progress = self.progress
        try:
            while running:
                try:
                    item = items.get(timeout=0.05)
                except queue.Empty:
                    item = None
                if progress is not None and (now := time.monotonic()) - last >= 0.05:
                    self._tick()
                    last = now
                if item is None:
                    continue
                if item is _DONE:
                    running -= 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    assert isinstance(item, Chunk)
                    yield item
        finally:
            stopping.set()
            if running:
                self.stop()  # a reader blocked on its pipe ends with its git
            for thread in threads:
                thread.join(timeout=5)

    # -- the reader ----------------------------------------------------------------------------

    def _parse(self, fd: int, tick: Callable[[], None] | None = None) -> Iterator[Chunk]:
        """``<id> blob <size>\\n<bytes>\\n`` records, read into one buffer, without a line reader.

        The buffer is allocated once and read into (``readv``): no new block per read, and no
        copy but that of an unfinished record's start to the front when the buffer is full. git
        writes each blob's header, then its bytes in 16 KiB pieces, and a reader blocked on the
        pipe would be woken for each of them (~380,000 wakeups for a 300,000-object history):
        after a short read the reader naps (``NAP``) while git fills the pipe instead, and reads
        a quarter of a MiB or more at a time (~5,000 reads), which halves both sides' system time.

        With a gate, every read is scanned once, as it arrives, for every needle (the prefix and
        the decoders' encoded forms: :class:`kascan.engine.Stream`, Hyperscan's streaming mode);
        ``hits`` holds the needles not yet passed, by absolute offset in the stream (``base`` is
        that of ``buf[0]``). A blob is handed on when the prefix starts in it, or when another
        needle does or its first bytes are an archive's and ``wants`` then says so; most blobs
        cost no search of their own, and a one-byte test rules out an archive.

        What it has seen goes into a :class:`_Counts` of its own (published at each read);
        ``tick`` is called after each read.
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
        first: frozenset[int] = frozenset()
        tar_at, tar = 0, b""
        if wants is not None:
            from kascan.sources.archives import MAGIC_FIRST, TAR_MAGIC, sniff

            first, (tar_at, tar) = MAGIC_FIRST, TAR_MAGIC
        readv, nap = os.readv, time.sleep
        buf = bytearray(CAPACITY)
        view = memoryview(buf)
        find, rfind, startswith = buf.find, buf.rfind, buf.startswith
        pos = 0  # start of the next record in buf
        hi = 0  # end of what was read into buf
        short = False  # the last read was short: nap before the next one
        blobs = nbytes = lfs = 0
        counts = _Counts()
        self._counts.append(counts)
        try:
            while True:
                nl = find(b"\n", pos, hi)
                if nl != -1:
                    sp = rfind(b" ", pos, nl)
                    try:
                        size = int(buf[sp + 1 : nl])
                    except ValueError:
                        if not buf.endswith(b" missing", pos, nl):
                            raise KascanError(
                                f"git cat-file gave an unexpected reply in {display}"
                            ) from None
                        counts.missing += 1
                        pos = nl + 1
                        continue
                    start = nl + 1
                    end = start + size
                    otype = buf[find(b" ", pos, nl) + 1] if objects else _BLOB  # b, c or t(ag)
                    if size > WINDOW:
                        if otype == _BLOB:
                            blobs += 1
                            nbytes += size
                        else:
                            counts.objects += 1
                        oid = buf[pos : find(b" ", pos, nl)].decode()
                        take = min(hi - start, size)
                        head = bytes(view[start : start + take])
                        yield from self._big(fd, head, size - take, oid, otype)
                        n = hi - (start + take)  # what the buffer holds past the big blob
                        if n:
                            buf[:n] = view[start + take : hi]
                        pos, hi = 0, n
                        if not hi:
                            hi = readv(fd, [view[:READ]])
                        if not hi or buf[:1] != b"\n":
                            raise KascanError(f"git cat-file gave an unexpected reply in {display}")
                        pos = 1
                        if stream is not None:  # the big blob was read past the stream: a new one
                            stream.close()
                            stream = Stream(stream.engine)
                            hits.clear()
                            base = 0
                            hits.extend(stream.feed(view[:hi]))
                        continue
                    if end < hi:  # the whole record is in the buffer
                        rec, pos = pos, end + 1
                        if otype != _BLOB:
                            counts.objects += 1
                            kinds = 0
                            if stream is not None:
                                blob_lo, blob_hi = base + start, base + end
                                while hits and hits[0][0] + lengths[hits[0][1]] <= blob_hi:
                                    at, id = hits.popleft()
                                    if at >= blob_lo:
                                        kinds |= 1 if id == PREFIX_ID else 2
                                if not kinds:
                                    continue
                            data = bytes(view[start:end])
                            if (
                                stream is not None
                                and not kinds & 1
                                and (wants is None or not wants(data))
                            ):
                                continue
                            oid = buf[rec : find(b" ", rec, nl)].decode()
                            kind = "commit" if otype == _COMMIT else "tag"
                            yield from object_chunks(kind, oid, data, label)
                            continue
                        blobs += 1
                        nbytes += size
                        if size < 256 and startswith(LFS_POINTER, start, end):
                            lfs += 1
                        if stream is not None:
                            kinds = 0  # 1: the prefix starts in this blob; 2: another needle does
                            if hits:
                                blob_lo, blob_hi = base + start, base + end
                                while hits and hits[0][0] + lengths[hits[0][1]] <= blob_hi:
                                    at, id = hits.popleft()
                                    if at >= blob_lo:
                                        kinds |= 1 if id == PREFIX_ID else 2
                            if not kinds & 1:
                                # the decoders' first tests: another needle, or an archive's
                                # magic bytes (one byte rules most blobs out)
                                if sniff is None or wants is None:
                                    continue
                                if not kinds:
                                    if not size or (
                                        buf[start] not in first
                                        and not startswith(tar, start + tar_at, end)
                                    ):
                                        continue
                                    if sniff(bytes(view[start : min(end, start + 512)])) is None:
                                        continue
                                data = bytes(view[start:end])
                                if not wants(data):
                                    continue
                            else:
                                data = bytes(view[start:end])
                        else:
                            data = bytes(view[start:end])
                        oid = buf[rec : find(b" ", rec, nl)].decode()
                        yield Chunk("", data, repo=label, origin=oid, whole=True)
                        continue
                # the record at pos is not all in the buffer: read on
                if hi + READ > CAPACITY:
                    n = hi - pos
                    if n:
                        buf[:n] = view[pos:hi]
                    base += pos
                    pos, hi = 0, n
                if short:
                    nap(NAP)
                got = readv(fd, [view[hi : hi + READ]])
                if not got:
                    if pos != hi:
                        raise KascanError(f"git cat-file stopped early in {display}")
                    break
                if stream is not None:
                    hits.extend(stream.feed(view[hi : hi + got]))
                hi += got
                short = got < LOW
                counts.blobs, counts.bytes, counts.lfs = blobs, nbytes, lfs
                if tick is not None:
                    tick()
        finally:
            if stream is not None:
                stream.close()
            counts.blobs, counts.bytes, counts.lfs = blobs, nbytes, lfs

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
