"""gitignore semantics for tree walks: nested .gitignore, .git/info/exclude, git's global excludes
file, a .kascanignore at the scan root, config ``exclude`` and ``--exclude`` patterns."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when a pattern is compiled: the hook's path often has none
    import pathspec


def _patterns(
    lines: Iterable[str], warn: Callable[[str], None] | None = None, source: str = ""
) -> tuple[str, ...] | None:
    """The lines of an ignore file that are patterns (no comment, none too costly), or None."""
    lines = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    lines = affordable(lines, warn, source)
    return tuple(_valid(lines, warn, source)) or None


def _valid(lines: list[str], warn: Callable[[str], None] | None, source: str) -> list[str]:
    """``lines`` without those pathspec refuses (a lone backslash, a lone ``!``): each one a
    warning, rather than the end of the scan (the files it would have named are scanned)."""
    if not lines:
        return lines
    out = []
    for line in lines:
        if not _valid_line(line):
            if warn is not None:
                shown = line.strip() if len(line.strip()) <= 60 else line.strip()[:57] + "..."
                where = f" in {source}" if source else ""
                warn(f"ignore pattern {shown!r}{where} not used: not a valid pattern")
            continue
        out.append(line)
    return out


def _valid_line(line: str) -> bool:
    """Whether pathspec takes ``line`` as a pattern (it refuses a lone backslash or ``!``)."""
    to_regex = _to_regex()
    try:
        if to_regex is not None:
            to_regex(line)
        else:
            _compile([line])
    except Exception:  # pathspec's own error class differs between versions
        return False
    return True


def _compile(lines: Sequence[str]) -> pathspec.GitIgnoreSpec:
    import pathspec

    try:  # pathspec's hyperscan backend would compile a database per ignore file (~9 ms each)
        return pathspec.GitIgnoreSpec.from_lines(lines, backend="simple")
    except TypeError:  # pathspec < 1.0: one backend
        return pathspec.GitIgnoreSpec.from_lines(lines)


_TO_REGEX: list[Callable[[str], tuple[str | None, bool | None]] | None] = []


def _to_regex() -> Callable[[str], tuple[str | None, bool | None]] | None:
    """pathspec's translation of one gitignore line to its regex text, as the spec compiles it
    (the pattern class of a spec: ``pattern_to_regex``), or None if this pathspec has none."""
    if not _TO_REGEX:
        kind = type(_compile(["x"]).patterns[0])
        to_regex = getattr(kind, "pattern_to_regex", None)
        _TO_REGEX.append(to_regex if callable(to_regex) else None)
    return _TO_REGEX[0]


def _spec(
    lines: Iterable[str], warn: Callable[[str], None] | None = None, source: str = ""
) -> pathspec.GitIgnoreSpec | None:
    patterns = _patterns(lines, warn, source)
    return None if patterns is None else _compile(patterns)


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
# how pathspec writes a pattern without a slash (``*.o``, ``build/``): a component of the path,
# anywhere, fullmatches P, and is followed by "/" or the end (for ``build/``: by "/")
_ANY_DIR = "^(?:.+/)?"
_COMPONENT_END = ("(?:(?:/)|$)", "(?:/)", "(?:/.*)?$", "/.*$")
_LITERAL = r"(?:\\[^0-9A-Za-z]|[^.^$*+?{}\[\]\\|()/])*"  # a literal (re caches it)
_STAR = "[^/]*"


def _unescape(literal: str) -> str:
    return re.sub(r"\\(.)", r"\1", literal)


def _components(
    parts: list[str], flags: int
) -> tuple[frozenset[str], tuple[str, ...], tuple[str, ...], Callable[[str], object] | None]:
    """The patterns that name one path component (``*.o``, ``.*``, ``build/``, ``cscope.*``,
    ``GTAGS``) as whole names, suffixes and prefixes (tested by string methods) and one regex
    for the others (fullmatched on a component)."""
    exact: set[str] = set()
    suffixes: list[str] = []
    prefixes: list[str] = []
    rest: list[str] = []
    for part in parts:
        if re.fullmatch(_LITERAL, part):
            exact.add(_unescape(part))
        elif part.startswith(_STAR) and re.fullmatch(_LITERAL, part[len(_STAR) :]):
            suffixes.append(_unescape(part[len(_STAR) :]))  # "*.o"
        elif part.endswith(_STAR) and re.fullmatch(_LITERAL, part[: -len(_STAR)]):
            prefixes.append(_unescape(part[: -len(_STAR)]))  # "cscope.*", ".*"
        else:
            rest.append(part)
    regex = re.compile("|".join(f"(?:{p})" for p in rest), flags).fullmatch if rest else None
    return frozenset(exact), tuple(suffixes), tuple(prefixes), regex


def _component(regex: str) -> str | None:
    """P, when ``regex`` (pathspec's, group names removed) matches where a component is P."""
    if not regex.startswith(_ANY_DIR):
        return None
    for end in _COMPONENT_END:
        if regex.endswith(end):
            part = regex[len(_ANY_DIR) : -len(end)]
            # P must stay within one component: besides "[^/]" and escaped characters, no "/",
            # no "." and no negated class (pathspec's "[^~]" for "[!~]" also matches a "/")
            bare = re.sub(r"\\.", "", part.replace("[^/]", ""))
            if "/" in bare or "." in bare or "[^" in bare:
                return None
            return part
    return None


def _regexes(spec: pathspec.GitIgnoreSpec) -> list[str] | None:
    """The regex texts of a compiled spec's patterns (comments and blank lines have none)."""
    out = []
    for pattern in spec.patterns:
        regex = getattr(pattern, "regex", None)
        if getattr(pattern, "include", None) is None or regex is None:
            continue
        if not isinstance(regex, re.Pattern) or not isinstance(regex.pattern, str):
            return None
        if regex.flags & ~re.UNICODE:  # (pathspec compiles without flags)
            return None
        out.append(regex.pattern)
    return out


def _quick_test(lines: Sequence[str], spec: pathspec.GitIgnoreSpec | None = None) -> _Quick | None:
    """A test that answers None for most paths that match no pattern of ``lines``.

    Most paths match no pattern; this tells so in a fraction of what asking pathspec pattern by
    pattern costs, and pathspec decides only for the few paths that match something (it is
    compiled only then). The patterns that name one component (most of a ``.gitignore``) are
    tested by :func:`_components`, the others by one regex. Built from pathspec's regex texts,
    translated from the lines, or taken from ``spec`` when it is compiled already.
    """
    to_regex = _to_regex() if spec is None else None
    texts: list[str] | None
    if to_regex is not None:
        texts = []
        for line in lines:
            translated, include = to_regex(line)
            if translated is not None and include is not None:
                texts.append(translated)
    else:
        texts = _regexes(spec if spec is not None else _compile(lines))
    if not texts:
        return None
    parts: list[str] = []
    names: list[str] = []
    flags = 0
    for regex_text in texts:
        text = re.sub(_GROUP_NAME, "(?:", regex_text)
        part = _component(text)
        if part is None:
            parts.append(text)
        else:
            names.append(part)
    try:
        return _Quick(*_components(names, flags), *_anchored(parts, flags))
    except re.error:
        return None


class _Quick:
    """One ignore file's quick test (see :func:`_quick_test`): a call answers True (some
    pattern may match the path) or None (none does)."""

    __slots__ = (
        "_partial", "begins", "ends", "first", "in_name", "leads", "names", "parents", "second",
        "starts",
    )  # fmt: skip

    def __init__(
        self,
        names: frozenset[str],
        ends: tuple[str, ...],
        starts: tuple[str, ...],
        in_name: Callable[[str], object] | None,
        begins: tuple[str, ...],
        first: Callable[[str], object] | None,
        second: Callable[[str], object] | None,
    ) -> None:
        self.names, self.ends, self.starts, self.in_name = names, ends, starts, in_name
        self.begins, self.first, self.second = begins, first, second
        self.leads = frozenset(b[0] for b in begins)  # the first characters of the starts
        self.parents: dict[str, bool] = {}  # verdicts on the last parents (a walk's entries)
        self._partial: Callable[..., object] | bool | None = None  # see _none_below

    def name(self, c: str) -> bool:
        """Whether a pattern that names one component may match the component ``c``."""
        return (
            c in self.names
            or c.endswith(self.ends)
            or c.startswith(self.starts)
            or (self.in_name is not None and self.in_name(c) is not None)
        )

    def parent(self, parent: str) -> bool:
        """Whether such a pattern may match a component of ``parent`` ("a/b", no "/" last): its
        last name, then the verdict on its own parent (kept: a walk asks for it just before),
        else every component."""
        parents = self.parents
        hit = parents.get(parent)
        if hit is None:
            if len(parents) >= 256:
                parents.clear()
            head, _, last = parent.rpartition("/")
            if self.name(last):
                hit = True
            elif not head:
                hit = False
            else:  # (no recursion: a tree 1,000 directories deep must not end the scan)
                up = parents.get(head)
                hit = up if up is not None else any(self.name(c) for c in head.split("/"))
            parents[parent] = hit
        return hit

    def __call__(self, path: str) -> object:
        """True: some pattern may match ``path``; None: none does."""
        parent, _, last = path.rstrip("/").rpartition("/")
        if self.name(last):
            return True
        if parent and self.parent(parent):
            return True
        first = self.first
        if first is not None and path.startswith(self.begins) and first(path) is not None:
            return True
        second = self.second
        if second is not None and second(path) is not None:
            return True
        return None

    def names_only(self, directory: str) -> bool:
        """Whether, for the entries of ``directory`` ("" or "a/b/"), only the patterns that name
        one component can say maybe: no pattern with a slash can match below it (none starts
        as a path there can), none matches a component of it."""
        if self.second is not None and not self._none_below(directory):
            return False
        if directory and self.parent(directory[:-1]):
            return False
        if self.first is None:
            return True
        if directory and directory[0] not in self.leads:  # (most directories: no start fits)
            return True
        return not any(b.startswith(directory) or directory.startswith(b) for b in self.begins)

    def _none_below(self, directory: str) -> bool:
        """Whether the patterns with a slash but no literal start (``/*.log``) can match no path
        that starts with ``directory``: their regex (anchored) cannot match anything that
        starts so (a partial match, with the ``regex`` module; unanchored ones: unknown)."""
        if self._partial is None:
            self._partial = False
            second = self.second
            pattern = getattr(getattr(second, "__self__", None), "pattern", None)
            if getattr(second, "__name__", "") == "match" and isinstance(pattern, str):
                import contextlib

                import regex

                with contextlib.suppress(regex.error):
                    self._partial = regex.compile(pattern).match
        partial = self._partial
        if partial is False or partial is True:
            return False
        return partial(directory, partial=True) is None


def _any_name(tests: Sequence[_Quick]) -> Callable[[str], bool]:
    """``any(t.name(c) for t in tests)`` in one test: their names, suffixes and prefixes
    merged."""
    if len(tests) == 1:
        return tests[0].name
    names = frozenset().union(*(t.names for t in tests))
    ends = tuple(e for t in tests for e in t.ends)
    starts = tuple(b for t in tests for b in t.starts)
    regexes = tuple(t.in_name for t in tests if t.in_name is not None)

    def name(c: str) -> bool:
        return (
            c in names
            or c.endswith(ends)
            or c.startswith(starts)
            or any(r(c) is not None for r in regexes)
        )

    return name


_META = frozenset(".^$*+?{}[]\\|()")


def _literal_prefix(regex: str) -> str:
    """The characters that every match of ``regex`` (anchored: ``^`` first) starts with."""
    out: list[str] = []
    i = 1
    while i < len(regex):
        c = regex[i]
        if c == "\\" and i + 1 < len(regex) and not regex[i + 1].isalnum():
            out.append(regex[i + 1])
            i += 2
        elif c in _META:
            break
        else:
            out.append(c)
            i += 1
    if i < len(regex) and regex[i] in "*?{":  # the last character may repeat or be missing
        out = out[:-1]
    return "".join(out)


def _anchored(
    parts: list[str], flags: int
) -> tuple[tuple[str, ...], Callable[[str], object] | None, Callable[[str], object] | None]:
    """The patterns with a slash (``/build-*``, ``doc/*.txt``): the literal starts of those
    anchored to one (most), one regex for those (tried only on a path that starts so), one
    regex for the others."""
    prefixed: list[str] = []
    starts: list[str] = []
    other: list[str] = []
    for p in parts:
        lead = _literal_prefix(p) if p.startswith("^") and not flags & re.IGNORECASE else ""
        if lead:
            prefixed.append(p)
            starts.append(lead)
        else:
            other.append(p)
    first = re.compile("|".join(f"(?:{p})" for p in prefixed), flags).match if prefixed else None
    second = None
    if other:
        rx = re.compile("|".join(f"(?:{p})" for p in other), flags)
        second = rx.match if all(p.startswith("^") for p in other) else rx.search
    return tuple(starts), first, second


class _Level:
    """The patterns of one ignore file, for paths under ``base`` (relative to the top, "" for
    the top, no trailing "/"): pathspec compiles them when the quick test first says maybe.
    ``source``, ``lines`` and ``own`` say where they came from, for ``-v``: a label, and the
    lines as read (patterns of the level's own file first; ``own`` of them: the rest are
    exclude patterns)."""

    __slots__ = ("_spec", "base", "cut", "lines", "own", "patterns", "quick", "source")

    def __init__(
        self,
        base: str,
        patterns: Sequence[str],
        source: str = "",
        lines: Sequence[str] = (),
        own: int | None = None,
    ) -> None:
        self.base = base
        self.cut = base + "/" if base else ""  # what a path under it starts with
        self.patterns = tuple(patterns)
        self.source, self.lines, self.own = source, lines, own
        # compiled now only if this pathspec cannot give its regex texts without compiling
        self._spec = None if _to_regex() is not None else _compile(self.patterns)
        self.quick = _quick_test(self.patterns, self._spec)

    @property
    def spec(self) -> pathspec.GitIgnoreSpec:
        if self._spec is None:
            self._spec = _compile(self.patterns)
        return self._spec

    def verdict(self, path: str) -> bool | None:
        """True: ignored, False: re-included (``!``), None: no pattern matches ``path``."""
        if self.quick is not None and self.quick(path) is None:
            return None
        include: bool | None = self.spec.check_file(path).include
        return include

    def explain(self, index: int | None, prefix: str = "") -> str:
        """``SOURCE:LINE (PATTERN)`` for the pattern at ``index`` of the spec (``-v`` only: the
        line is found again the way :func:`_spec` kept it)."""
        pattern = ""
        if index is not None and 0 <= index < len(self.spec.patterns):
            pattern = str(getattr(self.spec.patterns[index], "pattern", "") or "")
        kept = [
            n
            for n, ln in enumerate(self.lines, 1)
            if ln.strip()
            and not ln.lstrip().startswith("#")
            and not too_costly(ln)
            and _valid_line(ln)
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
        own = _patterns(kascan_patterns, warn, "the excludes and .kascanignore")
        self._kascan = (
            _Level(root_rel, own, ".kascanignore", kascan_patterns, own_lines) if own else None
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
                kept = _patterns(lines, warn, str(glob))
                if kept:
                    levels.append(_Level("", kept, str(glob), lines))
            if repo is not None:
                exclude = repo / ".git" / "info" / "exclude"
                lines = _read_lines(exclude, warn)
                kept = _patterns(lines, warn, str(exclude))
                if kept:
                    levels.append(_Level("", kept, str(exclude), lines))
                # .gitignore files of the directories between the repository root and the root
                parts = root_rel.split("/") if root_rel else []
                for i in range(len(parts)):
                    base = "/".join(parts[:i])
                    gitignore = top / base / ".gitignore"
                    lines = _read_lines(gitignore, warn)
                    kept = _patterns(lines, warn, str(gitignore))
                    if kept:
                        levels.append(_Level(base, kept, str(gitignore), lines))
        return cls(top, root_rel, patterns, levels, use_git, warn, own)

    def push(self, rel_dir: str, gitignore: Path) -> bool:
        """Add the ``.gitignore`` of ``rel_dir`` (relative to the scan root); True if added."""
        lines = _read_lines(gitignore, self.warn) if self.use_git else []
        kept = _patterns(lines, self.warn, str(gitignore)) if self.use_git else None
        if kept is None:
            return False
        shown = f"{self.shown}{rel_dir}/.gitignore" if rel_dir else f"{self.shown}.gitignore"
        self._git.append(_Level(self._top_rel(rel_dir), kept, shown, lines))
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
            # _check inlined (called for every entry of a walk, for each level)
            cut = level.cut
            if cut:
                if not path.startswith(cut):
                    continue
                verdict = level.verdict(path[len(cut) :])
            else:
                verdict = level.verdict(path)
            if verdict is not None:
                return verdict
        return False

    def in_directory(self, rel_dir: str) -> Callable[[str, bool], bool]:
        """:meth:`ignored` for the entries of one directory (``rel_dir``: relative to the scan
        root, "" or ending in "/"), as ``check(name, is_dir)``. Where only the patterns that
        name one component can match below the directory (most directories), one merged test
        of an entry's name tells that it is not ignored (most entries), and :meth:`ignored`
        decides the rest. Made after the directory's own ignore file is pushed, used before its
        levels are popped (the walk's stack)."""
        path_dir = (self.root_rel + "/" if self.root_rel else "") + rel_dir
        ignored = self.ignored

        def exact(name: str, is_dir: bool) -> bool:
            return ignored(rel_dir + name, is_dir)

        tests: list[_Quick] = []
        for level in [self._kascan, *self._git] if self._kascan is not None else self._git:
            cut = level.cut
            if cut and not path_dir.startswith(cut):
                if cut.startswith(path_dir):  # (applies to some entries: never pushed so)
                    return exact
                continue
            quick = level.quick
            if quick is None or not quick.names_only(path_dir[len(cut) :]):
                return exact
            tests.append(quick)
        if not tests:
            return _never
        maybe = _any_name(tests)

        def check(name: str, is_dir: bool) -> bool:
            return maybe(name) and ignored(rel_dir + name, is_dir)

        return check

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


def _never(_name: str, _is_dir: bool) -> bool:
    return False


def _below(level: _Level, path: str) -> str:
    return path[len(level.base) + 1 :] if level.base else path


def _check(level: _Level, path: str) -> bool | None:
    if level.cut:
        if not path.startswith(level.cut):
            return None
        path = path[len(level.cut) :]
    return level.verdict(path)


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
