"""gitignore semantics for tree walks: nested .gitignore, .git/info/exclude, git's global excludes
file, a .kascanignore at the scan root, config ``exclude`` and ``--exclude`` patterns."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when a pattern is compiled: the hook's path often has none
    import pathspec


def _spec(
    lines: Iterable[str], warn: Callable[[str], None] | None = None, source: str = ""
) -> pathspec.GitIgnoreSpec | None:
    lines = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    lines = affordable(lines, warn, source)
    if not lines:
        return None
    import pathspec

    try:  # pathspec's hyperscan backend would compile a database per ignore file (~9 ms each)
        return pathspec.GitIgnoreSpec.from_lines(lines, backend="simple")
    except TypeError:  # pathspec < 1.0: one backend
        return pathspec.GitIgnoreSpec.from_lines(lines)


def too_costly(pattern: str) -> bool:
    """Whether a gitignore pattern has so many wildcards that its regex may backtrack for hours
    on a crafted path (``*a*a*a*a*b`` against 255 a's: 20 s; ``**/a/**/a/**/b`` against a deep
    path: 30 s; more wildcards, more exponent). Over 4 wildcards in all, more than 3 ``*`` in one
    path segment, or more than 2 ``**`` segments: such a pattern is not used."""
    body = pattern.strip().removeprefix("!")
    crossing = total = most = 0
    for segment in re.sub(r"\\.", "x", body).split("/"):  # an escaped character is a literal
        if segment == "**":
            crossing += 1
            continue
        runs = len(re.findall(r"\*+", segment))
        total += runs
        most = max(most, runs)
    return crossing > 2 or most > 3 or crossing + total > 4


def affordable(
    lines: Sequence[str], warn: Callable[[str], None] | None = None, source: str = ""
) -> list[str]:
    """``lines`` without the patterns that :func:`too_costly` refuses, each one a warning (the
    files it would have ignored are scanned: more is scanned, never less)."""
    out = []
    for line in lines:
        if too_costly(line):
            if warn is not None:
                shown = line.strip() if len(line.strip()) <= 60 else line.strip()[:57] + "..."
                where = f" in {source}" if source else ""
                warn(
                    f"ignore pattern {shown!r}{where} not used: too many wildcards to match in "
                    "bounded time (the files it names are scanned)"
                )
            continue
        out.append(line)
    return out


Warn = Callable[[str], None]


def _no_warn(_: str) -> None:
    pass


def read_ignore_lines(path: Path, warn: Warn = _no_warn) -> list[str]:
    """The lines of an ignore file; none if it is missing or unreadable. One that is not a
    regular file (a FIFO, ``/dev/zero``) or over 1 MiB is not read: a warning, and no patterns
    from it (the scan then covers more, never less)."""
    from kascan.safeio import IGNORE_CAP, RefusedFile, read_regular

    try:
        return read_regular(path, IGNORE_CAP).decode("utf-8", "replace").splitlines()
    except RefusedFile as exc:
        warn(f"ignore file {path} not read: {exc}")
        return []
    except OSError:
        return []


_read_lines = read_ignore_lines


def find_repo_root(start: Path) -> Path | None:
    """The nearest ancestor (or ``start`` itself) that holds a ``.git`` entry."""
    cur = start.resolve()
    for cand in (cur, *cur.parents):
        if (cand / ".git").exists():
            return cand
    return None


def global_excludes_file() -> Path | None:
    """git's ``core.excludesFile``, else ``$XDG_CONFIG_HOME/git/ignore``."""
    try:
        out = subprocess.run(
            ["git", "config", "--global", "--path", "--get", "core.excludesFile"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
            env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1"},
        )
        value = out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        value = ""
    if value:
        return Path(value).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(xdg) / "git" / "ignore"


_GROUP_NAME = r"\(\?P<[^>]+>"  # compiled on first use (re caches it)


def _quick_test(spec: pathspec.GitIgnoreSpec) -> Callable[[str], object] | None:
    """One regex that matches whatever any pattern of ``spec`` matches.

    Most paths match no pattern; one regex tells so in a fraction of what asking pathspec pattern
    by pattern costs, and pathspec decides only for the few paths that match something.
    """
    parts: list[str] = []
    flags = 0
    for pattern in spec.patterns:
        regex = getattr(pattern, "regex", None)
        if getattr(pattern, "include", None) is None or regex is None:
            continue
        if not isinstance(regex, re.Pattern) or not isinstance(regex.pattern, str):
            return None
        parts.append(re.compile(_GROUP_NAME).sub("(?:", regex.pattern))
        flags |= regex.flags
    if not parts:
        return None
    anchored = all(p.startswith("^") for p in parts)
    try:
        combined = re.compile("|".join(f"(?:{p})" for p in parts), flags)
    except re.error:
        return None
    return combined.match if anchored else combined.search


@dataclass(frozen=True, slots=True)
class _Level:
    base: str  # directory of the patterns, relative to the top, "" for the top, no trailing "/"
    spec: pathspec.GitIgnoreSpec
    quick: Callable[[str], object] | None = field(default=None, compare=False)
    # where the patterns came from, for ``-v``: a label, and the lines as read (patterns of the
    # level's own file first; ``own`` of them: the rest are exclude patterns)
    source: str = field(default="", compare=False)
    lines: Sequence[str] = field(default=(), compare=False)
    own: int | None = field(default=None, compare=False)

    @classmethod
    def of(
        cls,
        base: str,
        spec: pathspec.GitIgnoreSpec,
        source: str = "",
        lines: Sequence[str] = (),
        own: int | None = None,
    ) -> _Level:
        return cls(base, spec, _quick_test(spec), source, lines, own)

    def explain(self, index: int | None, prefix: str = "") -> str:
        """``SOURCE:LINE (PATTERN)`` for the pattern at ``index`` of the spec (``-v`` only: the
        line is found again the way :func:`_spec` kept it)."""
        pattern = ""
        if index is not None and 0 <= index < len(self.spec.patterns):
            pattern = str(getattr(self.spec.patterns[index], "pattern", "") or "")
        kept = [
            n
            for n, ln in enumerate(self.lines, 1)
            if ln.strip() and not ln.lstrip().startswith("#") and not too_costly(ln)
        ]
        number = kept[index] if index is not None and 0 <= index < len(kept) else None
        shown = f" ({pattern.strip()})" if pattern else ""
        if self.own is not None and (number is None or number > self.own):
            return f"an exclude pattern (--exclude or the config's exclude){shown}"
        if number is None:
            return f"{prefix}{self.source}{shown}"
        return f"{prefix}{self.source}:{number}{shown}"


class Ignorer:
    """Decides whether a path (relative to the walk's top, "/" separators) is ignored.

    Paths are tested relative to ``top`` (the repository root when the scan root is inside one,
    else the scan root). kascan's own excludes always win; among git's sources the deepest
    ``.gitignore`` decides, then ``.git/info/exclude``, then the global excludes file.
    """

    def __init__(
        self,
        top: Path,
        root_rel: str,
        kascan_patterns: Sequence[str],
        git_levels: Sequence[_Level],
        use_git: bool = True,
        warn: Warn = _no_warn,
        own_lines: int = 0,
    ) -> None:
        self.top = top
        self.use_git = use_git
        self.warn = warn
        self.root_rel = root_rel
        self.shown = ""  # what -v lines call the scan root ("" or "src/"): the walk's prefix
        spec = _spec(kascan_patterns, warn, "the excludes and .kascanignore")
        self._kascan = (
            _Level.of(root_rel, spec, ".kascanignore", kascan_patterns, own_lines) if spec else None
        )
        self._git: list[_Level] = list(git_levels)

    @classmethod
    def for_root(
        cls, root: Path, excludes: Sequence[str], use_git: bool = True, warn: Warn = _no_warn
    ) -> Ignorer:
        root = root.resolve()
        patterns = list(excludes)
        own = 0
        if use_git:
            patterns[:0] = _read_lines(root / ".kascanignore", warn)
            own = len(patterns) - len(excludes)
        repo = find_repo_root(root) if use_git else None
        top = repo or root
        root_rel = root.relative_to(top).as_posix()
        root_rel = "" if root_rel == "." else root_rel
        levels: list[_Level] = []
        if use_git:
            glob = global_excludes_file()
            if glob is not None:
                lines = _read_lines(glob, warn)
                spec = _spec(lines, warn, str(glob))
                if spec:
                    levels.append(_Level.of("", spec, str(glob), lines))
            if repo is not None:
                exclude = repo / ".git" / "info" / "exclude"
                lines = _read_lines(exclude, warn)
                spec = _spec(lines, warn, str(exclude))
                if spec:
                    levels.append(_Level.of("", spec, str(exclude), lines))
                # .gitignore files of the directories between the repository root and the root
                parts = root_rel.split("/") if root_rel else []
                for i in range(len(parts)):
                    base = "/".join(parts[:i])
                    gitignore = top / base / ".gitignore"
                    lines = _read_lines(gitignore, warn)
                    spec = _spec(lines, warn, str(gitignore))
                    if spec:
                        levels.append(_Level.of(base, spec, str(gitignore), lines))
        return cls(top, root_rel, patterns, levels, use_git, warn, own)

    def push(self, rel_dir: str, gitignore: Path) -> bool:
        """Add the ``.gitignore`` of ``rel_dir`` (relative to the scan root); True if added."""
        lines = _read_lines(gitignore, self.warn) if self.use_git else []
        spec = _spec(lines, self.warn, str(gitignore)) if self.use_git else None
        if spec is None:
            return False
        shown = f"{self.shown}{rel_dir}/.gitignore" if rel_dir else f"{self.shown}.gitignore"
        self._git.append(_Level.of(self._top_rel(rel_dir), spec, shown, lines))
        return True

    def pop(self) -> None:
        self._git.pop()

    def _top_rel(self, rel: str) -> str:
        if not self.root_rel:
            return rel
        return f"{self.root_rel}/{rel}" if rel else self.root_rel

    def ignored(self, rel: str, is_dir: bool) -> bool:
        """``rel`` is relative to the scan root."""
        path = self._top_rel(rel) if self.root_rel else rel
        if is_dir:
            path += "/"
        if self._kascan is not None and _check(self._kascan, path) is True:
            return True
        for level in reversed(self._git):
            # _check inlined for the common case (called for every entry of a walk)
            if level.base:
                verdict = _check(level, path)
            elif level.quick is not None and level.quick(path) is None:
                continue
            else:
                verdict = level.spec.check_file(path).include
            if verdict is not None:
                return verdict
        return False

    def explain(self, rel: str, is_dir: bool) -> str:
        """Why :meth:`ignored` said so, in words (``-v`` only: it asks pathspec again, pattern
        by pattern): ``ignored by vendor/.gitignore:3 (*.min.js)``."""
        path = self._top_rel(rel) if self.root_rel else rel
        if is_dir:
            path += "/"
        levels = [self._kascan] if self._kascan is not None else []
        for level in [*levels, *reversed(self._git)]:
            verdict = _check(level, path)
            if verdict is None or (verdict is False and level is self._kascan):
                continue
            if verdict:
                index = level.spec.check_file(_below(level, path)).index
                prefix = self.shown if level is self._kascan else ""
                return f"ignored by {level.explain(index, prefix)}"
            break
        return "ignored"


def _below(level: _Level, path: str) -> str:
    return path[len(level.base) + 1 :] if level.base else path


def _check(level: _Level, path: str) -> bool | None:
    if level.base:
        if not path.startswith(level.base + "/"):
            return None
        path = path[len(level.base) + 1 :]
    if level.quick is not None and level.quick(path) is None:
        return None
    include: bool | None = level.spec.check_file(path).include
    return include


class Excluder:
    """gitignore patterns that a git scan's paths are matched against (the config's exclude,
    .kascanignore, --exclude), as one callable; :meth:`why` says which pattern, for ``-v``."""

    def __init__(self, spec: pathspec.GitIgnoreSpec, prefix: str = "") -> None:
        self.spec = spec
        self.prefix = prefix  # a submodule's path: its paths are matched as the superproject's

    def __call__(self, path: str) -> bool:
        return bool(self.spec.match_file(self.prefix + path))

    def under(self, prefix: str) -> Excluder:
        return Excluder(self.spec, self.prefix + prefix)

    def why(self, path: str) -> str:
        index = self.spec.check_file(self.prefix + path).index
        pattern = ""
        if index is not None and 0 <= index < len(self.spec.patterns):
            pattern = str(getattr(self.spec.patterns[index], "pattern", "") or "")
        shown = f" ({pattern.strip()})" if pattern else ""
        return EXCLUDED + shown


EXCLUDED = "excluded by an exclude pattern (the config's exclude, .kascanignore or --exclude)"


def why_excluded(excluded: Callable[[str], bool], path: str) -> str:
    """What -v says of a path that ``excluded`` matched."""
    if isinstance(excluded, Excluder):
        return excluded.why(path)
    return EXCLUDED
