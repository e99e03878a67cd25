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
from typing import TYPE_CHECKING

from kascan.engine import hits as needle_hits
from kascan.model import Chunk, Decoders
from kascan.rules import BUILTIN_BODY_LEN, BUILTIN_PREFIX
from kascan.sources.needles import (
    CONTAINER_B64,
    CONTAINER_B64B64,
    LABELS,
    Extra,
    Needle,
    all_extras,
    plan,
)
from kascan.stats import LimitWarning

if TYPE_CHECKING:
    from kascan.sources.archives import Limits

Warn = Callable[[str], None]

PREFIX = BUILTIN_PREFIX.encode()
_CONTEXT = 1024  # base64 characters decoded on each side of a hit (a multiple of 4)
# "k\0a\0…_": both byte orders contain it
UTF16_PREFIX = bytes(b for c in PREFIX for b in (c, 0))[:-1]
UTF32_PREFIX = bytes(b for c in PREFIX for b in (c, 0, 0, 0))[:-3]
_B64_RUN = rb"[A-Za-z0-9+/_-]*"  # patterns compiled on first use (re caches them): not at start-up
_PAD_RUN = rb"=*"
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


SNIFF_NUL = 8192  # a chunk with no NUL in its first bytes is text (later chunks: anywhere)
_SMALL = 4096  # text chunks this small are also searched for the needles without a V


def might_hide_base64(data: bytes, lo: int = 0, text: bool = True) -> bool:
    """Whether an encoded-prefix needle starts at or after ``lo``: exact, from the one pass of
    :mod:`kascan.engine` over the chunk (``text`` is no longer needed). Every decoder's needle
    counts (base64, percent-encoding, escapes, hex, UTF-32, base64 of a container), so that the
    git history's pack-order read hands their blobs on."""
    found = needle_hits(data)
    return (
        any(s >= lo for s, _i in found.base64)
        or any(s >= lo for s, _i in found.extra)
        or any(p >= lo for p in found.utf32)
    )


_Hit = tuple[int, int, "Needle"]


def _find_needles(data: bytes, lo: int, hi: int, most: int) -> tuple[list[_Hit], bool]:
    """(group, start, needle) for the first ``most`` needles starting in [lo, hi], in the order
    of the 4-character groups they sit in, and whether more were left for a later call. Every
    needle is found in the one pass of :mod:`kascan.engine` over the chunk."""
    needles = plan().needles
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
    back = re.compile(_B64_RUN).match(data[lo_limit:start][::-1])
    i = start - (back.end() if back else 0)
    hi_limit = min(end + _CONTEXT, len(data))
    fwd = re.compile(_B64_RUN).match(data, end, hi_limit)
    j = fwd.end() if fwd else end
    pad = re.compile(_PAD_RUN).match(data, j, min(j + _CONTEXT + 2, len(data)))  # '=' padding
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


LAYER = " → "  # between the layers a finding was unwrapped from: base64 → base64 → gzip


def _label(chunk: Chunk, how: str) -> str:
    return f"{chunk.decoded}{LAYER}{how}" if chunk.decoded else how


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
                if needle.split or not _key_shaped(decoded[key_at:]):
                    wrapped = _wrapped_at(data, group)
                    if wrapped is not None:
                        decoded, key_at = wrapped[0], wrapped[1] + needle.align
                    elif needle.split:
                        empty += 1
                        continue
                empty += not _key_shaped(decoded[key_at:])
                yield _pinned(chunk, decoded, key_at, line, column, "base64")
                continue
            s2 = at + needle.align  # where the inner encoding's needle sits in the decoded bytes
            g2 = s2 - inner.lead
            if g2 >= 0 and decoded.startswith(inner.text, s2):
                dec2, at2 = _decode_at(decoded, g2)
                key_at = at2 + inner.align
                empty += not _key_shaped(dec2[key_at:])
                yield _pinned(chunk, dec2, key_at, line, column, f"base64{LAYER}base64")
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


def _big_endian(data: bytes, p: int, width: int) -> bool:
    """Whether the ASCII prefix found at ``p`` (``k`` then NULs) is big-endian text: the unit
    before ``k`` is NUL, and little-endian would not hold a whole key (the high byte of its
    last character is not NUL, or is missing), as in a binary plist's UTF-16BE string."""
    if p < width - 1 or data[p - width + 1 : p] != b"\0" * (width - 1):
        return False
    last = p + width * (len(PREFIX) + BUILTIN_BODY_LEN) - 1
    return last >= len(data) or data[last] != 0


class _NewLines:
    """Encoded newlines on one byte parity before increasing offsets, counted from the
    previous offset on (one pass over a chunk, however many hits it holds)."""

    __slots__ = ("count", "data", "last", "nl", "parity", "pos", "width")

    def __init__(self, data: bytes, nl: bytes, parity: int, width: int = 2) -> None:
        self.data = data
        self.nl = nl
        self.width = width
        self.parity = parity
        self.pos = 0
        self.count = 0
        self.last = -1  # the last such newline seen

    def before(self, unit: int) -> None:
        """Take in every newline that ends at or before ``unit``."""
        find = self.data.find
        q = find(self.nl, self.pos, unit)
        while q != -1:
            if q % self.width == self.parity:
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
        if (
            bom == b"\xfe\xff"
            or (not bom and at_start and p % 2 and data[:1] == b"\0")
            or (not bom and _big_endian(data, p, 2))
        ):
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
    column = column0 + (win_lo - line_start) // 2
    return _decoded_line(chunk, out, line, column, before, enc), key_shaped


_MIME_LINE = 1000  # characters of a line of wrapped base64, at most (RFC 5322: 998)


def _wrapped_at(data: bytes, group: int) -> tuple[bytes, int] | None:
    """Decode the lines of wrapped base64 (MIME at 76 columns, PEM at 64: every full line a
    multiple of 4 characters) around the 4-character group at ``group``: up to two lines before
    and three after, joined. Returns the decoded bytes and the offset in them of the group's
    first byte, or None when the line is not such a line."""
    lo = max(group - _MIME_LINE, 0)
    ls = data.rfind(b"\n", lo, group) + 1
    if ls == 0 and lo > 0:
        return None  # a longer line: not wrapped base64 (MIME lines are at most 998)
    if data.find(b"\n", group, group + _MIME_LINE) == -1 and group + _MIME_LINE < len(data):
        return None
    hit = _line_at(data, ls)
    cs, ce, _next = hit
    width = ce - cs
    if width < 16 or width % 4 or (group - cs) % 4 or cs > group or not _all_b64(data, cs, ce):
        return None
    lines = [hit]
    for _ in range(2):  # the lines before: full lines of the same width
        ls = _line_start(data, lines[0][0])
        if ls == 0:
            break
        prev = _line_at(data, _line_start(data, ls - 1))
        if prev[1] - prev[0] != width or not _all_b64(data, prev[0], prev[1]):
            break
        lines.insert(0, prev)
    k = hit[2]
    for _ in range(3):  # the lines after: the last one may be shorter, and padded
        if k >= len(data):
            break
        nxt = _line_at(data, k)
        n = nxt[1] - nxt[0]
        if n <= 0 or n > width or not _all_b64(data, nxt[0], nxt[1], pad=True):
            break
        lines.append(nxt)
        k = nxt[2]
        if n < width:
            break
    if len(lines) == 1:
        return None
    joined = b"".join(data[a:b] for a, b, _n in lines)
    offset = sum(b - a for a, b, _n in lines[: lines.index(hit)]) + group - cs
    return _b64decode(joined), offset // 4 * 3


def _line_start(data: bytes, at: int) -> int:
    """The start of the line holding ``data[at]``; a line longer than wrapped base64's is cut."""
    lo = max(at - _MIME_LINE - 2, 0)
    return max(data.rfind(b"\n", lo, at) + 1, lo)


def _line_at(data: bytes, ls: int) -> tuple[int, int, int]:
    """(start of the content after any indent, end before ``\r\n``, start of the next line)."""
    le = data.find(b"\n", ls, ls + _MIME_LINE + 2)
    if le == -1 and ls + _MIME_LINE + 2 < len(data):  # too long to be wrapped base64
        return ls, ls + _MIME_LINE + 1, ls + _MIME_LINE + 1
    nxt = len(data) if le == -1 else le + 1
    le = len(data) if le == -1 else le
    ce = le - 1 if le > ls and data[le - 1] == 0x0D else le
    cs = ls
    while cs < ce and data[cs] in b" \t":
        cs += 1
    return cs, ce, nxt


def _all_b64(data: bytes, a: int, b: int, pad: bool = False) -> bool:
    m = re.compile(_B64_RUN).match(data, a, b)
    end = m.end() if m else a
    if pad:
        p = re.compile(_PAD_RUN).match(data, end, b)
        end = p.end() if p else end
    return end == b


# --------------------------------------------------------------------------- other encodings
#
# percent-encoding, escapes and hex: the needle is the encoded prefix itself, so the key starts
# where the needle does; a small window from there (and a few bytes before it, for the left
# boundary) is decoded and the matcher confirms the key there. Base64 of a container (gzip,
# zstd, lz4, xz, a zip; base64 of base64 of gzip in a Helm release Secret) is decoded whole and
# opened by the archive layer, with one depth limit for every layer.


_ESCAPE = (  # compiled on first use (~2 ms: not at start-up)
    rb"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|[0-7]{1,3}|.)"
    rb"|&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z]{2,10});"
)
_ONE_LETTER = {b"n": b"\n", b"t": b"\t", b"r": b"\r", b"b": b"\b", b"f": b"\f", b"v": b"\v"}
_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")
_WINDOW = 512  # encoded bytes decoded after a hit (a key escaped character by character fits)


def _unescape_one(m: re.Match[bytes]) -> bytes:
    esc, ent = m.group(1), m.group(2)
    if esc is not None:
        c = esc[:1]
        if c == b"x":
            return bytes([int(esc[1:], 16)])
        if c == b"u":
            return chr(int(esc[1:], 16)).encode("utf-8", "replace")
        if c.isdigit() and c in b"01234567":
            return bytes([int(esc, 8) & 0xFF])
        return _ONE_LETTER.get(esc, esc)
    if ent.startswith(b"#"):
        n = int(ent[2:], 16) if ent[1:2] in (b"x", b"X") else int(ent[1:])
        return chr(n).encode("utf-8", "replace") if n < 0x110000 else b"?"
    import html

    return html.unescape("&" + ent.decode("ascii") + ";").encode("utf-8", "replace")


def _unescape(data: bytes) -> bytes:
    return re.compile(_ESCAPE, re.DOTALL).sub(_unescape_one, data)


def _unquote(data: bytes, passes: int) -> bytes:
    from urllib.parse import unquote_to_bytes

    for _ in range(passes):
        data = unquote_to_bytes(data)
    return data


def _window(x: Extra, data: bytes, s: int) -> tuple[bytes, int] | None:
    """The decoded bytes around the encoded prefix at ``s``, and where the prefix starts in
    them; None when the needle is not where an encoding starts (hex at an odd digit)."""
    before, after = data[max(s - 16, 0) : s], data[s : s + _WINDOW]
    if x.family == "percent":
        dec_before, dec_after = _unquote(before, x.passes), _unquote(after, x.passes)
    elif x.family == "escapes":
        dec_before, dec_after = _unescape(before), _unescape(after)
    else:
        k = s
        while k > max(s - 4096, 0) and data[k - 1] in _HEX_DIGITS:
            k -= 1
        if (s - k) % 2:
            return None
        n = 0
        while n < len(after) and after[n] in _HEX_DIGITS:
            n += 1
        dec_after = bytes.fromhex(after[: n - n % 2].decode("ascii"))
        dec_before = bytes.fromhex(data[s - 2 : s].decode("ascii")) if s - k >= 2 else b""
    return dec_before + dec_after, len(dec_before)


def extra_chunks(
    chunk: Chunk, decoders: Decoders, warn: Warn = _no_warn, limits: Limits | None = None
) -> Iterator[Chunk]:
    """A pinned chunk of decoded bytes for every percent-encoded, escaped or hex-encoded key
    prefix in the chunk; the members of every base64-encoded container (when ``limits``)."""
    data = chunk.data
    lo, hi = chunk.fresh, len(data) - chunk.tail
    extras = all_extras()
    on = {
        "percent": decoders.percent,
        "escapes": decoders.escapes,
        "hex": decoders.hex,
        "container": decoders.base64 and limits is not None,
    }
    where = _Where(chunk)
    empty = 0
    done_to = -1
    value_end = [-1]  # the end of the last base64 value decoded as a container
    for s, i in needle_hits(data).extra:
        x = extras[i]
        if not (lo <= s < hi and on[x.family]) or s < done_to:
            continue
        if x.family == "container":
            assert limits is not None
            if s < value_end[0]:  # inside a value already decoded: each byte decoded once
                continue
            line, column = where.at(s)
            yield from _container_chunks(chunk, s, line, column, limits, warn, value_end)
            continue
        got = _window(x, data, s)
        if got is None:
            continue
        if empty >= HIT_LIMIT:
            warn(_hit_limit(chunk, "encoded"))
            return
        decoded, key_at = got
        empty += not _key_shaped(decoded[key_at:])
        line, column = where.at(s)
        done_to = s + len(x.text)
        yield _pinned(chunk, decoded, key_at, line, column, LABELS[x.family])


def _b64_value(data: bytes, s: int, cap: int) -> tuple[bytes | None, int]:
    """The base64 value starting at ``s``, continued over line breaks while every line is a
    multiple of 4 characters (MIME), and where it ends; None when it is longer than ``cap``."""
    parts: list[bytes] = []
    total = 0
    j = s
    n = len(data)
    while True:
        m = re.compile(_B64_RUN).match(data, j, min(j + cap + 1, n))
        e = m.end() if m else j
        parts.append(data[j:e])
        total += e - j
        if total > cap:
            return None, e
        if (e - j) % 4 or e >= n or data[e] not in b"\r\n":
            break
        k = e + 1 + (data[e] == 0x0D and data[e + 1 : e + 2] == b"\n")
        while k < n and data[k] in b" \t":
            k += 1
        if k >= n or data[k] not in _B64_BYTES:
            break
        j = k
    return b"".join(parts), e


_B64_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_")


def _container_chunks(
    chunk: Chunk, s: int, line: int, column: int, limits: Limits, warn: Warn, ends: list[int]
) -> Iterator[Chunk]:
    """The members of the container that the base64 value at ``s`` decodes to (through any
    layers of base64), pinned to where the value starts, each layer named in ``decoded``;
    ``ends[0]`` is set to where the value ends (a hit inside it is not decoded again)."""
    from dataclasses import replace

    from kascan.sources.archives import expand, sniff

    data = chunk.data
    if s > 0 and data[s - 1] in _B64_BYTES:  # not where a value starts
        return
    cap = limits.max_in_memory
    text, ends[0] = _b64_value(data, s, cap * 4 // 3)
    if text is None:
        warn(
            LimitWarning(
                "decoded-bytes",
                f"{chunk.path}:{line}: a base64 value over {cap >> 20} MiB decoded (limit): "
                "not opened",
            )
        )
        return
    layers = ["base64"]
    raw = _b64decode(text)
    while raw.startswith(CONTAINER_B64 + CONTAINER_B64B64):
        if len(layers) >= limits.max_depth:
            warn(
                LimitWarning(
                    "archive-depth",
                    f"{chunk.path}:{line}: base64 nested more than {limits.max_depth} deep: "
                    "not opened (limit)",
                )
            )
            return
        layers.append("base64")
        raw = _b64decode(b"".join(raw.split()))
    kind = sniff(raw[:512])
    if kind is None:
        return
    label = LAYER.join(layers)
    if chunk.decoded:
        label = chunk.decoded + LAYER + label
    for member in expand(chunk.path, raw, limits, warn, depth=len(layers)):
        if member.path == chunk.path and member.decoded is None:
            # not an archive after all (a broken one, read as plain bytes): the base64 decoder
            # reads these bytes anyway, so a key in them is found once, not twice
            continue
        inner = [member.decoded] if member.decoded and member.decoded != kind else []
        yield replace(
            member,
            line=line,
            column=column,
            pinned=True,
            decoded=LAYER.join([label, kind, *inner]),
            commit=chunk.commit,
            repo=chunk.repo,
            origin=chunk.origin,
        )


# --------------------------------------------------------------------------- UTF-32


def utf32_chunks(chunk: Chunk, warn: Warn = _no_warn) -> Iterator[Chunk]:
    """A chunk of the decoded line around every UTF-32 ``ka_live_`` (LE or BE, BOM or not)."""
    data = chunk.data
    lo, hi = chunk.fresh, len(data) - chunk.tail
    at_start = chunk.line == 1 and chunk.column == 0 and chunk.fresh == 0
    bom = 4 if at_start and data[:4] in (b"\xff\xfe\0\0", b"\0\0\xfe\xff") else 0
    lines: dict[tuple[bytes, int], _NewLines] = {}
    empty = 0
    for p in needle_hits(data).utf32:
        if not lo <= p <= hi - len(UTF32_PREFIX):
            continue
        be_file = data[:4] == b"\0\0\xfe\xff" or (not bom and data[:3] == b"\0\0\0")
        if _big_endian(data, p, 4) or (at_start and be_file and p % 4 == 3):
            enc, unit, nl = "utf-32-be", p - 3, b"\0\0\0\n"
        else:
            enc, unit, nl = "utf-32-le", p, b"\n\0\0\0"
        if empty >= HIT_LIMIT:
            warn(_hit_limit(chunk, "UTF-32"))
            return
        tracker = lines.get((nl, unit % 4))
        if tracker is None:
            tracker = lines[nl, unit % 4] = _NewLines(data, nl, unit % 4, 4)
        tracker.before(unit)
        if tracker.last == -1:
            line, column0 = chunk.line, chunk.column
            line_start = bom if at_start else unit % 4
        else:
            line, column0, line_start = chunk.line + tracker.count, 0, tracker.last + 4
        win_lo = max(line_start, unit - 4 * _U16_CONTEXT)
        win_lo += (unit - win_lo) % 4
        text = data[win_lo:unit].decode(enc, "replace")
        after = data[unit : unit + 4 * _U16_CONTEXT]
        after = after[: len(after) - len(after) % 4]
        before = len(text.encode("utf-8"))
        text += after.decode(enc, "replace").partition("\n")[0]
        out = text.encode("utf-8")
        empty += not _key_shaped(out[before:])
        yield _decoded_line(chunk, out, line, column0 + (win_lo - line_start) // 4, before, enc)


def _decoded_line(chunk: Chunk, out: bytes, line: int, column: int, before: int, enc: str) -> Chunk:
    """The decoded line around a UTF-16/UTF-32 hit as a chunk: matches start at ``before``."""
    return Chunk(
        chunk.path,
        out,
        line,
        column,
        fresh=before,
        tail=max(len(out) - before - 1, 0),
        commit=chunk.commit,
        repo=chunk.repo,
        decoded=_label(chunk, enc[:6] + enc[7:]),
        origin=chunk.origin,
    )


_LIMITS: list[Limits] = []


def _default_limits() -> Limits:
    if not _LIMITS:  # imported once, not per file
        from kascan.sources.archives import DEFAULT_LIMITS

        _LIMITS.append(DEFAULT_LIMITS)
    return _LIMITS[0]


def decode_chunks(
    chunks: Iterable[Chunk], decoders: Decoders, warn: Warn | None = None
) -> Iterator[Chunk]:
    """Every chunk, each followed by the decoded chunks of what it hides; ``warn`` hears of a
    chunk whose hits were more than :data:`HIT_LIMIT` (the scan is then incomplete).

    Every decoder is gated on the engine's one pass over the chunk: a chunk without a needle
    hit costs nothing more."""
    warn = warn or _no_warn
    if not decoders.decoding:
        yield from chunks
        return
    b64, u16, u32 = decoders.base64, decoders.utf16, decoders.utf32
    other = decoders.percent or decoders.escapes or decoders.hex or b64
    limits = _default_limits() if decoders.archives and b64 else None
    for chunk in chunks:
        yield chunk
        if chunk.pinned:
            continue
        data = chunk.data
        found = needle_hits(data)
        if not found:
            continue
        # UTF-16 text and binaries have NULs from their first bytes on, plain text never
        binary = data.find(b"\0", 0, SNIFF_NUL) != -1 or (
            len(data) > SNIFF_NUL and chunk.fresh > 0 and b"\0" in data
        )
        if b64 and any(s >= chunk.fresh for s, _i in found.base64):
            yield from base64_chunks(chunk, warn)
        if other and found.extra:
            yield from extra_chunks(chunk, decoders, warn, limits)
        if binary and u16 and found.utf16:
            yield from utf16_chunks(chunk, warn)
        if u32 and found.utf32:
            yield from utf32_chunks(chunk, warn)
