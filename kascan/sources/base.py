"""What a source is: something that yields chunks (or, for a tree, files), and the context every
stage of one run shares. The pipeline (:mod:`kascan.pipeline`) does everything else."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kascan.model import Candidate, Chunk, Decoders
from kascan.stats import ScanStats

if TYPE_CHECKING:
    from kascan.rules import RuleSet
    from kascan.sources.archives import Limits

Warn = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class FileRef:
    """A file of a walk: what to open, and what to report (relative to the scan root, "/")."""

    fs_path: str
    path: str


@dataclass(frozen=True, slots=True)
class Run:
    """What the stages of one run share: the rules, the counts, where warnings go, and what to
    look inside (``limits`` is None when archives are off)."""

    rules: RuleSet
    stats: ScanStats
    warn: Warn
    decoders: Decoders
    limits: Limits | None
    # a progress line: (files of this walk read, its files once the walk has ended, else None)
    tick: Callable[[int, int | None], None] | None = None
    verbose: bool = False  # -v: each skip and drop is also a Skipped line, sent through warn
    threads: int | None = None  # at most so many threads read one big file (--jobs; None: cores)

    @property
    def note(self) -> Warn | None:
        """Where ``-v`` lines go (``warn``: they travel with the warnings), None without -v:
        the stages that count skips take this, so that without -v they build no line at all."""
        return self.warn if self.verbose else None

    @property
    def quiet(self) -> bool:
        """Whether a chunk in which :mod:`kascan.engine` finds no needle can be left out: every
        rule is the built-in one (:func:`kascan.match.fast_prefix`), so neither the matcher nor
        a decoder could find anything in it."""
        return all(rule.fast for rule in self.rules.rules)  # (no import here: runs per file)


class Source:
    """One thing to scan. ``chunks`` yields its bytes (a whole object as one chunk with
    ``whole=True``, so the pipeline opens it if it is an archive); ``attribute`` is the
    attribution stage: it takes the matched candidates and yields them with their paths and
    commits (the default: as they are). ``notes`` and ``baseline`` are what the source adds to
    the summary and to the suppression stage (its own config's baseline)."""

    label: str | None = None
    has_commits = False  # findings name commits (history, ranges): allowlists by commit apply

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.baseline: frozenset[str] = frozenset()
        self.baseline_files: tuple[Path, ...] = ()  # where ``baseline`` was read from

    def chunks(self, run: Run) -> Iterator[Chunk]:  # pragma: no cover - every source has one
        raise NotImplementedError

    def attribute(self, candidates: Iterable[Candidate]) -> Iterator[Candidate]:
        return iter(candidates)


class TreeSource(Source):
    """A walk: the pipeline reads, unwraps and matches each file it yields (on every core)."""

    def walk(self, warn: Warn, verbose: bool = False) -> Iterator[FileRef]:  # pragma: no cover
        """The files to scan; with ``verbose``, each entry not walked is a ``Skipped`` line
        through ``warn``."""
        raise NotImplementedError
