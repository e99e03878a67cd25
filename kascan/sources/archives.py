"""Archives and compressed streams, opened in memory by their magic bytes (not by extension).

zip and its kin (jar, war, apk, aab, ipa, whl, nupkg, docx/xlsx), tar (plain or compressed) and lone
gzip/bzip2/xz streams are looked inside: every member becomes its own chunks, reported as
``archive.zip!member/path`` (nested: ``a.zip!inner.jar!x.properties``) with lines counted inside the
member. Nothing is extracted to disk, no temporary file is written, member names are only labels,
and symlinks and other special members are never followed.

An archive that opens is scanned through its members only: its raw bytes would report a stored
member a second time at a meaningless offset. One that cannot be opened (corrupt, truncated, too
big) is a one-line warning, and a seekable one is then scanned as plain bytes instead.

Heavy modules (zipfile, tarfile, gzip, bz2, lzma) are imported only when an archive is met.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import IO, TYPE_CHECKING, Protocol, cast

from kascan.model import Chunk, scrub
from kascan.sources.stream import WINDOW, iter_stream
from kascan.stats import human_bytes

if TYPE_CHECKING:
    import bz2
    import gzip
    import lzma

Warn = Callable[[str], None]
Read = Callable[[int], bytes]


class Source(Protocol):
    """Anything with ``read(n)``: a file, a decompressor, a member, a capped view."""

    def read(self, n: int = -1, /) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds that make zip bombs, deep nesting and huge member lists finish quickly."""

    max_depth: int = 4  # container layers opened: a.zip!b.jar!c.zip is 3, x.tgz!y is 2
    max_member_bytes: int = 256 << 20  # decompressed bytes scanned per member
    max_archive_bytes: int = 1 << 30  # decompressed bytes per top-level file, nesting included
    max_members: int = 100_000  # members per top-level file, nesting included
    max_in_memory: int = 64 << 20  # a zip that is not a seekable file (nested, stdin) is buffered


DEFAULT_LIMITS = Limits()

_FIRST = frozenset(b"P\x1fB\xfd")
_SNIFF = 512  # bytes needed to rule every format out (tar's magic sits at 257)


def sniff(head: bytes) -> str | None:
    """The container format named by the first bytes, or None (cheap: called for every file)."""
    if head[:1] and head[0] in _FIRST:
        if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
            return "zip"
        if head.startswith(b"\x1f\x8b\x08"):
            return "gzip"
        if head.startswith(b"\xfd7zXZ\x00"):
            return "xz"
        if (
            head.startswith(b"BZh")
            and len(head) >= 10
            and head[3] in b"123456789"
            and head[4:10] in (b"1AY&SY", b"\x17rE8P\x90")
        ):
            return "bzip2"
    if head[257:262] == b"ustar":
        return "tar"
    return None


def undecided(head: bytes) -> bool:
    """True while a stream's first bytes could still turn out to be an archive."""
    if len(head) >= 262:
        return False
    for magic in (b"PK\x03\x04", b"\x1f\x8b\x08", b"\xfd7zXZ\x00", b"BZh"):
        n = min(len(head), len(magic))
        if head[:n] == magic[:n]:
            return True
    if head.startswith(b"BZh") and len(head) < 10:
        return True
    # a tar header holds a NUL-padded name and octal fields: text has a newline long before 257
    return b"\n" not in head


class _Budget:
    """Decompressed bytes and members left for one top-level file, nesting included."""

    __slots__ = ("bytes_left", "exhausted", "members_left")

    def __init__(self, limits: Limits) -> None:
        self.bytes_left = limits.max_archive_bytes
        self.members_left = limits.max_members
        self.exhausted = False


class _Reader:
    """A file-like view of a byte source: replays peeked bytes, caps what a member may yield."""

    def __init__(self, read: Read, head: bytes = b"", cap: int = -1, budget: _Budget | None = None):
        self._read = read
        self._head = head
        self._cap = cap  # -1: no cap
        self._budget = budget
        self.count = 0
        self.truncated = False

    def uncap(self) -> None:
        """The member turned out to be a container: its own members are capped instead."""
        self._cap = -1

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            parts = []
            while block := self.read(WINDOW):
                parts.append(block)
            return b"".join(parts)
        if self._head:
            block, self._head = self._head[:n], self._head[n:]
        else:
            block = self._read(n)
        if block and (self._cap >= 0 or self._budget is not None):
            allowed = len(block)
            if self._cap >= 0:
                allowed = min(allowed, self._cap - self.count)
            if self._budget is not None:
                allowed = min(allowed, self._budget.bytes_left)
                self._budget.bytes_left -= max(allowed, 0)
                if self._budget.bytes_left <= 0 and allowed < len(block):
                    self._budget.exhausted = True
            if allowed < len(block):
                self.truncated = True
                block = block[: max(allowed, 0)]
        self.count += len(block)
        return block

    read1 = read

    def close(self) -> None:
        pass


def _clean(name: str) -> str:
    """A member name as a label: no control characters, nothing key-shaped. An undecodable byte
    (a surrogate escape) is kept: reports write it losslessly (JSON ``path_bytes``)."""
    out = "".join(c if c.isprintable() or "\udc80" <= c <= "\udcff" else "?" for c in name)
    return scrub(out)


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return scrub(text.splitlines()[0] if text.strip() else type(exc).__name__)


def _errors() -> tuple[type[BaseException], ...]:
    import lzma
    import tarfile
    import zipfile
    import zlib

    return (
        OSError,
        EOFError,
        ValueError,  # includes UnicodeDecodeError of member names
        NotImplementedError,  # unsupported zip compression method
        RuntimeError,  # encrypted zip member
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        tarfile.TarError,
        zlib.error,
        lzma.LZMAError,
    )


def iter_content(
    read: Read,
    path: str,
    *,
    by_line: bool = False,
    limits: Limits | None = DEFAULT_LIMITS,
    warn: Warn,
    fd: int | None = None,
) -> Iterator[Chunk]:
    """Chunks of one file or stream, looking inside it when its first bytes are an archive magic.

    ``fd`` is the open descriptor of a regular file (seekable: a zip is read in place); without
    it the source is a stream (stdin, a pipe) and a zip in it is buffered, up to a limit.
    """
    if limits is None:
        yield from iter_stream(read, path, by_line=by_line)
        return
    if fd is not None:
        head = read(WINDOW)
    else:
        head = read(1 << 16)
        while head and undecided(head):
            more = read(1 << 16)
            if not more:
                break
            head += more
    kind = sniff(head)
    if kind is None:
        yield from iter_stream(read, path, by_line=by_line, initial=head)
        return
    budget = _Budget(limits)
    if fd is not None:
        with open(fd, "rb", closefd=False) as fh:
            fh.seek(0)
            yield from _container(kind, path, fh, True, 0, limits, budget, warn, by_line)
    else:
        src = _Reader(read, head)
        yield from _container(kind, path, src, False, 0, limits, budget, warn, by_line)


def expand(
    path: str,
    source: bytes | IO[bytes],
    limits: Limits = DEFAULT_LIMITS,
    warn: Warn | None = None,
    *,
    by_line: bool = False,
) -> Iterator[Chunk]:
    """Chunks of one blob (``bytes``) or readable file object, archives opened: for git blobs."""
    import io

    fh: IO[bytes] = io.BytesIO(source) if isinstance(source, bytes) else source
    budget = _Budget(limits)
    yield from _content(path, fh, fh.seekable(), 0, limits, budget, warn or _no_warn, by_line)


def _no_warn(_: str) -> None:
    pass


def _content(
    path: str,
    fh: Source,
    seekable: bool,
    depth: int,
    limits: Limits,
    budget: _Budget,
    warn: Warn,
    by_line: bool = False,
    decoded: str | None = None,
) -> Iterator[Chunk]:
    """A member's (or blob's) bytes: opened if they are an archive, else scanned as they are."""
    head = fh.read(_SNIFF)
    kind = sniff(head)
    if kind is not None and depth >= limits.max_depth:
        warn(f"{path}: {kind} nested more than {limits.max_depth} deep: not opened")
        kind = None
    if kind is None:
        read = _Reader(fh.read, head).read
        for chunk in iter_stream(read, path, by_line=by_line):
            yield replace(chunk, decoded=decoded) if decoded else chunk
        return
    if isinstance(fh, _Reader):
        fh.uncap()
    src: Source = fh
    if seekable:
        cast("IO[bytes]", fh).seek(0)
    else:
        src = _Reader(fh.read, head)
    yield from _container(kind, path, src, seekable, depth, limits, budget, warn, by_line)


def _container(
    kind: str,
    path: str,
    fh: Source,
    seekable: bool,
    depth: int,
    limits: Limits,
    budget: _Budget,
    warn: Warn,
    by_line: bool,
) -> Iterator[Chunk]:
    errors = _errors()
    opened = False
    try:
        if kind == "zip":
            gen = _zip_members(path, fh, seekable, depth, limits, budget, warn)
        elif kind == "tar":
            gen = _tar_members(path, fh, depth, limits, budget, warn)
        else:
            gen = _compressed(kind, path, fh, depth, limits, budget, warn, by_line)
        for chunk in gen:
            opened = True
            yield chunk
    except errors as exc:
        what = "zip archive" if kind == "zip" else f"{kind} archive" if kind == "tar" else kind
        if opened or not seekable:
            warn(f"cannot read {what} {path}: {_reason(exc)}; the rest is not scanned")
            return
        warn(f"cannot open {what} {path}: {_reason(exc)}; scanned as plain bytes")
        raw = cast("IO[bytes]", fh)
        raw.seek(0)
        yield from iter_stream(raw.read, path)


def _member(
    path: str,
    stream: Source,
    depth: int,
    limits: Limits,
    budget: _Budget,
    warn: Warn,
    decoded: str | None = None,
    by_line: bool = False,
) -> Iterator[Chunk]:
    """One member, capped; a warning when the cap cut it short."""
    capped = _Reader(stream.read, cap=limits.max_member_bytes, budget=budget)
    yield from _content(
        path,
        capped,
        False,
        depth + 1,
        limits,
        budget,
        warn,
        by_line,
        decoded,
    )
    if capped.truncated:
        if budget.exhausted:
            warn(
                f"{path}: stopped after {human_bytes(limits.max_archive_bytes)} decompressed "
                "in this file (limit; zip bomb?); the rest is not scanned"
            )
        else:
            warn(
                f"{path}: member stopped after {human_bytes(limits.max_member_bytes)} "
                "decompressed (limit); the rest is not scanned"
            )


def _compressed(
    kind: str,
    path: str,
    fh: Source,
    depth: int,
    limits: Limits,
    budget: _Budget,
    warn: Warn,
    by_line: bool,
) -> Iterator[Chunk]:
    stream: gzip.GzipFile | bz2.BZ2File | lzma.LZMAFile
    raw = cast("IO[bytes]", fh)  # only read() is used
    if kind == "gzip":
        import gzip

        stream = gzip.GzipFile(fileobj=raw, mode="rb")
    elif kind == "bzip2":
        import bz2

        stream = bz2.BZ2File(raw)
    else:
        import lzma

        stream = lzma.LZMAFile(raw)  # noqa: SIM115 - closed by the with below
    with stream:
        src: Source = stream
        if by_line:  # a live stream: hand on what has been decompressed so far
            src = _Reader(stream.read1)
        yield from _member(path, src, depth, limits, budget, warn, kind, by_line)


def _zip_members(
    path: str,
    src: Source,
    seekable: bool,
    depth: int,
    limits: Limits,
    budget: _Budget,
    warn: Warn,
) -> Iterator[Chunk]:
    import io
    import stat
    import zipfile

    if seekable:
        fh = cast("IO[bytes]", src)
    else:
        data = src.read(limits.max_in_memory + 1)
        if len(data) > limits.max_in_memory:
            warn(
                f"{path}: zip not in a seekable file and over "
                f"{human_bytes(limits.max_in_memory)}: not opened"
            )
            return
        fh = io.BytesIO(data)
    _check_directory(fh, limits)
    with zipfile.ZipFile(fh) as zf:
        encrypted = 0
        for info in zf.infolist():
            if info.is_dir():
                continue
            if stat.S_ISLNK(info.external_attr >> 16):  # never followed
                continue
            if budget.members_left <= 0:
                warn(f"{path}: over {limits.max_members} members (limit); the rest not scanned")
                break
            if budget.exhausted:
                break
            budget.members_left -= 1
            if info.flag_bits & 0x1:
                encrypted += 1
                continue
            name = f"{path}!{_clean(info.filename)}"
            try:
                with zf.open(info) as member:
                    yield from _member(name, member, depth, limits, budget, warn)
            except (zipfile.BadZipFile, NotImplementedError, EOFError, OSError) as exc:
                warn(f"cannot read {name}: {_reason(exc)}")
            except _decompress_errors() as exc:
                warn(f"cannot read {name}: {_reason(exc)}")
        if encrypted:
            warn(f"{path}: {encrypted} encrypted member(s) not scanned")


def _decompress_errors() -> tuple[type[BaseException], ...]:
    import lzma
    import zlib

    return (zlib.error, lzma.LZMAError, ValueError, RuntimeError)


def _check_directory(fh: IO[bytes], limits: Limits) -> None:
    """Refuse a central directory too big to parse in memory before zipfile builds it."""
    import struct
    import zipfile

    fh.seek(0, os.SEEK_END)
    size = fh.tell()
    tail_len = min(size, 65535 + 22)
    fh.seek(size - tail_len)
    tail = fh.read(tail_len)
    at = tail.rfind(b"PK\x05\x06")
    if at == -1 or at + 22 > len(tail):
        raise zipfile.BadZipFile("no end of central directory (truncated?)")
    entries, cd_size = struct.unpack("<10xHL6x", tail[at : at + 22])
    if entries == 0xFFFF or cd_size == 0xFFFFFFFF:  # zip64: the real counts are in its record
        loc = tail.rfind(b"PK\x06\x07", 0, at)
        if loc != -1 and loc + 20 <= len(tail):
            (offset,) = struct.unpack("<8xQ4x", tail[loc : loc + 20])
            fh.seek(offset)
            rec = fh.read(56)
            if rec[:4] == b"PK\x06\x06" and len(rec) == 56:
                entries, cd_size = struct.unpack("<32xQQ8x", rec)
    if entries > limits.max_members or cd_size > 256 * limits.max_members + (1 << 20):
        raise zipfile.LargeZipFile(
            f"{entries} members in the central directory (limit {limits.max_members})"
        )
    fh.seek(0)


def _tar_members(
    path: str,
    fh: Source,
    depth: int,
    limits: Limits,
    budget: _Budget,
    warn: Warn,
) -> Iterator[Chunk]:
    import tarfile

    with tarfile.open(fileobj=cast("IO[bytes]", fh), mode="r|") as tf:
        member: tarfile.TarInfo
        for member in tf:
            if not member.isreg():  # symlinks, hard links, devices: never followed
                continue
            if budget.members_left <= 0:
                warn(f"{path}: over {limits.max_members} members (limit); the rest not scanned")
                break
            if budget.exhausted:
                break
            budget.members_left -= 1
            stream = tf.extractfile(member)
            if stream is None:
                continue
            name = f"{path}!{_clean(member.name)}"
            yield from _member(name, stream, depth, limits, budget, warn)


def open_archives(chunks: Iterable[Chunk], limits: Limits, warn: Warn) -> Iterator[Chunk]:
    """Each chunk, or, for a whole blob (one chunk) that is an archive, its members' chunks: the
    archive layer for sources that yield whole objects, such as git history."""
    for chunk in chunks:
        if chunk.fresh == 0 and chunk.tail == 0 and sniff(chunk.data[:512]) is not None:
            for member in expand(chunk.path, chunk.data, limits, warn):
                yield replace(member, commit=chunk.commit, repo=chunk.repo)
        else:
            yield chunk
