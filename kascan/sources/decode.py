"""Keys hidden in base64 or UTF-16: found by their prefix's encoded forms, decoded only around hits.

Every chunk still goes to the matcher as it is; after it come small decoded chunks, one per hit:

* base64 (standard and URL-safe alphabets, any of the three byte alignments, also deep inside a
  longer value, also base64 of base64): the characters of ``ka_live_``'s encodings that depend on
  the prefix only ("needles") are looked for, the surrounding base64 run is decoded and the normal
  matcher confirms the key. The finding is *pinned* to the line and column of the 4-character
  group where the encoded key starts.
* UTF-16 (LE and BE, with or without BOM): ``ka_live_`` as 16-bit units; the line around the hit
  is decoded, and lines and columns are counted in characters of the UTF-16 text.

Cost: every needle (the prefix, the base64 ones, UTF-16) is found in one pass over the chunk by
:mod:`kascan.engine` (Hyperscan, or a ``bytes.find`` fallback); the decoders only confirm around
its hits. UTF-16 is looked for only in chunks with NUL bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from kascan.engine import hits as needle_hits
from kascan.model import Chunk, Decoders
from kascan.rules import BUILTIN_PREFIX

PREFIX = BUILTIN_PREFIX.encode()
_B64_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_")
_CONTEXT = 1024  # base64 characters decoded on each side of a hit (a multiple of 4)
# "k\0a\0…_": both byte orders contain it
UTF16_PREFIX = bytes(b for c in PREFIX for b in (c, 0))[:-1]
_U16_CONTEXT = 512  # characters decoded on each side of a UTF-16 hit


@dataclass(frozen=True, slots=True)
class _Needle:
    text: bytes  # characters of the encoding that depend on the prefix only
    lead: int  # characters of the 4-character group before ``text``
    align: int  # bytes of the 3-byte group before what is encoded
    inner: _Needle | None = None  # base64 of base64: the needle this one encodes


def _stable(prefix: bytes, align: int) -> tuple[bytes, int]:
    import base64

    enc = base64.b64encode(b"\0" * align + prefix)
    first = -(-8 * align // 6)  # first character made only of prefix bits
    end = (8 * align + 8 * len(prefix)) // 6
    return enc[first:end], first


def _needles(double: bool) -> tuple[_Needle, ...]:
    singles = [_Needle(*_stable(PREFIX, a), a) for a in range(3)]
    out = list(singles)
    if double:
        out += [_Needle(*_stable(n.text, a), a, n) for n in singles for a in range(3)]
    url = bytes.maketrans(b"+/", b"-_")
    for n in list(out):
        alt = n.text.translate(url)
        if alt != n.text:
            out.append(_Needle(alt, n.lead, n.align, n.inner))
    return tuple(out)


Anchors = dict[int, tuple[tuple[int, _Needle], ...]]  # byte before the anchor -> (offset, needle)


@dataclass(frozen=True, slots=True)
class _Plan:
    needles: tuple[_Needle, ...]
    by_v: Anchors  # every needle with a V past its first character
    by_w: Anchors  # the others (some base64-of-base64 alignments) all have a W


_PLAN: list[_Plan] = []
SNIFF_NUL = 8192  # a chunk with no NUL in its first bytes is text (later chunks: anywhere)
_SMALL = 4096  # text chunks this small are also searched for the needles without a V


def _anchors(needles: Iterable[_Needle], anchor: bytes) -> Anchors:
    out: dict[int, list[tuple[int, _Needle]]] = {}
    for n in needles:
        k = n.text.find(anchor, 1)
        while k != -1:
            out.setdefault(n.text[k - 1], []).append((k, n))
            k = n.text.find(anchor, k + 1)
    return {c: tuple(v) for c, v in out.items()}


def _plan() -> _Plan:
    if not _PLAN:
        needles = _needles(True)
        rest = [n for n in needles if n.text.find(b"V", 1) == -1]
        if any(n.text.find(b"W", 1) == -1 for n in rest):  # pragma: no cover - fixed prefix
            raise AssertionError("a base64 needle has neither V nor W")
        _PLAN.append(_Plan(needles, _anchors(needles, b"V"), _anchors(rest, b"W")))
    return _PLAN[0]


def needle_texts() -> tuple[bytes, ...]:
    """The base64 needles' bytes, in the order of :mod:`kascan.engine`'s ``Hits.base64`` index."""
    return tuple(n.text for n in _plan().needles)


def might_hide_base64(data: bytes, lo: int = 0, text: bool = True) -> bool:
    """Whether an encoded-prefix needle starts at or after ``lo``: exact, from the one pass of
    :mod:`kascan.engine` over the chunk (``text`` is no longer needed)."""
    return any(s >= lo for s, _i in needle_hits(data).base64)  # exact: kascan.engine


def _find_needles(data: bytes, lo: int, hi: int) -> list[tuple[int, _Needle]]:
    """(start, needle) for every needle starting in [lo, hi), in order."""
    needles = _plan().needles  # all found in one pass of kascan.engine, sorted by start
    return [(s, needles[i]) for s, i in needle_hits(data).base64 if lo <= s <= hi]


def _run_bounds(data: bytes, start: int, end: int) -> tuple[int, int]:
    """Extend [start, end) over base64 characters, at most _CONTEXT on each side."""
    lo_limit = max(start - _CONTEXT, 0)
    i = start
    while i > lo_limit and data[i - 1] in _B64_CHARS:
        i -= 1
    hi_limit = min(end + _CONTEXT, len(data))
    j = end
    while j < hi_limit and data[j] in _B64_CHARS:
        j += 1
    while j < len(data) and j - end < _CONTEXT + 2 and data[j] == 0x3D:  # '=' padding
        j += 1
    return i, j


def _b64decode(text: bytes) -> bytes:
    import binascii

    text = text.rstrip(b"=").translate(_TO_STD)
    text = text[: len(text) - (len(text) % 4 == 1)]
    text += b"=" * (-len(text) % 4)
    try:
        return binascii.a2b_base64(text)
    except binascii.Error:  # pragma: no cover - only base64 characters reach here
        return b""


_TO_STD = bytes.maketrans(b"-_", b"+/")


def _decode_at(data: bytes, group: int) -> tuple[bytes, int]:
    """Decode the base64 run around the 4-character group starting at ``group``.

    Returns the decoded bytes and the offset in them of the group's first byte.
    """
    run_lo, run_hi = _run_bounds(data, group, group + 4)
    start = group - (group - run_lo) // 4 * 4
    return _b64decode(data[start:run_hi]), (group - start) // 4 * 3


def _position(chunk: Chunk, offset: int) -> tuple[int, int]:
    """1-based line and 0-based column of ``chunk.data[offset]``."""
    data = chunk.data
    nl = data.rfind(b"\n", 0, offset)
    line = chunk.line + (data.count(b"\n", 0, offset) if nl != -1 else 0)
    if nl == -1:
        return line, chunk.column + len(data[:offset].decode("utf-8", "replace"))
    return line, len(data[nl + 1 : offset].decode("utf-8", "replace"))


def _label(chunk: Chunk, how: str) -> str:
    return f"{chunk.decoded}+{how}" if chunk.decoded else how


def base64_chunks(chunk: Chunk) -> Iterator[Chunk]:
    """A pinned chunk of decoded bytes for every base64-encoded key prefix in the chunk."""
    data = chunk.data
    lo, hi = chunk.fresh, len(data) - chunk.tail
    if hi <= lo:
        return
    done: set[int] = set()
    for s, needle in _find_needles(data, lo, hi):
        group = s - needle.lead
        if group < 0 or group in done:
            continue
        done.add(group)
        decoded, at = _decode_at(data, group)
        line, column = _position(chunk, group)
        inner = needle.inner
        if inner is None:
            yield _pinned(chunk, decoded, at + needle.align, line, column, "base64")
            continue
        s2 = at + needle.align  # where the inner encoding's needle sits in the decoded bytes
        g2 = s2 - inner.lead
        if g2 >= 0 and decoded.startswith(inner.text, s2):
            dec2, at2 = _decode_at(decoded, g2)
            yield _pinned(chunk, dec2, at2 + inner.align, line, column, "base64+base64")


def _pinned(chunk: Chunk, data: bytes, key_at: int, line: int, column: int, how: str) -> Chunk:
    # only a match starting exactly at key_at counts: other keys nearby have hits of their own
    return Chunk(
        chunk.path,
        data,
        line,
        column,
        fresh=key_at,
        tail=max(len(data) - key_at - 1, 0),
        commit=chunk.commit,
        repo=chunk.repo,
        decoded=_label(chunk, how),
        pinned=True,
        origin=chunk.origin,
    )


def utf16_chunks(chunk: Chunk) -> Iterator[Chunk]:
    """A chunk of the decoded line around every UTF-16 ``ka_live_`` in the chunk."""
    data = chunk.data
    lo, hi = chunk.fresh, len(data) - chunk.tail
    at_start = chunk.line == 1 and chunk.column == 0 and chunk.fresh == 0
    bom = data[:2] if at_start and data[:2] in (b"\xff\xfe", b"\xfe\xff") else b""
    for p in needle_hits(data).utf16:  # found in one pass of kascan.engine
        if p < lo or p + len(UTF16_PREFIX) > hi:
            continue
        # ASCII in UTF-16 reads the same in both byte orders one byte apart: big-endian only
        # with its BOM, or for a whole file that starts with a NUL and has the hit at an odd offset
        if bom == b"\xfe\xff" or (not bom and at_start and p % 2 and data[:1] == b"\0"):
            enc, unit, nl = "utf-16-be", p - 1, b"\0\n"
        else:
            enc, unit, nl = "utf-16-le", p, b"\n\0"
        if unit >= 0:
            yield _utf16_line(chunk, enc, unit, nl, 2 if bom else 0)


def _utf16_line(chunk: Chunk, enc: str, unit: int, nl: bytes, first: int) -> Chunk:
    data = chunk.data
    pos = data.rfind(nl, 0, unit)  # the last encoded newline on a unit boundary before the hit
    while pos != -1 and (unit - pos) % 2:
        pos = data.rfind(nl, 0, pos + 1)
    if pos == -1:
        line = chunk.line
        line_start = first if chunk.line == 1 and chunk.fresh == 0 else unit % 2
        column0 = chunk.column
    else:
        line = chunk.line + data.count(nl, 0, pos + 2)
        line_start = pos + 2
        column0 = 0
    win_lo = max(line_start, unit - 2 * _U16_CONTEXT)
    win_lo += (unit - win_lo) % 2
    # decoded in two parts: a surrogate pair is one character, so unit counts are not indexes
    text = data[win_lo:unit].decode(enc, "replace")
    after = data[unit : unit + 2 * _U16_CONTEXT].decode(enc, "replace")
    before = len(text.encode("utf-8"))
    text += after.partition("\n")[0]
    out = text.encode("utf-8")
    return Chunk(
        chunk.path,
        out,
        line,
        column0 + (win_lo - line_start) // 2,
        fresh=before,
        tail=max(len(out) - before - 1, 0),
        commit=chunk.commit,
        repo=chunk.repo,
        decoded=_label(chunk, enc[:6] + enc[7:]),
        origin=chunk.origin,
    )


def decode_chunks(chunks: Iterable[Chunk], decoders: Decoders) -> Iterator[Chunk]:
    """Every chunk, each followed by the decoded chunks of what it hides."""
    b64, u16 = decoders.base64, decoders.utf16
    if not (b64 or u16):
        yield from chunks
        return
    for chunk in chunks:
        yield chunk
        if chunk.pinned:
            continue
        data = chunk.data
        # UTF-16 text and binaries have NULs from their first bytes on, plain text never
        binary = data.find(b"\0", 0, SNIFF_NUL) != -1 or (
            len(data) > SNIFF_NUL and chunk.fresh > 0 and b"\0" in data
        )
        if b64 and might_hide_base64(data, chunk.fresh, not binary):
            yield from base64_chunks(chunk)
        if u16 and binary:
            yield from utf16_chunks(chunk)
