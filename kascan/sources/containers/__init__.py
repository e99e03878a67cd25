"""Containers beyond zip, tar and gzip/bzip2/xz (issue 15), each a generator of member chunks.

:func:`members` is called by :mod:`kascan.sources.archives` once a format's magic bytes are
seen; every member goes back through :func:`kascan.sources.archives.member_chunks`, so the
limits (depth, bytes per member and per file, members per file) apply to every layer and a
member that is itself a container is opened in turn.

* ``zstd``, ``lz4``: compressed streams (:mod:`.streams`; PyPI ``zstandard``, ``lz4``)
* ``7z`` (:mod:`.sevenz`; PyPI ``py7zr``), ``ar`` (.deb, .a), ``cpio``, ``rpm`` (:mod:`.packages`)
* ``crx`` and self-extracting zips (``sfx``): a zip behind a header or a program (:mod:`.sfx`)
* ``pdf``: the raw bytes, then every ``FlateDecode`` stream inflated (:mod:`.pdf`)
* ``sqlite``: every text and blob cell through ``sqlite3``, read-only, then the free space of
  its pages, where deleted rows stay (:mod:`.sqlite`)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from kascan.model import Chunk

if TYPE_CHECKING:
    from kascan.sources.archives import Budget, Limits, Source

Warn = Callable[[str], None]


def members(
    kind: str,
    path: str,
    fh: Source,
    depth: int,
    limits: Limits,
    budget: Budget,
    warn: Warn,
) -> Iterator[Chunk]:
    """The chunks of one container of ``kind`` (a seekable file object for the formats that need
    one: 7z, pdf, sqlite, crx, sfx)."""
    if kind == "7z":
        from kascan.sources.containers.sevenz import sevenz_members as gen
    elif kind in ("ar", "cpio", "rpm"):
        from kascan.sources.containers.packages import package_members

        return package_members(kind, path, fh, depth, limits, budget, warn)
    elif kind in ("crx", "sfx"):
        from kascan.sources.containers.sfx import sfx_members as gen
    elif kind == "pdf":
        from kascan.sources.containers.pdf import pdf_members as gen
    elif kind == "sqlite":
        from kascan.sources.containers.sqlite import sqlite_members as gen
    else:  # pragma: no cover - sniff names only the kinds above
        raise ValueError(f"unknown container {kind}")
    return gen(path, fh, depth, limits, budget, warn)
