"""Reading kascan JSON reports back into records (``kascan merge``, resumable sweep state).

A report written without ``--show-secrets`` holds only the redacted key and its fingerprint; the
fingerprint is authoritative, and the :class:`Secret` read back carries only what the report had.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from kascan.errors import KascanError
from kascan.model import STATUSES, Commit, Finding, Secret, Verification
from kascan.report import RepoSummary
from kascan.stats import ScanStats

_STAT_INTS = ("files", "bytes", "unreadable", "candidates", "reported")


@dataclass
class LoadedReport:
    path: Path
    command: str
    findings: list[Finding]
    stats: ScanStats
    repos: list[RepoSummary]
    digest: str = ""  # sha256 of the file: the same report given twice is read once


def _str(d: dict[str, object], key: str) -> str | None:
    v = d.get(key)
    if v is None:
        return None
    if not isinstance(v, str):
        raise ValueError(f"{key} is not a string")
    return v


def _int(d: dict[str, object], key: str, default: int = 0) -> int:
    v = d.get(key, default)
    if v is None:
        return default
    if not isinstance(v, int) or isinstance(v, bool):
        raise ValueError(f"{key} is not an integer")
    return v


def _named(d: dict[str, object], key: str) -> str | None:
    """A name as the JSON report wrote it: from ``<key>_bytes`` (base64 of the exact bytes of a
    name that is not UTF-8) when present, decoded as the file system decodes names."""
    raw = _str(d, key + "_bytes")
    if raw is None:
        return _str(d, key)
    import base64
    import binascii

    try:
        return base64.b64decode(raw, validate=True).decode("utf-8", "surrogateescape")
    except (binascii.Error, ValueError):
        raise ValueError(f"{key}_bytes is not base64") from None


def finding_from_dict(d: object, repo: str | None = None) -> Finding:
    """A finding as ``json_report.finding_dict`` wrote it. ``repo`` fills a missing repo."""
    if not isinstance(d, dict):
        raise ValueError("a finding is not an object")
    d = cast("dict[str, object]", d)
    fp = _str(d, "fingerprint")
    shown = _str(d, "secret")
    if not fp or not fp.startswith("sha256:") or shown is None:
        raise ValueError("a finding has no secret or sha256 fingerprint")
    sha = _str(d, "commit")
    commit = (
        Commit(sha, _str(d, "author") or "", _str(d, "email") or "", _str(d, "date") or "")
        if sha
        else None
    )
    v = d.get("verification") or {}
    if not isinstance(v, dict):
        raise ValueError("verification is not an object")
    v = cast("dict[str, object]", v)
    status = v.get("status", "unchecked")
    if status not in STATUSES:
        raise ValueError(f"unknown verification status {status!r}")
    verification = Verification(
        status,
        _str(v, "detail"),
        _str(v, "organization"),
        _str(v, "organization_id"),
    )
    rule_id = _str(d, "rule_id")
    path = _named(d, "path")
    if rule_id is None or path is None:
        raise ValueError("a finding has no rule_id or path")
    return Finding(
        rule_id=rule_id,
        path=path,
        line=_int(d, "line", 1),
        column=_int(d, "column", 1),
        secret=Secret.from_report(shown, fp),
        commit=commit,
        repo=_named(d, "repo") or repo,
        decoded=_str(d, "decoded"),
        verification=verification,
        end_column=_int(d, "end_column"),
    )


def stats_from_dict(d: object) -> ScanStats:
    if not isinstance(d, dict):
        raise ValueError("summary is not an object")
    d = cast("dict[str, object]", d)
    s = ScanStats()
    for k, v in d.items():
        if k in _STAT_INTS:
            setattr(s, k, _int(d, k))
        elif k in ("skipped", "dropped", "limits"):
            if not isinstance(v, dict):
                raise ValueError(f"{k} is not an object")
            c: Counter[str] = Counter()
            for why, n in v.items():
                if not isinstance(n, int):
                    raise ValueError(f"{k}.{why} is not an integer")
                c[str(why)] = n
            setattr(s, k, c)
        elif isinstance(v, int) and not isinstance(v, bool):
            s.extra[k] = v
    return s


def repo_from_dict(d: object) -> RepoSummary:
    if not isinstance(d, dict):
        raise ValueError("a repos entry is not an object")
    d = cast("dict[str, object]", d)
    repo = _str(d, "repo")
    if not repo:
        raise ValueError("a repos entry has no repo")
    return RepoSummary(
        repo=repo,
        commits=_int(d, "commits"),
        blobs=_int(d, "blobs"),
        findings=_int(d, "findings"),
        live=_int(d, "live"),
        status=_str(d, "status") or "scanned",
        error=_str(d, "error"),
    )


def read_report(path: Path, what: str = "report") -> tuple[str, dict[str, object]]:
    """The text and the parsed object of a kascan JSON report (a report, or a ``what`` such as a
    baseline), or a KascanError naming the file and what is wrong with it."""
    from kascan.safeio import BASELINE_CAP, read_regular, reason

    try:  # a regular file of at most 256 MiB: a FIFO or /dev/zero is refused, never read
        text = read_regular(path, BASELINE_CAP).decode("utf-8")
    except OSError as exc:
        raise KascanError(f"cannot read {what} {path}: {reason(exc)}") from None
    except UnicodeDecodeError as exc:
        raise KascanError(f"cannot read {what} {path}: {exc}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise KascanError(f"cannot read {what} {path}: not JSON (line {exc.lineno})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("findings"), list):
        raise KascanError(f"cannot read {what} {path}: not a kascan JSON report (no findings)")
    return text, doc


def load_report(path: Path) -> LoadedReport:
    """A kascan JSON report read back into findings, statistics and per-repository summaries."""
    text, doc = read_report(path)
    try:
        findings = [finding_from_dict(d) for d in cast("list[object]", doc["findings"])]
        stats = stats_from_dict(doc.get("summary") or {})
        repos = [repo_from_dict(r) for r in cast("list[object]", doc.get("repos") or [])]
    except ValueError as exc:
        raise KascanError(f"cannot read report {path}: {exc}") from None
    command = doc.get("command")
    import hashlib

    digest = hashlib.sha256(text.encode()).hexdigest()
    cmd = command if isinstance(command, str) else ""
    return LoadedReport(path, cmd, findings, stats, repos, digest)
