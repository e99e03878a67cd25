"""Frozen records that cross pipeline stages.

The key itself lives only in :class:`Secret`, whose ``str`` and ``repr`` redact it, so a log line,
an f-string or an exception message cannot leak it by accident.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

Status = Literal["live", "live-limited", "inactive", "unknown", "unchecked"]
STATUSES: tuple[Status, ...] = ("live", "live-limited", "inactive", "unknown", "unchecked")
# most urgent first: how reports order keys (a key nobody could check ranks before an inactive one)
STATUS_RANK: dict[str, int] = {
    "live": 0,
    "live-limited": 1,
    "unknown": 2,
    "unchecked": 3,
    "inactive": 4,
}
DropReason = Literal[
    "placeholder",
    "low-entropy",
    "allowlist",
    "inline-allow",
    "gitleaks-allow",  # gitleaks:allow on the line
    "detect-secrets-allow",  # pragma: allowlist secret on the line
]

REDACT_KEEP = 4


_REDACT_HEAD = r"[A-Za-z]{1,12}(?:_[A-Za-z]{1,12})?"  # compiled on first use (re caches it)


def redact(value: str) -> str:
    """``ka_live_Ab3d…``: the prefix up to the last ``_`` plus four characters of the body.

    The prefix is kept only when it looks like one (one or two words of letters, e.g. ``ka_live``
    or ``ghp``); anything else keeps at most four characters, so a value whose "prefix" carries
    secret material (``github_pat_11AB…_…``, a crafted ``ka_live_<key>_x``) shows none of it."""
    head, sep, body = value.rpartition("_")
    if not sep or len(body) <= REDACT_KEEP or not re.compile(_REDACT_HEAD).fullmatch(head):
        keep = min(REDACT_KEEP, len(value) // 4)
        return value[:keep] + "…"
    return head + sep + body[:REDACT_KEEP] + "…"


def _sha256(value: str) -> str:
    import hashlib  # only when a key is found: loading OpenSSL costs ~5 ms of start-up

    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Secret:
    """A key. Read back from a report that did not show it (``from_report``), only its redacted
    form and fingerprint are known: ``value`` is then the redacted form and ``known`` is False."""

    value: str = field(repr=False)
    known_fingerprint: str | None = field(default=None, repr=False)

    @classmethod
    def from_report(cls, shown: str, fingerprint: str) -> Secret:
        """The full key if ``shown`` is it (its hash is ``fingerprint``), else its redacted form.

        ``shown`` is attacker-written when the report is (``kascan merge`` input): it is kept as
        the full key only if it is one token (no space or control character, at most 256
        characters), and as a redacted form only if it is one that :func:`redact` could have made
        and holds nothing key-shaped; anything else is redacted again."""
        if _sha256(shown) == fingerprint and re.compile(_PRINTABLE_RUN).fullmatch(shown):
            return cls(shown)
        if not _is_redacted_form(shown):
            shown = redact(shown)  # not a redacted form: never keep more than redact() shows
        return cls(shown, fingerprint)

    @property
    def known(self) -> bool:
        """Whether ``value`` is the full key (False for a key read back from a redacted report)."""
        return self.known_fingerprint is None

    def __str__(self) -> str:
        return self.redacted

    def __repr__(self) -> str:
        return f"Secret({self.redacted!r})"

    @property
    def redacted(self) -> str:
        return redact(self.value) if self.known_fingerprint is None else self.value

    @property
    def fingerprint(self) -> str:
        return self.known_fingerprint or _sha256(self.value)


@dataclass(frozen=True, slots=True)
class Commit:
    sha: str
    author: str
    email: str
    date: str  # ISO 8601


@dataclass(frozen=True, slots=True)
class Verification:
    status: Status = "unchecked"
    detail: str | None = None  # what the API said (organization name/id), never the key
    organization: str | None = None
    organization_id: str | None = None


UNCHECKED = Verification()


@dataclass(frozen=True, slots=True)
class Decoders:
    """Which wrappers a scan looks inside (all by default)."""

    archives: bool = True
    base64: bool = True  # also MIME base64 wrapped across lines, and base64 of a container
    utf16: bool = True
    utf32: bool = True
    percent: bool = True  # ka%5Flive%5F... (also double-encoded)
    escapes: bool = True  # C/JSON/JavaScript escapes (\x5f, \u005f, \137) and HTML entities
    hex: bool = True  # 6b615f... (plain, or a pg_dump bytea \x6b615f...)

    @property
    def decoding(self) -> bool:
        """Whether any decoder (not only the archive layer) is on."""
        return self.base64 or self.utf16 or self.utf32 or self.percent or self.escapes or self.hex


@dataclass(frozen=True, slots=True)
class Chunk:
    """Bytes read from one origin, plus where they start in it.

    ``line`` is the 1-based line number of ``data[0]``; ``column`` the 0-based character column of
    ``data[0]`` on that line. Matches starting before ``fresh`` were reported from the previous
    chunk (the overlap that lets a key straddle a window edge).
    """

    path: str
    data: bytes
    line: int = 1
    column: int = 0
    fresh: int = 0
    commit: Commit | None = None
    repo: str | None = None
    decoded: str | None = None  # how the bytes were unwrapped (e.g. "base64", "utf-16le")
    tail: int = 0  # trailing bytes that the next chunk repeats: matches starting there wait
    pinned: bool = False  # decoded bytes: every match is reported at (line, column + 1)
    origin: str | None = None  # the git object the bytes came from (attribution finds its paths)
    whole: bool = False  # all of one object (a blob): the unwrap stage opens it if an archive


@dataclass(frozen=True, slots=True)
class Finding:
    rule_id: str
    path: str  # relative to the scan root, "/" separators
    line: int  # 1-based
    column: int  # 1-based, of the first character of the key
    secret: Secret
    commit: Commit | None = None
    repo: str | None = None
    decoded: str | None = None
    verification: Verification = UNCHECKED
    end_column: int = 0

    @property
    def fingerprint(self) -> str:
        return self.secret.fingerprint

    def sort_key(self) -> tuple[str, str, int, int, str, str]:
        return (
            self.repo or "",
            self.path,
            self.line,
            self.column,
            self.rule_id,
            self.commit.sha if self.commit else "",
        )


@dataclass(frozen=True, slots=True)
class Candidate:
    """A match before suppression; ``drop`` says why it will not be reported, if it won't (what
    the content alone tells: a placeholder, low entropy, an inline allow). Allowlists are
    applied later, after attribution, when the path and commit are known: ``match`` and
    ``line`` are what they look at (they hold the key: never shown)."""

    finding: Finding
    drop: DropReason | None = None
    match: str = field(default="", repr=False)
    line: str = field(default="", repr=False)
    origin: str | None = None  # Chunk.origin


_PRINTABLE_RUN = r"[!-~]{1,256}"  # printable ASCII, no space: what a rule's secret is

# What scrub() hides in free text. Each kind is found from a literal (``_live_``, ``://``, ``=``,
# a token prefix) and expanded from there, so a long hostile string costs linear time.
_ALNUM_RUN = r"[A-Za-z0-9]*"
_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")
# compiled on first use (re caches them), so that start-up does not pay for them
_USERINFO = r"[^/?#\s@]*(?:@[^/?#\s@]*)*@"  # up to the authority's last @
_QUERY = (
    r"(?i:[?&;](?:access_token|private_token|token|password|passwd|pwd|secret|api_key|apikey"
    r"|key|auth)=)(?P<value>[^&#\s]+)"
)
_TOKENS = (  # GitHub, GitLab and Slack tokens, AWS access key ids
    r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|glpat-[A-Za-z0-9_-]{20,}"
    r"|xox[abeoprs]-[A-Za-z0-9-]{10,}|(?:AKIA|ASIA)[0-9A-Z]{16})"
)
KEY_BODY_MIN = 8  # "_live_" and at least this many letters or digits: key-shaped
URL_USERINFO = "***"  # what a URL's user and password are shown as


def _redact_keys(text: str) -> str:
    """Every ``<letters/digits>_live_<8+ letters/digits>`` redacted (any case of ``_live_``)."""
    low = text.lower()
    out: list[str] = []
    last = 0
    i = low.find("_live_")
    while i != -1:
        m = re.compile(_ALNUM_RUN).match(text, i + 6)  # always matches (maybe empty)
        end = m.end() if m is not None else i + 6
        if end - (i + 6) >= KEY_BODY_MIN:
            start = i
            while start > last and text[start - 1].isascii() and text[start - 1].isalnum():
                start -= 1
            out += (text[last:start], redact(text[start:end]))
            last = end
        i = low.find("_live_", max(end, i + 1))
    return "".join(out) + text[last:] if out else text


def _hide_userinfo(text: str) -> str:
    """``scheme://user:password@host`` -> ``scheme://***@host`` (and ``scheme://token@host``)."""
    out: list[str] = []
    last = 0
    i = text.find("://")
    while i != -1:
        start = i
        while start > last and text[start - 1] in _SCHEME_CHARS:
            start -= 1
        while start < i and not text[start].isalpha():
            start += 1  # a scheme starts with a letter
        m = re.compile(_USERINFO).match(text, i + 3)
        if start < i and m is not None and text[i + 3 : m.end() - 1] != URL_USERINFO:
            out += (text[last : i + 3], URL_USERINFO + "@")
            last = m.end()
        i = text.find("://", max(last, i + 3))
    return "".join(out) + text[last:] if out else text


def scrub(text: str) -> str:
    """The one redaction for free text that reaches any output (reports, summaries, warnings,
    errors): anything key-shaped is redacted (``ka_live_Ab3d…``; also GitHub, GitLab, Slack
    tokens and AWS key ids), and a URL's user and password and a token in its query are shown as
    ``***``. Idempotent: scrubbing scrubbed text changes nothing; text with nothing to hide is
    returned as the same object. Linear in the length of ``text``."""
    out = text
    if "_" in out and "_live_" in out.lower():
        out = _redact_keys(out)
    if "://" in out:
        out = _hide_userinfo(out)
    if "=" in out:
        out = re.compile(_QUERY).sub(
            lambda m: m.group(0)[: m.start("value") - m.start()] + URL_USERINFO, out
        )
    if "gh" in out or "glpat-" in out or "xox" in out or "AKIA" in out or "ASIA" in out:
        out = re.compile(_TOKENS).sub(lambda m: redact(m.group(0)), out)
    return text if out == text else out


def _is_redacted_form(shown: str) -> bool:
    """Whether ``shown`` is something :func:`redact` makes: at most 64 printable characters
    ending in ``…``, nothing key-shaped, and no more than four characters after the prefix."""
    if (
        not shown.endswith("…")
        or len(shown) > 64
        or not re.compile(_PRINTABLE_RUN).fullmatch(shown[:-1] or "x")
    ):
        return False
    if scrub(shown) != shown:
        return False
    head, sep, body = shown[:-1].rpartition("_")
    if sep and re.compile(_REDACT_HEAD).fullmatch(head):
        return len(body) <= REDACT_KEEP
    return len(shown) - 1 <= REDACT_KEEP
