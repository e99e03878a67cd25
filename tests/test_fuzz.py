"""Fuzz targets for every archive and decoder entry point (issue 12).

Each target starts from real seeds (archives written by zipfile, tarfile, gzip, bz2, lzma; base64
and UTF-16 text made by the codecs), each holding a key generated at test time, and mutates their
bytes: flips, boundary values, 2-, 4- and 8-byte integers written over headers, insertions,
deletions, truncations. Every mutant is read the three ways kascan reads content: as a git blob
(in memory, seekable), as stdin (a stream) and as a file on disk (a descriptor), then decoded and
matched. Two properties must hold:

* no exception escapes (a hostile input is a warning, never the end of a run), and every
  warning is one line;
* every key found is in the input: literally, or in what an independent best-effort decoder in
  this file (zlib, bz2, lzma at every magic and zip local header, base64 at every alignment, UTF-16
  at both byte orders) gets out of it. kascan never reports a key that is not there.

The examples are derandomized and the database is off, so CI runs the same ~60 s every time;
``HYPOTHESIS_PROFILE=fuzz-deep`` runs ten times as many random examples.
"""

from __future__ import annotations

import base64
import bz2
import contextlib
import gzip
import io
import lzma
import os
import random
import re
import struct
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kascan.match import find_candidates
from kascan.model import Chunk
from kascan.rules import builtin_rules
from kascan.sources.archives import DEFAULT_LIMITS, expand, iter_content
from kascan.sources.decode import Decoders, decode_chunks
from tests.conftest import make_key

settings.register_profile(
    "fuzz-ci",
    max_examples=4000,
    deadline=timedelta(seconds=5),
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "fuzz-deep",
    max_examples=15000,
    deadline=timedelta(seconds=5),
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "")
FUZZ = settings.get_profile(PROFILE if PROFILE.startswith("fuzz-") else "fuzz-ci")

RULES = builtin_rules()
_RNG = random.Random("kascan-fuzz")
KEYS = [make_key(_RNG) for _ in range(4)]


# --------------------------------------------------------------------------- seeds


def _zip(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED, z64: bool = False) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as zf:
        for name, data in members.items():
            with zf.open(zipfile.ZipInfo(name), "w", force_zip64=z64) as fh:
                fh.write(data)
    return out.getvalue()


def _tar(members: dict[str, bytes], fmt: int = tarfile.PAX_FORMAT, mode: str = "w") -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=mode, format=fmt) as tf:  # type: ignore[call-overload]
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_700_000_000
            tf.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _text(key: str) -> bytes:
    return f"# config\nname: app\napi_key: {key}\nregion: eu\n".encode()


K0, K1, K2, K3 = KEYS
ZIP_SEEDS = [
    _zip({"a.txt": _text(K0)}),
    _zip({"a.txt": _text(K0), "dir/b.env": f"K={K1}\n".encode()}, zipfile.ZIP_STORED),
    _zip({"x.properties": _text(K2)}, zipfile.ZIP_BZIP2),
    _zip({"z64.txt": _text(K3)}, zipfile.ZIP_STORED, z64=True),
    _zip({"": _text(K1)}, zipfile.ZIP_STORED),  # an empty member name
]
TAR_SEEDS = [
    _tar({"a.txt": _text(K0)}, tarfile.USTAR_FORMAT),
    _tar({"l" * 150 + "/b.txt": _text(K1)}, tarfile.GNU_FORMAT),  # a GNU long name
    _tar({"p" * 120 + "/é.txt": _text(K2)}, tarfile.PAX_FORMAT),  # a pax header
    _tar({"c.txt": _text(K3), "d.txt": b"nothing\n"}, tarfile.PAX_FORMAT, "w:gz"),
]
COMPRESSED_SEEDS = [
    gzip.compress(_text(K0)),
    gzip.compress(_text(K1)) + gzip.compress(b"second member\n"),  # a multi-member gzip
    bz2.compress(_text(K2)),
    lzma.compress(_text(K3)),
]


def _b64_text(key: str) -> bytes:
    raw = key.encode()
    lines = [
        b"data:",
        b"  a: " + base64.b64encode(raw),
        b"  b: " + base64.b64encode(b"x" + raw),
        b"  c: " + base64.urlsafe_b64encode(b"yz" + raw).rstrip(b"="),
        b"  d: " + base64.b64encode(base64.b64encode(b"q" + raw)),
        b"  e: " + base64.b64encode(b"token=" + raw + b"&scope=all"),
    ]
    return b"\n".join(lines) + b"\n"


B64_SEEDS = [_b64_text(K0), _b64_text(K1)[:200], base64.b64encode(_text(K2))]
UTF16_SEEDS = [
    _text(K0).decode().encode("utf-16"),  # with a BOM
    _text(K1).decode().encode("utf-16-le"),
    b"\0" + _text(K2).decode().encode("utf-16-be"),
    b"\0\0bin\0" + f"k={K3}\r\n".encode("utf-16-le") + b"\0" * 8,
]
NESTED_SEEDS = [
    _zip({"lib/inner.tgz": _tar({"conf/app.yaml": _b64_text(K0)}, mode="w:gz")}),
    gzip.compress(_zip({"a/b.zip": _zip({"c.txt": _text(K1)})}, zipfile.ZIP_STORED)),
    _tar({"x.zip": _zip({"y.txt.gz": gzip.compress(_text(K2).decode().encode("utf-16-le"))})}),
]


# --------------------------------------------------------------------------- mutations

_INTS = [0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 2**63 - 1, 2**63 + 5, 2**64 - 1]


@st.composite
def mutants(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 6))):
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["byte", "flip", "int", "insert", "delete", "truncate", "dup"]))
        if op == "byte":
            data[pos] = draw(st.sampled_from([0, 0xFF, 0x7F, 0x80, 0x20, 0x0A, 0x3D]))
        elif op == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "int":
            width = draw(st.sampled_from([2, 4, 8]))
            value = draw(st.sampled_from(_INTS)) & ((1 << (8 * width)) - 1)
            data[pos : pos + width] = value.to_bytes(width, "little")
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 64))]
        elif op == "truncate":
            del data[pos:]
        else:  # a piece repeated: members and records twice
            n = draw(st.integers(1, 256))
            data[pos:pos] = data[pos : pos + n]
    return bytes(data)


# --------------------------------------------------------------------------- the scans


def _keys(chunks: Iterator[Chunk], warnings: list[str]) -> set[str]:
    found = set()
    for cand in find_candidates(decode_chunks(chunks, Decoders(), warnings.append), RULES):
        found.add(cand.finding.secret.value)
    return found


def _as_blob(data: bytes, warnings: list[str]) -> set[str]:
    return _keys(expand("blob", data, DEFAULT_LIMITS, warnings.append), warnings)


def _as_stream(data: bytes, warnings: list[str]) -> set[str]:
    src = io.BytesIO(data)
    chunks = iter_content(src.read, "<stdin>", by_line=True, warn=warnings.append)
    return _keys(chunks, warnings)


def _as_file(data: bytes, warnings: list[str]) -> set[str]:
    with tempfile.TemporaryFile() as fh:
        fh.write(data)
        fh.flush()
        fd = fh.fileno()
        os.lseek(fd, 0, os.SEEK_SET)

        def read(n: int) -> bytes:
            return os.read(fd, n)

        return _keys(iter_content(read, "file", warn=warnings.append, fd=fd), warnings)


SCANS: list[Callable[[bytes, list[str]], set[str]]] = [_as_blob, _as_stream, _as_file]


# --------------------------------------------------------------------------- the oracle

_OUT_CAP = 1 << 22


def _piecewise(make: Callable[[], object], data: bytes) -> bytes:
    """What a decompressor gets out of ``data`` before it fails or ends, fed one byte at a time
    so that an error (a bad CRC in the trailer) loses nothing that came before it."""
    out: list[bytes] = []
    total = 0
    dec = make()
    try:
        for i in range(min(len(data), 1 << 16)):
            piece: bytes = dec.decompress(data[i : i + 1])  # type: ignore[attr-defined]
            out.append(piece)
            total += len(piece)
            if total > _OUT_CAP or dec.eof:  # type: ignore[attr-defined]
                break
    except (zlib.error, OSError, EOFError, ValueError, lzma.LZMAError):
        pass
    return b"".join(out)


def _offsets(data: bytes, magic: bytes, most: int = 16) -> Iterator[int]:
    at = data.find(magic)
    while at != -1 and most:
        yield at
        most -= 1
        at = data.find(magic, at + 1)


def _decompressions(blob: bytes) -> list[bytes]:
    out = []
    for at in _offsets(blob, b"\x1f\x8b\x08"):
        body = _gzip_body(blob, at)
        if body is not None:
            out.append(_piecewise(lambda: zlib.decompressobj(-15), blob[body:]))
    for magic, make in (
        (b"BZh", bz2.BZ2Decompressor),
        (b"\xfd7zXZ\x00", lzma.LZMADecompressor),
    ):
        for at in _offsets(blob, magic):
            out.append(_piecewise(make, blob[at:]))
    for at in _offsets(blob, b"PK\x03\x04"):
        if at + 30 <= len(blob):
            n, m = struct.unpack("<HH", blob[at + 26 : at + 30])
            data = blob[at + 30 + n + m :]
            out.append(_piecewise(lambda: zlib.decompressobj(-15), data))
            out.append(_piecewise(bz2.BZ2Decompressor, data))
    return [o for o in out if o]


def _gzip_body(data: bytes, at: int) -> int | None:
    """Where the deflate data of the gzip member at ``at`` starts, read as Python's gzip module
    reads a header (reserved flags ignored, which zlib would refuse)."""
    flags, pos = data[at + 3 : at + 4], at + 10
    if not flags or pos > len(data):
        return None
    flag = flags[0]
    if flag & 4:  # FEXTRA
        if pos + 2 > len(data):
            return None
        pos += 2 + int.from_bytes(data[pos : pos + 2], "little")
    for bit in (8, 16):  # FNAME, FCOMMENT: NUL-terminated
        if flag & bit:
            end = data.find(b"\0", pos)
            if end == -1:
                return None
            pos = end + 1
    if flag & 2:  # FHCRC
        pos += 2
    return pos if pos <= len(data) else None


_RUN = re.compile(rb"[A-Za-z0-9+/_-]{12,}")
_TO_STD = bytes.maketrans(b"-_", b"+/")


def _b64_decodes(text: bytes) -> list[bytes]:
    out = []
    for m in _RUN.finditer(text):
        run = m.group(0).translate(_TO_STD)
        for shift in range(4):
            seg = run[shift:]
            seg = seg[: len(seg) - (len(seg) % 4 == 1)]
            seg += b"=" * (-len(seg) % 4)
            with contextlib.suppress(ValueError):
                out.append(base64.b64decode(seg))
    return out


def _utf16_decodes(text: bytes) -> list[bytes]:
    return [
        text[shift:].decode(enc, "replace").encode()
        for enc in ("utf-16-le", "utf-16-be")
        for shift in (0, 1)
    ]


def reference_texts(data: bytes) -> list[bytes]:
    """Everything an independent best-effort reader gets out of ``data``."""
    texts, todo = [], [(data, 0)]
    while todo and len(texts) < 400:
        blob, depth = todo.pop()
        texts.append(blob)
        if depth < 5:
            todo.extend((d, depth + 1) for d in _decompressions(blob))
    once = [d for t in texts for d in _b64_decodes(t)]
    twice = [d for t in once for d in _b64_decodes(t)]
    return texts + once + twice + [d for t in texts for d in _utf16_decodes(t)]


def check(data: bytes) -> set[str]:
    """Scan ``data`` every way; no exception, one-line warnings, no key that is not there."""
    found: set[str] = set()
    for scan in SCANS:
        warnings: list[str] = []
        keys = scan(data, warnings)
        assert all("\n" not in w and "\r" not in w for w in warnings), warnings
        found |= keys
    if found:
        texts = reference_texts(data)
        for key in found:
            assert any(key.encode() in t for t in texts), f"{key[:12]}… is not in the input"
    return found


# --------------------------------------------------------------------------- the targets


def test_seeds_hold_their_keys() -> None:
    """The seeds, unmutated: every way of reading finds the keys, and the oracle agrees."""
    for seed, want in [
        *((s, {k}) for s, k in zip(ZIP_SEEDS, [K0, K0, K2, K3, K1])),
        *((s, {k}) for s, k in zip(TAR_SEEDS, KEYS)),
        *((s, {k}) for s, k in zip(COMPRESSED_SEEDS, KEYS)),
        (B64_SEEDS[0], {K0}),
        (B64_SEEDS[2], {K2}),
        *((s, {k}) for s, k in zip(UTF16_SEEDS, KEYS)),
        *((s, {k}) for s, k in zip(NESTED_SEEDS, KEYS)),
    ]:
        for scan in SCANS:
            warnings: list[str] = []
            assert want <= scan(seed, warnings), (scan.__name__, seed[:40])
        assert want <= check(seed)
    assert check(ZIP_SEEDS[1]) == {K0, K1}


@FUZZ
@given(mutants(ZIP_SEEDS))
def test_fuzz_zip(data: bytes) -> None:
    check(data)


@FUZZ
@given(mutants(TAR_SEEDS))
def test_fuzz_tar(data: bytes) -> None:
    check(data)


@FUZZ
@given(mutants(COMPRESSED_SEEDS))
def test_fuzz_gzip_bz2_xz(data: bytes) -> None:
    check(data)


@FUZZ
@given(mutants(B64_SEEDS))
def test_fuzz_base64(data: bytes) -> None:
    check(data)


@FUZZ
@given(mutants(UTF16_SEEDS))
def test_fuzz_utf16(data: bytes) -> None:
    check(data)


@FUZZ
@given(mutants(NESTED_SEEDS))
def test_fuzz_nested(data: bytes) -> None:
    check(data)


@FUZZ
@given(st.binary(max_size=2048))
def test_fuzz_random_bytes(data: bytes) -> None:
    """No seed at all: bytes that rarely look like anything (keys cannot appear by chance)."""
    assert check(data) == set()
