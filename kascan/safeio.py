"""Reading the small files a scan is told about or finds in the tree (ignore files, configs,
baselines): regular files only, of a bounded size.

A ``.gitignore`` that is a FIFO would block ``open``; a ``.kascanignore`` symlinked to
``/dev/zero`` or ``baseline = "/dev/zero"`` would be read until memory runs out. So the file is
opened non-blocking, checked with ``fstat`` on the descriptor that was opened (no race with a
swap), and read no further than its cap.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

IGNORE_CAP = 1 << 20  # an ignore file (.gitignore, .kascanignore, info/exclude, global)
CONFIG_CAP = 16 << 20  # .kascan.toml, pyproject.toml, --config
BASELINE_CAP = 256 << 20  # a baseline or a report read back


class RefusedFile(OSError):
    """Not read: not a regular file, or over its cap. ``str()`` is the reason, one line."""


_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a directory"),
)


def _kind(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"  # pragma: no cover - doors, whiteouts


def read_regular(path: Path | str, cap: int) -> bytes:
    """The bytes of the regular file at ``path`` (symlinks followed), at most ``cap`` of them.

    Raises :class:`RefusedFile` for a FIFO, device, socket or directory, or a file over ``cap``
    bytes; any other :class:`OSError` (missing, unreadable) as ``open`` raises it.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise RefusedFile(f"not a regular file ({_kind(st.st_mode)})")
        if st.st_size > cap:
            raise RefusedFile(f"{_size(st.st_size)}, over the limit of {_size(cap)}")
        parts: list[bytes] = []
        left = cap + 1  # one byte more tells a file that grew past the cap
        while left > 0:
            block = os.read(fd, min(left, 1 << 20))
            if not block:
                break
            parts.append(block)
            left -= len(block)
        data = b"".join(parts)
        if len(data) > cap:
            raise RefusedFile(f"over the limit of {_size(cap)}")
        return data
    finally:
        os.close(fd)


def _size(n: int) -> str:
    from kascan.stats import human_bytes

    return human_bytes(n)


def reason(exc: OSError) -> str:
    """One line for a failed read: the refusal, or the system's words for the error."""
    if isinstance(exc, RefusedFile):
        return str(exc)
    return exc.strerror or str(exc)
