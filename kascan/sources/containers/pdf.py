"""PDF: the file's own bytes (uncompressed content, metadata, form fields), then every stream
whose filter is ``FlateDecode`` inflated (page content, object streams, embedded files).

Streams are found by their ``stream`` keyword after a dictionary that names the filter; each
is inflated from there until zlib says it ends (a wrong ``/Length`` does not matter), capped
per stream and per file like any member, and reported as ``file.pdf!obj12`` (its object number).
Text is scanned as the page content holds it (``(ka_live_…) Tj``); a key that a ``TJ`` array
splits into pieces, and other filters (ASCII85, LZW), are not decoded."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, cast

from kascan.model import Chunk
from kascan.sources.archives import member_chunks, members_warning
from kascan.sources.stream import iter_stream

if TYPE_CHECKING:
    from kascan.sources.archives import Budget, Limits, Source

Warn = Callable[[str], None]
_STREAM = re.compile(rb"stream\r?\n")
_OBJ = re.compile(rb"(\d{1,10})\s+\d{1,5}\s+obj\b")
_DICT_LOOKBACK = 4096  # bytes before ``stream`` searched for its object header and filter


def pdf_members(
    path: str, fh: Source, depth: int, limits: Limits, budget: Budget, warn: Warn
) -> Iterator[Chunk]:
    raw = cast("IO[bytes]", fh)
    data = raw.read(limits.max_in_memory + 1)
    yield from iter_stream(io.BytesIO(data).read, path)
    if len(data) > limits.max_in_memory:
        warn(f"{path}: PDF over {limits.max_in_memory >> 20} MiB: its streams are not inflated")
        return
    for m in _STREAM.finditer(data):
        s = m.start()
        if s > 0 and data[s - 1 : s] not in b" \t\r\n>":  # "endstream" ends one
            continue
        head = data[max(s - _DICT_LOOKBACK, 0) : s]
        objs = list(_OBJ.finditer(head))
        if not objs:
            continue
        obj = objs[-1]  # the object this stream belongs to: the last header before it
        what = head[obj.end() :]
        if b"/FlateDecode" not in what and b"/Fl " not in what and b"/Fl]" not in what:
            continue
        if budget.members_left <= 0:
            warn(members_warning(path, limits))
            return
        budget.members_left -= 1
        if budget.exhausted:
            return
        name = f"{path}!obj{int(obj.group(1))}"
        yield from member_chunks(name, _Inflate(data, m.end()), depth, limits, budget, warn)


class _Inflate:
    """The inflated bytes of a zlib stream starting at ``data[start]``, read in pieces."""

    def __init__(self, data: bytes, start: int) -> None:
        import zlib

        self._z = zlib.decompressobj()
        self._data = data
        self._pos = start
        self._pending = b""

    def read(self, n: int = -1, /) -> bytes:
        import zlib

        n = 1 << 20 if n is None or n < 0 else n
        out = self._pending
        while len(out) < n and not self._z.eof:
            if self._z.unconsumed_tail:
                chunk = self._z.unconsumed_tail
            else:
                chunk = self._data[self._pos : self._pos + (1 << 16)]
                self._pos += len(chunk)
                if not chunk:
                    break
            try:
                out += self._z.decompress(chunk, n - len(out))
            except zlib.error:
                break  # a corrupt or truncated stream: what was inflated is scanned
        out, self._pending = out[:n], out[n:]
        return out
