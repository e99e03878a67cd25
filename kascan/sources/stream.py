"""Bytes from a reader, in overlapping windows: memory stays flat and a key straddling a window
edge is still found (the matcher reports a match only from the window where it starts fresh)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from kascan.model import Chunk

WINDOW = 1 << 20  # bytes per chunk
OVERLAP = 4096  # longest match that may straddle a window edge
CONTEXT = 256  # bytes kept before each window for boundary checks and look-behind


_PIECE = 1 << 16


def _continuations(data: bytes, start: int, end: int) -> bool:
    return all(0x80 <= b < 0xC0 for b in data[start:end])


def _columns(data: bytes) -> int:
    """Characters in ``data`` as ``len(data.decode("utf-8", "replace"))`` counts them, decoded in
    pieces cut before a non-continuation byte so that a long line costs no big temporary string."""
    if data.isascii():  # most windows, and all-NUL ones: no decoding of megabytes
        return len(data)
    n = len(data)
    if n <= _PIECE:
        return len(data.decode("utf-8", "replace"))
    total, start = 0, 0
    while start < n:
        end = min(start + _PIECE, n)
        # safe to cut before a byte that starts a character, or after three continuation bytes
        while end < n and 0x80 <= data[end] < 0xC0 and not _continuations(data, end - 3, end):
            end -= 1
        total += len(data[start:end].decode("utf-8", "replace"))
        start = end
    return total


def iter_stream(
    read: Callable[[int], bytes],
    path: str,
    *,
    window: int = WINDOW,
    by_line: bool = False,
    initial: bytes = b"",
) -> Iterator[Chunk]:
    """Chunks of everything ``read`` returns until it returns ``b""``.

    With ``by_line`` (streams such as a ``kubectl logs -f`` pipe) every complete line is scanned as
    soon as it arrives; otherwise a chunk is cut every ``window`` bytes. ``initial``: bytes
    already read (e.g. to sniff an archive magic) that come before what ``read`` returns.
    """
    ctx = b""  # already scanned bytes just before ``pending``
    pending = b""
    line, column = 1, 0  # of ctx[0]
    while True:
        if initial:
            block, initial = initial, b""
        else:
            block = read(window)
        if not block:
            if pending or not ctx:
                yield Chunk(path, ctx + pending, line, column, fresh=len(ctx))
            return
        pending += block
        if by_line:
            cut = pending.rfind(b"\n") + 1
            if cut == 0 and len(pending) < window:
                continue
            if cut == 0:
                cut = max(len(pending) - OVERLAP, 1)
        elif len(pending) < window:
            continue
        else:
            cut = len(pending) - OVERLAP
        data = ctx + pending
        yield Chunk(path, data, line, column, fresh=len(ctx), tail=len(pending) - cut)
        end = len(ctx) + cut  # scanned up to here
        start = max(end - CONTEXT, 0)  # the next ctx begins here
        nl = data.rfind(b"\n", 0, start)
        line += data.count(b"\n", 0, start)
        column = column + _columns(data[:start]) if nl == -1 else _columns(data[nl + 1 : start])
        ctx = data[start:end]
        pending = pending[cut:]
