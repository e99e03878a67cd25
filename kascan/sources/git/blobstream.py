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
        progress: Callable[[int, int, int], None] | None = None,
    ) -> None:
        self.repo = repo
        self.gate = gate
        self.wants = wants  # with a gate: whether a blob without it is handed on all the same
        self.label = label
        self.progress = progress
        self.blobs = 0  # blobs read
        self.bytes = 0  # their bytes
        self.lfs = 0  # Git LFS pointers among them
        self.missing = 0
        self._listed = 0  # blob ids the feeder has passed on (the progress total)
        self._error: BaseException | None = None

    # -- the feeder: object list -> blob ids -> cat-file --batch --------------------------------

    def _feed(self, listing: IO[bytes], sink: IO[bytes]) -> None:
        rest = b""
        try:
            while block := listing.read(1 << 16):
                lines = (rest + block).split(b"\n")
                rest = lines.pop()
                ids = [ln[5:] for ln in lines if ln.startswith(b"blob ")]
                if ids:
                    ids.append(b"")
                    sink.write(b"\n".join(ids))
                    self._listed += len(ids) - 1
            if rest.startswith(b"blob "):
                sink.write(rest[5:] + b"\n")
                self._listed += 1
        except (OSError, ValueError) as exc:  # the reader stopped early (an error, or a break)
            self._error = exc
        finally:
            with contextlib.suppress(OSError, ValueError):
                sink.close()

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
                    progress(blobs, self._listed, nbytes)
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
            blobs += 1
            nbytes += size
            if size > WINDOW:
                oid = buf[pos : buf.find(b" ", pos)].decode()
                take = min(len(buf) - start, size)
                first = bytes(buf[start : start + take])
                del buf[: start + take]
                pos = 0
                yield from self._big(fd, first, size - take, oid)
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
            progress(blobs, blobs, nbytes)

    def _big(self, fd: int, first: bytes, remaining: int, oid: str) -> Iterator[Chunk]:
        """A blob bigger than a window, streamed in windows: ``first`` is what the buffer held of
        it, ``remaining`` the bytes of it still in the pipe."""
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

        for chunk in iter_stream(read, ""):
            yield replace(chunk, repo=self.label, origin=oid)
        while remaining > 0:
            read(READ)
