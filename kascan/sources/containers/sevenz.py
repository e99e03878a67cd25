"""7z archives (PyPI ``py7zr``, installed with kascan).

py7zr extracts through a writer factory: each member is written to a capped in-memory writer
(nothing touches the disk), and when the members so held pass ``max_in_memory`` or the file's
decompressed budget, extraction is stopped by the writer itself (a 7z bomb ends there, with a
warning). Members are then scanned in archive order; symlinks are never extracted, encrypted
archives are a warning."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, cast

from kascan.model import Chunk
from kascan.sources.archives import clean_name, member_chunks, members_warning
from kascan.stats import LimitWarning, human_bytes

if TYPE_CHECKING:
    from kascan.sources.archives import Budget, Limits, Source

Warn = Callable[[str], None]


class _Full(Exception):
    """Raised by a writer to stop py7zr: the members held have reached a limit."""

    def __init__(self, limit: str) -> None:
        super().__init__(limit)
        self.limit = limit


def sevenz_members(
    path: str, fh: Source, depth: int, limits: Limits, budget: Budget, warn: Warn
) -> Iterator[Chunk]:
    import py7zr
    from py7zr.io import Py7zIO, WriterFactory

    held: dict[str, bytearray] = {}
    total = [0]
    cap = min(limits.max_member_bytes, limits.max_in_memory)
    cut: set[str] = set()

    class Writer(Py7zIO):
        def __init__(self, name: str) -> None:
            self.name = name
            self.buf = held.setdefault(name, bytearray())

        def write(self, s: bytes | bytearray) -> int:
            room = cap - len(self.buf)
            if len(s) > room:
                cut.add(self.name)
            take = s[: max(room, 0)]
            self.buf += take
            total[0] += len(s)
            if total[0] > limits.max_in_memory or total[0] > budget.bytes_left:
                raise _Full("archive-bytes")
            return len(s)

        def read(self, size: int | None = None) -> bytes:
            return b""

        def seek(self, offset: int, whence: int = 0) -> int:
            return 0

        def flush(self) -> None:
            return None

        def size(self) -> int:
            return len(self.buf)

    class Factory(WriterFactory):
        def create(self, filename: str) -> Py7zIO:
            return Writer(filename)

    with py7zr.SevenZipFile(cast("IO[bytes]", fh), mode="r") as zf:
        if zf.needs_password():
            warn(f"{path}: encrypted 7z archive not scanned")
            return
        infos = zf.list()
        if len(infos) > min(budget.members_left, limits.max_members):
            warn(members_warning(path, limits))
            infos = infos[: max(budget.members_left, 0)]
        wanted = [i.filename for i in infos if i.is_file]  # never a symlink or a device
        budget.members_left -= len(infos)
        stopped = False
        try:
            if wanted:
                zf.extract(targets=wanted, factory=Factory())
        except _Full:
            stopped = True
    budget.bytes_left -= total[0]
    for name in wanted:
        data = held.get(name)
        if data is None:
            continue
        label = f"{path}!{clean_name(name) or '?'}"
        yield from member_chunks(label, io.BytesIO(bytes(data)), depth, limits, budget, warn)
        if name in cut:
            warn(
                LimitWarning(
                    "member-bytes",
                    f"{label}: member stopped after {human_bytes(cap)} decompressed (limit); "
                    "the rest is not scanned",
                )
            )
    if stopped:
        budget.exhausted = True
        warn(
            LimitWarning(
                "archive-bytes",
                f"{path}: 7z stopped after {human_bytes(min(limits.max_in_memory, total[0]))} "
                "decompressed in this file (limit; 7z bomb?); the rest is not scanned",
            )
        )
