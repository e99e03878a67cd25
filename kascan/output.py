"""What kascan writes, made safe to show and safe to write.

- :func:`escape`: the one escaping for every human-facing line (text and keys reports, warnings,
  errors, summaries, notes). Scanned names are attacker-written: a control character, an ESC
  sequence, a newline or a bidi override in a path or an author name is shown in a visible form
  (``\\x1b``, ``\\n``, ``\\u202e``), a byte that is not UTF-8 as ``\\xNN``, and nothing in it can
  start a GitHub workflow command (``::cmd::`` at a line start, ``##[cmd]`` anywhere).
- :func:`workflow_data` and :func:`workflow_property`: values inside a workflow command, escaped
  as the GitHub runner unescapes them (``%``, CR, LF; also ``:`` and ``,`` in properties).
- :func:`unsurrogate` and :func:`raw_bytes`: a name that is not UTF-8 (read with
  ``surrogateescape``) as readable text, and back as its exact bytes (JSON ``path_bytes``).
- :func:`write_report`: ``-o FILE`` written through a private temporary file in the target
  directory and renamed into place; a FIFO, device or socket that kascan did not create is refused
  without being opened, unless the path names a stream (``/dev/stdout``, ``/dev/fd/N``).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from kascan.errors import KascanError

# Unicode Cc (C0, DEL, C1), Cf (format: soft hyphen, zero-width, bidi marks, embeddings,
# overrides and isolates, BOM, tags...), Zl, Zp and lone surrogates (Cs): never shown raw.
_UNSAFE_CHARS = (
    "\x00-\x1f\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e"
    "\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    "\ud800-\udfff\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f"
)
_UNSAFE = f"[{_UNSAFE_CHARS}]|##\\["  # patterns compiled on first use (re caches them)
_SURROGATE = "[\ud800-\udfff]"
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _visible(m: re.Match[str]) -> str:
    ch = m.group(0)
    if ch == "##[":
        return "##\\x5b"  # the runner's old command form (##[add-mask]...) is parsed anywhere
    named = _NAMED.get(ch)
    if named is not None:
        return named
    cp = ord(ch)
    if 0xDC80 <= cp <= 0xDCFF:  # a byte that was not UTF-8, decoded with surrogateescape
        return f"\\x{cp - 0xDC00:02x}"
    if cp <= 0xFF:
        return f"\\x{cp:02x}"
    return f"\\u{cp:04x}" if cp <= 0xFFFF else f"\\U{cp:08x}"


def escape(text: str) -> str:
    """``text`` safe to print on a terminal or a CI log, in a visible, readable form.

    Control, format and bidi characters become ``\\xNN``/``\\uNNNN`` (``\\n``, ``\\r``, ``\\t``),
    undecodable bytes ``\\xNN``, ``##[`` becomes ``##\\x5b``, and a leading ``::`` (after
    whitespace) ``\\x3a:``, so the result is one line that cannot erase, hide or reorder what
    is around it nor be read as a workflow command. Printable text is returned unchanged."""
    if text.isprintable() and "##[" not in text and "::" not in text[:2] and not text[:1].isspace():
        return text  # the common case: nothing to change
    out = re.compile(_UNSAFE).sub(_visible, text)
    stripped = out.lstrip()
    if stripped.startswith("::"):
        lead = len(out) - len(stripped)
        out = out[:lead] + "\\x3a" + out[lead + 1 :]
    return out


def workflow_data(value: str) -> str:
    """The message of a GitHub workflow command (``::error …::MESSAGE``): ``%``, CR and LF as the
    runner expects them (``%25``, ``%0D``, ``%0A``); other control characters made visible."""
    value = value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if value.isprintable() and "##[" not in value:
        return value
    return re.compile(_UNSAFE).sub(_visible, value)


def workflow_property(value: str) -> str:
    """A property value of a workflow command (``file=…,title=…``): as :func:`workflow_data`,
    and ``:`` and ``,`` too, so a value cannot end the property list or start the message."""
    return workflow_data(value).replace(":", "%3A").replace(",", "%2C")


def unsurrogate(text: str) -> str:
    """``text`` with the undecodable bytes of a non-UTF-8 name (surrogate escapes) as ``\\xNN``:
    valid Unicode that any UTF-8 writer accepts. Other text is returned unchanged."""
    if not has_surrogates(text):
        return text
    return re.compile(_SURROGATE).sub(_visible, text)


def has_surrogates(text: str) -> bool:
    """Whether ``text`` holds a surrogate escape: the one thing UTF-8 cannot encode (asked of the
    codec, not of a regex, so that text with no such name compiles none)."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def raw_bytes(text: str) -> bytes:
    """The exact bytes of a name decoded with ``surrogateescape`` (as ``os.fsencode`` gives);
    a lone surrogate that is not an escaped byte is kept as its UTF-8-style code unit."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


# -- report files ---------------------------------------------------------------------------

# Paths that name a stream, written through (never replaced). Anything else that is not a
# regular file, a symlink or absent is refused: a FIFO planted in a shared directory would
# receive the report (or hang the run, with no reader), a device would be written to.
_STREAM_FDS = {"/dev/stdout": 1, "/dev/stderr": 2}
_FD_PATH = r"/(?:dev/fd|proc/self/fd)/([0-9]{1,6})"
_DEVICES = frozenset({"/dev/null"})


def stream_fd(path: Path) -> int | None:
    """The file descriptor a path names (``/dev/stdout`` 1, ``/dev/fd/N`` N), else None."""
    name = os.fspath(path)
    if name in _STREAM_FDS:
        return _STREAM_FDS[name]
    m = re.compile(_FD_PATH).fullmatch(name)
    return int(m.group(1)) if m else None


def _kind(mode: int) -> str | None:
    """What a non-regular file is, or None for what ``write_report`` may replace."""
    import stat

    if stat.S_ISREG(mode) or stat.S_ISLNK(mode):
        return None
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "device"


def check_target(path: Path) -> None:
    """Raise a one-line :class:`KascanError` if ``path`` may not receive a report; never opens it
    (``lstat`` only: opening a FIFO with no reader blocks). Callers may use it before a scan."""
    name = os.fspath(path)
    if stream_fd(path) is not None or name in _DEVICES:
        return
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise KascanError(f"cannot write report {escape(name)}: {exc.strerror or exc}") from None
    kind = _kind(st.st_mode)
    if kind == "directory":
        raise KascanError(f"cannot write report {escape(name)}: it is a directory")
    if kind is not None:
        raise KascanError(
            f"refusing to write report {escape(name)}: it is a {kind} that kascan did not create "
            "(to write to a pipe, name it: -o /dev/stdout or -o /dev/fd/N)"
        )


def write_report(
    path: Path,
    render: Callable[[TextIO], None],
    secret: bool,
    on_error: Callable[[], None] | None = None,
) -> None:
    """Write a report to ``path``: ``render(fh)`` writes its text.

    A regular file (or a new one) is written to a temporary file created with ``O_EXCL`` in the
    target directory and renamed over ``path``: a failed write leaves no partial report, and the
    rename replaces a symlink planted at ``path`` instead of following it. The file is mode 0600
    when ``secret`` (it holds full keys, ``--show-secrets``), else what the umask allows.
    ``/dev/stdout``, ``/dev/stderr``, ``/dev/fd/N`` write to that open descriptor and
    ``/dev/null`` is written through; a FIFO, socket or device at any other path is refused
    without being opened. Every failure is one line (a :class:`KascanError`, exit 2), after
    ``on_error()`` has had the chance to show what would have been lost."""
    name = os.fspath(path)
    tmp: str | None = None
    try:
        check_target(path)
        fd = stream_fd(path)
        if fd is not None:
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            with os.fdopen(os.dup(fd), "w", encoding="utf-8", errors="backslashreplace") as fh:
                render(fh)
            return
        if name in _DEVICES:
            with open(name, "w", encoding="utf-8", errors="backslashreplace") as fh:
                render(fh)
            return
        import tempfile

        parent = path.parent if name else Path()
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
        if not secret:
            umask = os.umask(0o077)
            os.umask(umask)
            os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as fh:
            render(fh)
        os.replace(tmp, path)  # rename(2): replaces a planted symlink, never follows it
        tmp = None
    except KascanError:
        if on_error is not None:
            on_error()
        raise
    except OSError as exc:
        if on_error is not None:
            on_error()
        raise KascanError(f"cannot write report {escape(name)}: {exc.strerror or exc}") from None
    finally:
        if tmp is not None:
            import contextlib

            with contextlib.suppress(OSError):
                os.unlink(tmp)
