"""The matcher and the placeholder heuristics, in-process (fast, exhaustive over offsets)."""

from __future__ import annotations

import random

import pytest

from kascan.heuristics import entropy, is_placeholder, is_repeated, is_sequential
from kascan.match import find_candidates
from kascan.model import Chunk, Secret, redact, scrub
from kascan.rules import builtin_rules, builtin_rules_from_file, parse_rules
from kascan.sources.stream import iter_stream

from .conftest import ALNUM, PREFIX, make_key

RULES = builtin_rules()


def test_builtin_rules_are_the_shipped_file() -> None:
    from_file = builtin_rules_from_file()
    assert from_file == RULES
    assert [r.fast for r in RULES.rules] == [r.fast for r in from_file.rules] == [True]


def scan_bytes(data: bytes, window: int | None = None) -> list[tuple[int, int, str, str | None]]:
    if window is None:
        chunks = [Chunk("f", data)]
    else:
        view = memoryview(data)
        pos = 0

        def read(n: int) -> bytes:
            nonlocal pos
            block = bytes(view[pos : pos + min(n, window)])
            pos += len(block)
            return block

        chunks = list(iter_stream(read, "f", window=window))
    return [
        (c.finding.line, c.finding.column, c.finding.secret.value, c.drop)
        for c in find_candidates(chunks, RULES)
    ]


def test_random_key_found_and_placeholders_dropped_in_one_scan(rng: random.Random) -> None:
    real = make_key(rng)
    decoys = [
        PREFIX + "x" * 32,  # the vendor docs' placeholder
        PREFIX + "abcd" * 8,  # repeated short pattern
        PREFIX + "abcdefghijklmnopqrstuvwxyz012345",  # alphabet run
        PREFIX + "qwertyuiopasdfghjklzxcvbnm123456",  # keyboard rows
        PREFIX + "0123456789" * 3 + "ab",
        PREFIX + "YOURAPIKEY" + "".join(rng.choices(ALNUM, k=22)),
        PREFIX + "EXAMPLE" + "".join(rng.choices(ALNUM, k=25)),
    ]
    text = "\n".join([*decoys, real]) + "\n"
    found = scan_bytes(text.encode())
    kept = [(line, s) for line, _, s, drop in found if drop is None]
    assert kept == [(len(decoys) + 1, real)]
    assert len(found) == len(decoys) + 1
    assert {d for *_, d in found} == {None, "low-entropy", "placeholder"}


@pytest.mark.parametrize(
    ("before", "after", "found"),
    [
        ("", "", True),
        (" ", " ", True),
        ('"', '"', True),
        ("=", "\n", True),
        ("x", "", False),  # glued to a word before
        ("_", "", False),
        ("9", "", False),
        ("", "A", False),  # 33 characters is not a key
        ("", "7", False),
        ("", "_", True),  # only a letter or digit after disqualifies
        ("", "-", True),
        ("/", ".", True),
        ("\x00", "\xff", True),
    ],
)
def test_boundaries(rng: random.Random, before: str, after: str, found: bool) -> None:
    key = make_key(rng)
    data = (before + key + after).encode("latin-1")
    hits = [s for _, _, s, drop in scan_bytes(data) if drop is None]
    assert hits == ([key] if found else [])


def test_case_and_length_variants_are_not_keys(rng: random.Random) -> None:
    key = make_key(rng)
    body = key[len(PREFIX) :]
    data = "\n".join(
        ["KA_LIVE_" + body, "ka_test_" + body, key[:-1], PREFIX + body[:31] + "-", key + "Z"]
    ).encode()
    assert scan_bytes(data) == []


def test_line_and_column_crlf_utf8_and_invalid_bytes(rng: random.Random) -> None:
    k1, k2, k3, k4 = (make_key(rng) for _ in range(4))
    data = (
        b"first\r\n"
        + b"k="
        + k1.encode()
        + b"\r\n"
        + "héllo wörld ".encode()
        + k2.encode()
        + b"\r\n"
        + b"\xff\xfe\x80 "
        + k3.encode()
        + b"\n"
        + b"\n\ttail="
        + k4.encode()  # no trailing newline
    )
    got = [(line, col, s) for line, col, s, _ in scan_bytes(data)]
    assert got == [(2, 3, k1), (3, 13, k2), (4, 5, k3), (6, 7, k4)]


@pytest.mark.parametrize("window", [64, 97, 128])
def test_keys_straddling_every_window_offset(rng: random.Random, window: int) -> None:
    """A key at every offset around a window edge is found once, with the right line/column."""
    key = make_key(rng)
    for offset in range(0, 3 * window, 7):
        filler = bytes(rng.choices(b"abc \n", k=offset))
        data = filler + b" " + key.encode() + b" tail\n" + bytes(rng.choices(b"xyz\n", k=50))
        expected_line = filler.count(b"\n") + 1
        expected_col = len(filler) - (filler.rfind(b"\n") + 1) + 2
        whole = scan_bytes(data)
        windowed = scan_bytes(data, window=window)
        assert whole == [(expected_line, expected_col, key, None)], offset
        assert windowed == whole, (offset, window)


def test_stream_by_line_scans_each_line_once(rng: random.Random) -> None:
    keys = [make_key(rng) for _ in range(5)]
    lines = [f"log {i} token={k}\n".encode() for i, k in enumerate(keys)]
    blocks = iter(lines)
    chunks = list(iter_stream(lambda n: next(blocks, b""), "-", by_line=True))
    found = [(c.finding.line, c.finding.secret.value) for c in find_candidates(chunks, RULES)]
    assert found == [(i + 1, k) for i, k in enumerate(keys)]
    assert len(chunks) == 5  # one per line: a finding can be printed before the stream ends


def test_heuristics() -> None:
    assert entropy("aaaa") == 0
    assert entropy("abcd") == 2
    assert is_repeated("ab" * 16) and not is_repeated("abcdefghijklmnopqrstuvwxyz012345"[:31] + "a")
    assert is_sequential("abcdefghijklmnopqrstuvwxyz012345")
    assert is_sequential("ZYXWVUTSRQPONMLKJIHGFEDCBA987654")
    r = random.Random(7)
    bodies = ["".join(r.choices(ALNUM, k=32)) for _ in range(20000)]
    assert sum(is_placeholder(b) for b in bodies) == 0
    assert min(entropy(PREFIX + b) for b in bodies) > 3.0


def test_secret_never_shows_itself(rng: random.Random) -> None:
    key = make_key(rng)
    s = Secret(key)
    body = key[len(PREFIX) :]
    for text in (str(s), repr(s), f"{s}", f"{s!r}", repr([s]), redact(key)):
        assert body not in text
        assert text.startswith(("ka_live_", "Secret('ka_live_", "[Secret('ka_live_"))
    assert str(s) == PREFIX + body[:4] + "…"
    assert scrub(f"boom: {key} and {key}") == f"boom: {redact(key)} and {redact(key)}"
    assert s.fingerprint.startswith("sha256:") and len(s.fingerprint) == 7 + 64


def test_user_rule_keywords_regex_entropy_and_allowlist(rng: random.Random) -> None:
    rules = parse_rules(
        """
[[rules]]
id = "demo-token"
regex = '''(?i)demo_tok_([a-z0-9]{20})\\b'''
secretGroup = 1
keywords = ["DEMO_TOK_"]
entropy = 2.0
[[rules.allowlists]]
stopwords = ["deadbeef"]
""",
        "user.toml",
    )
    good = "".join(rng.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=20))
    data = f"a DEMO_TOK_{good}\nb demo_tok_{'a' * 20}\nc demo_tok_deadbeef{good[:12]}\n".encode()
    cands = list(find_candidates([Chunk("x", data)], rules))
    got = [(c.finding.line, c.finding.secret.value, c.drop) for c in cands]
    # content decides low entropy at match time; allowlists wait for attribution (suppress)
    assert got == [
        (1, good, None),
        (2, "a" * 20, "low-entropy"),
        (3, "deadbeef" + good[:12], None),
    ]
    from kascan.stats import ScanStats
    from kascan.suppress import suppress

    stats = ScanStats()
    kept = list(suppress(cands, rules, frozenset(), stats))
    assert [f.secret.value for f in kept] == [good]
    assert stats.dropped == {"low-entropy": 1, "allowlist": 1}
