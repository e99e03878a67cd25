"""Every needle compiled once, every chunk scanned once: the prefix and the decoders' encoded forms.

The needles are ``ka_live_`` itself, the base64 forms that :mod:`kascan.sources.decode` looks for
(the characters of the prefix's encodings that depend on the prefix only, at every alignment, and
base64 of base64), and the prefix in UTF-16. :func:`hits` scans a chunk for all of them in one
pass and returns where each needle starts; the matcher and the decoders then confirm only around
those offsets with their exact checks, so what is found does not depend on the engine.

Two engines give the same hits (``tests/test_engine.py`` checks it on random bytes):

* ``hyperscan`` (the Python binding of Hyperscan/Vectorscan, as in Kingfisher and GitHub's secret
  scanning): one database of every needle, compiled once per process on first use, in block mode
  for chunks and in streaming mode for the git blob stream (:class:`Stream`), where a needle that
  straddles two reads is found without overlapping them.
* ``python``: ``bytes.find`` for the prefix and the UTF-16 form; the base64 needles are found
  through one byte of each (a ``V`` or a ``W``, rare in text) with a ``memchr`` loop. Selected
  with ``KASCAN_ENGINE=python``, and whenever ``hyperscan`` cannot be imported.

Without ``KASCAN_ENGINE``, the first :data:`SMALL_BUDGET` bytes a process scans go through the
fallback too: loading Hyperscan and compiling its database costs ~4 ms, more than the fallback
takes for that much text (a commit hook's staged lines are a few KB); the first chunk past the
budget loads Hyperscan, which then scans everything.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, Literal

from kascan.rules import BUILTIN_PREFIX

EngineName = Literal["hyperscan", "python"]
PREFIX = BUILTIN_PREFIX.encode()
UTF16 = bytes(b for c in PREFIX for b in (c, 0))[:-1]  # "k\0a\0…_": both byte orders contain it
UTF32 = bytes(b for c in PREFIX for b in (c, 0, 0, 0))[:-3]  # "k\0\0\0a…_": both orders
PREFIX_ID = 0
_MEMO = 4  # chunks whose hits are kept: a chunk, then the decoders' look at it, and their chunks

# needle kinds, by id: 0 the prefix, 1..n base64 needles (decode's plan order), n+1 UTF-16,
# n+2 UTF-32, then the other decoders' needles (decode's ``extra_needles`` order)


class Hits:
    """Where each needle starts in one chunk, in ascending order.

    ``base64`` holds ``(start, i)`` with ``i`` the needle's index in :func:`base64_needles`,
    sorted by start, then index (the order in which ``decode`` confirms them); ``extra`` the
    same for :func:`extra_needles` (percent-encoding, escapes, hex, base64 of a container)."""

    __slots__ = ("base64", "extra", "prefix", "utf16", "utf32")

    def __init__(self) -> None:
        self.prefix: list[int] = []
        self.base64: list[tuple[int, int]] = []
        self.utf16: list[int] = []
        self.utf32: list[int] = []
        self.extra: list[tuple[int, int]] = []

    def _all(self) -> tuple[object, ...]:
        return (self.prefix, self.base64, self.utf16, self.utf32, self.extra)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Hits):
            return NotImplemented
        return self._all() == other._all()

    def __repr__(self) -> str:
        return (
            f"Hits(prefix={self.prefix}, base64={self.base64}, utf16={self.utf16}, "
            f"utf32={self.utf32}, extra={self.extra})"
        )

    def __bool__(self) -> bool:
        return any(self._all())

    def add(self, id: int, start: int) -> None:
        """Record needle ``id`` (as in :func:`needles`) starting at ``start``."""
        nb = len(base64_needles())
        if id == PREFIX_ID:
            self.prefix.append(start)
        elif id <= nb:
            self.base64.append((start, id - 1))
        elif id == nb + 1:
            self.utf16.append(start)
        elif id == nb + 2:
            self.utf32.append(start)
        else:
            self.extra.append((start, id - nb - 3))


# --------------------------------------------------------------------------- the needles

_B64: list[tuple[bytes, ...]] = []


def base64_needles() -> tuple[bytes, ...]:
    """decode's base64 needles, in its order (index ``i`` of a ``Hits.base64`` entry)."""
    if not _B64:
        from kascan.sources.needles import needle_texts

        _B64.append(needle_texts())
    return _B64[0]


_EXTRA: list[tuple[bytes, ...]] = []


def extra_needles() -> tuple[bytes, ...]:
    """decode's other needles (index ``i`` of a ``Hits.extra`` entry)."""
    if not _EXTRA:
        from kascan.sources.needles import extra_needle_texts

        _EXTRA.append(extra_needle_texts())
    return _EXTRA[0]


def needles() -> tuple[bytes, ...]:
    """Every needle's bytes, by id: the prefix, the base64 needles, the UTF-16 and UTF-32
    prefixes, the other decoders' needles."""
    return (PREFIX, *base64_needles(), UTF16, UTF32, *extra_needles())


def engine_name() -> EngineName:
    """``KASCAN_ENGINE`` (``hyperscan`` or ``python``), else hyperscan when it can be imported."""
    return _choose()[0]


_CHOSEN: list[tuple[EngineName, Callable[[bytes], Hits]]] = []
SMALL_BUDGET = 64 << 10  # bytes scanned with the fallback before Hyperscan is loaded (auto)
_SMALL = [0]  # bytes the fallback has scanned so far in auto mode (-1: none, an engine was asked)


def _small(n: int) -> bool:
    """Whether a chunk of ``n`` bytes goes to the fallback because Hyperscan is not loaded yet
    (auto mode, within :data:`SMALL_BUDGET`): the same hits, without the cost of loading it."""
    seen = _SMALL[0]
    if seen < 0 or seen + n > SMALL_BUDGET:
        return False
    if seen == 0 and os.environ.get("KASCAN_ENGINE", "").strip():
        _SMALL[0] = -1  # an engine was asked for: always that one
        return False
    _SMALL[0] = seen + n
    return True


def _choose() -> tuple[EngineName, Callable[[bytes], Hits]]:
    if _CHOSEN:
        return _CHOSEN[0]
    want = os.environ.get("KASCAN_ENGINE", "").strip().lower()
    chosen: tuple[EngineName, Callable[[bytes], Hits]]
    if want == "python":
        chosen = ("python", scan_python)
    else:
        try:
            import hyperscan  # noqa: F401  (the databases are compiled on first use)
        except ImportError:
            if want == "hyperscan":
                from kascan.errors import KascanError

                raise KascanError(
                    "KASCAN_ENGINE=hyperscan, but the hyperscan module cannot be imported"
                ) from None
            chosen = ("python", scan_python)
        else:
            chosen = ("hyperscan", scan_hyperscan)
    _CHOSEN.append(chosen)
    return chosen


# one database per thread: a hyperscan database holds its scratch space, which two threads
# (a sweep scans repositories at once) must never share; a forked tree worker has its own copy
_LOCAL = threading.local()


def reset() -> None:
    """Forget the chosen engine and the remembered hits (tests switch ``KASCAN_ENGINE``)."""
    _CHOSEN.clear()
    _SMALL[0] = 0
    _memo().clear()


# --------------------------------------------------------------------------- one chunk


def _memo() -> list[tuple[bytes, Hits]]:
    """This thread's last few chunks and their hits."""
    memo: list[tuple[bytes, Hits]] | None = getattr(_LOCAL, "memo", None)
    if memo is None:
        memo = _LOCAL.memo = []
    return memo


def hits(data: bytes) -> Hits:
    """Every needle in ``data``, with the chosen engine.

    The hits of the last few chunks are remembered by identity: the matcher and each decoder ask
    for the same chunk in turn, and it is scanned once."""
    memo = _memo()
    for seen, found in memo:
        if seen is data:
            return found
    if _CHOSEN:
        found = _CHOSEN[0][1](data)
    elif _small(len(data)):
        found = scan_python(data)
    else:
        found = _choose()[1](data)
    if len(memo) >= _MEMO:
        del memo[0]
    memo.append((data, found))
    return found


def any_needle(data: bytes | bytearray | memoryview) -> bool:
    """Whether any needle occurs in ``data``, with the engine :func:`hits` would use,
    remembering nothing: for a reused read buffer (:mod:`kascan.sources.stream`), where a
    window without a needle is left out and one with a needle is copied out and scanned again
    by :func:`hits`, and for a small file read whole (most of a tree)."""
    if _CHOSEN:
        name = _CHOSEN[0][0]
    elif _small(len(data)):
        name = "python"
    else:
        name = _choose()[0]
    if name == "python":
        return bool(scan_python(bytes(data)))
    raw: list[tuple[int, int]] = []
    (getattr(_LOCAL, "block", None) or _database("block")).scan(
        data, match_event_handler=_on_match, context=raw
    )
    return bool(raw)


def warm() -> None:
    """Choose the engine and compile its block-mode database now: before a tree's workers are
    forked, so that each inherits it rather than compiling its own."""
    if _choose()[0] == "hyperscan":
        _database("block")


def _sort(found: Hits) -> Hits:
    for got in (found.prefix, found.base64, found.utf16, found.utf32, found.extra):
        if len(got) > 1:
            got.sort()
    return found


def _database(mode: Literal["block", "stream"]) -> Any:
    """This thread's block-mode or streaming-mode database, compiled on first use (a scan of
    chunks never compiles the streaming one; hyperscan is untyped)."""
    db: Any = getattr(_LOCAL, mode, None)
    if db is None:
        import hyperscan

        flag = hyperscan.HS_MODE_BLOCK if mode == "block" else hyperscan.HS_MODE_STREAM
        with _COMPILING:
            compiled = _COMPILED.get(mode)
            if compiled is None:
                texts = needles()
                # as escaped bytes: the literal compiler of the binding stops at a NUL
                exprs = [b"".join(b"\\x%02x" % c for c in t) for t in texts]
                db = hyperscan.Database(mode=flag)
                db.compile(
                    expressions=exprs, ids=list(range(len(texts))), elements=len(exprs), flags=0
                )
                _COMPILED[mode] = hyperscan.dumpb(db)
            else:
                # another thread compiled it: a copy of its bytes (13 µs, against 47 ms for a
                # compile) with a scratch space of this thread's own
                db = hyperscan.loadb(compiled, mode=flag)
                db.scratch = hyperscan.Scratch(db)
        setattr(_LOCAL, mode, db)
    return db


# each mode's database compiled once per process, serialized: other threads load a copy
_COMPILED: dict[str, bytes] = {}
_COMPILING = threading.Lock()


def _lengths() -> tuple[int, ...]:
    """Each needle's length, by id."""
    if not _LENGTHS:
        _LENGTHS.append(tuple(len(t) for t in needles()))
    return _LENGTHS[0]


_LENGTHS: list[tuple[int, ...]] = []


def _on_match(id: int, _from: int, to: int, _flags: int, found: list[tuple[int, int]]) -> None:
    found.append((id, to))


def _classify(raw: list[tuple[int, int]], lengths: tuple[int, ...]) -> Hits:
    """(id, end offset) pairs, in end order -> Hits."""
    found = Hits()
    add = found.add
    for id, to in raw:
        add(id, to - lengths[id])
    return _sort(found)


def scan_hyperscan(data: bytes) -> Hits:
    """Every needle in ``data``: one pass of the compiled block-mode database."""
    raw: list[tuple[int, int]] = []
    _database("block").scan(data, match_event_handler=_on_match, context=raw)
    if not raw:
        return Hits()
    return _classify(raw, _lengths())


# --------------------------------------------------------------------------- the fallback

_ANCHORS: list[dict[int, dict[int, tuple[tuple[int, int, bytes], ...]]]] = []


def _anchor_tables() -> dict[int, dict[int, tuple[tuple[int, int, bytes], ...]]]:
    """anchor byte -> byte before it -> (offset of the anchor in the needle, index, needle).

    Each base64 needle is indexed once, at its first ``V`` past its first character, or else at
    its first ``W`` (every needle has one or the other), so each occurrence is found once."""
    if not _ANCHORS:
        tables: dict[int, dict[int, list[tuple[int, int, bytes]]]] = {}
        for i, text in enumerate(base64_needles()):
            for anchor in b"VW":
                k = text.find(bytes([anchor]), 1)
                if k != -1:
                    tables.setdefault(anchor, {}).setdefault(text[k - 1], []).append((k, i, text))
                    break
            else:  # pragma: no cover - the prefix is fixed
                raise AssertionError("a base64 needle has neither V nor W")
        _ANCHORS.append({a: {b: tuple(v) for b, v in t.items()} for a, t in sorted(tables.items())})
    return _ANCHORS[0]


def scan_python(data: bytes) -> Hits:
    """Every needle in ``data`` with ``bytes.find``: the same hits as :func:`scan_hyperscan`."""
    found = Hits()
    find = data.find
    p = find(PREFIX)
    while p != -1:
        found.prefix.append(p)
        p = find(PREFIX, p + 1)
    b64 = found.base64
    for anchor, table in _anchor_tables().items():
        get = table.get
        p = find(anchor, 1)
        while p != -1:
            cands = get(data[p - 1])
            if cands is not None:
                for k, i, text in cands:
                    if p >= k and data.startswith(text, p - k):
                        b64.append((p - k, i))
            p = find(anchor, p + 1)
    if b"\0" in data:
        for needle, out in ((UTF16, found.utf16), (UTF32, found.utf32)):
            p = find(needle)
            while p != -1:
                out.append(p)
                p = find(needle, p + 1)
    extra = found.extra
    search, groups = _seeds()
    m = search(data)
    while m is not None:
        p = m.start()
        for i, text, off in groups[m.group()]:
            if p >= off and data.startswith(text, p - off):
                extra.append((p - off, i))
        m = search(data, p + 1)  # from the next byte on: needles may overlap
    return _sort(found)


Seeds = dict[bytes, tuple[tuple[int, bytes, int], ...]]  # seed -> (index, needle, offset)
_SEEDS: list[tuple[Callable[..., Any], Seeds]] = []


def _seeds() -> tuple[Callable[..., Any], Seeds]:
    """One regex search for a seed of every extra needle (``re`` skips on the set of the seeds'
    first bytes: cheaper than a ``find`` per needle), and the needles each seed is in. A needle
    that starts with the prefix's ``ka`` is sought from its third byte (``%``, a backslash,
    ``&``: rarer in text than a ``k``)."""
    if not _SEEDS:
        import re

        groups: dict[bytes, list[tuple[int, bytes, int]]] = {}
        for i, text in enumerate(extra_needles()):
            off = 2 if text.startswith(PREFIX[:2]) else 0
            groups.setdefault(text[off : off + 4], []).append((i, text, off))
        rx = re.compile(b"|".join(re.escape(seed) for seed in groups))
        _SEEDS.append((rx.search, {seed: tuple(g) for seed, g in groups.items()}))
    return _SEEDS[0]


# --------------------------------------------------------------------------- a stream


class Stream:
    """Needles in a stream of blocks (absolute offsets), each byte scanned once: a needle that
    straddles two blocks is found in the block where it ends.

    ``feed(block)`` returns the ``(start, id)`` of each needle ending in ``block``, in end order
    (ids as in :func:`needles`). With hyperscan this is a streaming-mode database; the fallback
    scans the block with the last ``longest - 1`` bytes before it."""

    def __init__(self, engine: EngineName | None = None) -> None:
        self.engine: EngineName = engine or engine_name()
        self.offset = 0  # bytes fed so far
        self._raw: list[tuple[int, int]] = []
        self._stream: Any = None
        texts = needles()
        self._lengths = tuple(len(t) for t in texts)
        self._keep = max(self._lengths) - 1
        self._tail = b""
        if self.engine == "hyperscan":
            db = _database("stream")
            self._stream = db.stream(match_event_handler=_on_match, context=self._raw)
            self._stream.__enter__()

    def feed(self, block: bytes | bytearray | memoryview) -> list[tuple[int, int]]:
        start = self.offset
        self.offset += len(block)
        lengths = self._lengths
        if self._stream is not None:
            raw = self._raw
            self._stream.scan(block)
            if not raw:
                return []
            if len(raw) > 1:
                raw.sort(key=lambda h: h[1])
            out = [(to - lengths[id], id) for id, to in raw]
            raw.clear()
            return out
        data = self._tail + bytes(block)
        base = start - len(self._tail)
        self._tail = data[-self._keep :] if self._keep else b""
        found = scan_python(data)
        nb = len(base64_needles())
        out = [(p, PREFIX_ID) for p in found.prefix]
        out += [(s, i + 1) for s, i in found.base64]
        out += [(p, nb + 1) for p in found.utf16]
        out += [(p, nb + 2) for p in found.utf32]
        out += [(s, i + nb + 3) for s, i in found.extra]
        # only needles that end in the new block: the others were reported before
        out = [(base + s, id) for s, id in out if s + lengths[id] > len(data) - len(block)]
        out.sort(key=lambda h: h[0] + lengths[h[1]])
        return out

    def close(self) -> None:
        if self._stream is not None:
            stream, self._stream = self._stream, None
            stream.__exit__(None, None, None)
            self._raw.clear()
