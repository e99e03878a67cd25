"""Pure functions that tell a real, random key from a placeholder."""

from __future__ import annotations

import itertools
import math
from collections import Counter

_SEQUENCES = (
    "abcdefghijklmnopqrstuvwxyz",
    "0123456789",
    "qwertyuiop",
    "asdfghjkl",
    "zxcvbnm",
    "1234567890",
    "qazwsxedcrfvtgbyhnujmikolp",  # keyboard columns
)
_NEXT: frozenset[tuple[str, str]] = frozenset(
    pair for seq in _SEQUENCES for a, b in itertools.pairwise(seq) for pair in ((a, b), (b, a))
)
# Words a real key practically never contains (>= 5 letters: odds below 1e-6 in a random body).
_PLACEHOLDER_WORDS = (
    "example",
    "sample",
    "placeholder",
    "redacted",
    "dummy",
    "changeme",
    "yourkey",
    "yourapikey",
    "insertkey",
    "notarealkey",
    "fakekey",
    "xxxxx",
)


def entropy(text: str) -> float:
    """Shannon entropy in bits per character."""
    if not text:
        return 0.0
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values())


def is_repeated(body: str, max_period: int = 16) -> bool:
    """``abcdabcdabcd…``: the body is a short pattern repeated."""
    n = len(body)
    for p in range(1, min(max_period, n // 2) + 1):
        if all(body[i] == body[i - p] for i in range(p, n)):
            return True
    return False


def is_sequential(body: str, threshold: float = 0.5) -> bool:
    """Alphabet or digit runs and keyboard rows: most neighbours are neighbours on a keyboard."""
    low = body.lower()
    if len(low) < 2:
        return False
    steps = sum((a, b) in _NEXT for a, b in itertools.pairwise(low))
    return steps / (len(low) - 1) >= threshold


def has_placeholder_word(body: str) -> bool:
    low = body.lower()
    return any(word in low for word in _PLACEHOLDER_WORDS)


def is_placeholder(body: str) -> bool:
    """True for a key body that is documentation, not a credential."""
    return is_repeated(body) or is_sequential(body) or has_placeholder_word(body)
