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


def test_utf16be_without_bom_inside_a_binary_plist(run_cli: Run, tmp_path: Path, key: str) -> None:
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


# --- 3. more containers, made by their real tools ---------------------------------------------


def sh(*cmd: str | Path, cwd: Path, input: bytes | None = None) -> bytes:
    import os
    import subprocess

    env = {**os.environ, "SOURCE_DATE_EPOCH": "1704067200"}
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, input=input, capture_output=True, env=env)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout


def warnings_of(res: Result) -> list[str]:
    return [line for line in res.stderr.splitlines() if "warning" in line]


def test_deb_with_xz_and_zstd_data_and_a_static_library(
    run_cli: Run, tmp_path: Path, keys: Callable[[int], list[str]]
) -> None:
    a, b, c = keys(3)
    for comp, key in (("xz", a), ("zstd", b)):
        pkg = tmp_path / f"src-{comp}"
        (pkg / "DEBIAN").mkdir(parents=True)
        (pkg / "DEBIAN" / "control").write_text(
            "Package: app\nVersion: 1.0\nArchitecture: all\nMaintainer: o <o@example.com>\n"
            "Description: app\n"
        )
        (pkg / "etc" / "app").mkdir(parents=True)
        (pkg / "etc" / "app" / "app.env").write_text(f"A=1\nKEY={key}\n")
        sh("dpkg-deb", "--root-owner-group", f"-Z{comp}", "--build", pkg, f"app-{comp}.deb",
           cwd=tmp_path)  # fmt: skip
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "config_data.o").write_bytes(b"\x7fELF\x02\x01\x01" + b"\0" * 40 + f"K={c}\n".encode())
    (lib / "a_rather_long_object_name_for_gnu_ar.o").write_bytes(b"\0" * 64)
    sh("ar", "rcs", "libapp.a", "a_rather_long_object_name_for_gnu_ar.o", "config_data.o", cwd=lib)
    out = tmp_path / "out"
    out.mkdir()
    for name in ("app-xz.deb", "app-zstd.deb"):
        (tmp_path / name).rename(out / name)
    (lib / "libapp.a").rename(out / "libapp.a")
    res = run_cli("scan", ".", "-f", "json", cwd=out)
    assert found(res) == [
        ("app-xz.deb!data.tar.xz!./etc/app/app.env", 2, 5, None),
        ("app-zstd.deb!data.tar.zst!./etc/app/app.env", 2, 5, None),
        ("libapp.a!config_data.o", 1, 50, None),
    ]
    # without archives: the compressed packages hide it; the library stores it as it is
    res = run_cli("scan", ".", "-f", "json", "--no-archives", cwd=out)
    assert [r[0] for r in found(res)] == ["libapp.a"]


def test_rpm_with_gzip_and_zstd_payloads(
    run_cli: Run, tmp_path: Path, keys: Callable[[int], list[str]]
) -> None:
    ks = keys(2)
    for payload, key in (("w9.gzdio", ks[0]), ("w19.zstdio", ks[1])):
        top = tmp_path / payload
        top.mkdir()
        (top / "app.spec").write_text(
            "Name: app\nVersion: 1.0\nRelease: 1\nSummary: s\nLicense: MIT\nBuildArch: noarch\n"
            "%description\nd\n%install\nmkdir -p %{buildroot}/etc/app\n"
            f"printf 'A=1\\nKEY={key}\\n' > %{{buildroot}}/etc/app/app.env\n"
            "%files\n/etc/app/app.env\n"
        )
        sh("rpmbuild", "-bb", "--define", f"_topdir {top}", "--define",
           f"_binary_payload {payload}", "--nodeps", "app.spec", cwd=top)  # fmt: skip
    out = tmp_path / "out"
    out.mkdir()
    for i, rpm in enumerate(sorted(tmp_path.glob("*/RPMS/noarch/*.rpm"))):
        rpm.rename(out / f"app{i}.rpm")
    res = run_cli("scan", ".", "-f", "json", "--show-secrets", cwd=out)
    assert found(res) == [
        ("app0.rpm!etc/app/app.env", 2, 5, None),
        ("app1.rpm!etc/app/app.env", 2, 5, None),
    ]
    assert keys_of(res) == sorted(ks)


def test_7z_zstd_lz4_made_by_their_tools(
    run_cli: Run, tmp_path: Path, keys: Callable[[int], list[str]]
) -> None:
    a, b, c = keys(3)
    src = tmp_path / "src"
    (src / "conf").mkdir(parents=True)
    (src / "conf" / "app.env").write_text(f"A=1\nKEY={a}\n")
    (src / "conf" / "link").symlink_to("app.env")  # stored as a link: never followed
    sh("7zz", "a", "-bd", "-snl", tmp_path / "out" / "backup.7z", "conf", cwd=src)
    log = "".join(f"GET /{i} 200\n" for i in range(5000)).encode()
    sh("zstd", "-q", "-o", tmp_path / "out" / "app.log.zst", cwd=tmp_path,
       input=log + f"token={b}\n".encode())  # fmt: skip
    sh("lz4", "-q", "-", tmp_path / "out" / "app.log.lz4", cwd=tmp_path,
       input=log + f"token={c}\n".encode())  # fmt: skip
    res = run_cli("scan", ".", "-f", "json", "--show-secrets", cwd=tmp_path / "out")
    assert found(res) == [
        ("app.log.lz4", 5001, 7, "lz4"),
        ("app.log.zst", 5001, 7, "zstd"),
        ("backup.7z!conf/app.env", 2, 5, None),
    ]
    assert keys_of(res) == sorted([a, b, c])


def test_crx_and_self_extracting_zips(
    run_cli: Run, tmp_path: Path, keys: Callable[[int], list[str]]
) -> None:
    import shutil

    from tests import matrix_util as mu

    a, b, c = keys(3)
    data, member, line, col = mu.crx(a)
    (tmp_path / "ext.crx").write_bytes(data)
    work = tmp_path / "w"
    work.mkdir()
    (work / "setup.ini").write_text(f"[app]\nkey={b}\n")
    sh("zip", "-q", "payload.zip", "setup.ini", cwd=work)
    true = shutil.which("true")
    assert true is not None
    program = Path(true).read_bytes()  # a real ELF program with a zip appended, offsets fixed
    (tmp_path / "setup.run").write_bytes(program + (work / "payload.zip").read_bytes())
    sh("zip", "-qA", tmp_path / "setup.run", cwd=work)
    # a program that ends in no zip is plain bytes: its own strings are scanned, no warning
    (tmp_path / "tool").write_bytes(program + f"\0TOKEN={c}\0".encode())
    shutil.rmtree(work)
    res = run_cli("scan", ".", "-f", "json", cwd=tmp_path)
    assert found(res) == [
        (f"ext.crx!{member}", line, col, None),
        ("setup.run!setup.ini", 2, 5, None),
        ("tool", found(res)[2][1], found(res)[2][2], None),
    ]
    assert warnings_of(res) == []


def test_pdf_flate_streams(run_cli: Run, tmp_path: Path, keys: Callable[[int], list[str]]) -> None:
    from tests import matrix_util as mu

    a, b = keys(2)
    data, member, line, col = mu.pdf(a)
    # an uncompressed form field value in the same file, scanned as the file's own bytes
    data = data.replace(b"%%EOF", f"% /V ({b})\n%%EOF".encode())
    (tmp_path / "runbook.pdf").write_bytes(data)
    res = run_cli("scan", "runbook.pdf", "-f", "json", cwd=tmp_path)
    rows = found(res)
    assert rows[1:] == [(f"runbook.pdf!{member}", line, col, None)]
    assert rows[0][0] == "runbook.pdf"


def _sqlite(path: Path, rows: list[tuple[str, str]], delete: list[str] | None = None) -> None:
    import sqlite3

    con = sqlite3.connect(path)
    con.execute("PRAGMA secure_delete = 0")  # what most apps' databases do (Debian's CLI does not)
    con.execute("CREATE TABLE settings (id INTEGER PRIMARY KEY, name TEXT, value TEXT)")
    con.execute("CREATE TABLE cache (k TEXT, v BLOB)")
    con.executemany("INSERT INTO settings (name, value) VALUES (?, ?)", rows)
    con.execute("INSERT INTO cache VALUES ('x', ?)", (b"\x00\x01" + rows[-1][1].encode(),))
    con.execute("CREATE VIEW v AS SELECT value FROM settings")  # never run
    con.commit()
    for name in delete or ():
        con.execute("DELETE FROM settings WHERE name = ?", (name,))
    con.commit()
    con.close()


def test_sqlite_cells_read_only_and_deleted_rows(
    run_cli: Run, tmp_path: Path, keys: Callable[[int], list[str]]
) -> None:
    import os

    live, gone = keys(2)
    db = tmp_path / "data" / "app.db"
    db.parent.mkdir()
    # the deleted row was the last one written: it stays whole in the page's free space, its
    # two text columns back to back (old_api_keyka_live_…), its record header before them
    _sqlite(db, [("theme", "dark"), ("api_key", live), ("old_api_key", gone)], ["old_api_key"])
    before = sorted(os.listdir(db.parent))
    stat = db.stat()
    res = run_cli("scan", "data", "-f", "json", "--show-secrets", cwd=tmp_path)
    rows = found(res)
    assert [r for r in rows if "free@" not in str(r[0])] == [
        ("data/app.db!cache/v", 1, 3, None),  # the blob, after its two binary bytes
        ("data/app.db!settings/value", 2, 1, None),  # rowid 2
    ]
    assert len(rows) == 3  # the deleted row, from the free space of its page
    assert keys_of(res) == sorted([gone, live, gone])  # the cache blob holds the last row's
    # read-only and immutable: nothing written next to it (no -journal, -wal, -shm), unchanged
    assert sorted(os.listdir(db.parent)) == before
    assert (db.stat().st_mtime_ns, db.stat().st_size) == (stat.st_mtime_ns, stat.st_size)
    # the same database from stdin: read from memory
    res = run_cli("scan", "-", "-f", "json", input=db.read_bytes())
    paths = [r[0] for r in found(res)]
    assert paths[0] == "<stdin>!cache/v" and paths[2] == "<stdin>!settings/value"


def test_docx_and_odt_text_joined_across_runs(
    run_cli: Run, tmp_path: Path, keys: Callable[[int], list[str]]
) -> None:
    import zipfile

    from tests import matrix_util as mu

    a, b, c = keys(3)
    data, member, line, col = mu.docx(a)
    (tmp_path / "runbook.docx").write_bytes(data)
    text = 'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"'
    content = (
        f'<?xml version="1.0"?><office:document-content {text}><office:body><office:text>'
        f'<text:p>key: <text:span text:style-name="T1">{b[:10]}</text:span>{b[10:]}</text:p>'
        f"<text:p>whole: {c}</text:p>"  # in one run: reported once, from the XML
        "</office:text></office:body></office:document-content>"
    )
    with zipfile.ZipFile(tmp_path / "notes.odt", "w") as zf:
        zf.writestr("mimetype", "application/vnd.oasis.opendocument.text")
        zf.writestr("content.xml", content)
    res = run_cli("scan", ".", "-f", "json", "--show-secrets", cwd=tmp_path)
    assert found(res) == [
        ("notes.odt!content.xml", 1, 6, "text"),
        ("notes.odt!content.xml", 1, content.index(c) + 1, None),
        (f"runbook.docx!{member}", line, col, "text"),
    ]
    assert keys_of(res) == sorted([a, b, c])


# --- bombs and hostile headers: bounded, one warning each ----------------------------------------


def test_bombs_of_the_new_containers_are_bounded(run_cli: Run, tmp_path: Path, key: str) -> None:
    import time
    import zlib

    from tests import matrix_util as mu

    zeros = b"\0" * (300 << 20)
    out = tmp_path / "bombs"
    out.mkdir()
    (out / "z.log.zst").write_bytes(sh("zstd", "-q", "-c", "-3", cwd=tmp_path, input=zeros))
    (out / "z.log.lz4").write_bytes(sh("lz4", "-q", "-c", cwd=tmp_path, input=zeros))
    (tmp_path / "zeros.bin").write_bytes(zeros)
    sh("7zz", "a", "-bd", "-mx1", out / "z.7z", "zeros.bin", cwd=tmp_path)
    (tmp_path / "zeros.bin").unlink()
    pdf, _m, _l, _c = mu.pdf(key)
    bomb = zlib.compress(zeros, 9)
    stream = b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(bomb) + bomb
    (out / "z.pdf").write_bytes(
        pdf.replace(b"4 0 obj\n", b"5 0 obj\n" + stream + b"\nendstream\nendobj\n4 0 obj\n")
    )
    for f in out.iterdir():
        assert f.stat().st_size < 2 << 20, f  # small files ...
    del zeros
    start = time.monotonic()
    res = run_cli("scan", ".", "-f", "json", cwd=out, timeout=300)
    took = time.monotonic() - start
    assert found(res) == [("z.pdf!obj4", 4, 8, None)]  # ... whose bombs end, and the rest goes on
    got = sorted(w.split(": ", 2)[2] for w in warnings_of(res))
    assert got == sorted(
        [
            "z.7z: 7z stopped after 64.0 MiB decompressed in this file (limit; 7z bomb?); the "
            "rest is not scanned",
            "z.7z!zeros.bin: member stopped after 64.0 MiB decompressed (limit); the rest is not "
            "scanned",
            "z.log.lz4: member stopped after 256.0 MiB decompressed (limit); the rest is not scanned",
            "z.log.zst: member stopped after 256.0 MiB decompressed (limit); the rest is not scanned",
            "z.pdf!obj5: member stopped after 256.0 MiB decompressed (limit); the rest is not scanned",
        ]
    ), res.stderr
    assert took < 120


def test_hostile_package_headers_are_one_warning(run_cli: Run, tmp_path: Path, key: str) -> None:
    good = f"KEY={key}\n".encode()
    cases = {
        "huge-name.a": b"!<arch>\n#1/99999999     0           0     0     100644  100       `\n",
        "bad-size.a": b"!<arch>\nx.o/            0           0     0     100644  zz        `\n",
        "cut.cpio": b"070701" + b"0" * 40,
        "bad.rpm": b"\xed\xab\xee\xdb" + b"\0" * 92 + b"\x8e\xad\xe8\x01" + b"\0" * 4
        + b"\x7f\xff\xff\xff" * 2,
        "bad.7z": b"7z\xbc\xaf\x27\x1c\x00\x04" + b"\xff" * 60,
        "bad.db": b"SQLite format 3\x00" + b"\xff" * 200,
    }  # fmt: skip
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "plain.txt").write_bytes(good)
    res = run_cli("scan", ".", "-f", "json", cwd=tmp_path)
    assert found(res) == [("plain.txt", 1, 5, None)]
    assert "Traceback" not in res.stderr
    warned = {n for n in cases for w in warnings_of(res) if "cannot open " in w and f" {n}: " in w}
    assert warned == set(cases), res.stderr
    assert len(warnings_of(res)) == len(cases)


def test_floods_of_the_new_needles_are_linear(run_cli: Run, tmp_path: Path) -> None:
    import time

    floods = {
        # every line of a wrapped block starts like base64 of gzip: each byte decoded once
        "lines.eml": (b"H4sI" + b"A" * 72 + b"\n") * 14_000,
        "percent.log": b"ka%5Flive%5F" * 90_000,
        "escapes.js": b"\\x6b\\x61\\x5f" * 90_000,
        "hex.sql": PREFIX.encode().hex().encode() * 65_000,
        "utf32.txt": PREFIX.encode("utf-32-le") * 32_000,
    }
    for name, data in floods.items():
        (tmp_path / name).write_bytes(data[: 1 << 20])
    for name in floods:
        start = time.monotonic()
        res = run_cli("scan", "--jobs", "1", "-f", "json", name, cwd=tmp_path)
        took = time.monotonic() - start
        assert found(res) == [] and "Traceback" not in res.stderr, (name, res.stderr)
        assert took < 5, (name, took)


# --- 4. the real-world corpus -------------------------------------------------------------------


def test_bench_corpus_of_real_registry_files_is_all_found(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """bench/carriers.py: real files from PyPI, npm and Debian, one planted key per carrier;
    kascan finds every one, and nothing in the downloads without planted keys."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "carriers.py"), "--cache", str(tmp_path),
         "--only", "kascan", "--runs", "1", "--clean"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = [r for r in proc.stdout.splitlines() if r.startswith("| ") and "---" not in r]
    carriers = rows[1:-2]
    assert len(carriers) == 26 and all(r.endswith("| ✓ |") for r in carriers), proc.stdout
    assert "**26/26**" in proc.stdout
    assert "without planted keys: 0 findings" in proc.stdout
