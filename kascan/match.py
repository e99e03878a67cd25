"""Chunks in, candidates out: a substring prefilter, then rules confirmed only around the hits."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from kascan.engine import hits as needle_hits
from kascan.heuristics import entropy, is_placeholder
from kascan.model import Candidate, Chunk, DropReason, Finding, Secret
from kascan.rules import BUILTIN_BODY_LEN, BUILTIN_PREFIX, REGEX_TIMEOUT, Rule, RuleSet
from kascan.stats import LimitWarning

ALLOW_PRAGMA = b"kascan:allow"
# the inline allows of gitleaks and detect-secrets, honoured so that teams moving over keep theirs
FOREIGN_PRAGMAS: tuple[tuple[bytes, DropReason], ...] = (
    (b"gitleaks:allow", "gitleaks-allow"),
    (b"pragma: allowlist secret", "detect-secrets-allow"),
    (b"pragma:allowlist secret", "detect-secrets-allow"),
)
_PREFIX = BUILTIN_PREFIX.encode()
_KEY_LEN = len(_PREFIX) + BUILTIN_BODY_LEN
_WORD = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_ALNUM = _WORD - {ord("_")}

Warn = Callable[[str], None]


def _no_warn(_: str) -> None:
    pass


@dataclass(slots=True)
class _Hit:
    rule: Rule
    start: int  # byte offset of the secret in chunk.data
    secret: str
    match: str


_HEX = frozenset(b"0123456789abcdefABCDEF")
_ESCAPES = frozenset(b"ntrbfv0e")  # the letter of a one-letter escape (\n, \t, \r, ...)
# bytes that never occur in text: a letter or digit right after one is a record length or a
# type byte of a binary format (protobuf, MessagePack, a Java class, a plist), not a word
_SPACE = frozenset(b"\t\n\r")
_BINARY = frozenset(range(0x00, 0x20)) - _SPACE
_CSI_BODY = frozenset(range(0x20, 0x40))  # CSI parameter and intermediate bytes
_ESCAPED_ESC = (b"\x1b", b"\\x1b", b"\\x1B", b"\\033", b"\\u001b", b"\\u001B", b"\\e")


def _escaped(data: bytes, at: int) -> bool:
    """Whether the backslash at ``at`` starts an escape (an odd run of backslashes ends there)."""
    k = at
    while k > 0 and data[k - 1] == 0x5C:
        k -= 1
    return (at - k) % 2 == 0


def framed(data: bytes, pos: int) -> bool:
    r"""Whether the word character before ``data[pos]`` ends framing, not a word: an escape
    sequence (``\n``, ``\t``, ``\r``, ``\u00XX``, ``\xXX``), an ANSI escape sequence
    (``ESC[1m``, also written ``\x1b[1m`` or ``\u001b[1m`` in a JSON log), or a length or type
    byte of a binary record (a letter or digit right after a control byte).

    A letter or digit that is part of a word (``xka_live_``, ``my_ka_live_``) is none of these.
    Two text columns of one SQLite row stored back to back (``api_keyka_live_``) are not told
    apart from a word here: a database's live rows are read cell by cell, and in the free space
    of its pages a value is cut out where its record's header says it starts
    (:mod:`kascan.sources.containers.sqlite`)."""
    c = data[pos - 1]
    if c == 0x5F:  # "_": a word (my_ka_live_)
        return False
    if pos >= 2:
        b = data[pos - 2]
        if b == 0x5C and c in _ESCAPES and _escaped(data, pos - 2):
            return True
        if b in _BINARY:
            return True
        # 0x0a is also protobuf's most common tag: a length byte after it in binary bytes
        if b in _SPACE and any(x in _BINARY for x in data[max(pos - 18, 0) : pos - 2]):
            return True
    for lead, digits in ((b"\\u", 4), (b"\\U", 4), (b"\\x", 2)):  # \u00XX, \xXX
        at = pos - digits - 2
        if (
            at >= 0
            and data.startswith(lead, at)
            and all(x in _HEX for x in data[pos - digits : pos])
            and _escaped(data, at)
        ):
            return True
    return 0x40 <= c <= 0x7E and _ansi_before(data, pos - 1)


def _ansi_before(data: bytes, final: int) -> bool:
    """Whether ``data[final]`` is the final byte of an ANSI escape sequence: ``ESC [`` (CSI)
    with parameter bytes, or ``ESC`` with intermediate bytes (``ESC(B``)."""
    k = final
    lo = max(final - 32, 0)
    while k > lo and data[k - 1] in _CSI_BODY:
        k -= 1
    if k > 0 and data[k - 1] == 0x5B:  # "["
        k -= 1
    elif k == final:
        return False
    head = data[max(k - 6, 0) : k]
    return any(
        head.endswith(e) and (e == b"\x1b" or _escaped(data, k - len(e))) for e in _ESCAPED_ESC
    )


def _fast_hits(rule: Rule, data: bytes, lo: int, hi: int) -> Iterator[_Hit]:
    """The built-in rule, confirmed without the regex engine: prefix, boundaries, 32 alnum."""
    n = len(data)
    for pos in needle_hits(data).prefix:  # every needle found in one pass (kascan.engine)
        if pos < lo:
            continue
        if pos + len(_PREFIX) > hi:
            break
        end = pos + _KEY_LEN
        if (
            (pos == 0 or data[pos - 1] not in _WORD or framed(data, pos))
            and end <= n
            and (end == n or data[end] not in _ALNUM)
        ):
            body = data[pos + len(_PREFIX) : end]
            if body.isalnum() and body.isascii():
                key = data[pos:end].decode("ascii")
                yield _Hit(rule, pos, key, key)


def _regex_hits(
    rule: Rule, text: str, lo: int, hi: int, warn: Warn, timed_out: set[str]
) -> Iterator[_Hit]:
    pattern = rule.compiled()
    group = rule.secret_group or (1 if pattern.groups == 1 else 0)
    try:
        for m in pattern.finditer(text, timeout=REGEX_TIMEOUT):
            start = m.start(group)
            if start < 0:
                continue
            if start >= hi:
                break
            if start < lo:
                continue
            yield _Hit(rule, start, m.group(group), m.group(0))
    except TimeoutError:
        if rule.id not in timed_out:
            timed_out.add(rule.id)
            warn(
                LimitWarning(
                    "regex-time",
                    f"rule {rule.id!r} timed out after {REGEX_TIMEOUT:g}s (limit); skipped where "
                    "it does (the rest of the scan goes on)",
                )
            )


def _body(secret: str) -> str:
    _head, sep, body = secret.rpartition("_")
    return body if sep and len(body) >= 16 else secret


def _chars(data: bytes) -> int:
    return len(data.decode("utf-8", "replace"))


def fast_prefix(rules: RuleSet) -> bytes | None:
    """The bytes every match of ``rules`` contains, when only the built-in rule is on: a chunk
    without them has no finding (sources may then skip it unread by the matcher)."""
    return _PREFIX if all(r.fast for r in rules.rules) else None


def find_candidates(
    chunks: Iterable[Chunk], rules: RuleSet, warn: Warn = _no_warn
) -> Iterator[Candidate]:
    timed_out: set[str] = set()
    for chunk in chunks:
        yield from scan_chunk(chunk, rules, warn, timed_out)


def scan_chunk(
    chunk: Chunk, rules: RuleSet, warn: Warn = _no_warn, timed_out: set[str] | None = None
) -> Iterator[Candidate]:
    if timed_out is None:
        timed_out = set()
    data = chunk.data
    lo, hi = chunk.fresh, len(data) - chunk.tail
    if hi <= lo:
        return
    hits: list[_Hit] = []
    lowered: bytes | None = None
    text: str | None = None
    for rule in rules.rules:
        if not rule.applies_to(chunk.path, warn):
            continue
        if rule.fast:
            # a prefix that starts before hi is found; one that starts later waits for its chunk
            hits.extend(_fast_hits(rule, data, lo, min(hi + len(_PREFIX) - 1, len(data))))
            continue
        if rule.keywords:
            if lowered is None:
                lowered = data.lower()
            if not any(k.encode("utf-8", "ignore") in lowered for k in rule.keywords):
                continue
        if text is None:
            text = data.decode("latin-1")  # one char per byte: offsets stay byte offsets
        hits.extend(_regex_hits(rule, text, lo, hi, warn, timed_out))
    if not hits:
        return
    hits = [h for h in hits if lo <= h.start < hi]
    hits.sort(key=lambda h: h.start)
    line, counted = chunk.line, 0
    for hit in hits:
        line += data.count(b"\n", counted, hit.start)
        counted = hit.start
        yield _candidate(chunk, hit, line, rules, warn)


def _foreign_allow(data: bytes, lo: int, hi: int) -> DropReason | None:
    for pragma, reason in FOREIGN_PRAGMAS:
        if data.find(pragma, lo, hi) != -1:
            return reason
    return None


def _candidate(chunk: Chunk, hit: _Hit, line: int, rules: RuleSet, warn: Warn) -> Candidate:
    data = chunk.data
    line_start = data.rfind(b"\n", 0, hit.start) + 1
    line_end = data.find(b"\n", hit.start)
    if line_end == -1:
        line_end = len(data)
    if chunk.pinned:
        line, column = chunk.line, chunk.column + 1
    elif line_start == 0:
        column = chunk.column + _chars(data[: hit.start]) + 1
    else:
        column = _chars(data[line_start : hit.start]) + 1
    secret = hit.secret
    finding = Finding(
        rule_id=hit.rule.id,
        path=chunk.path,
        line=line,
        column=column,
        secret=Secret(secret),
        commit=chunk.commit,
        repo=chunk.repo,
        decoded=chunk.decoded,
        end_column=column + len(secret),
    )
    drop: DropReason | None = None
    if hit.rule.entropy and entropy(secret) < hit.rule.entropy:
        drop = "low-entropy"
    elif is_placeholder(_body(secret)):
        drop = "placeholder"
    elif data.find(ALLOW_PRAGMA, line_start, line_end) != -1:
        drop = "inline-allow"
    elif (foreign := _foreign_allow(data, line_start, line_end)) is not None:
        drop = foreign
    line_text = ""
    if drop is None and (hit.rule.allowlists or rules.allowlists):
        line_text = data[line_start:line_end].decode("utf-8", "replace")
    return Candidate(finding, drop, hit.match, line_text, chunk.origin)
