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

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from kascan.engine import hits as needle_hits
from kascan.model import Chunk, Decoders
from kascan.rules import BUILTIN_BODY_LEN, BUILTIN_PREFIX
from kascan.stats import LimitWarning

Warn = Callable[[str], None]

PREFIX = BUILTIN_PREFIX.encode()
_CONTEXT = 1024  # base64 characters decoded on each side of a hit (a multiple of 4)
# "k\0a\0…_": both byte orders contain it
UTF16_PREFIX = bytes(b for c in PREFIX for b in (c, 0))[:-1]
_B64_RUN = re.compile(rb"[A-Za-z0-9+/_-]*")
_PAD_RUN = re.compile(rb"=*")
_U16_CONTEXT = 512  # characters decoded on each side of a UTF-16 hit
# Decoded hits per chunk that hold no key-shaped text after the prefix (a flood of encoded
# prefixes): past this many, the rest of the chunk is not decoded, with a warning. A hit that
# decodes to a whole key never counts, so real keys are never held back by the cap.
HIT_LIMIT = 1024


def _no_warn(_: str) -> None:
    pass


def _key_shaped(text: bytes) -> bool:
    """The prefix and a full body of letters and digits: what a real key decodes to."""
    body = text[len(PREFIX) : len(PREFIX) + BUILTIN_BODY_LEN]
    return (
        text.startswith(PREFIX)
        and len(body) == BUILTIN_BODY_LEN
        and body.isalnum()
        and body.isascii()
    )


def _hit_limit(chunk: Chunk, what: str) -> LimitWarning:
    return LimitWarning(
        "decoder-hits",
        f"{chunk.path}: over {HIT_LIMIT} {what} key prefixes without a key in one window "
        "(limit); the rest of the window is not decoded",
    )


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


_Hit = tuple[int, int, "_Needle"]


def _find_needles(data: bytes, lo: int, hi: int, most: int) -> tuple[list[_Hit], bool]:
    """(group, start, needle) for the first ``most`` needles starting in [lo, hi], in the order
    of the 4-character groups they sit in, and whether more were left for a later call. Every
    needle is found in the one pass of :mod:`kascan.engine` over the chunk."""
    needles = _plan().needles
    hits = [
        (s - needles[i].lead, s, needles[i]) for s, i in needle_hits(data).base64 if lo <= s <= hi
    ]
    hits.sort(key=lambda h: h[0])
    more = len(hits) > most
    del hits[most:]
    return hits, more


def _run_bounds(data: bytes, start: int, end: int) -> tuple[int, int]:
    """Extend [start, end) over base64 characters, at most _CONTEXT on each side (scanned by the
    regex engine, not a Python loop: this runs for every hit)."""
    lo_limit = max(start - _CONTEXT, 0)
    back = _B64_RUN.match(data[lo_limit:start][::-1])
    i = start - (back.end() if back else 0)
    hi_limit = min(end + _CONTEXT, len(data))
    fwd = _B64_RUN.match(data, end, hi_limit)
    j = fwd.end() if fwd else end
    pad = _PAD_RUN.match(data, j, min(j + _CONTEXT + 2, len(data)))  # '=' padding
    return i, pad.end() if pad else j


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


class _Where:
    """Line and column of increasing offsets in one chunk, counted from the previous offset on
    (a flood of hits in one long line costs one pass over it, not one per hit)."""

    __slots__ = ("column", "data", "line", "pos")

    def __init__(self, chunk: Chunk) -> None:
        self.data = chunk.data
        self.pos = 0
        self.line = chunk.line
        self.column = chunk.column

    def at(self, offset: int) -> tuple[int, int]:
        """1-based line and 0-based column of ``data[offset]`` (``offset`` >= the last one)."""
        if offset > self.pos:
            seg = self.data[self.pos : offset]
            nl = seg.rfind(b"\n")
            if nl == -1:
                self.column += _chars(seg)
            else:
                self.line += seg.count(b"\n")
                self.column = _chars(seg[nl + 1 :])
            self.pos = offset
        return self.line, self.column


def _chars(seg: bytes) -> int:
    return len(seg) if seg.isascii() else len(seg.decode("utf-8", "replace"))


def _label(chunk: Chunk, how: str) -> str:
    return f"{chunk.decoded}+{how}" if chunk.decoded else how


def base64_chunks(chunk: Chunk, warn: Warn = _no_warn) -> Iterator[Chunk]:
    """A pinned chunk of decoded bytes for every base64-encoded key prefix in the chunk.

    Linear in the chunk: hits are found a bounded batch at a time and taken in order, each
    decodes a bounded run around it, and positions are counted on from the previous hit; past
    :data:`HIT_LIMIT` hits that decode to no key, the rest of the chunk is left, with a
    warning."""
    data = chunk.data
    lo, hi = chunk.fresh, len(data) - chunk.tail
    done: set[int] = set()
    where = _Where(chunk)
    empty = 0
    more = hi > lo
    while more:
        hits, more = _find_needles(data, lo, hi, 2 * HIT_LIMIT)
        for group, _start, needle in hits:
            lo = max(lo, group)  # the next batch starts here (a group seen again is done)
            if group < 0 or group in done:
                continue
            if empty >= HIT_LIMIT:
                warn(_hit_limit(chunk, "base64-encoded"))
                return
            done.add(group)
            decoded, at = _decode_at(data, group)
            line, column = where.at(group)
            inner = needle.inner
            if inner is None:
                key_at = at + needle.align
                empty += not _key_shaped(decoded[key_at:])
                yield _pinned(chunk, decoded, key_at, line, column, "base64")
                continue
            s2 = at + needle.align  # where the inner encoding's needle sits in the decoded bytes
            g2 = s2 - inner.lead
            if g2 >= 0 and decoded.startswith(inner.text, s2):
                dec2, at2 = _decode_at(decoded, g2)
                key_at = at2 + inner.align
                empty += not _key_shaped(dec2[key_at:])
                yield _pinned(chunk, dec2, key_at, line, column, "base64+base64")
            else:
                empty += 1


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


def _utf16_hits(data: bytes, lo: int, hi: int) -> Iterator[int]:
    """Every start of the UTF-16 prefix whole in [lo, hi), in order: from the one pass of
    :mod:`kascan.engine` over the chunk."""
    end = hi - len(UTF16_PREFIX)
    for p in needle_hits(data).utf16:
        if lo <= p <= end:
            yield p


class _NewLines:
    """Encoded newlines on one byte parity before increasing offsets, counted from the
    previous offset on (one pass over a chunk, however many hits it holds)."""

    __slots__ = ("count", "data", "last", "nl", "parity", "pos")

    def __init__(self, data: bytes, nl: bytes, parity: int) -> None:
        self.data = data
        self.nl = nl
        self.parity = parity
        self.pos = 0
        self.count = 0
        self.last = -1  # the last such newline seen

    def before(self, unit: int) -> None:
        """Take in every newline that ends at or before ``unit``."""
        find = self.data.find
        q = find(self.nl, self.pos, unit)
        while q != -1:
            if q % 2 == self.parity:
                self.count += 1
                self.last = q
            q = find(self.nl, q + 1, unit)
        self.pos = max(self.pos, unit - 1)


def utf16_chunks(chunk: Chunk, warn: Warn = _no_warn) -> Iterator[Chunk]:
    """A chunk of the decoded line around every UTF-16 ``ka_live_`` in the chunk.

    Linear in the chunk: lines are counted on from the previous hit, each hit decodes a bounded
    window, and past :data:`HIT_LIMIT` hits that decode to no key the rest is left, with a
    warning."""
    data = chunk.data
    lo, hi = chunk.fresh, len(data) - chunk.tail
    at_start = chunk.line == 1 and chunk.column == 0 and chunk.fresh == 0
    bom = data[:2] if at_start and data[:2] in (b"\xff\xfe", b"\xfe\xff") else b""
    lines: dict[tuple[bytes, int], _NewLines] = {}
    empty = 0
    for p in _utf16_hits(data, lo, hi):
        # ASCII in UTF-16 reads the same in both byte orders one byte apart: big-endian only
        # with its BOM, or for a whole file that starts with a NUL and has the hit at an odd offset
        if bom == b"\xfe\xff" or (not bom and at_start and p % 2 and data[:1] == b"\0"):
            enc, unit, nl = "utf-16-be", p - 1, b"\0\n"
        else:
            enc, unit, nl = "utf-16-le", p, b"\n\0"
        if unit < 0:
            continue
        if empty >= HIT_LIMIT:
            warn(_hit_limit(chunk, "UTF-16"))
            return
        tracker = lines.get((nl, unit % 2))
        if tracker is None:
            tracker = lines[nl, unit % 2] = _NewLines(data, nl, unit % 2)
        tracker.before(unit)
        out, key_shaped = _utf16_line(chunk, enc, unit, tracker, 2 if bom else 0)
        empty += not key_shaped
        yield out


def _utf16_line(
    chunk: Chunk, enc: str, unit: int, lines: _NewLines, first: int
) -> tuple[Chunk, bool]:
    data = chunk.data
    pos = lines.last  # the last encoded newline on a unit boundary before the hit
    if pos == -1:
        line = chunk.line
        line_start = first if chunk.line == 1 and chunk.fresh == 0 else unit % 2
        column0 = chunk.column
    else:
        line = chunk.line + lines.count
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
    key_shaped = _key_shaped(out[before : before + len(PREFIX) + BUILTIN_BODY_LEN])
    return (
        Chunk(
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
        ),
        key_shaped,
    )


def decode_chunks(
    chunks: Iterable[Chunk], decoders: Decoders, warn: Warn | None = None
) -> Iterator[Chunk]:
    """Every chunk, each followed by the decoded chunks of what it hides; ``warn`` hears of a
    chunk whose hits were more than :data:`HIT_LIMIT` (the scan is then incomplete)."""
    warn = warn or _no_warn
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
            yield from base64_chunks(chunk, warn)
        if u16 and binary:
            yield from utf16_chunks(chunk, warn)
