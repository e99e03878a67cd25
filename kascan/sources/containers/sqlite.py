"""SQLite databases: every text and blob cell read through the standard library's ``sqlite3``,
then the free space of every page, where deleted rows stay until the page is reused.

A database that is a file on disk is opened read-only and immutable (``mode=ro&immutable=1``:
no lock, no journal, no WAL, nothing written next to it); one inside another container is
deserialized from memory. Only ordinary tables are read (no view, no trigger, no virtual table
runs), with ``trusted_schema`` off, under a time limit (:data:`MAX_SECONDS`, a warning).

A cell is reported as ``app.db!table/column`` with its row's rowid as its line (the row's
number in a WITHOUT ROWID table). The free
space of the pages (freeblocks, the gap between cell pointers and cells, freelist pages) is
scanned as ``app.db!free@<page>``; there the columns of a row are stored back to back, so a key
whose column follows a text column that ends in a letter or digit (``api_keyka_live_…``) is
found only where the record's header, still before it, says a text value starts exactly there
(a freeblock's first four bytes are overwritten: a row whose header sat there is not)."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import IO, TYPE_CHECKING, Any, cast

from kascan.model import Chunk
from kascan.rules import BUILTIN_PREFIX
from kascan.sources.archives import content_chunks, members_warning
from kascan.stats import LimitWarning

if TYPE_CHECKING:
    import sqlite3

    from kascan.sources.archives import Budget, Limits, Source

Warn = Callable[[str], None]
MAX_SECONDS = 60.0  # reading one database's tables
_MIN_CELL = 8  # shorter cells cannot hold a key in any encoding


class _Stop(Exception):
    pass


def _connect(fh: IO[bytes], limits: Limits) -> tuple[sqlite3.Connection, bytes | None]:
    """A read-only connection, and the file's bytes when they were read into memory."""
    import os
    import sqlite3

    fd: int | None = None
    try:
        fd = fh.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        fd = None
    if fd is not None and os.path.exists(f"/proc/self/fd/{fd}"):
        con = sqlite3.connect(
            f"file:/proc/self/fd/{fd}?mode=ro&immutable=1", uri=True, check_same_thread=False
        )
        return con, None
    data = fh.read(limits.max_in_memory + 1)
    if len(data) > limits.max_in_memory:
        raise ValueError(f"over {limits.max_in_memory >> 20} MiB and not a file on disk")
    con = sqlite3.connect(":memory:", check_same_thread=False)
    deserialize = getattr(con, "deserialize", None)
    if deserialize is None:  # Python < 3.11
        con.close()
        raise ValueError("reading a database from memory needs Python 3.11")
    deserialize(data)
    return con, data


def sqlite_members(
    path: str, fh: Source, depth: int, limits: Limits, budget: Budget, warn: Warn
) -> Iterator[Chunk]:
    import sqlite3

    raw = cast("IO[bytes]", fh)
    con, data = _connect(raw, limits)
    deadline = time.monotonic() + MAX_SECONDS
    timed_out = [False]

    def progress() -> int:
        if time.monotonic() > deadline:
            timed_out[0] = True
            return 1
        return 0

    try:
        con.set_progress_handler(progress, 10_000)
        con.execute("PRAGMA query_only = 1")
        con.execute("PRAGMA trusted_schema = 0")
        setlimit = getattr(con, "setlimit", None)
        if setlimit is not None:
            length = getattr(sqlite3, "SQLITE_LIMIT_LENGTH", 0)  # Python 3.11+
            setlimit(length, max(limits.max_member_bytes, 1 << 20))
        tables = con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "AND sql NOT LIKE 'CREATE VIRTUAL%'"
        ).fetchall()
        for (table,) in tables:
            if not isinstance(table, str):
                continue
            try:
                yield from _table(path, con, table, depth, limits, budget, warn)
            except _Stop:
                return
            except sqlite3.Error as exc:
                if timed_out[0]:
                    break
                warn(f"cannot read table of {path}: {str(exc).splitlines()[0]}")
    except sqlite3.Error as exc:
        if not timed_out[0]:
            raise ValueError(str(exc)) from None
    finally:
        con.close()
    if timed_out[0]:
        warn(
            LimitWarning(
                "sqlite-time",
                f"{path}: reading its tables stopped after {MAX_SECONDS:g}s (limit); "
                "the rest is not scanned",
            )
        )
    if data is None:
        raw.seek(0)
        data = raw.read(limits.max_in_memory + 1)
        if len(data) > limits.max_in_memory:
            warn(f"{path}: over {limits.max_in_memory >> 20} MiB: free pages not scanned")
            return
    yield from _free_space(path, data, depth, limits, budget, warn)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _table(
    path: str,
    con: sqlite3.Connection,
    table: str,
    depth: int,
    limits: Limits,
    budget: Budget,
    warn: Warn,
) -> Iterator[Chunk]:
    import sqlite3

    from kascan.sources.archives import clean_name

    try:  # the rowid as the line, when the table has one (not WITHOUT ROWID)
        cur = con.execute(f"SELECT rowid, * FROM {_quote(table)}")  # noqa: S608 - quoted
        numbered = True
    except sqlite3.OperationalError:
        cur = con.execute(f"SELECT * FROM {_quote(table)}")  # noqa: S608 - a quoted identifier
        numbered = False
    columns = [clean_name(str(d[0])) for d in cur.description or ()][numbered:]
    label = clean_name(table) or "?"
    row_no = 0
    for got in cur:
        row = cast("tuple[Any, ...]", got)
        row_no += 1
        if numbered:
            row_no = row[0] if isinstance(row[0], int) and 0 < row[0] < 1 << 62 else row_no
            row = row[1:]
        for col, value in zip(columns, row):
            if isinstance(value, str):
                cell = value.encode("utf-8", "surrogatepass")
            elif isinstance(value, bytes):
                cell = value
            else:
                continue
            if len(cell) < _MIN_CELL:
                continue
            if budget.members_left <= 0:
                warn(members_warning(path, limits))
                raise _Stop
            budget.members_left -= 1
            budget.bytes_left -= len(cell)
            if budget.bytes_left <= 0:
                budget.exhausted = True
                raise _Stop
            name = f"{path}!{label}/{col or '?'}"
            for chunk in content_chunks(
                name, io.BytesIO(cell), True, depth + 1, limits, budget, warn
            ):
                yield replace(chunk, line=chunk.line + row_no - 1)


def _free_space(
    path: str, data: bytes, depth: int, limits: Limits, budget: Budget, warn: Warn
) -> Iterator[Chunk]:
    """The bytes that no live cell uses: where deleted rows stay."""
    if len(data) < 100:
        return
    page_size = int.from_bytes(data[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        return
    pages = len(data) // page_size
    free_pages = _freelist(data, page_size, pages)
    for n in range(1, pages + 1):
        base = (n - 1) * page_size
        page = data[base : base + page_size]
        free = n in free_pages
        regions = [(0, page_size)] if free else _page_gaps(page, 100 if n == 1 else 0)
        for lo, hi in regions:
            if hi - lo < 40 or b"\0" * (hi - lo) == page[lo:hi]:
                continue
            region = page[lo:hi]
            yield Chunk(f"{path}!free@{n}", region, 1, lo)
            # a text column stored right after another one (``api_keyka_live_…``): where a
            # record header before it says a text value starts exactly there, that value alone
            for at, size in _glued_values(region):
                yield Chunk(f"{path}!free@{n}", region[at : at + size], 1, lo + at)


def _freelist(data: bytes, page_size: int, pages: int) -> set[int]:
    """Page numbers on the freelist (trunk and leaf pages), read with a bound on every loop."""
    out: set[int] = set()
    trunk = int.from_bytes(data[32:36], "big")
    seen = 0
    while 0 < trunk <= pages and trunk not in out and seen < pages:
        seen += 1
        out.add(trunk)
        base = (trunk - 1) * page_size
        nxt = int.from_bytes(data[base : base + 4], "big")
        count = min(int.from_bytes(data[base + 4 : base + 8], "big"), page_size // 4 - 2)
        for i in range(count):
            leaf = int.from_bytes(data[base + 8 + 4 * i : base + 12 + 4 * i], "big")
            if 0 < leaf <= pages:
                out.add(leaf)
        trunk = nxt
    return out


def _page_gaps(page: bytes, at: int) -> list[tuple[int, int]]:
    """The unallocated gap and the freeblocks of one b-tree page (offsets in the page)."""
    kind = page[at] if at < len(page) else 0
    if kind not in (2, 5, 10, 13):
        return []
    header = 8 if kind in (10, 13) else 12
    first_free = int.from_bytes(page[at + 1 : at + 3], "big")
    cells = int.from_bytes(page[at + 3 : at + 5], "big")
    content = int.from_bytes(page[at + 5 : at + 7], "big") or 65536
    out = []
    gap_lo = at + header + 2 * cells
    if gap_lo < min(content, len(page)):
        out.append((gap_lo, min(content, len(page))))
    block, hops = first_free, 0
    while 0 < block < len(page) - 4 and hops < len(page) // 4:
        hops += 1
        size = int.from_bytes(page[block + 2 : block + 4], "big")
        out.append((block + 4, min(block + size, len(page))))
        nxt = int.from_bytes(page[block : block + 2], "big")
        if nxt <= block:
            break
        block = nxt
    return out


_PREFIX = BUILTIN_PREFIX.encode()
_WORD = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_LOOKBACK = 512  # bytes before a value searched for its record's header


def _body_size(serial: int) -> int:
    if serial >= 12:
        return (serial - 12) // 2
    return (0, 1, 2, 3, 4, 6, 8, 8, 0, 0, 0, 0)[serial]


def _glued_values(region: bytes) -> Iterator[tuple[int, int]]:
    """(offset, length) of each key-prefixed text value in ``region`` that follows a word
    character, where the serial types before the row's values put a text value of that length
    exactly there (SQLite stores a row as its header of serial types, then the values back to
    back; freeing a cell overwrites its first four bytes, so the header's start may be gone)."""
    p = region.find(_PREFIX)
    seen = 0
    while p != -1 and seen < 1024:
        seen += 1
        if p > 0 and region[p - 1] in _WORD:
            got = _value_at(region, p)
            if got:
                yield p, got
        p = region.find(_PREFIX, p + 1)


def _value_at(region: bytes, p: int) -> int:
    """The length of the text value that one-byte serial types ending at some ``e <= p`` place
    at ``p`` (the values of the columns before it filling ``e..p``), or 0."""
    for e in range(p, max(p - _LOOKBACK, 0), -1):
        gap = p - e
        types = region[max(e - 8, 0) : e]
        for start in range(len(types)):
            filled = 0
            for t in types[start:]:
                if t >= 0x80 or t in (10, 11):
                    break
                if filled == gap:
                    body = (t - 13) // 2
                    if t >= 13 and t % 2 and body >= len(_PREFIX) + 32:
                        return body
                    break
                filled += _body_size(t)
                if filled > gap:
                    break
    return 0
