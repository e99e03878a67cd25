"""The decoders' needles: the bytes that each encoding of the key's prefix always contains,
found in one pass by :mod:`kascan.engine` and confirmed by :mod:`kascan.sources.decode`. Apart
from both, so that neither imports the other."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kascan.rules import BUILTIN_PREFIX

PREFIX = BUILTIN_PREFIX.encode()


@dataclass(frozen=True, slots=True)
class Needle:
    text: bytes  # characters of the encoding that depend on the prefix only
    lead: int  # characters of the 4-character group before ``text``
    align: int  # bytes of the 3-byte group before what is encoded
    inner: Needle | None = None  # base64 of base64: the needle this one encodes
    split: bool = False  # a line break inside (MIME base64 wrapped at 76 columns, PEM at 64)


def _b64(data: bytes) -> bytes:
    """``base64.b64encode`` (binascii's: the base64 module and its imports cost start-up)."""
    import binascii

    return binascii.b2a_base64(data, newline=False)


def _stable(prefix: bytes, align: int) -> tuple[bytes, int]:
    enc = _b64(b"\0" * align + prefix)
    first = -(-8 * align // 6)  # first character made only of prefix bits
    end = (8 * align + 8 * len(prefix)) // 6
    return enc[first:end], first


def _needles(double: bool) -> tuple[Needle, ...]:
    singles = [Needle(*_stable(PREFIX, a), a) for a in range(3)]
    out = list(singles)
    if double:
        out += [Needle(*_stable(n.text, a), a, n) for n in singles for a in range(3)]
    url = bytes.maketrans(b"+/", b"-_")
    for n in list(out):
        alt = n.text.translate(url)
        if alt != n.text:
            out.append(Needle(alt, n.lead, n.align, n.inner))
    # wrapped base64 (standard alphabet): a line break at every place inside a single needle
    for n in singles:
        for i in range(1, len(n.text)):
            for nl in (b"\n", b"\r\n"):
                out.append(Needle(n.text[:i] + nl + n.text[i:], n.lead, n.align, None, True))
    return tuple(out)


Anchors = dict[int, tuple[tuple[int, Needle], ...]]  # byte before the anchor -> (offset, needle)


@dataclass(frozen=True, slots=True)
class Plan:
    needles: tuple[Needle, ...]
    by_v: Anchors  # every needle with a V past its first character
    by_w: Anchors  # the others (some base64-of-base64 alignments) all have a W


_PLAN: list[Plan] = []


def _anchors(needles: Iterable[Needle], anchor: bytes) -> Anchors:
    out: dict[int, list[tuple[int, Needle]]] = {}
    for n in needles:
        k = n.text.find(anchor, 1)
        while k != -1:
            out.setdefault(n.text[k - 1], []).append((k, n))
            k = n.text.find(anchor, k + 1)
    return {c: tuple(v) for c, v in out.items()}


def plan() -> Plan:
    if not _PLAN:
        needles = _needles(True)
        rest = [n for n in needles if n.text.find(b"V", 1) == -1]
        if any(n.text.find(b"W", 1) == -1 for n in rest):  # pragma: no cover - fixed prefix
            raise AssertionError("a base64 needle has neither V nor W")
        _PLAN.append(Plan(needles, _anchors(needles, b"V"), _anchors(rest, b"W")))
    return _PLAN[0]


def needle_texts() -> tuple[bytes, ...]:
    """The base64 needles' bytes, in the order of :mod:`kascan.engine`'s ``Hits.base64`` index."""
    return tuple(n.text for n in plan().needles)


@dataclass(frozen=True, slots=True)
class Extra:
    family: str  # "percent", "escapes", "hex", "container"
    text: bytes
    passes: int = 1  # percent-encoding: decoded this many times (%255F is %5F encoded again)


_EXTRAS: list[tuple[Extra, ...]] = []
LABELS = {"percent": "percent-encoding", "escapes": "escapes", "hex": "hex"}
# base64 of a container's magic: gzip, zstd (both alphabets), zip
CONTAINER_B64 = (b"H4sI", b"KLUv/", b"KLUv_", b"UEsDB")


def _deeper(text: bytes, layers: int) -> tuple[bytes, ...]:
    """The characters that base64 of ``text`` (as the start of a value) always begins with, for
    each further layer of base64, ``layers`` of them."""
    out = []
    for _ in range(layers):
        text = _b64(text)[: len(text) * 8 // 6]
        out.append(text)
    return tuple(out)


# base64 of base64 ... of gzip (a Helm release is two layers), one past the depth limit so that
# going over it is a warning, not a silent miss; of base64 of base64 of a zip
CONTAINER_B64B64 = (*_deeper(b"H4sI", 4), *_deeper(b"UEsDB", 1), *_deeper(b"KLUv/", 1))


def all_extras() -> tuple[Extra, ...]:
    if not _EXTRAS:
        out: list[Extra] = []
        for u in (b"5F", b"5f"):
            out.append(Extra("percent", b"ka%" + u + b"live%" + u))
            out.append(Extra("percent", b"ka%25" + u + b"live%25" + u, 2))
        for e in (b"\\x5f", b"\\x5F", b"\\u005f", b"\\u005F", b"\\137"):
            out.append(Extra("escapes", b"ka" + e + b"live" + e))
        for e in (b"&#95;", b"&#x5f;", b"&#x5F;", b"&lowbar;"):
            out.append(Extra("escapes", b"ka" + e + b"live" + e))
        for fmt in (b"\\x%02x", b"\\x%02X", b"\\u%04x", b"\\u%04X"):  # every character
            out.append(Extra("escapes", b"".join(fmt % c for c in PREFIX[:3])))
        out.append(Extra("hex", PREFIX.hex().encode()))
        out.append(Extra("hex", PREFIX.hex().upper().encode()))
        for magic in (*CONTAINER_B64, *CONTAINER_B64B64):
            out.append(Extra("container", magic))
        _EXTRAS.append(tuple(out))
    return _EXTRAS[0]


def extra_needle_texts() -> tuple[bytes, ...]:
    """The other decoders' needles, in the order of :mod:`kascan.engine`'s ``Hits.extra``."""
    return tuple(x.text for x in all_extras())
