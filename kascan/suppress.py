"""Candidates in, findings out: drop what a reason says to drop, and count every drop."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import cast

from kascan.errors import KascanError
from kascan.model import Candidate, Finding
from kascan.stats import ScanStats

# ``kascan baseline audit`` stores one of these per entry, as ``"triage": {"state": …}``; an entry
# without one (a plain report used as a baseline) is baselined, an ``untriaged`` one is reported.
TRIAGE_STATES = ("untriaged", "false-positive", "accepted", "revoked")


def triage_state(item: object) -> str | None:
    """The triage state of a baseline entry (None: a plain report entry), or ValueError."""
    triage = item.get("triage") if isinstance(item, dict) else None
    if triage is None:
        return None
    state = triage.get("state") if isinstance(triage, dict) else None
    if state not in TRIAGE_STATES:
        raise ValueError(f"unknown triage state {str(state)[:40]!r}")
    return cast("str", state)


def load_baseline(path: Path) -> frozenset[str]:
    """Fingerprints listed in a JSON report written earlier by kascan, except the ``untriaged``
    entries of a ``kascan baseline`` file (those are still reported)."""
    from kascan.reportio import read_report

    _, doc = read_report(path, "baseline")
    out: set[str] = set()
    for item in cast("list[object]", doc["findings"]):
        fp = item.get("fingerprint") if isinstance(item, dict) else None
        if not isinstance(fp, str) or not fp.startswith("sha256:"):
            raise KascanError(f"cannot read baseline {path}: a finding has no sha256 fingerprint")
        try:
            state = triage_state(item)
        except ValueError as exc:
            raise KascanError(f"cannot read baseline {path}: {exc}") from None
        if state != "untriaged":
            out.add(fp)
    return frozenset(out)


def in_baseline(finding: Finding, baseline: frozenset[str]) -> bool:
    return finding.fingerprint in baseline


def suppress(
    candidates: Iterable[Candidate], baseline: frozenset[str], stats: ScanStats
) -> Iterator[Finding]:
    seen: set[tuple[object, ...]] = set()
    for cand in candidates:
        stats.candidates += 1
        finding = cand.finding
        if cand.drop is not None:
            stats.dropped[cand.drop] += 1
            continue
        if baseline and in_baseline(finding, baseline):
            stats.dropped["baseline"] += 1
            continue
        # the key itself identifies it as well as its hash does (hashlib costs a hook ~4 ms)
        ident = finding.secret.value if finding.secret.known else finding.fingerprint
        key = (*finding.sort_key(), ident, finding.decoded)
        if key in seen:
            stats.dropped["duplicate"] += 1
            continue
        seen.add(key)
        stats.reported += 1
        yield finding
