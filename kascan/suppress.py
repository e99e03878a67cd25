"""Candidates in, findings out: drop what a reason says to drop, and count every drop."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import cast

from kascan.errors import KascanError
from kascan.model import Candidate, Finding
from kascan.rules import RuleSet
from kascan.stats import ScanStats, dropped

Warn = Callable[[str], None]


def _no_warn(_: str) -> None:
    pass


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
    return _fingerprints(doc, str(path))


def baseline_from_text(text: str, source: str) -> frozenset[str]:
    """The same, of a report read from elsewhere (a git blob)."""
    import json

    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise KascanError(f"cannot read baseline {source}: not JSON (line {exc.lineno})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("findings"), list):
        raise KascanError(f"cannot read baseline {source}: not a kascan JSON report")
    return _fingerprints(doc, source)


def _fingerprints(doc: dict[str, object], source: str) -> frozenset[str]:
    out: set[str] = set()
    for item in cast("list[object]", doc["findings"]):
        fp = item.get("fingerprint") if isinstance(item, dict) else None
        if not isinstance(fp, str) or not fp.startswith("sha256:"):
            raise KascanError(f"cannot read baseline {source}: a finding has no sha256 fingerprint")
        try:
            state = triage_state(item)
        except ValueError as exc:
            raise KascanError(f"cannot read baseline {source}: {exc}") from None
        if state != "untriaged":
            out.add(fp)
    return frozenset(out)


def in_baseline(finding: Finding, baseline: frozenset[str]) -> bool:
    return finding.fingerprint in baseline


def is_allowlisted(cand: Candidate, rules: RuleSet, warn: Warn = _no_warn) -> bool:
    """Whether an allowlist of the candidate's rule, or a global one, allows it: evaluated after
    attribution, so ``paths`` see the path in the repository and ``commits`` the commit."""
    return allowlisted_by(cand, rules, warn) is not None


def allowlisted_by(cand: Candidate, rules: RuleSet, warn: Warn = _no_warn) -> str | None:
    """Which allowlist allows the candidate, in words (``allowlist 'test fixtures'``,
    ``allowlist 2 of rule kubeadapt-api-key``), or None if none does."""
    f = cand.finding
    rule = rules.by_id(f.rule_id)
    own = rule.allowlists if rule is not None else ()
    if not own and not rules.allowlists:
        return None
    sha = f.commit.sha if f.commit else None
    secret = f.secret.value
    match = cand.match or secret
    for i, a in enumerate((*own, *rules.allowlists)):
        if a.allows(secret, match, cand.line, f.path, sha, warn):
            if a.description:
                return f"allowlist {a.description!r}"
            if i < len(own):
                return f"allowlist {i + 1} of rule {f.rule_id}"
            return f"global allowlist {i - len(own) + 1}"
    return None


# what -v says for each reason a candidate is dropped
DROP_WORDS = {
    "placeholder": "a placeholder (a sequence, a repeated pattern or a word like 'example')",
    "low-entropy": "entropy below the rule's minimum",
    "inline-allow": "a kascan:allow comment on its line",
    "gitleaks-allow": "a gitleaks:allow comment on its line",
    "detect-secrets-allow": "a 'pragma: allowlist secret' comment on its line",
    "baseline": "in the baseline (a known key, by fingerprint)",
    "duplicate": "a duplicate of a finding already reported (same key, place and decoding)",
    "excluded": "its path is excluded (the config's exclude, .kascanignore or --exclude)",
}


def suppress(
    candidates: Iterable[Candidate],
    rules: RuleSet,
    baseline: frozenset[str],
    stats: ScanStats,
    warn: Warn = _no_warn,
    note: Warn | None = None,
) -> Iterator[Finding]:
    """The suppression stage, after attribution: the content's own reasons (placeholder, low
    entropy, inline allow), allowlists, the baseline, then duplicates; every drop counted, and
    with ``note`` (``-v``) told, one line each."""
    seen: set[tuple[object, ...]] = set()
    check_allowlists = bool(rules.allowlists) or any(r.allowlists for r in rules.rules)
    for cand in candidates:
        stats.candidates += 1
        finding = cand.finding
        if cand.drop is not None:
            stats.dropped[cand.drop] += 1
            if note is not None:
                note(dropped(finding, DROP_WORDS.get(cand.drop, cand.drop)))
            continue
        if check_allowlists:
            if note is None:
                allowed = is_allowlisted(cand, rules, warn)
            else:
                which = allowlisted_by(cand, rules, warn)
                allowed = which is not None
                if which is not None:
                    note(dropped(finding, which))
            if allowed:
                stats.dropped["allowlist"] += 1
                continue
        if baseline and in_baseline(finding, baseline):
            stats.dropped["baseline"] += 1
            if note is not None:
                note(dropped(finding, DROP_WORDS["baseline"]))
            continue
        # the key itself identifies it as well as its hash does (hashlib costs a hook ~4 ms)
        ident = finding.secret.value if finding.secret.known else finding.fingerprint
        key = (*finding.sort_key(), ident, finding.decoded)
        if key in seen:
            stats.dropped["duplicate"] += 1
            if note is not None:
                note(dropped(finding, DROP_WORDS["duplicate"]))
            continue
        seen.add(key)
        stats.reported += 1
        yield finding
