"""The progress line of a history scan (a terminal only)."""

from __future__ import annotations

import sys
import time

# ---------------------------------------------------------------------------------------------
# Progress


class Progress:
    """``objects done/total, bytes/s`` on one stderr line; silent unless stderr is a TTY."""

    def __init__(self, enabled: bool, label: str) -> None:
        from kascan.model import scrub
        from kascan.output import escape

        self.enabled = enabled
        self.label = escape(scrub(label))  # a path or URL: attacker-named, never raw on a TTY
        self.start = time.monotonic()
        self.last = 0.0
        self.shown = False

    def update(self, done: int, total: int, nbytes: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < 0.1 and done != total:
            return
        self.last = now
        from kascan.stats import human_bytes

        rate = nbytes / max(now - self.start, 1e-6)
        pct = 100 * done // total if total else 100

        sys.stderr.write(
            f"\r\x1b[Kkascan: {self.label}: {done}/{total} objects ({pct}%), "
            f"{human_bytes(int(rate))}/s"
        )
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            import sys

            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self.shown = False
