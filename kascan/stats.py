"""What a scan saw: the honest summary at the end of every report."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


class LimitWarning(str):
    """A warning that a limit kept content from being scanned: the scan is incomplete.

    A plain ``str`` to every warning sink (and through a worker's pipe), it carries the name of
    the limit, so the reporter can count it and the summary and ``--strict`` can say so."""

    limit: str

    def __new__(cls, limit: str, message: str) -> LimitWarning:
        self = super().__new__(cls, message)
        self.limit = limit
        return self

    def __reduce__(self) -> tuple[type[LimitWarning], tuple[str, str]]:
        return (LimitWarning, (self.limit, str(self)))


@dataclass
class ScanStats:
    files: int = 0
    bytes: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> count
    unreadable: int = 0
    candidates: int = 0
    dropped: Counter[str] = field(default_factory=Counter)  # reason -> count
    reported: int = 0
    warnings: int = 0
    extra: dict[str, int] = field(default_factory=dict)  # source-specific counts (commits, blobs)
    limits: Counter[str] = field(default_factory=Counter)  # limit -> warnings: content not scanned

    def note(self, message: str) -> None:
        """Count a warning's limit, if it is a :class:`LimitWarning`."""
        if isinstance(message, LimitWarning):
            self.limits[message.limit] += 1

    @property
    def incomplete(self) -> bool:
        """Whether something was not scanned: an unreadable file, or a limit that hid content."""
        return bool(self.unreadable or +self.limits)

    def merge(self, other: ScanStats) -> None:
        self.files += other.files
        self.bytes += other.bytes
        self.skipped.update(other.skipped)
        self.unreadable += other.unreadable
        self.candidates += other.candidates
        self.dropped.update(other.dropped)
        self.reported += other.reported
        self.warnings += other.warnings
        for k, v in other.extra.items():
            self.extra[k] = self.extra.get(k, 0) + v
        self.limits.update(other.limits)

    def as_dict(self) -> dict[str, object]:
        return {
            "files": self.files,
            "bytes": self.bytes,
            "skipped": dict(sorted(self.skipped.items())),
            "unreadable": self.unreadable,
            "candidates": self.candidates,
            "dropped": dict(sorted(self.dropped.items())),
            "reported": self.reported,
            "incomplete": self.incomplete,
            "limits": dict(sorted(self.limits.items())),
            **dict(sorted(self.extra.items())),
        }


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover
