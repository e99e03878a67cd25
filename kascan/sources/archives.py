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
from kascan.stats import LimitWarning, Skipped, human_bytes, not_opened, skipped

if TYPE_CHECKING:
    import bz2
    import gzip
    import lzma
    import tarfile

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
    max_tar_header: int = 1 << 20  # bytes of one pax or GNU long-name header, checked before read
    # -v: each member not opened (a link, encrypted, past a limit) is also a Skipped line
    verbose: bool = False


DEFAULT_LIMITS = Limits()

_FIRST = frozenset(b"P\x1fB\xfd")
_SNIFF = 512  # bytes needed to rule every format out (tar's magic sits at 257)
# the formats of kascan.sources.containers, by their magic bytes
_MAGICS: tuple[tuple[bytes, str], ...] = (
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x04\x22\x4d\x18", "lz4"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"!<arch>\n", "ar"),
    (b"\xed\xab\xee\xdb", "rpm"),
    (b"070701", "cpio"),
    (b"070702", "cpio"),
    (b"%PDF-", "pdf"),
    (b"SQLite format 3\x00", "sqlite"),
    (b"Cr24", "crx"),
)
_MORE_FIRST = frozenset(m[0] for m, _k in _MAGICS)
# the first byte of every format :func:`sniff` names but tar (whose magic sits at 257): a blob
# that starts with none of them and has no ``ustar`` at 257 is no archive (a one-byte test)
MAGIC_FIRST = _FIRST | _MORE_FIRST
TAR_MAGIC = (257, b"ustar")
# formats read from a seekable file, or from memory (buffered up to max_in_memory)
_SEEKING = frozenset({"zip", "7z", "pdf", "sqlite", "crx", "sfx"})
_WHAT = {"7z": "7z archive", "ar": "ar archive", "rpm": "rpm package", "cpio": "cpio archive",
         "pdf": "PDF", "sqlite": "SQLite database", "crx": "crx (zip) archive",
         "sfx": "self-extracting zip"}  # fmt: skip


def sniff(head: bytes) -> str | None:
    """The container format named by the first bytes, or None (cheap: called for every file)."""
    if head[:1] and head[0] in _MORE_FIRST:
        for magic, kind in _MAGICS:
            if head.startswith(magic):
                return kind
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
    if head[TAR_MAGIC[0] : TAR_MAGIC[0] + len(TAR_MAGIC[1])] == TAR_MAGIC[1]:
        return "tar"
    return None


_PROGRAMS = (b"MZ", b"\x7fELF")  # a self-extracting zip starts as a program
_OPENS_FIRST = _FIRST | _MORE_FIRST | frozenset(p[0] for p in _PROGRAMS)


def opens(head: bytes) -> bool:
    """Whether :func:`iter_content` looks inside a regular file that starts with ``head``
    (cheap: called for every file of a tree; most start with no magic's first byte)."""
    if head[:1] and head[0] in _OPENS_FIRST:
        return sniff(head) is not None or head.startswith(_PROGRAMS)
    return head[257:262] == b"ustar"


def undecided(head: bytes) -> bool:
    """True while a stream's first bytes could still turn out to be an archive."""
    if len(head) >= 262:
        return False
    magics = (b"PK\x03\x04", b"\x1f\x8b\x08", b"\xfd7zXZ\x00", b"BZh", *(m for m, _k in _MAGICS))
    for magic in magics:
        n = min(len(head), len(magic))
        if head[:n] == magic[:n]:
            return True
    if head.startswith(b"BZh") and len(head) < 10:
        return True
    # a tar header holds a NUL-padded name and octal fields: text has a newline long before 257
    return b"\n" not in head


class Budget:
    """Decompressed bytes and members left for one top-level file, nesting included; ``quiet``:
    chunks of its members without any needle may be left out (``iter_stream``)."""

    __slots__ = ("bytes_left", "exhausted", "members_left", "quiet")

    def __init__(self, limits: Limits, quiet: bool = False) -> None:
        self.bytes_left = limits.max_archive_bytes
        self.members_left = limits.max_members
        self.exhausted = False
        self.quiet = quiet


class Reader:
    """A file-like view of a byte source: replays peeked bytes, caps what a member may yield."""

    def __init__(self, read: Read, head: bytes = b"", cap: int = -1, budget: Budget | None = None):
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


def clean_name(name: str) -> str:
    """A member name as a label: no control characters, nothing key-shaped. An undecodable byte
    (a surrogate escape) is kept: reports write it losslessly (JSON ``path_bytes``)."""
    out = "".join(c if c.isprintable() or "\udc80" <= c <= "\udcff" else "?" for c in name)
    return scrub(out)


def reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return scrub(text.splitlines()[0] if text.strip() else type(exc).__name__)


def iter_content(
    read: Read,
    path: str,
    *,
    by_line: bool = False,
    limits: Limits | None = DEFAULT_LIMITS,
    warn: Warn,
    fd: int | None = None,
    quiet: bool = False,
    threads: int | None = None,
) -> Iterator[Chunk]:
    """Chunks of one file or stream, looking inside it when its first bytes are an archive magic.

    ``fd`` is the open descriptor of a regular file (seekable: a zip is read in place); without
    it the source is a stream (stdin, a pipe) and a zip in it is buffered, up to a limit.
    ``quiet``: chunks of a plain file without any needle may be left out, and ``threads`` read
    a big one (``iter_stream``).
    """
    if limits is None:
        yield from iter_stream(read, path, by_line=by_line, quiet=quiet, fd=fd, threads=threads)
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
    if kind is None and fd is not None and head.startswith(_PROGRAMS):
        kind = "sfx"  # a program: a self-extracting zip if a zip ends it (else plain bytes)
    if kind is None:
        yield from iter_stream(
            read, path, by_line=by_line, initial=head, quiet=quiet, fd=fd, threads=threads
        )
        return
    budget = Budget(limits, quiet)
    if fd is not None:
        with open(fd, "rb", closefd=False) as fh:
            fh.seek(0)
            yield from _container(kind, path, fh, True, 0, limits, budget, warn, by_line)
    else:
        src = Reader(read, head)
        yield from _container(kind, path, src, False, 0, limits, budget, warn, by_line)


def expand(
    path: str,
    source: bytes | IO[bytes],
    limits: Limits = DEFAULT_LIMITS,
    warn: Warn | None = None,
    *,
    by_line: bool = False,
    depth: int = 0,
) -> Iterator[Chunk]:
    """Chunks of one blob (``bytes``) or readable file object, archives opened: for git blobs,
    and for containers that a decoder found (``depth``: the layers already unwrapped)."""
    import io

    fh: IO[bytes] = io.BytesIO(source) if isinstance(source, bytes) else source
    budget = Budget(limits)
    yield from content_chunks(
        path, fh, fh.seekable(), depth, limits, budget, warn or _no_warn, by_line
    )


def _no_warn(_: str) -> None:
    pass


def content_chunks(
    path: str,
    fh: Source,
    seekable: bool,
    depth: int,
    limits: Limits,
    budget: Budget,
    warn: Warn,
    by_line: bool = False,
    decoded: str | None = None,
) -> Iterator[Chunk]:
    """A member's (or blob's) bytes: opened if they are an archive, else scanned as they are."""
    head = fh.read(_SNIFF)
    kind = sniff(head)
    if kind is None and seekable and head.startswith((b"MZ", b"\x7fELF")):
        kind = "sfx"  # a program: a self-extracting zip if a zip ends it (else plain bytes)
    if kind is not None and depth >= limits.max_depth:
        warn(
            LimitWarning(
                "archive-depth",
                f"{path}: {kind} nested more than {limits.max_depth} deep: not opened (limit)",
            )
        )
        if limits.verbose:
            why = f"{kind} nested more than {limits.max_depth} deep (archive-depth limit)"
            warn(not_opened(path, why + "; scanned as plain bytes"))
        kind = None
    if kind is None:
        read = Reader(fh.read, head).read
        for chunk in iter_stream(read, path, by_line=by_line, quiet=budget.quiet):
            yield replace(chunk, decoded=decoded) if decoded else chunk
        return
    if isinstance(fh, Reader):
        fh.uncap()
    src: Source = fh
    if seekable:
        cast("IO[bytes]", fh).seek(0)
    else:
        src = Reader(fh.read, head)
    yield from _container(kind, path, src, seekable, depth, limits, budget, warn, by_line)


def _container(
    kind: str,
    path: str,
    fh: Source,
    seekable: bool,
    depth: int,
    limits: Limits,
    budget: Budget,
    warn: Warn,
    by_line: bool,
) -> Iterator[Chunk]:
    """One archive's members; whatever its reader raises is one warning, never the run's end.

    The readers (zipfile, tarfile, gzip, bz2, lzma, zlib) raise far more than their documented
    errors on hostile input (``IndexError`` for an empty member name, ``OverflowError`` for an
    absurd zip64 offset, ``struct.error``, ``UnicodeDecodeError``...): every exception is
    contained here, per archive, and per member in the member loops, so the chunks already
    handed on stay handed on and the scan goes on with the next member or file."""
    what = "zip archive" if kind == "zip" else f"{kind} archive" if kind == "tar" else kind
    what = _WHAT.get(kind, what)
    if kind in _SEEKING and not seekable:  # buffered, so that one that fails is read as bytes
        parts: list[bytes] = []  # read() may return less (the replayed sniff): loop to the end
        size = 0
        while size <= limits.max_in_memory and (block := fh.read(limits.max_in_memory + 1 - size)):
            parts.append(block)
            size += len(block)
        data = b"".join(parts)
        if len(data) > limits.max_in_memory:
            warn(
                LimitWarning(
                    "zip-in-memory",
                    f"{path}: {what} not in a seekable file and over "
                    f"{human_bytes(limits.max_in_memory)} (limit): not opened",
                )
            )
            if limits.verbose:
                why = f"over {human_bytes(limits.max_in_memory)} (zip-in-memory limit)"
                warn(skipped(path, f"a {what} not in a seekable file and {why}"))
            return
        import io

        fh, seekable = io.BytesIO(data), True
    opened = False
    try:
        if kind == "zip":
            gen = zip_members(path, cast("IO[bytes]", fh), depth, limits, budget, warn)
        elif kind == "tar":
            gen = _tar_members(path, fh, depth, limits, budget, warn)
        elif kind in ("gzip", "bzip2", "xz", "zstd", "lz4"):
            gen = _compressed(kind, path, fh, depth, limits, budget, warn, by_line)
        else:
            from kascan.sources.containers import members

            gen = members(kind, path, fh, depth, limits, budget, warn)
        for chunk in gen:
            opened = True
            yield chunk
    except _TarLimit as exc:
        warn(LimitWarning(exc.limit, f"cannot read {what} {path}: {exc}; the rest is not scanned"))
        if limits.verbose:
            warn(Skipped(f"skipped the rest of {path}: {exc} ({exc.limit} limit)"))
    except Exception as exc:  # hostile input: any reader error is a warning
        if opened or not seekable:
            warn(f"cannot read {what} {path}: {reason(exc)}; the rest is not scanned")
            if limits.verbose:
                warn(Skipped(f"skipped the rest of {path}: cannot read the {what} ({reason(exc)})"))
            return
        warn(f"cannot open {what} {path}: {reason(exc)}; scanned as plain bytes")
        if limits.verbose:
            why = f"cannot open it as a {what} ({reason(exc)}); scanned as plain bytes"
            warn(not_opened(path, why))
        raw = cast("IO[bytes]", fh)
        try:
            raw.seek(0)
        except (OSError, ValueError) as again:  # a reader that closed what it was given
            warn(f"cannot read {what} {path} again: {reason(again)}; it is not scanned")
            return
        yield from iter_stream(raw.read, path)


def member_chunks(
    path: str,
    stream: Source,
    depth: int,
    limits: Limits,
    budget: Budget,
    warn: Warn,
    decoded: str | None = None,
    by_line: bool = False,
) -> Iterator[Chunk]:
    """One member, capped; a warning when the cap cut it short."""
    capped = Reader(stream.read, cap=limits.max_member_bytes, budget=budget)
    yield from content_chunks(
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
                LimitWarning(
                    "archive-bytes",
                    f"{path}: stopped after {human_bytes(limits.max_archive_bytes)} decompressed "
                    "in this file (limit; zip bomb?); the rest is not scanned",
                )
            )
            if limits.verbose:
                warn(over_bytes(path, limits.max_archive_bytes, "archive-bytes"))
        else:
            warn(
                LimitWarning(
                    "member-bytes",
                    f"{path}: member stopped after {human_bytes(limits.max_member_bytes)} "
                    "decompressed (limit); the rest is not scanned",
                )
            )
            if limits.verbose:
                warn(over_bytes(path, limits.max_member_bytes, "member-bytes"))


def over_bytes(path: str, cap: int, limit: str) -> Skipped:
    """``skipped the rest of PATH: over N decompressed (LIMIT limit)`` (a -v line)."""
    return Skipped(
        f"skipped the rest of {path}: over {human_bytes(cap)} decompressed ({limit} limit)"
    )


def rest_skipped(path: str, limits: Limits) -> Skipped:
    """The -v line of an archive whose members past the member limit are not read."""
    return Skipped(
        f"skipped the rest of {path}: over {limits.max_members} members (archive-members limit)"
    )


def _compressed(
    kind: str,
    path: str,
    fh: Source,
    depth: int,
    limits: Limits,
    budget: Budget,
    warn: Warn,
    by_line: bool,
) -> Iterator[Chunk]:
    stream: gzip.GzipFile | bz2.BZ2File | lzma.LZMAFile | IO[bytes]
    raw = cast("IO[bytes]", fh)  # only read() is used
    if kind in ("zstd", "lz4"):
        from kascan.sources.containers.streams import open_stream

        stream = open_stream(kind, raw)
    elif kind == "gzip":
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
            src = Reader(getattr(stream, "read1", stream.read))
        yield from member_chunks(path, src, depth, limits, budget, warn, kind, by_line)


def zip_members(
    path: str,
    fh: IO[bytes],
    depth: int,
    limits: Limits,
    budget: Budget,
    warn: Warn,
) -> Iterator[Chunk]:
    import stat
    import zipfile

    _check_directory(fh, limits)
    with zipfile.ZipFile(fh) as zf:
        encrypted = 0
        for info in zf.infolist():
            raw_name = info.filename
            if raw_name.endswith("/"):  # a directory (is_dir() fails on an empty name)
                continue
            if stat.S_ISLNK(info.external_attr >> 16):  # never followed
                if limits.verbose:
                    warn(skipped(f"{path}!{clean_name(raw_name) or '?'}", LINK_MEMBER))
                continue
            if budget.members_left <= 0:
                warn(members_warning(path, limits))
                if limits.verbose:
                    warn(rest_skipped(path, limits))
                break
            if budget.exhausted:
                if limits.verbose:
                    warn(over_bytes(path, limits.max_archive_bytes, "archive-bytes"))
                break
            budget.members_left -= 1
            name = f"{path}!{clean_name(raw_name) or '?'}"
            if info.flag_bits & 0x1:
                encrypted += 1
                if limits.verbose:
                    warn(skipped(name, "encrypted (no password is tried)"))
                continue
            try:
                if is_document_xml(raw_name) and info.file_size <= limits.max_in_memory:
                    from kascan.sources.containers.office import document_chunks

                    with zf.open(info) as member:
                        yield from document_chunks(name, member, depth, limits, budget, warn)
                    continue
                with zf.open(info) as member:
                    yield from member_chunks(name, member, depth, limits, budget, warn)
            except Exception as exc:  # one bad member never ends the archive
                warn(f"cannot read {name}: {reason(exc)}")
                if limits.verbose:
                    warn(skipped(name, f"cannot read it ({reason(exc)})"))
        if encrypted:
            warn(f"{path}: {encrypted} encrypted member(s) not scanned")


_DOCUMENT_XML = (
    "word/document.xml", "word/footnotes.xml", "word/endnotes.xml", "word/comments.xml",
    "xl/sharedStrings.xml", "content.xml", "styles.xml",
)  # fmt: skip
_DOCUMENT_DIRS = ("word/header", "word/footer", "ppt/slides/slide", "ppt/notesSlides/notesSlide")


LINK_MEMBER = "a symbolic link in the archive (never followed)"


def _link_kind(member: tarfile.TarInfo) -> str | None:
    """What a tar member that is not a regular file is, for -v (None: a directory, silent)."""
    if member.isdir():
        return None
    if member.issym():
        return LINK_MEMBER
    if member.islnk():
        return "a hard link in the archive (never followed)"
    if member.ischr() or member.isblk():
        return "a device in the archive (never read)"
    if member.isfifo():
        return "a FIFO in the archive (never read)"
    return "not a regular file in the archive (never read)"


def is_document_xml(name: str) -> bool:
    """An OOXML (docx, xlsx, pptx) or ODF (odt, ods, odp) part that holds a document's text."""
    return name in _DOCUMENT_XML or (name.startswith(_DOCUMENT_DIRS) and name.endswith(".xml"))


def members_warning(path: str, limits: Limits) -> LimitWarning:
    return LimitWarning(
        "archive-members",
        f"{path}: over {limits.max_members} members (limit); the rest not scanned",
    )


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
            rec = b""
            if offset <= size - 56:  # an absurd offset (OverflowError in seek) is no record
                fh.seek(offset)
                rec = fh.read(56)
            if rec[:4] == b"PK\x06\x06" and len(rec) == 56:
                entries, cd_size = struct.unpack("<32xQQ8x", rec)
    # what the file can hold: a directory within it, 46 bytes or more per entry (a count or size
    # left at its zip64 sentinel, with no readable zip64 record, is no claim)
    cd_size = min(cd_size, size)
    entries = min(entries, cd_size // 46)
    if entries > limits.max_members or cd_size > 256 * limits.max_members + (1 << 20):
        raise zipfile.LargeZipFile(
            f"{entries} members ({human_bytes(cd_size)}) in the central directory "
            f"(limit {limits.max_members} members)"
        )
    fh.seek(0)


def _tar_members(
    path: str,
    fh: Source,
    depth: int,
    limits: Limits,
    budget: Budget,
    warn: Warn,
) -> Iterator[Chunk]:
    import tarfile

    info = _tarinfo(limits.max_tar_header)
    with tarfile.open(fileobj=cast("IO[bytes]", fh), mode="r|", tarinfo=info) as tf:
        member: tarfile.TarInfo
        for member in tf:
            if budget.members_left <= 0:  # every entry counts: tarfile keeps each one in a list
                warn(members_warning(path, limits))
                if limits.verbose:
                    warn(rest_skipped(path, limits))
                break
            budget.members_left -= 1
            if not member.isreg():  # symlinks, hard links, devices: never followed
                kind = _link_kind(member) if limits.verbose else None
                if kind is not None:
                    warn(skipped(f"{path}!{clean_name(member.name) or '?'}", kind))
                continue
            if budget.exhausted:
                if limits.verbose:
                    warn(over_bytes(path, limits.max_archive_bytes, "archive-bytes"))
                break
            name = f"{path}!{clean_name(member.name) or '?'}"
            try:
                stream = tf.extractfile(member)
                if stream is None:
                    continue
                yield from member_chunks(name, stream, depth, limits, budget, warn)
            except Exception as exc:  # a tar is one stream: what follows is lost with it
                warn(
                    f"cannot read tar archive {path}: {reason(exc)} (in {name}); "
                    "the rest is not scanned"
                )
                if limits.verbose:
                    why = f"cannot read the tar archive ({reason(exc)}, in {name})"
                    warn(Skipped(f"skipped the rest of {path}: {why}"))
                return


# --------------------------------------------------------------------------- tar headers
#
# tarfile reads a pax or GNU long-name header whole into memory, whatever size it claims, and on
# Python versions before the fix of CVE-2024-6232 parses pax records with regexes that take
# quadratic time (a 461-byte .tar.gz held tarfile for a minute). So before tarfile reads one:
# its size is capped; and its records are parsed here, in linear time, and tarfile is handed
# only what kascan needs (``size``, which places the next header; ``path`` is applied as the
# member's label afterwards): every Python version then does the same, linear work.

_LONG_HEADERS = {
    b"x": "pax",
    b"g": "pax global",
    b"X": "pax",
    b"L": "GNU long-name",
    b"K": "GNU long-link",
}
_PAX_RECORDS = 4096  # records in one pax header (real ones hold a handful)
_TARINFO: dict[int, type[tarfile.TarInfo]] = {}


class _TarLimit(Exception):
    """A tar header over a limit: the archive is not read further (a LimitWarning)."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit


class _BadPax(ValueError):
    """A pax header that is not a sequence of ``"%d %s=%s\n"`` records."""


def _tarinfo(cap: int) -> type[tarfile.TarInfo]:
    """A TarInfo class that checks long headers before tarfile reads them (one per cap)."""
    got = _TARINFO.get(cap)
    if got is not None:
        return got
    import tarfile

    class _CheckedTarInfo(tarfile.TarInfo):
        def _proc_member(self, tf: tarfile.TarFile) -> tarfile.TarInfo:
            what = _LONG_HEADERS.get(self.type)
            if what is not None and self.size > cap:
                raise _TarLimit(
                    "tar-header",
                    f"a {what} header of {human_bytes(self.size)} (limit {human_bytes(cap)})",
                )
            member: tarfile.TarInfo = super()._proc_member(tf)  # type: ignore[misc]
            return member

        def _proc_pax(self, tf: tarfile.TarFile) -> tarfile.TarInfo:
            return _proc_pax(self, tf, super()._proc_pax)  # type: ignore[misc]

    _TARINFO[cap] = _CheckedTarInfo
    return _CheckedTarInfo


def _proc_pax(
    info: tarfile.TarInfo, tf: tarfile.TarFile, parse: Callable[[tarfile.TarFile], tarfile.TarInfo]
) -> tarfile.TarInfo:
    """tarfile's pax step, fed a rebuilt header: its first read (the header's data, in every
    version) is answered with the ``size`` record alone; the ``path`` record becomes the name of
    the member that tarfile returns."""
    stream = cast("object", tf.fileobj)
    want = -(-info.size // 512) * 512
    real_read = stream.read  # type: ignore[attr-defined]
    found: dict[bytes, bytes] = {}

    def first_read(n: int = -1) -> bytes:
        vars(stream).pop("read", None)  # later reads go straight to the stream
        buf: bytes = real_read(n)
        return _rebuilt_pax(buf, info.size, found) if n == want else buf

    try:
        vars(stream)["read"] = first_read
    except TypeError:  # pragma: no cover - a stream without a __dict__: tarfile's own parse
        return parse(tf)
    try:
        member = parse(tf)
    finally:
        vars(stream).pop("read", None)
    if b"path" in found and info.type in (b"x", b"X"):
        member.name = found[b"path"].decode("utf-8", "surrogateescape")
    return member


def _rebuilt_pax(buf: bytes, size: int, found: dict[bytes, bytes]) -> bytes:
    """Parse the records of a pax header in one pass; keep ``path`` in ``found`` and return a
    header of the same length that holds only the ``size`` record."""
    pos, records = 0, 0
    while pos < size:
        space = buf.find(b" ", pos, min(pos + 21, size))
        digits = buf[pos:space] if space > pos else b""
        if not digits.isdigit() or not digits.isascii():
            if not buf[pos:size].strip(b"\0"):  # NUL padding
                break
            raise _BadPax("invalid pax header (not a length and a space)")
        end = pos + int(digits)
        if end > size or end < space + 3 or buf[end - 1] != 0x0A:
            raise _BadPax("invalid pax header (a record's length is wrong)")
        eq = buf.find(b"=", space + 1, end - 1)
        if eq <= space + 1:
            raise _BadPax("invalid pax header (a record has no keyword)")
        records += 1
        if records > _PAX_RECORDS:
            raise _TarLimit("tar-header", f"over {_PAX_RECORDS} records in a pax header (limit)")
        key = buf[space + 1 : eq]
        if key in (b"path", b"size"):
            found[key] = buf[eq + 1 : end - 1]
        pos = end
    out = b""
    if b"size" in found:
        value = found[b"size"]
        if not (value.isdigit() and value.isascii() and len(value) <= 20):
            raise _BadPax("invalid pax header (size is not a number)")
        body = b" size=" + value + b"\n"
        n = len(body) + 1
        while len(str(n)) + len(body) != n:
            n += 1
        out = str(n).encode() + body
    return out + b"\0" * max(len(buf) - len(out), 0)


def open_archives(chunks: Iterable[Chunk], limits: Limits, warn: Warn) -> Iterator[Chunk]:
    """Each chunk, or, for a whole blob (one chunk) that is an archive, its members' chunks: the
    archive layer for sources that yield whole objects, such as git history."""
    for chunk in chunks:
        if chunk.whole and sniff(chunk.data[:512]) is not None:
            said = warn
            if limits.verbose and not chunk.path and chunk.origin:  # a blob read in pack order
                said = _naming(warn, f"blob {chunk.origin[:12]}")
            for member in expand(chunk.path, chunk.data, limits, said):
                yield replace(member, commit=chunk.commit, repo=chunk.repo, origin=chunk.origin)
        else:
            yield chunk


_VERBS = ("skipped the rest of ", "not opened ", "skipped ")


def _naming(warn: Warn, label: str) -> Warn:
    """``warn``, with -v lines about a nameless object (a blob read before its path is known)
    naming it ``label``; warnings go on as they are (they are counted by their text)."""

    def said(message: str) -> None:
        if isinstance(message, Skipped):
            for verb in _VERBS:
                rest = message[len(verb) :]
                if message.startswith(verb) and rest[:1] in ("!", ":"):
                    message = Skipped(verb + label + rest)
                    break
        warn(message)

    return said
