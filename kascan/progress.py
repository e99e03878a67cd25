"""Progress lines on stderr, for a terminal only (callers decide: never a pipe, never ``-q``):
one line, redrawn at most ten times a second, cleared when done or before a finding is printed."""

from __future__ import annotations

import sys
import time

from kascan.stats import ScanStats


class ProgressLine:
    def __init__(self) -> None:
        self.start = time.monotonic()
        self.last = 0.0
        self.shown = False

    def due(self, final: bool = False) -> float | None:
        """Seconds since the start if the line is due for a redraw, else None."""
        now = time.monotonic()
        if now - self.last < 0.1 and not final:
            return None
        self.last = now
        return max(now - self.start, 1e-6)

    def show(self, text: str) -> None:
        sys.stderr.write("\r\x1b[K" + text)
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self.shown = False


class TreeProgress(ProgressLine):
    """``kascan: scanning: N files, SIZE, RATE/s`` (the counts the scan keeps anyway)."""

    def __init__(self, stats: ScanStats) -> None:
        super().__init__()
        self.stats = stats

    def tick(self) -> None:
        took = self.due()
        if took is None:
            return
        from kascan.stats import human_bytes

        s = self.stats
        self.show(
            f"kascan: scanning: {s.files} file{'' if s.files == 1 else 's'}, "
            f"{human_bytes(s.bytes)}, {human_bytes(int(s.bytes / took))}/s"
        )


class Progress(ProgressLine):
    """``kascan: LABEL: done/total objects (P%), RATE/s`` of a history read; silent unless
    ``enabled`` (stderr is a terminal)."""

    def __init__(self, enabled: bool, label: str) -> None:
        from kascan.model import scrub
        from kascan.output import escape

        super().__init__()
        self.enabled = enabled
        self.label = escape(scrub(label))  # a path or URL: attacker-named, never raw on a TTY

    def update(self, done: int, total: int, nbytes: int) -> None:
        if not self.enabled:
            return
        took = self.due(final=done == total)
        if took is None:
            return
        from kascan.stats import human_bytes

        pct = 100 * done // total if total else 100
        self.show(
            f"kascan: {self.label}: {done}/{total} objects ({pct}%), "
            f"{human_bytes(int(nbytes / took))}/s"
        )
