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
DropReason = Literal[
    "placeholder",
    "low-entropy",
    "allowlist",
    "inline-allow",
    "gitleaks-allow",  # gitleaks:allow on the line
    "detect-secrets-allow",  # pragma: allowlist secret on the line
]

REDACT_KEEP = 4


def redact(value: str) -> str:
    """``ka_live_Ab3d…``: the prefix up to the last ``_`` plus four characters of the body."""
    head, sep, body = value.rpartition("_")
    if not sep or len(body) <= REDACT_KEEP:
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
        """The full key if ``shown`` is it (its hash is ``fingerprint``), else its redacted form."""
        if _sha256(shown) == fingerprint:
            return cls(shown)
        if not shown.endswith("…") or len(shown[:-1].rpartition("_")[2]) > REDACT_KEEP:
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


_KEYISH = re.compile(r"[A-Za-z0-9]+_live_[A-Za-z0-9]{8,}")


def scrub(text: str) -> str:
    """Redact anything key-shaped in free text (exception messages, warnings) before it is shown."""
    if "_live_" not in text:
        return text
    return _KEYISH.sub(lambda m: redact(m.group(0)), text)
