"""Real carriers (issue 15): framing around a key, more encodings, more containers.

Every carrier is made at test time by the real tool or library that makes it in the wild
(zstd, lz4, 7z, ar, rpm, sqlite3, ...), with keys from ``make_key``; every scan goes through the
real CLI in a subprocess.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.conftest import PREFIX, Result, findings_of

Run = Callable[..., Result]


def found(result: Result) -> list[tuple[object, object, object, object]]:
    assert result.returncode in (0, 1), result.stderr
    return sorted((f["path"], f["line"], f["column"], f["decoded"]) for f in findings_of(result))


def scan(run_cli: Run, path: Path, *args: str) -> Result:
    return run_cli("scan", path.name, "-f", "json", *args, cwd=path.parent)


def keys_of(result: Result) -> list[str]:
    doc = json.loads(result.stdout)
    return sorted(str(f["secret"]) for f in doc["findings"])


# --- 1. boundaries that understand framing --------------------------------------------------


def test_key_after_an_escape_sequence_in_a_slack_export(
    run_cli: Run, tmp_path: Path, keys: Callable[[int], list[str]]
) -> None:
    a, b, c, d, e = keys(5)
    # a Slack export: message text with escaped newlines, tabs, quotes and \u escapes
    doc = (
        '[{"type": "message", "text": "here\\n' + a + '"},\n'
        ' {"type": "message", "text": "key:\\t' + b + '"},\n'
        ' {"type": "message", "text": "\\r' + c + '"},\n'
        ' {"type": "message", "text": "quoted \\"' + d + '\\""},\n'
        ' {"type": "message", "text": "\\u00a0' + e + '"}]\n'
    )
    f = tmp_path / "general.json"
    f.write_text(doc)
    res = scan(run_cli, f)
    cols = [doc.splitlines()[i].index(PREFIX) + 1 for i in range(5)]
    assert found(res) == [("general.json", i + 1, cols[i], None) for i in range(5)]


def test_key_after_an_ansi_sequence_in_a_ci_log(
    run_cli: Run, tmp_path: Path, keys: Callable[[int], list[str]]
) -> None:
    a, b, c = keys(3)
    log = (
        "\x1b[0;32m[INFO]\x1b[0m starting\n"
        f"export TOKEN=\x1b[1m{a}\x1b[0m\n"
        f"\x1b]0;title\x07{b}\n"  # OSC, ended by BEL
        # a JSON log line (docker's json-file driver) with the ESC escaped
        '{"log":"\\u001b[33m' + c + '\\u001b[0m\\n","stream":"stdout"}\n'
    )
    f = tmp_path / "job.log"
    f.write_bytes(log.encode())
    lines = log.splitlines()
    assert found(scan(run_cli, f)) == [
        ("job.log", 2, lines[1].index(PREFIX) + 1, None),
        ("job.log", 3, lines[2].index(PREFIX) + 1, None),
        ("job.log", 4, lines[3].index(PREFIX) + 1, None),
    ]


def test_key_after_a_record_length_byte(
    run_cli: Run, tmp_path: Path, keys: Callable[[int], list[str]]
) -> None:
    a, b = keys(2)
    # protobuf: field 1 (0x0a) of length 0x30 ("0"), the key and 8 more bytes; a MessagePack
    # str8 (0xd9) would put 0x30 after 0xd9: a Java-style u2 length (0x00 0x41) here
    blob = (
        b"\x08\x96\x01\x0a\x30" + a.encode() + b"-suffix-"
        + b"\x12\x00\x41" + b.encode() + b"\x00" * 25 + b"\x01\x02"
    )  # fmt: skip
    f = tmp_path / "cache.pb"
    f.write_bytes(blob)
    assert keys_of(scan(run_cli, f, "--show-secrets")) == sorted([a, b])


def test_word_characters_before_the_prefix_still_reject(
    run_cli: Run, tmp_path: Path, keys: Callable[[int], list[str]]
) -> None:
    a, b, c, d, e = keys(5)
    text = (
        f"x{a}\nmy_{b}\n[1m{c}\n"  # a word, a word with _, an ANSI tail without its ESC
        f"C:\\\\n{d}\n"  # an escaped backslash then the letter n: a word starting with n
        f"api_key{e}\n"  # two SQLite text columns back to back look like this: not a boundary
    )
    f = tmp_path / "decoys.txt"
    f.write_text(text)
    res = scan(run_cli, f)
    assert found(res) == []
