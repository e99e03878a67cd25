"""Zips behind other bytes: a Chrome extension (``Cr24`` and its signed header), and
self-extracting archives (a Windows or Linux program with a zip appended).

The zip is found from its end (the end of central directory record), as unzip does; the bytes
before it (the program, the crx header) are scanned as they are, then the zip's members. A
program that ends in no zip is scanned as plain bytes, without a warning."""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, cast

from kascan.model import Chunk
from kascan.sources.archives import zip_members
from kascan.sources.stream import iter_stream

if TYPE_CHECKING:
    from kascan.sources.archives import Budget, Limits, Source

Warn = Callable[[str], None]


def zip_start(fh: IO[bytes]) -> int | None:
    """Where the zip that ends ``fh`` starts, or None when no zip ends it."""
    fh.seek(0, os.SEEK_END)
    size = fh.tell()
    tail_len = min(size, 65535 + 22)
    fh.seek(size - tail_len)
    tail = fh.read(tail_len)
    at = tail.rfind(b"PK\x05\x06")
    if at == -1 or at + 22 > len(tail):
        return None
    cd_size: int
    cd_offset: int
    cd_size, cd_offset = struct.unpack("<12xLL2x", tail[at : at + 22])
    start = size - tail_len + at - cd_size - cd_offset
    if cd_offset == 0xFFFFFFFF or not 0 <= start < size:
        return None
    return start


def sfx_members(
    path: str, fh: Source, depth: int, limits: Limits, budget: Budget, warn: Warn
) -> Iterator[Chunk]:
    raw = cast("IO[bytes]", fh)  # seekable (buffered by the archive layer when nested)
    start = zip_start(raw)
    raw.seek(0)
    if start is None:
        yield from iter_stream(raw.read, path)
        return
    left = [start]

    def head(n: int) -> bytes:
        n = min(n, left[0])
        left[0] -= n
        return raw.read(n) if n > 0 else b""

    yield from iter_stream(head, path)
    raw.seek(0)
    yield from zip_members(path, raw, depth, limits, budget, warn)
