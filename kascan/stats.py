"""What a scan saw: the honest summary at the end of every report."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kascan.model import Finding


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


class Skipped(str):
    """One ``-v`` line (after ``kascan: ``): something not scanned, an archive not opened, or a
    candidate dropped, and why, e.g. ``skipped vendor/: ignored by .gitignore:3 (vendor/)``.

    Made only when ``-v`` is on (each place that counts a skip is told so), and sent down the
    warning channel like a :class:`LimitWarning`: so it reaches the reporter from a tree worker,
    between the same files, as a one-process scan would print it. The reporter prints it (escaped
    and scrubbed: paths and patterns are attacker-named) and never counts it as a warning."""

    __slots__ = ()

    def __reduce__(self) -> tuple[type[Skipped], tuple[str]]:
        return (Skipped, (str(self),))


def skipped(path: str, why: str) -> Skipped:
    """``skipped PATH: WHY``: nothing of it was scanned."""
    return Skipped(f"skipped {path}: {why}")


def not_opened(path: str, why: str) -> Skipped:
    """``not opened PATH: WHY``: an archive or container scanned as plain bytes, if at all."""
    return Skipped(f"not opened {path}: {why}")


def dropped(finding: Finding, why: str) -> Skipped:
    """``dropped a candidate in [REPO:]PATH:LINE:COL (commit C) (REDACTED): WHY``: the key
    only in its redacted form."""
    where = f"{finding.repo}:" if finding.repo else ""
    commit = f" (commit {finding.commit.sha[:12]})" if finding.commit else ""
    return Skipped(
        f"dropped a candidate in {where}{finding.path}:{finding.line}:{finding.column}{commit} "
        f"({finding.secret.redacted}): {why}"
    )


def prefixed(prefix: str, message: str) -> str:
    """``prefix + message``, still a :class:`LimitWarning` or a :class:`Skipped` if it was one
    (a sweep names the repository in front of each of its warnings)."""
    if isinstance(message, LimitWarning):
        return LimitWarning(message.limit, prefix + message)
    if isinstance(message, Skipped):
        if message.startswith(f"dropped a candidate in {prefix.rstrip()}"):
            return message  # a dropped finding names its repository already
        return Skipped(prefix + message)
    return prefix + message


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
