"""Package formats read as streams: ``ar`` (a .deb, a static library ``.a``), ``cpio`` (newc,
the payload of an rpm) and ``rpm`` (a lead, two headers, then a compressed cpio payload).

Headers are parsed here, with every size checked before it is read; each member is handed to
:func:`kascan.sources.archives.member_chunks`, so a .deb's ``data.tar.xz`` or ``.zst`` and an
rpm's gzip/xz/zstd payload are opened in turn, with the usual limits."""

from __future__ import annotations

import stat
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from kascan.model import Chunk
from kascan.sources.archives import clean_name, member_chunks, members_warning

if TYPE_CHECKING:
    from kascan.sources.archives import Budget, Limits, Source

Warn = Callable[[str], None]
MAX_NAME = 4096  # bytes of one member name (a longer one is a corrupt or hostile archive)
MAX_RPM_HEADER = 64 << 20  # bytes of one rpm header (index and store)


class BadPackage(ValueError):
    """A header that is not what its format says."""


class Slice:
    """At most ``size`` bytes of a stream, then nothing; ``drain`` reads what is left."""

    def __init__(self, fh: Source, size: int) -> None:
        self._fh = fh
        self.left = size

    def read(self, n: int = -1, /) -> bytes:
        if self.left <= 0:
            return b""
        want = self.left if n is None or n < 0 else min(n, self.left)
        block = self._fh.read(want)
        self.left -= len(block)
        if not block:
            self.left = 0
        return block

    def drain(self) -> None:
        while self.left > 0 and self.read(1 << 16):
            pass


def _exact(fh: Source, n: int) -> bytes:
    parts, got = [], 0
    while got < n:
        block = fh.read(n - got)
        if not block:
            break
        parts.append(block)
        got += len(block)
    return b"".join(parts)


def package_members(
    kind: str, path: str, fh: Source, depth: int, limits: Limits, budget: Budget, warn: Warn
) -> Iterator[Chunk]:
    if kind == "ar":
        yield from _ar(path, fh, depth, limits, budget, warn)
    elif kind == "cpio":
        yield from _cpio(path, fh, depth, limits, budget, warn)
    else:
        yield from _rpm(path, fh, depth, limits, budget, warn)


def _member(
    name: bytes, path: str, fh: Source, size: int, depth: int, limits: Limits, budget: Budget,
    warn: Warn,
) -> Iterator[Chunk]:  # fmt: skip
    label = clean_name(name.decode("utf-8", "replace")) or "?"
    part = Slice(fh, size)
    yield from member_chunks(f"{path}!{label}", part, depth, limits, budget, warn)
    part.drain()


def _ar(
    path: str, fh: Source, depth: int, limits: Limits, budget: Budget, warn: Warn
) -> Iterator[Chunk]:
    if _exact(fh, 8) != b"!<arch>\n":
        raise BadPackage("not an ar archive")
    names = b""  # the GNU long-name table ("//")
    while True:
        head = _exact(fh, 60)
        if not head:
            return
        if len(head) < 60 or head[58:60] != b"`\n":
            raise BadPackage("an ar member header is cut short or corrupt")
        raw_name = head[:16].rstrip(b" ")
        size_field = head[48:58].strip()
        if not size_field.isdigit():
            raise BadPackage("an ar member size is not a number")
        size = int(size_field)
        if budget.members_left <= 0:
            warn(members_warning(path, limits))
            return
        budget.members_left -= 1
        if budget.exhausted:
            return
        if raw_name == b"//":
            if size > MAX_NAME * 256:
                raise BadPackage("an ar long-name table over 1 MiB")
            names = _exact(fh, size)
        elif raw_name in (b"/", b"/SYM64/"):  # the symbol table of a library
            Slice(fh, size).drain()
        else:
            name = raw_name
            if raw_name.startswith(b"#1/"):  # BSD: the name follows the header
                n = int(raw_name[3:]) if raw_name[3:].isdigit() else -1
                if not 0 <= n <= min(size, MAX_NAME):
                    raise BadPackage("an ar member name length is wrong")
                name, size = _exact(fh, n).rstrip(b"\0"), size - n
            elif raw_name[:1] == b"/" and raw_name[1:].isdigit():  # GNU: an offset in "//"
                at = int(raw_name[1:])
                end = names.find(b"/\n", at)
                name = names[at : end if end != -1 else at + MAX_NAME]
            elif raw_name.endswith(b"/"):
                name = raw_name[:-1]
            yield from _member(name, path, fh, size, depth, limits, budget, warn)
        if size % 2:
            fh.read(1)


def _cpio(
    path: str, fh: Source, depth: int, limits: Limits, budget: Budget, warn: Warn
) -> Iterator[Chunk]:
    """newc (``070701``) and crc (``070702``) cpio archives, as rpm and initramfs use."""
    while True:
        head = _exact(fh, 110)
        if not head:
            return
        if len(head) < 110 or head[:6] not in (b"070701", b"070702"):
            raise BadPackage("a cpio header is cut short or corrupt")
        try:
            fields = [int(head[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
        except ValueError:
            raise BadPackage("a cpio header field is not hex") from None
        mode, size, namesize = fields[1], fields[6], fields[11]
        if not 0 < namesize <= MAX_NAME:
            raise BadPackage("a cpio member name length is wrong")
        name = _exact(fh, namesize).rstrip(b"\0")
        _exact(fh, -(110 + namesize) % 4)
        if name == b"TRAILER!!!":
            return
        if budget.members_left <= 0:
            warn(members_warning(path, limits))
            return
        budget.members_left -= 1
        if budget.exhausted:
            return
        if stat.S_ISREG(mode):  # symlinks (their target is the data), devices: never followed
            name = name[2:] if name.startswith(b"./") else name.lstrip(b"/")
            yield from _member(name, path, fh, size, depth, limits, budget, warn)
        else:
            Slice(fh, size).drain()
        _exact(fh, -size % 4)


def _rpm_header(fh: Source, pad: bool) -> None:
    """Skip one rpm header structure (the signature one is padded to 8 bytes)."""
    intro = _exact(fh, 16)
    if len(intro) < 16 or intro[:3] != b"\x8e\xad\xe8":
        raise BadPackage("an rpm header is cut short or corrupt")
    nindex = int.from_bytes(intro[8:12], "big")
    hsize = int.from_bytes(intro[12:16], "big")
    size = 16 * nindex + hsize
    if size > MAX_RPM_HEADER:
        raise BadPackage(f"an rpm header of {size} bytes (limit {MAX_RPM_HEADER >> 20} MiB)")
    if pad:
        size += -size % 8
    Slice(fh, size).drain()


def _rpm(
    path: str, fh: Source, depth: int, limits: Limits, budget: Budget, warn: Warn
) -> Iterator[Chunk]:
    lead = _exact(fh, 96)
    if len(lead) < 96 or lead[:4] != b"\xed\xab\xee\xdb":
        raise BadPackage("not an rpm package")
    _rpm_header(fh, pad=True)  # the signature
    _rpm_header(fh, pad=False)  # the header: names, versions, scripts (not scanned)
    # the payload: a compressed cpio archive, opened by the archive layer; its members are
    # reported as members of the package itself
    from kascan.sources.archives import content_chunks

    yield from content_chunks(path, fh, False, depth, limits, budget, warn)
