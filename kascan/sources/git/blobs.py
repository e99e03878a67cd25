"""Named blobs read through one ``git cat-file --batch`` (the staged files, a change's binary
objects, the walked history): apart from :mod:`.history`, so that the hook does not load it."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from kascan.errors import KascanError
from kascan.model import Chunk
from kascan.sources.git.process import GitRepo, finish, kill, popen
from kascan.sources.stream import WINDOW, iter_stream
from kascan.stats import ScanStats, skipped

if TYPE_CHECKING:
    from kascan.progress import Progress


@dataclass(frozen=True, slots=True)
class Blob:
    oid: str
    size: int
    path: str  # one of the paths it appears at (rev-list's name); attribution finds all


def iter_blobs(
    repo: GitRepo,
    blobs: Sequence[Blob],
    *,
    label: str | None = None,
    progress: Progress | None = None,
    stats: ScanStats | None = None,
    note: Callable[[str], None] | None = None,
) -> Iterator[Chunk]:
    """Each blob's bytes through one ``git cat-file --batch``: whole, or in windows when big.

    Each chunk's ``origin`` is its blob's id; ``note`` (``-v``) hears of each missing one.
    """
    import threading

    proc = popen(repo, "cat-file", "--batch", stdin=subprocess.PIPE)
    stdin, out = proc.stdin, proc.stdout
    assert stdin is not None and out is not None

    def feed() -> None:
        try:
            for b in blobs:
                stdin.write(b.oid.encode() + b"\n")
            stdin.close()
        except (OSError, ValueError):
            pass

    writer = threading.Thread(target=feed, name="kascan-cat-file-feed", daemon=True)
    writer.start()
    total, done, nbytes = len(blobs), 0, 0
    try:
        for blob in blobs:
            header = out.readline()
            parts = header.split()
            if len(parts) == 2 and parts[1] == b"missing":
                if stats is not None:
                    stats.skipped["missing-object"] += 1
                if note is not None:
                    where = blob.path or f"object {blob.oid[:12]}"
                    note(skipped(where, f"object {blob.oid[:12]} is missing from {repo.display}"))
                done += 1
                continue
            if len(parts) != 3:
                raise KascanError(f"git cat-file gave an unexpected reply in {repo.display}")
            size = int(parts[2])
            if size <= WINDOW:
                data = out.read(size)
                if len(data) != size:
                    raise KascanError(f"git cat-file stopped early in {repo.display}")
                out.read(1)
                yield Chunk(blob.path, data, repo=label, origin=blob.oid, whole=True)
            else:
                left = size

                def read(n: int) -> bytes:
                    nonlocal left
                    block = out.read(min(n, left)) if left > 0 else b""
                    left -= len(block)
                    return block

                for chunk in iter_stream(read, blob.path):
                    yield replace(chunk, repo=label, origin=blob.oid)
                while left > 0:
                    if not read(1 << 20):
                        raise KascanError(f"git cat-file stopped early in {repo.display}")
                out.read(1)
            done += 1
            nbytes += size
            if stats is not None:
                stats.bytes += size
            if progress is not None:
                progress.update(done, total, nbytes)
        writer.join()
        finish(repo, proc, "cat-file --batch")
    finally:
        if progress is not None:
            progress.close()
        kill(proc)
