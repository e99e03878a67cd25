"""Bytes from a reader, in overlapping windows: memory stays flat and a key straddling a window
edge is still found (the matcher reports a match only from the window where it starts fresh).

Past its first window, a stream is read into one preallocated buffer that is reused from window
to window (the overlap moved to its front), so a window costs one read and one pass of
:mod:`kascan.engine`. With ``quiet`` (every rule is the built-in one, confirmed around the
engine's hits: see :func:`kascan.match.fast_prefix`), a window in which the engine finds no
needle at all is left out: neither the matcher nor any decoder could find anything in it. Its
bytes are then never copied out, and its newlines are counted only when a later window is
handed on, so a file without a key costs no newline counting. In a regular file (``fd``) those
newlines are counted by reading the ranges that hold them again (``pread``); the ranges are
known as the windows go by (one reverse ``memchr`` per window finds a window's last newline), so
a long run without newlines is never read twice. Holes of a sparse file (``SEEK_DATA``) read as
NUL bytes without being read: no needle ends in a NUL byte (:data:`kascan.engine.NUL_FREE_END`),
so only the overlap carried into such a window is scanned.

Whichever way they are read, the windows are the same bytes at the same offsets, with the same
line and column, as a plain read-and-copy loop gives (``tests/test_engine.py`` checks it at
window edges).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING

from kascan.model import Chunk

if TYPE_CHECKING:
    import threading

WINDOW = 1 << 20  # bytes per chunk
OVERLAP = 4096  # longest match that may straddle a window edge
CONTEXT = 256  # bytes kept before each window for boundary checks and look-behind


_PIECE = 1 << 16
_RECOUNT = 1 << 20  # bytes per read when newlines are counted again
_GAP = 1 << 16  # ranges with newlines closer than this are counted again as one
_RANGES = 256  # ranges kept; past this many they are counted there and then
_HELD = 8 << 20  # bytes of a stream kept to count their characters later (no ``fd`` to reread)
_HOLD_FROM = 1 << 16  # spans at least this long are kept rather than decoded there and then
_POSITIONAL = hasattr(os, "preadv") and hasattr(os, "pread")


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
    quiet: bool = False,
    fd: int | None = None,
    threads: int | None = None,
) -> Iterator[Chunk]:
    """Chunks of everything ``read`` returns until it returns ``b""``.

    With ``by_line`` (streams such as a ``kubectl logs -f`` pipe) every complete line is scanned as
    soon as it arrives; otherwise a chunk is cut every ``window`` bytes. ``initial``: bytes
    already read (e.g. to sniff an archive magic) that come before what ``read`` returns.
    ``quiet``: a chunk without any needle of :mod:`kascan.engine` may be left out. ``fd``: the
    regular file that ``read`` reads, positioned where ``read`` would go on: past the first
    window it is read directly (``preadv``), its holes skipped, and a big one with ``quiet`` by
    up to ``threads`` threads (:func:`_split`; None: one per core).
    """
    if by_line:
        yield from _by_line(read, path, window, initial)
        return
    if not _POSITIONAL:  # (Windows: no preadv, no pread) read it as a stream
        fd = None
    need = max(window, OVERLAP + 1)  # pending bytes that make a window (tests use tiny windows)
    pending = initial or read(window)
    if not pending:
        if not quiet:
            yield Chunk(path, b"")
        return
    while len(pending) < need:  # most files end within their first window: one chunk, no copy
        block = read(window)
        if not block:
            if not quiet or has_needle(pending):
                yield Chunk(path, pending)
            return
        pending += block
    if quiet and fd is not None and need == window:
        yield from _split(read, path, window, pending, fd, threads)
    else:
        yield from _windows(read, path, window, need, pending, quiet, fd)


_HITS: list[Callable[[bytes], object]] = []


def has_needle(data: bytes) -> bool:
    """Whether :mod:`kascan.engine` finds any needle in ``data`` (remembered for the chunk)."""
    if not _HITS:  # imported once, not per file (an import in a function costs ~1 µs)
        from kascan.engine import hits

        _HITS.append(hits)
    return bool(_HITS[0](data))  # remembered: the matcher and the decoders ask for it next


def _recount(fd: int, ranges: list[list[int]]) -> int:
    """Newlines in the byte ranges ``[a, b)`` of the file ``fd``, read again."""
    n = 0
    for a, b in ranges:
        while a < b:
            piece = os.pread(fd, min(b - a, _RECOUNT), a)
            if not piece:  # the file shrank meanwhile: what is there is counted
                break
            n += piece.count(b"\n")
            a += len(piece)
    ranges.clear()
    return n


def _recolumn(fd: int, spans: list[list[int]]) -> int:
    """Characters in runs of ``[start, length, count]`` consecutive spans of the file ``fd``
    (each span counted on its own, as it was cut), read again."""
    n = 0
    for at, length, count in spans:
        for _ in range(count):
            n += _columns(os.pread(fd, length, at))
            at += length
    spans.clear()
    return n


def _end(run: list[int]) -> int:
    at, length, count = run
    return at + length * count


class _Holes:
    """Where a regular file's holes are (``SEEK_DATA``): ``zeros(at, n)`` tells whether the ``n``
    bytes at ``at`` all lie in one hole, with one ``lseek`` per data or hole region."""

    __slots__ = ("data_until", "fd", "hole_until", "works")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.hole_until = 0  # [checked offset, hole_until) is a hole
        self.data_until = 0  # [checked offset, data_until) holds data
        self.works = hasattr(os, "SEEK_DATA")

    def zeros(self, at: int, n: int) -> bool:
        if at + n <= self.hole_until:
            return True
        if at < self.data_until or not self.works:
            return False
        try:
            data = os.lseek(self.fd, at, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # a file system that cannot tell: read everything
                self.works = False
                return False
            data = os.fstat(self.fd).st_size  # no data from ``at`` on: a hole up to the end
        if data >= at + n:
            self.hole_until = data
            return True
        try:
            self.data_until = os.lseek(self.fd, data, os.SEEK_HOLE)
        except OSError:
            self.works = False
        return False


def _span_columns(buf: bytearray, view: memoryview, a: int, b: int, zeros: int) -> int:
    """``_columns(buf[a:b])``, where ``buf[zeros:]`` is known to be NUL bytes (ASCII), without
    copying out an ASCII span."""
    if b <= a:
        return 0
    z = min(b, zeros)
    if z <= a or (buf[a:z].isascii() if z - a <= _PIECE else buf.isascii()):
        return b - a  # (the whole buffer ASCII: so is the span)
    return _columns(bytes(view[a:b]))


SPLIT_FROM = 16 << 20  # bytes a part of a split file holds at least


def _parts(cap: int | None = None) -> int:
    """Threads that read a big regular file's parts side by side: one per core, at most four and
    at most ``cap`` (``--jobs``), when the engine is Hyperscan (its scans and the reads release
    the GIL; the fallback's ``bytes.find`` does not). ``KASCAN_FILE_THREADS`` sets it (1: one
    thread, as before)."""
    wanted = os.environ.get("KASCAN_FILE_THREADS", "")
    if wanted.isdigit() and 1 <= int(wanted) <= 16:
        return int(wanted)
    if cap is not None and cap <= 1:
        return 1
    from kascan.engine import engine_name

    if engine_name() != "hyperscan":
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 4, cap or 4))


class _Tally:
    """What a part of a split file counted up to its end, relative to where it began (line 1,
    column 0): the line and column there, and the ranges and spans still to count again. Each
    is counted again only when a later part hands on a chunk that needs it: its lines always,
    its characters only for a chunk on the line that runs on into that part."""

    __slots__ = ("column", "line", "ranges", "spans")

    def __init__(
        self, line: int, column: int, ranges: list[list[int]], spans: list[list[int]]
    ) -> None:
        self.line, self.column, self.ranges, self.spans = line, column, ranges, spans

    def newlines(self, fd: int) -> int:
        if self.ranges:
            self.line += _recount(fd, self.ranges)
        return self.line - 1

    def characters(self, fd: int) -> int:
        """Characters after the part's last newline (or in all of it)."""
        if self.spans:
            self.column += _recolumn(fd, self.spans)
        return self.column


class _Place:
    """Where the next part of a split file begins: its line, and the parts whose characters
    after their last newline add up to its column (counted only when asked)."""

    __slots__ = ("columns", "fd", "line")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.line = 1
        self.columns: list[_Tally] = []

    def add(self, part: _Tally) -> None:
        """Move past ``part``."""
        n = part.newlines(self.fd)
        self.line += n
        if n:
            self.columns = [part]
        else:
            self.columns.append(part)

    def moved(self, chunk: Chunk) -> Chunk:
        """A chunk of the next part (its line and column counted from the part's start) with
        its place in the file."""
        from dataclasses import replace

        if chunk.line > 1:
            return replace(chunk, line=self.line + chunk.line - 1)
        column = sum(part.characters(self.fd) for part in self.columns)
        return replace(chunk, line=self.line, column=column + chunk.column)


def _no_read(_n: int) -> bytes:  # pragma: no cover - a part reads its file in place
    return b""


def _split(
    read: Callable[[int], bytes],
    path: str,
    window: int,
    first: bytes,
    fd: int,
    threads: int | None = None,
) -> Iterator[Chunk]:
    """A big regular file's quiet windows (:func:`_windows`), its parts read by threads side by
    side: the caller's thread reads the first part and hands on its chunks as they come; each
    other part is read by a thread of its own, its chunks queued as their places in the file
    and read again when they are handed on, after the parts before it, with their lines and
    columns moved by theirs (counted again only then). The same chunks, in the same order, with
    the same lines and columns as one thread.

    After the first window every chunk starts ``window`` bytes after the one before it (one read
    a chunk, holes included), so the parts begin at chunk starts computed in advance; a part is
    handed the bytes the chunk before it carries on (read again: ``CONTEXT + OVERLAP``)."""
    have = len(first)
    try:
        size = os.fstat(fd).st_size
        offset = os.lseek(fd, 0, os.SEEK_CUR)
    except OSError:
        size = offset = -1
    windows = (size - have) // window  # full windows after the first one
    room = windows * window // SPLIT_FROM if offset == have else 0  # parts the file has room for
    parts = min(_parts(threads), room) if room >= 2 else 1  # (most files: no engine question)
    if parts < 2 or windows < 2 * parts:
        yield from _windows(read, path, window, window, first, True, fd)
        return
    import queue
    import threading
    from dataclasses import replace

    # chunk k (k >= 1) starts at have - OVERLAP - CONTEXT + (k - 1) * window (k >= 2: the first
    # chunk's context may be shorter than CONTEXT); part j begins at chunk 1 + j * windows // parts
    starts = [have - OVERLAP - CONTEXT + (j * windows // parts) * window for j in range(1, parts)]
    cancel = threading.Event()
    # a part's chunks wait as places (their bytes dropped, read again when handed on), so a part
    # never waits for the parts before it and memory stays flat however many chunks wait
    queues: list[queue.SimpleQueue[tuple[str, object]]] = [queue.SimpleQueue() for _ in starts]

    def part(j: int) -> None:
        q = queues[j]

        def put(kind: str, item: object) -> bool:
            if cancel.is_set():
                return False
            q.put((kind, item))
            return True

        try:
            at = starts[j]
            stop = starts[j + 1] if j + 1 < len(starts) else None
            carried = os.pread(fd, CONTEXT + OVERLAP, at)
            if len(carried) < CONTEXT + OVERLAP:  # the file shrank while it was read
                put("end", None)
                return
            places: list[tuple[int, int]] = []
            chunks = _windows(
                _no_read,
                path,
                window,
                window,
                carried,
                True,
                fd,
                at=at,
                stop=stop,
                cancel=cancel,
                places=places,
            )
            while True:
                try:
                    chunk = next(chunks)
                except StopIteration as done:
                    put("end", done.value)
                    return
                if not put("chunk", (*places[-1], chunk)):
                    chunks.close()
                    return
        except BaseException as exc:  # raised in the caller's thread, in its place
            put("error", exc)

    from kascan.engine import engine_name

    engine_name()  # chosen once, before the threads ask
    readers: list[threading.Thread] = []  # the threads started: cancelled and joined below
    try:
        try:
            for j in range(len(starts)):
                thread = threading.Thread(target=part, args=(j,), name=f"kascan-part-{j + 1}")
                thread.daemon = True
                thread.start()
                readers.append(thread)
        except RuntimeError:  # no thread to be had (a process limit): one thread reads it all
            cancel.set()
            for thread in readers:
                thread.join()
            yield from _windows(read, path, window, window, first, True, fd, offset=have)
            return
        tally = yield from _windows(
            read, path, window, window, first, True, fd, stop=starts[0], offset=have
        )
        place = _Place(fd)  # where the parts in ``behind`` begin
        behind = [tally]  # parts not yet added to the place
        for q in queues:
            if behind and behind[-1] is None:
                return  # a part before this one ended the file (it shrank while read)
            while True:
                kind, item = q.get()
                if kind == "error":
                    assert isinstance(item, BaseException)
                    raise item
                if kind == "end":
                    assert item is None or isinstance(item, _Tally)
                    behind.append(item)
                    break
                for done in behind:
                    assert done is not None
                    place.add(done)
                behind.clear()
                assert isinstance(item, tuple)
                at, size, chunk = item
                data = os.pread(fd, size, at)  # the same bytes (holes read as NUL bytes)
                if len(data) < size:  # the file shrank since: its last chunk, as one thread's
                    yield place.moved(replace(chunk, data=data, tail=0))
                    return
                yield place.moved(replace(chunk, data=data))
    finally:
        cancel.set()  # a scan abandoned half-way: the threads stop within a window
        for thread in readers:
            thread.join()


def _windows(
    read: Callable[[int], bytes],
    path: str,
    window: int,
    need: int,
    first: bytes,
    quiet: bool,
    fd: int | None,
    *,
    at: int | None = None,
    stop: int | None = None,
    cancel: threading.Event | None = None,
    places: list[tuple[int, int]] | None = None,
    offset: int | None = None,
) -> Generator[Chunk, None, _Tally | None]:
    """The chunks from a first window of ``first`` (at least ``need`` bytes) on.

    A part of a file split for threads (:func:`_parts`): ``at``, the file offset of a chunk's
    start, where ``first`` holds the bytes that the chunk before it hands on (``CONTEXT +
    OVERLAP``), and the next window is read from there on; ``stop``, the offset of a later
    chunk's start: the windows end before it, and what they counted up to it is returned (the
    line and column relative to where they began, 1 and 0, and what is still to count again);
    ``places``: where each chunk handed on starts in the file and how long it is, appended
    before it is handed on without its bytes (read again by whoever takes it on). ``offset``:
    where the next read goes (else the descriptor's position, which the threads of a split
    file move).

    ``buf[:have]`` is the next chunk's data: ``fresh`` bytes already scanned (the context kept
    before it), then the pending ones; ``buf[zeros:have]`` are NUL bytes of a hole (not read,
    not scanned). It starts at file offset ``base``, on ``line`` at ``column``, less what is
    still to be counted again: the newlines in ``ranges`` and the characters of ``spans``
    (long runs without a newline), when a chunk is handed on."""
    from kascan.engine import any_needle

    have = len(first)
    buf = bytearray(max(have, CONTEXT + OVERLAP + window))
    view = memoryview(buf)
    view[:have] = first
    fresh = base = 0
    if at is not None:  # a part's first chunk: the carried bytes, then a window read
        fresh, base = CONTEXT, at
    line, column = 1, 0
    defer = quiet and fd is not None  # newlines and characters counted later, read again
    ranges: list[list[int]] = []  # [start, end): newlines to count
    spans: list[list[int]] = []  # [start, length, count]: characters to count
    held: list[bytes] = []  # a stream's spans without a newline: characters to count
    held_bytes = 0
    if at is not None:
        offset = at + have  # (never the descriptor's position: another part's lseek moves it)
    elif offset is None:
        offset = os.lseek(fd, 0, os.SEEK_CUR) if fd is not None else 0  # where the next read goes
    holes = _Holes(fd) if fd is not None else None
    clean = have  # buf[clean:] is known to be NUL bytes
    zeros = have
    data: bytes | None = first if at is None else None
    eof = False
    reading = at is not None  # a part begins by reading its first window
    try:
        while True:
            if cancel is not None and cancel.is_set():
                return None
            while reading and have - fresh < need and not eof:  # read on: a window pending
                block = b"" if fd is not None else read(window)
                if len(buf) < have + max(window, len(block)):
                    view.release()
                    buf.extend(bytes(have + max(window, len(block)) - len(buf)))
                    view = memoryview(buf)
                if holes is not None and holes.zeros(offset, window):
                    e = min(clean, have + window)
                    if e > have:
                        view[have:e] = bytes(e - have)
                    if clean <= have + window:
                        clean = have
                    n = window  # zeros stays: the needle check ends before these bytes
                else:
                    if fd is not None:
                        n = os.preadv(fd, [view[have : have + window]], offset)
                        eof = n < window  # a short read of a regular file: its end
                    else:
                        n = len(block)
                        view[have : have + n] = block
                        eof = not n
                    clean = max(clean, have + n)
                    zeros = have + n  # (after a hole in this window: everything is scanned)
                have += n
                offset += n
            reading = True
            last = have - fresh < need  # the stream ended: the last chunk
            if not quiet or (has_needle(data) if data is not None else any_needle(view[:zeros])):
                if ranges or spans:
                    assert fd is not None
                    line += _recount(fd, ranges)
                    column += _recolumn(fd, spans)
                if held:
                    column += sum(_columns(h) for h in held)
                    held.clear()
                    held_bytes = 0
                if places is not None:
                    places.append((base, have))
                    data = b""
                elif data is None:
                    data = bytes(view[:have])
                yield Chunk(path, data, line, column, fresh=fresh, tail=0 if last else OVERLAP)
            data = None
            if last:
                return None
            end = have - OVERLAP  # scanned up to here
            start = max(end - CONTEXT, 0)  # the next chunk begins here
            # the line and column of buf[start]: the bytes before it are done with
            nl = buf.rfind(b"\n", 0, min(start, zeros))
            a = 0  # buf[a:start]: bytes of the line the next chunk starts on
            if nl != -1:
                if not defer:
                    line += buf.count(b"\n", 0, nl + 1)
                elif ranges and base - ranges[-1][1] <= _GAP:
                    ranges[-1][1] = base + nl + 1
                else:
                    ranges.append([base, base + nl + 1])
                    if len(ranges) > _RANGES:
                        assert fd is not None
                        line += _recount(fd, ranges)
                column = 0  # the column starts again after the newline
                spans.clear()
                held.clear()
                held_bytes = 0
                a = nl + 1
            span = start - a
            if not quiet or span < _HOLD_FROM or zeros < start:  # little to look at: now
                column += _span_columns(buf, view, a, start, zeros)
            elif fd is not None:  # counted if a chunk is handed on before the next newline
                if spans and spans[-1][1] == span and _end(spans[-1]) == base + a:
                    spans[-1][2] += 1  # one more span of the same length, right after the run
                else:
                    spans.append([base + a, span, 1])
                    if len(spans) > _RANGES:
                        column += _recolumn(fd, spans)
            elif buf.isascii():  # (the whole buffer: so is the span)
                column += span
            else:  # a stream's binary bytes: kept, decoded only if a chunk needs their count
                held.append(bytes(view[a:start]))
                held_bytes += span
                while held_bytes > _HELD:
                    column += _columns(held[0])
                    held_bytes -= len(held.pop(0))
            rest = have - start
            view[:rest] = view[start:have]
            have, fresh, base = rest, end - start, base + start
            clean = max(clean, rest)
            zeros = have
            if stop is not None and base >= stop:  # the next part's first chunk begins here
                return _Tally(line, column, ranges, spans)
    finally:
        view.release()


def _by_line(
    read: Callable[[int], bytes], path: str, window: int, initial: bytes
) -> Iterator[Chunk]:
    """Chunks cut after the last complete line of what has arrived (a pipe, a terminal)."""
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
        cut = pending.rfind(b"\n") + 1
        if cut == 0 and len(pending) < window:
            continue
        if cut == 0:
            cut = max(len(pending) - OVERLAP, 1)
        data = ctx + pending
        yield Chunk(path, data, line, column, fresh=len(ctx), tail=len(pending) - cut)
        end = len(ctx) + cut  # scanned up to here
        start = max(end - CONTEXT, 0)  # the next ctx begins here
        nl = data.rfind(b"\n", 0, start)
        line += data.count(b"\n", 0, start)
        column = column + _columns(data[:start]) if nl == -1 else _columns(data[nl + 1 : start])
        ctx = data[start:end]
        pending = pending[cut:]
