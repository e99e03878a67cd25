"""Files and directory trees: walk with ignore rules, then read each file in windows."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kascan.engine import any_needle
from kascan.model import Chunk
from kascan.sources.archives import iter_content, opens
from kascan.sources.base import FileRef, Run, Source, TreeSource
from kascan.sources.stream import WINDOW
from kascan.stats import ScanStats, Skipped, skipped

if TYPE_CHECKING:
    from kascan.ignore import Ignorer
    from kascan.sources.archives import Limits

Warn = Callable[[str], None]


def _name(entry: os.DirEntry[str]) -> str:
    return entry.name


def iter_tree(
    root: Path,
    prefix: str,
    ignorer: Ignorer | None,
    stats: ScanStats,
    warn: Warn,
    follow_symlinks: bool = False,
    note: Warn | None = None,
) -> Iterator[FileRef]:
    """Regular files under ``root`` in a stable (sorted) order; ``.git`` is never entered.

    ``note`` (``-v``) hears of each entry not walked, and why: one line for an ignored
    directory, none for what is inside it."""
    seen: set[tuple[int, int]] = set()
    if follow_symlinks:
        st = root.stat()
        seen.add((st.st_dev, st.st_ino))

    # an explicit stack rather than recursion: a file deep in the tree is yielded through one
    # generator frame, not one per directory level
    frames: list[tuple[Iterator[os.DirEntry[str]], str, bool, Callable[[str, bool], bool]]] = []

    def enter(dir_fs: str, rel: str) -> None:
        try:
            with os.scandir(dir_fs) as it:
                entries = sorted(it, key=_name)
        except OSError as exc:
            stats.unreadable += 1
            warn(f"cannot read directory {prefix + rel or '.'}: {exc.strerror or exc}")
            if note is not None:
                note(skipped(prefix + rel or "./", f"cannot read the directory: {_why(exc)}"))
            return
        pushed = False
        if ignorer is not None and any(e.name == ".gitignore" for e in entries):
            pushed = ignorer.push(rel.rstrip("/"), Path(dir_fs) / ".gitignore")
        check = ignorer.in_directory(rel) if ignorer is not None else _kept
        frames.append((iter(entries), rel, pushed, check))

    enter(str(root), "")
    try:
        while frames:
            entries, rel, pushed, ignored = frames[-1]
            for entry in entries:
                name = entry.name
                if name == ".git":
                    continue
                rel_path = rel + name
                try:
                    is_link = entry.is_symlink()
                    if is_link and not follow_symlinks:
                        stats.skipped["symlink"] += 1
                        if note is not None:
                            note(skipped(prefix + rel_path, _LINK))
                        continue
                    is_dir = entry.is_dir(follow_symlinks=follow_symlinks)
                    is_file = not is_dir and entry.is_file(follow_symlinks=follow_symlinks)
                except OSError as exc:
                    stats.unreadable += 1
                    if note is not None:
                        note(skipped(prefix + rel_path, f"cannot read: {_why(exc)}"))
                    continue
                if not is_dir and not is_file:
                    stats.skipped["special"] += 1  # FIFO, socket, device, dangling link
                    if note is not None:
                        note(skipped(prefix + rel_path, _special(entry, follow_symlinks)))
                    continue
                if ignored(name, is_dir):
                    stats.skipped["ignored"] += 1
                    if note is not None and ignorer is not None:
                        shown = prefix + rel_path + ("/" if is_dir else "")
                        note(skipped(shown, ignorer.explain(rel_path, is_dir)))
                    continue
                if is_dir:
                    if follow_symlinks:
                        try:
                            st = entry.stat()
                        except OSError as exc:
                            stats.unreadable += 1
                            if note is not None:
                                note(skipped(prefix + rel_path + "/", f"cannot read: {_why(exc)}"))
                            continue
                        key = (st.st_dev, st.st_ino)
                        if key in seen:
                            stats.skipped["symlink-loop"] += 1
                            if note is not None:
                                why = "a symbolic link loop (this directory is walked already)"
                                note(skipped(prefix + rel_path + "/", why))
                            continue
                        seen.add(key)
                    enter(entry.path, rel_path + "/")
                    break  # go down; this directory's other entries wait on the stack
                yield FileRef(entry.path, prefix + rel_path)
            else:  # every entry done: back up
                frames.pop()
                if pushed and ignorer is not None:
                    ignorer.pop()
    finally:
        for _entries, _rel, pushed, _ignored in reversed(frames):  # a walk abandoned half-way
            if pushed and ignorer is not None:
                ignorer.pop()


def _kept(_name: str, _is_dir: bool) -> bool:
    return False


_LINK = "a symbolic link (followed with --follow-symlinks)"


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _kind(mode: int) -> str:
    """``a FIFO, not a regular file`` (``-v``)."""
    what = next((what for test, what in _KINDS if test(mode)), None)
    return f"{what}, not a regular file" if what else "not a regular file"


def _special(entry: os.DirEntry[str], follow_symlinks: bool) -> str:
    """Why a walked entry that is neither a file nor a directory is skipped (``-v`` only)."""
    try:
        mode = entry.stat(follow_symlinks=follow_symlinks).st_mode
    except OSError:
        return "a dangling symbolic link"
    return _kind(mode)


def read_file(
    ref: FileRef,
    stats: ScanStats,
    warn: Warn,
    explicit: bool = False,
    archives: Limits | None = None,
    note: Warn | None = None,
    quiet: bool = False,
    threads: int | None = None,
) -> Iterator[Chunk]:
    """Chunks of one file; an unreadable file is a warning and counted, never fatal.

    With ``archives`` limits, a file whose first bytes are an archive magic is scanned member by
    member (see :mod:`kascan.sources.archives`).

    A walked file must be a regular file (opened non-blocking, so a FIFO swapped in cannot hang
    the scan); a path named on the command line may also be a pipe (``kascan scan <(cmd)``).
    ``quiet``: chunks without any needle may be left out (see :mod:`kascan.sources.stream`);
    ``threads``: at most so many read a big file's parts side by side (None: one per core).
    """
    try:
        fd = os.open(ref.fs_path, os.O_RDONLY | (0 if explicit else os.O_NONBLOCK))
    except OSError as exc:
        stats.unreadable += 1
        warn(f"cannot read {ref.path}: {exc.strerror or exc}")
        if note is not None:
            note(skipped(ref.path, f"cannot read: {_why(exc)}"))
        return
    try:
        try:
            st = os.fstat(fd)
        except OSError as exc:
            stats.unreadable += 1
            warn(f"cannot read {ref.path}: {exc.strerror or exc}")
            if note is not None:
                note(skipped(ref.path, f"cannot read: {_why(exc)}"))
            return
        mode = st.st_mode
        regular = stat.S_ISREG(mode)
        if not regular and not (explicit and stat.S_ISFIFO(mode) | stat.S_ISCHR(mode)):
            stats.skipped["special"] += 1
            if note is not None:
                note(skipped(ref.path, _kind(mode)))
            return
        size = 0
        expect = st.st_size + 1  # a small file is read in one call, without a window-sized buffer
        at_end = False

        def read(n: int) -> bytes:
            nonlocal size, at_end
            if at_end:
                return b""
            want = min(n, max(expect - size, 1 << 16))
            block = os.read(fd, want)
            size += len(block)
            at_end = regular and len(block) < want  # a short read of a regular file: its end
            return block

        try:
            yield from iter_content(
                read,
                ref.path,
                by_line=not regular,
                limits=archives,
                warn=warn,
                fd=fd if regular else None,
                quiet=quiet,
                threads=threads,
            )
        except OSError as exc:
            stats.unreadable += 1
            warn(f"cannot read {ref.path}: {exc.strerror or exc} (after {size} bytes)")
            if note is not None:
                note(Skipped(f"skipped the rest of {ref.path}: cannot read: {_why(exc)}"))
            return
        stats.files += 1
        stats.bytes += max(size, st.st_size) if regular else size
    finally:
        os.close(fd)


def skim(ref: FileRef, stats: ScanStats, archives: Limits | None = None) -> bool:
    """Whether ``ref`` is a regular file under a window without any needle of
    :mod:`kascan.engine` (nor, with ``archives``, an archive magic): read whole in one call, as
    :func:`read_file` reads it, and counted as scanned. With every rule the built-in one there is
    nothing to find in it: ``read_file(..., quiet=True)`` would hand on no chunk. Most files of a
    tree are such files, and this costs half of reading them through ``read_file``.

    False: read the file with :func:`read_file` (which then warns of what cannot be read; this
    read is not counted). Keep the counting in step with ``read_file``'s."""
    try:
        fd = os.open(ref.fs_path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size >= WINDOW:
            return False
        want = max(st.st_size + 1, 1 << 16)  # read_file's first read
        data = os.read(fd, want)
    except OSError:
        return False
    finally:
        os.close(fd)
    if len(data) == want or any_needle(data) or (archives is not None and opens(data)):
        return False  # (the file grew past its size: read_file goes on reading it)
    stats.files += 1
    stats.bytes += max(len(data), st.st_size)
    return True


def iter_stdin(
    stats: ScanStats,
    path: str = "-",
    warn: Warn | None = None,
    archives: Limits | None = None,
) -> Iterator[Chunk]:
    """Standard input, scanned line by line as it arrives (``kubectl logs -f | kascan scan -``);
    a compressed stream or an archive on stdin is opened when ``archives`` limits are given."""
    fd = 0
    size = 0

    def read(n: int) -> bytes:
        nonlocal size
        block = os.read(fd, min(n, 1 << 16))
        size += len(block)
        return block

    yield from iter_content(read, path, by_line=True, limits=archives, warn=warn or _no_warn)
    stats.files += 1
    stats.bytes += size


def _no_warn(_: str) -> None:
    pass


def resolve_roots(paths: Sequence[str]) -> list[tuple[str, Path | None]]:
    """Check every PATH before scanning anything: a missing one is a usage error."""
    from kascan.errors import KascanError

    out: list[tuple[str, Path | None]] = []
    for p in paths:
        if p == "-":
            out.append((p, None))
            continue
        path = Path(p)
        try:
            path.stat()
        except FileNotFoundError:
            raise KascanError(f"no such file or directory: {p}") from None
        except OSError as exc:
            raise KascanError(f"cannot read {p}: {exc.strerror or exc}") from None
        out.append((p, path))
    return out


# --------------------------------------------------------------------------- the sources


class TreeWalk(TreeSource):
    """A directory tree, walked with its ignore files (``no_ignore``: only ``excludes``)."""

    def __init__(
        self,
        root: Path,
        prefix: str,
        excludes: Sequence[str],
        stats: ScanStats,
        *,
        no_ignore: bool = False,
        follow_symlinks: bool = False,
    ) -> None:
        super().__init__()
        self.root, self.prefix, self.excludes = root, prefix, tuple(excludes)
        self.stats, self.no_ignore, self.follow_symlinks = stats, no_ignore, follow_symlinks

    def walk(self, warn: Warn, verbose: bool = False) -> Iterator[FileRef]:
        from kascan.ignore import Ignorer

        ignorer: Ignorer | None
        if self.no_ignore:  # only the excludes asked for on the command line
            ignorer = (
                Ignorer.for_root(self.root, self.excludes, use_git=False) if self.excludes else None
            )
        else:
            ignorer = Ignorer.for_root(self.root, self.excludes, warn=warn)
        if ignorer is not None:
            ignorer.shown = self.prefix
        yield from iter_tree(
            self.root,
            self.prefix,
            ignorer,
            self.stats,
            warn,
            self.follow_symlinks,
            note=warn if verbose else None,
        )


class FileSource(Source):
    """One file named on the command line (a pipe too: ``kascan scan <(cmd)``)."""

    def __init__(self, fs_path: str, shown: str) -> None:
        super().__init__()
        self.ref = FileRef(fs_path, shown)

    def chunks(self, run: Run) -> Iterator[Chunk]:
        return read_file(
            self.ref,
            run.stats,
            run.warn,
            explicit=True,
            archives=run.limits,
            note=run.note,
            quiet=run.quiet,
            threads=run.threads,
        )


class StdinSource(Source):
    """Standard input, line by line as it arrives."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def chunks(self, run: Run) -> Iterator[Chunk]:
        return iter_stdin(run.stats, self.name, run.warn, run.limits)
