"""``.kascan.toml`` or ``[tool.kascan]`` in ``pyproject.toml`` at the scan root -> frozen Config.

A config file lives inside the scanned tree, so it may only narrow a scan (``exclude``) or name a
baseline; it can never choose where keys are sent for verification.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from kascan.errors import KascanError

_KNOWN = {"exclude", "baseline"}
_REFUSED = {"api-url", "api_url", "apiurl", "verify", "api"}


@dataclass(frozen=True, slots=True)
class Config:
    source: str | None = None
    exclude: tuple[str, ...] = ()
    baseline: Path | None = None


def _parse(
    table: Mapping[str, object], source: str, root: Path, warn: Callable[[str], None]
) -> Config:
    for key in table:
        if key in _REFUSED:
            warn(
                f"{source}: {key!r} ignored: the API URL and verification are only set on the "
                "command line or in the environment, never by a file in the scanned tree"
            )
        elif key not in _KNOWN:
            raise KascanError(
                f"bad config {source}: unknown key {key!r} (known: exclude, baseline)"
            )
    exclude = table.get("exclude", [])
    if isinstance(exclude, str):
        exclude = [exclude]
    if not isinstance(exclude, list) or not all(isinstance(e, str) for e in exclude):
        raise KascanError(f"bad config {source}: exclude must be a list of gitignore patterns")
    baseline = table.get("baseline")
    if baseline is not None and not isinstance(baseline, str):
        raise KascanError(f"bad config {source}: baseline must be a path")
    return Config(
        source=source,
        exclude=tuple(exclude),
        baseline=(root / baseline) if baseline else None,
    )


def _read(path: Path) -> str:
    """A config file's text: a regular file of at most 16 MiB (a FIFO or device is refused
    before it can block or be read forever)."""
    from kascan.safeio import CONFIG_CAP, read_regular, reason

    try:
        return read_regular(path, CONFIG_CAP).decode("utf-8")
    except OSError as exc:
        raise KascanError(f"cannot read config {path}: {reason(exc)}") from None
    except UnicodeDecodeError as exc:
        raise KascanError(f"cannot read config {path}: {exc}") from None


def _special(path: Path, warn: Callable[[str], None]) -> bool:
    """A config name in the tree that is there but not a regular file: a warning, not read."""
    if path.is_file() or not os.path.lexists(path):
        return False
    warn(f"{path} ignored: not a regular file")
    return True


def config_from_text(
    text: str, source: str, warn: Callable[[str], None], root: Path | None = None
) -> Config:
    """A ``.kascan.toml`` read from somewhere else than a file (a git blob): ``root`` is where
    its baseline path is relative to (None: a baseline cannot be used, with a warning)."""
    cfg = _parse(_load_toml(Path(source), text), source, root or Path(), warn)
    if root is None and cfg.baseline is not None:
        warn(f"{source}: baseline ignored for a repository without a work tree")
        cfg = Config(cfg.source, cfg.exclude, None)
    return cfg


def _load_toml(path: Path, text: str | None = None) -> dict[str, object]:
    if sys.version_info >= (3, 11):  # imported only when there is a file to read (~5 ms)
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        doc: dict[str, object] = tomllib.loads(_read(path) if text is None else text)
        return doc
    except tomllib.TOMLDecodeError as exc:
        raise KascanError(f"bad config {path}: not valid TOML ({exc})") from None


def load_config(root: Path, warn: Callable[[str], None], explicit: Path | None = None) -> Config:
    """The config for a scan root: ``--config FILE``, else ``.kascan.toml``, else pyproject."""
    if explicit is not None:
        return _parse(_load_toml(explicit), str(explicit), explicit.parent, warn)
    dot = root / ".kascan.toml"
    if dot.is_file():
        return _parse(_load_toml(dot), str(dot), root, warn)
    _special(dot, warn)
    pyproject = root / "pyproject.toml"
    if not _special(pyproject, warn) and pyproject.is_file():
        text = _read(pyproject)
        if "kascan" not in text:  # no [tool.kascan]: no need to parse it
            return Config()
        doc = _load_toml(pyproject, text)
        tool = doc.get("tool")
        table = tool.get("kascan") if isinstance(tool, dict) else None
        if isinstance(table, dict):
            return _parse(table, f"{pyproject} [tool.kascan]", root, warn)
    return Config()
