"""Baseline files: kascan JSON reports whose entries are never lost, each with an optional triage
state (``"triage": {"state": …, "reason": …}``); merged, read and written here, for the
``kascan baseline`` command and for a report written over the baseline in use."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO, cast

from kascan.errors import KascanError
from kascan.model import Finding
from kascan.report import Renderer, ReportContext
from kascan.suppress import triage_state

Entry = dict[str, object]


def entry_identity(e: Entry) -> tuple[object, ...]:
    keys = ("repo", "path", "line", "column", "rule_id", "commit", "fingerprint", "decoded")
    return tuple(e.get(k) for k in keys)


def entry_sort_key(e: Entry) -> tuple[str, str, int, int, str, str]:
    def s(k: str) -> str:
        v = e.get(k)
        return v if isinstance(v, str) else ""

    def i(k: str) -> int:
        v = e.get(k)
        return v if isinstance(v, int) else 0

    return (s("repo"), s("path"), i("line"), i("column"), s("rule_id"), s("commit"))


def entry_fingerprint(e: Entry) -> str:
    fp = e.get("fingerprint")
    return fp if isinstance(fp, str) else ""


def entries_of(doc: dict[str, object], path: Path) -> list[Entry]:
    """The findings of a baseline file, each checked (a fingerprint, a known triage state)."""
    out: list[Entry] = []
    for item in cast("list[object]", doc["findings"]):
        if not isinstance(item, dict) or not entry_fingerprint(cast(Entry, item)).startswith(
            "sha256:"
        ):
            raise KascanError(f"cannot read baseline {path}: a finding has no sha256 fingerprint")
        try:
            triage_state(item)
        except ValueError as exc:
            raise KascanError(f"cannot read baseline {path}: {exc}") from None
        out.append(cast(Entry, item))
    return out


def read_baseline(path: Path) -> tuple[dict[str, object], list[Entry]]:
    from kascan.reportio import read_report

    _, doc = read_report(path, "baseline")
    return doc, entries_of(doc, path)


@dataclass
class Merged:
    entries: list[Entry]
    added: int
    pruned: int


def merge_entries(
    old: Sequence[Entry], new: Iterable[Entry], *, prune: bool, triaged: bool
) -> Merged:
    """Every old entry kept (``prune``: unless its key is not in ``new``); a new entry at a new
    place takes the triage of its key if the key has one, else ``untriaged`` when ``triaged``."""
    new = list(new)
    state_of: dict[str, object] = {}
    for e in old:
        if triage_state(e) not in (None, "untriaged"):
            state_of.setdefault(entry_fingerprint(e), e["triage"])
    found = {entry_fingerprint(e) for e in new}
    kept = [e for e in old if not prune or entry_fingerprint(e) in found]
    seen = {entry_identity(e) for e in kept}
    added = 0
    for e in new:
        if entry_identity(e) in seen:
            continue
        seen.add(entry_identity(e))
        e = {k: v for k, v in e.items() if k != "triage"}
        triage = state_of.get(entry_fingerprint(e))
        if triage is not None:
            e["triage"] = dict(cast("dict[str, object]", triage))
        elif triaged:
            e["triage"] = {"state": "untriaged"}
        kept.append(e)
        added += 1
    kept.sort(key=entry_sort_key)
    return Merged(kept, added, len(old) - (len(kept) - added))


def write_baseline(path: Path, doc: dict[str, object]) -> None:
    """Atomically: the old file stays whole until the new one is complete."""
    import tempfile

    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2, ensure_ascii=False)
            fh.write("\n")
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise KascanError(f"cannot write baseline {path}: {exc.strerror or exc}") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def keeping_entries(render: Renderer, path: Path) -> Renderer:
    """The JSON renderer for a report written over the baseline ``path`` in use: the report's
    findings are merged into the baseline's entries, none of which is lost."""

    def keep(findings: Sequence[Finding], out: TextIO, ctx: ReportContext) -> None:
        import io

        buf = io.StringIO()
        render(findings, buf, ctx)
        doc = cast("dict[str, object]", json.loads(buf.getvalue()))
        _, old = read_baseline(path)
        triaged = any(triage_state(e) is not None for e in old)
        new = cast("list[Entry]", doc["findings"])
        doc["findings"] = merge_entries(old, new, prune=False, triaged=triaged).entries
        json.dump(doc, out, indent=2, ensure_ascii=False)
        out.write("\n")

    return keep


def same_file(a: Path, b: Path) -> bool:
    """Whether two spellings name one file (or would, once it exists)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()
