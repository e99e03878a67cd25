"""Progress lines on stderr, for a terminal only (callers decide, with
:func:`kascan.pipeline.progress_wanted`: never a pipe, never ``-q``, never when a report goes to
stderr).

One design for every long run, one line redrawn at most ten times a second::

    kascan: scanning: 1234/36710 files (3%), 12.0 MiB, 8.0 MiB/s, ETA 40s
    kascan: scanning repo.git: 12000/25983 objects (46%), 120.0 MiB, 84.0 MiB/s, ETA 2s
    kascan: sweeping: 12/300 repositories (4%), 3 with findings, 1 failed, ETA 4m05s

A total, a percentage and an estimate only once the total is known (before that: ``1234 files,
12.0 MiB, 8.0 MiB/s``, or ``listing…``); the estimate divides what is left by the rate of the last
ten seconds (a history's commits come first and go fast, its blobs after them). Every label is
escaped (a repository's name is attacker-written) and the line is cut to the terminal's width, so
that ``\\r`` and erase-line clear all of it. Anything else printed while a line is shown goes
through :func:`paused` (the line is cleared, the text printed, the line drawn again).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence

from kascan.stats import ScanStats, human_bytes

REDRAW = 0.1  # seconds between two redraws at most ten times a second
WINDOW = 10.0  # seconds of history behind the rate an estimate uses
CLEAR = "\r\x1b[K"

_lock = threading.RLock()  # the terminal's stderr: sweeps warn from worker threads
_shown: ProgressLine | None = None  # the line on the terminal now, if any


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """Print something else: the progress line (if one is shown) is cleared first and drawn again
    after, so that a finding or a warning is never glued to it."""
    with _lock:
        line = _shown
        if line is not None:
            _write(CLEAR)
        try:
            yield
        finally:
            if line is not None and _shown is line:
                _write(CLEAR + line.text)


def _write(text: str) -> None:
    with contextlib.suppress(OSError, ValueError):  # a terminal that went away: no progress
        sys.stderr.write(text)
        sys.stderr.flush()


def _columns(text: str) -> int:
    if text.isascii():
        return len(text)
    import unicodedata

    return sum(
        0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
        for c in text
    )


def _cut(text: str, columns: int) -> str:
    """The longest start of ``text`` that fits in ``columns``."""
    if _columns(text) <= columns:
        return text
    out, used = [], 0
    for c in text:
        used += _columns(c)
        if used > columns:
            break
        out.append(c)
    return "".join(out)


def fit(verb: str, name: str, parts: Sequence[str], spare: Sequence[int], columns: int) -> str:
    """``kascan: VERB NAME: PART, PART…`` in at most ``columns - 1`` columns (a wrapped line would
    not be cleared): the name (a path or a URL) loses its start first (a path's end names it),
    then the ``spare`` parts go, in that order, then the name, then the end of the line."""
    room = columns - 1
    bodies = [
        [p for i, p in enumerate(parts) if i not in spare[:n] and p] for n in range(len(spare) + 1)
    ]
    for body in bodies:
        text = ", ".join(body)
        line = f"kascan: {verb} {name}: {text}" if name else f"kascan: {verb}: {text}"
        if _columns(line) <= room:
            return line
        keep = room - _columns(f"kascan: {verb} …: {text}")
        if name and keep >= 8:
            return f"kascan: {verb} …{_cut(name[::-1], keep)[::-1]}: {text}"
    return _cut(f"kascan: {verb}: {', '.join(bodies[-1])}", room)


def eta_text(seconds: float) -> str:
    s = max(int(seconds + 0.5), 0)
    if s < 60:
        return f"ETA {s}s"
    if s < 3600:
        return f"ETA {s // 60}m{s % 60:02d}s"
    return f"ETA {s // 3600}h{s % 3600 // 60:02d}m"


def counted(done: int, total: int | None, unit: str, units: str = "") -> str:
    """``12/300 repositories (4%)`` when the total is known, else ``12 repositories``; the
    percentage is rounded down (100% only when everything is done)."""
    plural = unit if (total if total is not None else done) == 1 else units or unit + "s"
    if total is None:
        return f"{done} {plural}"
    pct = 100 * done // total if total else 100
    return f"{done}/{total} {plural} ({pct}%)"


class ProgressLine:
    """One progress line, ``kascan: VERB NAME: …``: :meth:`due` says when to redraw,
    :meth:`draw` draws, :meth:`close` clears it; ``name`` (attacker-written: a repository's path
    or URL) is escaped here."""

    def __init__(self, verb: str = "scanning", name: str = "") -> None:
        from kascan.model import scrub
        from kascan.output import escape

        self.verb = verb
        self.name = escape(scrub(name))
        self.start = time.monotonic()
        self.last = 0.0
        self.text = ""
        self._samples: deque[tuple[float, int]] = deque()  # (when, done) of the last draws

    def due(self, final: bool = False) -> float | None:
        """Seconds since the start if the line is due for a redraw, else None."""
        now = time.monotonic()
        if now - self.last < REDRAW and not final:
            return None
        self.last = now
        return max(now - self.start, 1e-6)

    def eta(self, done: int, total: int | None) -> str:
        """``ETA 4m05s`` from the rate of the last ten seconds, or '' (no total yet, or not a
        second of history to take a rate from)."""
        now = time.monotonic()
        samples = self._samples
        samples.append((now, done))
        while len(samples) > 2 and now - samples[1][0] >= WINDOW:
            samples.popleft()
        if total is None or done >= total:
            return ""
        then, before = samples[0]
        if now - then < 1.0:  # not a second of history yet: no rate to go by
            return ""
        rate = (done - before) / (now - then)
        if rate <= 0:
            return ""
        return eta_text((total - done) / rate)

    def draw(self, parts: Sequence[str], spare: Sequence[int] = ()) -> None:
        """Draw the line of these ``parts`` ('' ones left out); ``spare`` ones go first when the
        terminal is too narrow."""
        global _shown
        try:
            columns = os.get_terminal_size(sys.stderr.fileno()).columns
        except (OSError, ValueError):
            columns = 0  # as a terminal that does not say its size: 80 columns
        with _lock:
            width = max(columns, 20) if columns else 80
            self.text = fit(self.verb, self.name, parts, spare, width)
            _shown = self
            _write(CLEAR + self.text)

    def close(self) -> None:
        global _shown
        with _lock:
            if _shown is self:
                _shown = None
                _write(CLEAR)


class TreeProgress(ProgressLine):
    """``kascan: scanning: N files, SIZE, RATE/s``; once every tree's walk has ended (the walk
    runs ahead of the reads, :mod:`kascan.parallel`), ``N/TOTAL files (P%)`` and an estimate."""

    def __init__(self, stats: ScanStats, walks: int = 1) -> None:
        super().__init__("scanning")
        self.stats = stats
        self.walks = walks  # tree sources in the run: the total is known in the last one
        self._walk = 0
        self._before = 0  # files of the walks before this one
        self._done = 0

    def next_walk(self) -> None:
        """A tree source starts: its ``tick`` counts start from zero."""
        self._walk += 1
        self._before += self._done
        self._done = 0

    def tick(self, done: int, total: int | None) -> None:
        """``done`` files of this walk read; ``total`` its files once its walk has ended."""
        self._done = done
        took = self.due()
        if took is None:
            return
        files = self._before + done
        last = max(self._walk, 1) >= self.walks  # no tree after this one: the run's total
        known = self._before + total if total is not None and last else None
        s = self.stats
        rate = f"{human_bytes(int(s.bytes / took))}/s"
        self.draw(
            [counted(files, known, "file"), human_bytes(s.bytes), rate, self.eta(files, known)],
            spare=(1, 2),
        )


class Progress(ProgressLine):
    """``kascan: scanning NAME: done/total objects (P%), SIZE, RATE/s, ETA`` of a history read,
    or ``done objects, SIZE, RATE/s, listing…`` while the total is not known yet; silent unless
    ``enabled`` (stderr is a terminal)."""

    def __init__(self, enabled: bool, name: str) -> None:
        super().__init__("scanning", name)  # a path or URL: attacker-named, escaped
        self.enabled = enabled

    def update(self, done: int, total: int | None, nbytes: int) -> None:
        if not self.enabled:
            return
        took = self.due(final=done == total)
        if took is None:
            return
        rate = f"{human_bytes(int(nbytes / took))}/s"
        if total is None:
            self.draw(
                [counted(done, None, "object"), human_bytes(nbytes), rate, "listing…"], (1, 2)
            )
            return
        count = counted(done, max(total, done), "object")
        self.draw([count, human_bytes(nbytes), rate, self.eta(done, total)], spare=(1, 2))

    def listing(self, found: int) -> None:
        """The walk that lists a history's blobs before they are read: ``listing… N blobs``."""
        if self.enabled and self.due() is not None:
            self.draw([f"listing… {counted(found, None, 'blob')}"])


class SweepProgress(ProgressLine):
    """``kascan: sweeping: 12/300 repositories (4%), 3 with findings, 1 failed, ETA 4m05s``,
    redrawn every second by a thread of its own (a repository can take minutes): the estimate
    counts down from the average time per repository so far."""

    def __init__(self, total: int) -> None:
        super().__init__("sweeping")
        self.total = total
        self.done = self.found = self.failed = self.reused = 0
        self._finish: float | None = None  # when the sweep should end, at the last rate
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick, name="kascan-progress", daemon=True)
        self._render()
        self._thread.start()

    def add(self, findings: int, failed: bool, reused: bool) -> None:
        """One repository done (``findings`` after suppression)."""
        with _lock:
            self.done += 1
            self.found += findings > 0
            self.failed += failed
            self.reused += reused
            now = time.monotonic()
            took = now - self.start
            self._finish = now + (self.total - self.done) * took / self.done
            self._render()

    def _render(self) -> None:
        parts = [counted(self.done, self.total, "repository", "repositories")]
        parts.append(f"{self.found} with findings")
        parts.append(f"{self.failed} failed")
        if self.reused:
            parts.append(f"{self.reused} unchanged")
        left = self._finish - time.monotonic() if self._finish is not None else -1.0
        if left >= 0 and self.done < self.total:  # overdue (a slow one): no estimate, not 0s
            parts.append(eta_text(left))
        self.draw(parts, spare=(3,) if self.reused else ())

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            with _lock:
                if _shown is self:
                    self._render()

    def close(self) -> None:
        self._stop.set()
        with _lock:
            super().close()
