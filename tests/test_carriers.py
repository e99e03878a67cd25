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


# --- 2. more encodings ---------------------------------------------------------------------


def _col(line: str, needle: str) -> int:
    return line.index(needle) + 1


def test_percent_encoded_key_in_an_access_log(
    run_cli: Run, tmp_path: Path, keys: Callable[[int], list[str]]
) -> None:
    a, b = keys(2)
    enc_a = a.replace("_", "%5F")
    enc_b = b.replace("_", "%255f")  # encoded twice (a redirect's target)
    lines = [
        '10.0.0.1 - - [01/Jan/2024:00:00:00 +0000] "GET /healthz HTTP/1.1" 200 2',
        f'10.0.0.2 - - [01/Jan/2024:00:00:01 +0000] "GET /cb?token={enc_a}&x=1 HTTP/1.1" 302 0',
        f'10.0.0.3 - - [01/Jan/2024:00:00:02 +0000] "GET /r?next=%2Fcb%3Ft%3D{enc_b} HTTP/1.1" 302',
    ]
    f = tmp_path / "access.log"
    f.write_text("\n".join(lines) + "\n")
    res = scan(run_cli, f, "--show-secrets")
    assert found(res) == [
        ("access.log", 2, _col(lines[1], enc_a), "percent-encoding"),
        ("access.log", 3, _col(lines[2], enc_b), "percent-encoding"),
    ]
    assert keys_of(res) == sorted([a, b])
    assert found(scan(run_cli, f, "--no-percent")) == []


def test_escaped_keys_in_javascript_json_and_html(
    run_cli: Run, tmp_path: Path, keys: Callable[[int], list[str]]
) -> None:
    a, b, c, d = keys(4)
    enc_a = a.replace("_", "\\x5f")
    enc_b = "".join(f"\\u{ord(ch):04x}" for ch in b)  # every character (an obfuscated bundle)
    enc_c = c.replace("_", "\\u005F")
    lines = [
        f'var k="{enc_a}";var u="https:\\/\\/api.example\\/v1";',
        f'window.__CFG__={{"k":"{enc_b}"}};',
        f'{{"msg":"{enc_c}"}}',
        f"<td>{d.replace('_', '&#95;')}</td>",
    ]
    f = tmp_path / "main.3f9a.js"
    f.write_text("\n".join(lines) + "\n")
    res = scan(run_cli, f, "--show-secrets")
    assert found(res) == [
        ("main.3f9a.js", 1, _col(lines[0], enc_a), "escapes"),
        ("main.3f9a.js", 2, _col(lines[1], enc_b), "escapes"),
        ("main.3f9a.js", 3, _col(lines[2], enc_c), "escapes"),
        ("main.3f9a.js", 4, 5, "escapes"),
    ]
    assert keys_of(res) == sorted([a, b, c, d])
    assert found(scan(run_cli, f, "--no-escapes")) == []


def test_hex_keys_plain_and_pg_dump_bytea(
    run_cli: Run, tmp_path: Path, keys: Callable[[int], list[str]]
) -> None:
    a, b = keys(2)
    hx_a = ("token=" + a).encode().hex()  # the key at an even digit, deep in the value
    hx_b = b.encode().hex().upper()
    lines = [
        "COPY public.secrets (id, value) FROM stdin;",
        f"1\t\\\\x{hx_a}",
        f"2\t{hx_b}",
        f"3\t\\\\x0{a.encode().hex()}",  # at an odd digit: not hex of the key
        "\\.",
    ]
    f = tmp_path / "dump.sql"
    f.write_text("\n".join(lines) + "\n")
    res = scan(run_cli, f, "--show-secrets")
    want_a = lines[1].index(a.encode().hex()) + 1
    assert found(res) == [("dump.sql", 2, want_a, "hex"), ("dump.sql", 3, 3, "hex")]
    assert keys_of(res) == sorted([a, b])
    assert found(scan(run_cli, f, "--no-hex")) == []


def _eml(key: str, shift: int) -> tuple[str, int, int]:
    """A mail with a base64 (MIME, 76 columns) text part; ``shift`` bytes before the key move
    it across a line break. Returns the mail, and the line and column of the 4-character group
    where the encoded key starts."""
    import base64

    body = ("x" * shift + f"\nthe token is {key}\nbye\n").encode()
    wrapped = base64.encodebytes(body).decode()
    at = body.index(key.encode()) // 3 * 4  # the group in the unwrapped text
    head = "From: ops@example.com\nSubject: key\nContent-Transfer-Encoding: base64\n\n"
    return head + wrapped, 5 + at // 76, at % 76 + 1


def test_mime_base64_wrapped_across_line_breaks(
    run_cli: Run, tmp_path: Path, keys: Callable[[int], list[str]]
) -> None:
    ks = keys(24)
    want = []
    for shift, key in enumerate(ks):  # every place of the key and its needle across a break
        text, line, col = _eml(key, 40 + shift * 3)
        (tmp_path / f"m{shift:02d}.eml").write_text(text)
        want.append((f"m{shift:02d}.eml", line, col, "base64"))
    res = run_cli("scan", ".", "-f", "json", "--show-secrets", cwd=tmp_path)
    assert found(res) == want
    assert keys_of(res) == sorted(ks)


def test_utf16be_without_bom_inside_a_binary_plist(
    run_cli: Run, tmp_path: Path, key: str
) -> None:
    # a binary plist stores a non-ASCII string as UTF-16BE: marker 0x6f, length, the units
    text = "clé " + key
    blob = b"bplist00\xd1\x01\x02\x5f\x10\x0bApiKeyValue\x6f\x10" + bytes([len(text)])
    blob += text.encode("utf-16-be") + b"\x08\x0b\x00\x00\x00\x00\x00\x00\x01\x01"
    f = tmp_path / "Info.plist"
    f.write_bytes(blob)
    res = scan(run_cli, f, "--show-secrets")
    assert [(p, d) for p, _l, _c, d in found(res)] == [("Info.plist", "utf-16be")]
    assert keys_of(res) == [key]


def test_utf32_both_byte_orders(
    run_cli: Run, tmp_path: Path, keys: Callable[[int], list[str]]
) -> None:
    a, b = keys(2)
    (tmp_path / "le.txt").write_bytes(f"# cfg\nAPI_KEY = {a}\n".encode("utf-32"))  # with a BOM
    (tmp_path / "be.txt").write_bytes(f"# cfg\nAPI_KEY = {b}\n".encode("utf-32-be"))
    res = run_cli("scan", ".", "-f", "json", "--show-secrets", cwd=tmp_path)
    assert found(res) == [("be.txt", 2, 11, "utf-32be"), ("le.txt", 2, 11, "utf-32le")]
    assert keys_of(res) == sorted([a, b])
    assert found(run_cli("scan", ".", "-f", "json", "--no-utf32", cwd=tmp_path)) == []


def helm_release_secret(key: str) -> tuple[bytes, int, int]:
    """What ``helm install`` stores: a Secret whose ``release`` is base64 (Kubernetes) of base64
    (Helm) of gzip of the release JSON, with the chart's values in it."""
    import base64
    import gzip

    release = {
        "name": "app",
        "info": {"status": "deployed", "description": "Install complete"},
        "chart": {"metadata": {"name": "app", "version": "1.2.0"}},
        "config": {"kubeadapt": {"apiKey": key}, "replicas": 2},
        "manifest": "---\n# Source: app/templates/deployment.yaml\napiVersion: apps/v1\n" * 40,
        "version": 1,
        "namespace": "default",
    }
    inner = base64.b64encode(gzip.compress(json.dumps(release).encode(), mtime=0))
    value = base64.b64encode(inner).decode()
    head = (
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: sh.helm.release.v1.app.v1\n"
        "  labels:\n    owner: helm\ntype: helm.sh/release.v1\ndata:\n"
    )
    return (head + f"  release: {value}\n").encode(), 9, len("  release: ") + 1


def test_helm_release_secret(run_cli: Run, tmp_path: Path, key: str) -> None:
    data, line, col = helm_release_secret(key)
    f = tmp_path / "release.yaml"
    f.write_bytes(data)
    res = scan(run_cli, f, "--show-secrets")
    assert found(res) == [("release.yaml", line, col, "base64 → base64 → gzip")]
    assert keys_of(res) == [key]
    # the chain is a container layer too: off with the archives, or with base64
    assert found(scan(run_cli, f, "--no-archives")) == []
    assert found(scan(run_cli, f, "--no-base64")) == []


def test_base64_of_a_zip_and_the_depth_limit(run_cli: Run, tmp_path: Path, key: str) -> None:
    import base64
    import gzip
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("conf/app.env", f"A=1\nKUBEADAPT_API_KEY={key}\n")
    value = base64.b64encode(buf.getvalue()).decode()
    f = tmp_path / "bundle.json"
    f.write_text('{\n  "attachment": "' + value + '"\n}\n')
    res = scan(run_cli, f)
    assert found(res) == [("bundle.json!conf/app.env", 2, 18, "base64 → zip")]
    g = tmp_path / "deep.json"
    gz = base64.b64encode(gzip.compress(f"KUBEADAPT_API_KEY={key}\n".encode(), mtime=0))
    for layers in (3, 5):  # base64 of base64 ... of gzip: 5 layers is over the depth limit of 4
        deep = gz
        for _ in range(layers - 1):
            deep = base64.b64encode(deep)
        g.write_text('{"v": "' + deep.decode() + '"}\n')
        res = scan(run_cli, g)
        if layers == 3:
            assert found(res) == [("deep.json", 1, 8, "base64 → base64 → base64 → gzip")]
        else:
            assert found(res) == []
            assert "base64 nested more than 4 deep: not opened (limit)" in res.stderr


def test_encoded_decoys_stay_quiet(run_cli: Run, tmp_path: Path, key: str) -> None:
    body = key[len(PREFIX) :]
    text = (
        f"x{key.replace('_', '%5F')}\n"  # a word before the encoded prefix
        f"ka%5Flive%5F{'0' * 32}\n"  # a placeholder
        f"ka\\x5flive\\x5f{body[:20]}\n"  # too short
        "H4sIAAAAAAAA/this is not gzip\n"
        f"{PREFIX.encode().hex()}zz\n"  # hex of the prefix alone
    )
    f = tmp_path / "decoys.txt"
    f.write_text(text)
    res = scan(run_cli, f)
    assert found(res) == []
    assert "Traceback" not in res.stderr
