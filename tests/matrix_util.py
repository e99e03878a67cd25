"""Builders for the capability matrix (tests/test_matrix.py): carriers that hide a key, the
layouts ("scenarios") each capability scans, and the places a layout is put (a tree, a git
history, an index) so that every source reads the same bytes.

Everything is made at test time from a deterministic ``random.Random``: the same session builds
the same bytes, and no key literal is ever written into the repository.
"""

from __future__ import annotations

import base64
import gzip
import io
import random
import tarfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# a fixed timestamp: archives built twice are the same bytes
EPOCH = (2024, 1, 1, 0, 0, 0)
EPOCH_TS = 1704067200


def _zip(members: Mapping[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, EPOCH)
            info.compress_type = method
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return buf.getvalue()


def _tar_gz(members: Mapping[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = EPOCH_TS
            info.mode = 0o644
            tf.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def properties(key: str) -> tuple[bytes, int, int]:
    """A Java properties file with the key on line 3: (bytes, line, column)."""
    text = f"# app\nserver.port=8080\nkubeadapt.api-key={key}\nlogging.level=INFO\n"
    return text.encode(), 3, len("kubeadapt.api-key=") + 1


def deflated_zip(key: str) -> tuple[bytes, str, int, int]:
    """``bundle.zip`` (deflated) with the key in ``conf/app.properties``."""
    props, line, col = properties(key)
    members = {
        "README.txt": b"bundle of the service configuration\n" * 20,
        "conf/app.properties": props,
        "conf/logback.xml": b"<configuration><root level='INFO'/></configuration>\n" * 10,
    }
    return _zip(members), "conf/app.properties", line, col


def class_bytes(rng: random.Random, n: int) -> bytes:
    """Something shaped like a compiled class: magic, version, a constant pool of names and
    opcodes (compresses like real bytecode does, about 2:1)."""
    words = [b"java/lang/Object", b"Code", b"LineNumberTable", b"<init>", b"()V", b"this"]
    out = bytearray(b"\xca\xfe\xba\xbe\x00\x00\x00\x37")
    while len(out) < n:
        if rng.random() < 0.5:
            w = rng.choice(words)
            out += b"\x01" + len(w).to_bytes(2, "big") + w
        else:
            out += rng.randbytes(rng.randint(4, 24))
    return bytes(out[:n])


def inner_jar(key: str, rng: random.Random, size: int = 320 << 10) -> bytes:
    """A jar of ``size`` bytes or more: many compressed class files and resources, and the key in
    ``conf/app.properties`` (neither the first nor the last member)."""
    props, _, _ = properties(key)
    members: dict[str, bytes] = {
        "META-INF/MANIFEST.MF": b"Manifest-Version: 1.0\r\nCreated-By: 17 (Eclipse)\r\n\r\n"
    }
    i = 0
    while sum(len(v) for v in members.values()) < size * 2:  # deflate halves them
        members[f"com/example/app/C{i:04d}.class"] = class_bytes(rng, rng.randint(1500, 6000))
        if i == 60:
            members["conf/app.properties"] = props
        i += 1
    data = _zip(members)
    assert len(data) >= size, len(data)
    return data


def wheel_with_jar(key: str, rng: random.Random) -> tuple[bytes, str, int, int, int]:
    """``pkg-1.0-py3-none-any.whl`` carrying ``pkg/lib/inner.jar`` (the key in its
    ``conf/app.properties``): (wheel, member path, line, column, inner jar size)."""
    jar = inner_jar(key, rng)
    _, line, col = properties(key)
    members = {
        "pkg/__init__.py": b'"""pkg"""\n__version__ = "1.0"\n',
        "pkg/lib/inner.jar": jar,
        "pkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\n",
        "pkg-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: matrix\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
        "pkg-1.0.dist-info/RECORD": b"pkg/__init__.py,,\npkg/lib/inner.jar,,\n",
    }
    return _zip(members), "pkg/lib/inner.jar!conf/app.properties", line, col, len(jar)


def gz_log(key: str) -> tuple[bytes, int, int]:
    """A rotated log, gzip-compressed, the key on line 400."""
    lines = [f"2024-01-01T00:{i // 60:02d}:{i % 60:02d}Z GET /healthz 200\n" for i in range(399)]
    head = "2024-01-01T07:00:00Z auth ok token="
    lines.append(f"{head}{key}\n")
    lines += ["2024-01-01T07:00:01Z GET /healthz 200\n"] * 50
    return gzip.compress("".join(lines).encode(), mtime=0), 400, len(head) + 1


def tar_gz(key: str) -> tuple[bytes, str, int, int]:
    """``backup.tar.gz`` with the key in ``etc/app/values.yaml``, line 4."""
    values = f"replicas: 2\nimage: app:1.0\nkubeadapt:\n  apiKey: {key}\n".encode()
    members = {
        "etc/app/README": b"backup\n",
        "etc/app/values.yaml": values,
        "var/log/app.log": b"started\n" * 200,
    }
    return _tar_gz(members), "etc/app/values.yaml", 4, len("  apiKey: ") + 1


def k8s_secret(key: str) -> tuple[bytes, int, int]:
    """A Kubernetes Secret whose ``data`` holds the key base64-encoded (line 7)."""
    value = base64.b64encode(key.encode()).decode()
    text = (
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: app\ntype: Opaque\ndata:\n"
        f"  api-key: {value}\n"
    )
    return text.encode(), 7, len("  api-key: ") + 1


def utf16_script(key: str) -> tuple[bytes, int, int]:
    """A PowerShell script saved as UTF-16LE with a BOM; the key on line 3."""
    text = f"# setup\r\n\r\n$env:KUBEADAPT_API_KEY = '{key}'\r\nWrite-Host done\r\n"
    return b"\xff\xfe" + text.encode("utf-16-le"), 3, len("$env:KUBEADAPT_API_KEY = '") + 1


# --- scenarios ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    """One finding a scan of the layout must report (or a candidate it must drop)."""

    file: str  # the layout file it is in (a source that reads only some files sees only those)
    path: str  # as reported: with archive members, ``a.whl!b.jar!c``
    line: int
    column: int
    key: str = field(repr=False)
    decoded: str | None = None
    status: str = "unchecked"
    drop: str | None = None  # a reason in summary.dropped, when it must not be reported
    rule: str = "kubeadapt-api-key"
    # in the message of the commit that adds ``file``: ``path`` is a template for its 12-digit
    # id (``commit {} message``); only sources with commits read messages
    message: bool = False


@dataclass(frozen=True)
class Layout:
    """Files to scan, grouped into commits (in order, after an initial commit with a README).

    ``main`` is the file that single-file and stdin sources read."""

    commits: tuple[tuple[tuple[str, bytes], ...], ...]
    main: str
    expect: tuple[Expect, ...]
    messages: tuple[str | None, ...] = ()  # a commit message per group (None: the default)

    def message(self, index: int) -> str | None:
        return self.messages[index] if index < len(self.messages) else None

    @property
    def files(self) -> dict[str, bytes]:
        return {name: data for group in self.commits for name, data in group}

    def commit_index(self, name: str) -> int:
        for i, group in enumerate(self.commits):
            if any(n == name for n, _ in group):
                return i
        raise KeyError(name)

    @property
    def keys(self) -> list[str]:
        return sorted({e.key for e in self.expect})


def one_file(
    name: str,
    data: bytes,
    path: str,
    line: int,
    column: int,
    key: str,
    decoded: str | None = None,
) -> Layout:
    return Layout((((name, data),),), name, (Expect(name, path, line, column, key, decoded),))


def env_lines(entries: Sequence[tuple[str, str]]) -> bytes:
    return "".join(f"{k}={v}\n" for k, v in entries).encode()


@dataclass(frozen=True)
class Built:
    """A layout committed to a repository: the initial commit, then one commit per group."""

    path: Path
    base: str  # the initial commit (README only): ranges start here
    shas: tuple[str, ...]  # one per group of ``Layout.commits``

    @property
    def head(self) -> str:
        return self.shas[-1]


# --- carriers of issue 15 ----------------------------------------------------------------------


def slack_export(key: str) -> tuple[bytes, int, int]:
    """A Slack export day file: the key right after an escaped newline (line 3)."""
    head = '  {"type": "message", "user": "U024BE7LH", "text": "the new one:\\n'
    text = f'[\n  {{"type": "message", "text": "rotating"}},\n{head}{key}"}}\n]\n'
    return text.encode(), 3, len(head) + 1


def access_log(key: str) -> tuple[bytes, int, int]:
    """An nginx access log: the key percent-encoded in a query string (line 2)."""
    enc = key.replace("_", "%5F")
    head = '10.0.0.2 - - [01/Jan/2024:00:00:01 +0000] "GET /callback?token='
    text = f'10.0.0.1 - - [01/Jan/2024:00:00:00 +0000] "GET / HTTP/1.1" 200\n{head}{enc} HTTP/1.1" 302\n'
    return text.encode(), 2, len(head) + 1


def js_bundle(key: str) -> tuple[bytes, int, int]:
    """A minified bundle: the key escaped character by character (line 2)."""
    enc = "".join(f"\\u{ord(c):04x}" for c in key)
    head = 'window.__CONFIG__={"apiKey":"'
    return f'"use strict";\n{head}{enc}"}};\n'.encode(), 2, len(head) + 1


def pg_dump(key: str) -> tuple[bytes, int, int]:
    """A pg_dump COPY block: the key in a bytea column, ``\\x`` and hex (line 2)."""
    head = "7\t\\\\x"
    text = f"COPY public.settings (id, value) FROM stdin;\n{head}{key.encode().hex()}\n\\.\n"
    return text.encode(), 2, len(head) + 1


def mime_mail(key: str) -> tuple[bytes, int, int]:
    """A mail with a base64 text part wrapped at 76 columns; the encoded key crosses a line
    break (line 7, column 41: the 4-character group where it starts)."""
    body = ("Hello,\n\n" + "x" * 65 + f"\nthe token is {key}\n").encode()
    wrapped = base64.encodebytes(body).decode()
    at = body.index(key.encode()) // 3 * 4
    head = "From: ops@example.com\nTo: dev@example.com\nSubject: key\nContent-Transfer-Encoding: base64\n\n"
    assert at // 76 == 1 and at % 76 + 54 > 76  # the key crosses the line break
    return (head + wrapped).encode(), 6 + at // 76, at % 76 + 1


def binary_plist(key: str) -> tuple[bytes, int, int]:
    """A binary plist holding the key in a UTF-16BE string, no BOM (line 1, column 19: columns
    of UTF-16 text count 16-bit units)."""
    text = "clé " + key
    head = b"bplist00\xd1\x01\x02\x5f\x10\x0bApiKeyValue\x6f\x10" + bytes([len(text)])
    data = head + text.encode("utf-16-be") + b"\x08\x0b\x00\x00\x00\x00\x00\x00\x01\x01"
    return data, 1, 19


def utf32_config(key: str) -> tuple[bytes, int, int]:
    """A UTF-32 (with a BOM) config; the key on line 2."""
    return f"# cfg\nAPI_KEY = {key}\n".encode("utf-32"), 2, len("API_KEY = ") + 1


def helm_release(key: str) -> tuple[bytes, int, int]:
    """A Helm release Secret: base64 (Kubernetes) of base64 (Helm) of gzip of the release JSON;
    findings are pinned to where the value starts (line 9)."""
    import json

    release = {
        "name": "app",
        "info": {"status": "deployed"},
        "chart": {"metadata": {"name": "app", "version": "1.2.0"}},
        "config": {"kubeadapt": {"apiKey": key}},
        "manifest": "---\n# Source: app/templates/deployment.yaml\napiVersion: apps/v1\n" * 20,
        "version": 1,
    }
    inner = base64.b64encode(gzip.compress(json.dumps(release).encode(), mtime=0))
    head = (
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: sh.helm.release.v1.app.v1\n"
        "  labels:\n    owner: helm\ntype: helm.sh/release.v1\ndata:\n"
    )
    text = head + "  release: " + base64.b64encode(inner).decode() + "\n"
    return text.encode(), 9, len("  release: ") + 1


def _run(*cmd: str, cwd: Path, env: Mapping[str, str] | None = None) -> None:
    import os
    import subprocess

    full = {**os.environ, "SOURCE_DATE_EPOCH": str(EPOCH_TS), **(env or {})}
    subprocess.run(cmd, cwd=cwd, env=full, check=True, capture_output=True)


def _tool_tree(files: Mapping[str, bytes], root: Path) -> None:
    import os

    for name, data in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        os.utime(p, (EPOCH_TS, EPOCH_TS))


def zstd_log(key: str) -> tuple[bytes, int, int]:
    """A rotated log compressed by the ``zstd`` tool (what journald and logrotate write)."""
    import subprocess

    raw, line, col = gz_log(key)
    text = gzip.decompress(raw)
    out = subprocess.run(["zstd", "-q", "-c", "-19"], input=text, capture_output=True, check=True)
    return out.stdout, line, col


def lz4_log(key: str) -> tuple[bytes, int, int]:
    """The same log compressed by the ``lz4`` tool."""
    import subprocess

    raw, line, col = gz_log(key)
    out = subprocess.run(["lz4", "-q", "-c"], input=gzip.decompress(raw), capture_output=True)
    assert out.returncode == 0, out.stderr
    return out.stdout, line, col


def sevenz(key: str, tmp: Path) -> tuple[bytes, str, int, int]:
    """``backup.7z`` made by ``7zz`` with the key in ``etc/app/values.yaml`` (line 4)."""
    values = f"replicas: 2\nimage: app:1.0\nkubeadapt:\n  apiKey: {key}\n".encode()
    root = tmp / "7z"
    _tool_tree({"etc/app/values.yaml": values, "etc/app/README": b"backup\n" * 50}, root)
    _run("7zz", "a", "-bd", "-mtm=off", "-mtc=off", "-mta=off", "out.7z", "etc", cwd=root)
    return (root / "out.7z").read_bytes(), "etc/app/values.yaml", 4, len("  apiKey: ") + 1


def deb(key: str, tmp: Path, compress: str = "zstd") -> tuple[bytes, str, int, int]:
    """A Debian package built by ``dpkg-deb`` (data.tar.zst by default) whose
    ``etc/app/app.env`` holds the key on line 2."""
    root = tmp / f"deb-{compress}"
    control = (
        b"Package: app\nVersion: 1.0\nArchitecture: all\nMaintainer: ops <ops@example.com>\n"
        b"Description: the app\n"
    )
    files = {
        "pkg/DEBIAN/control": control,
        "pkg/etc/app/app.env": f"APP=demo\nKUBEADAPT_API_KEY={key}\n".encode(),
        "pkg/usr/share/doc/app/README": b"the app\n" * 100,
    }
    _tool_tree(files, root)
    _run("dpkg-deb", "--root-owner-group", f"-Z{compress}", "--build", "pkg", "app.deb", cwd=root)
    ext = {"zstd": "zst", "xz": "xz", "gzip": "gz"}[compress]
    member = f"data.tar.{ext}!./etc/app/app.env"
    return (root / "app.deb").read_bytes(), member, 2, len("KUBEADAPT_API_KEY=") + 1


def rpm(key: str, tmp: Path) -> tuple[bytes, str, int, int]:
    """An rpm built by ``rpmbuild`` (its cpio payload compressed with zstd) whose
    ``etc/app/app.env`` holds the key on line 2."""
    root = tmp / "rpm"
    spec = (
        "Name: app\nVersion: 1.0\nRelease: 1\nSummary: the app\nLicense: MIT\nBuildArch: noarch\n"
        "%description\nthe app\n%install\nmkdir -p %{buildroot}/etc/app\n"
        f"printf 'APP=demo\\nKUBEADAPT_API_KEY={key}\\n' > %{{buildroot}}/etc/app/app.env\n"
        "%files\n/etc/app/app.env\n"
    )
    _tool_tree({"app.spec": spec.encode()}, root)
    _run(
        "rpmbuild", "-bb", "--define", f"_topdir {root}", "--define", "_binary_payload w19.zstdio",
        "--define", "use_source_date_epoch_as_buildtime 1", "--define", "clamp_mtime_to_source_date_epoch 1",
        "--nodeps", "app.spec", cwd=root,
    )  # fmt: skip
    (built,) = (root / "RPMS" / "noarch").glob("*.rpm")
    return built.read_bytes(), "etc/app/app.env", 2, len("KUBEADAPT_API_KEY=") + 1


def crx(key: str) -> tuple[bytes, str, int, int]:
    """A Chrome extension: the ``Cr24`` header (version 3, a header of signatures) then a zip
    whose ``config.js`` holds the key (line 2)."""
    js = f'"use strict";\nconst API_KEY = "{key}";\n'.encode()
    body = _zip({"manifest.json": b'{"manifest_version": 3, "name": "x"}\n', "config.js": js})
    header = bytes(range(64)) * 4
    data = b"Cr24" + (3).to_bytes(4, "little") + len(header).to_bytes(4, "little") + header
    return data + body, "config.js", 2, len('const API_KEY = "') + 1


def pdf(key: str) -> tuple[bytes, str, int, int]:
    """A PDF whose page content stream (FlateDecode, object 4) shows the key (line 4)."""
    import zlib

    content = f"BT\n/F1 12 Tf\n72 720 Td\n(token {key}) Tj\nET\n".encode()
    stream = zlib.compress(content)
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out), "obj4", 4, len("(token ") + 1


def sqlite_db(key: str, tmp: Path) -> tuple[bytes, str, int, int]:
    """An app's SQLite database (made by ``sqlite3``): the key in row 2 of ``settings.value``."""
    import sqlite3

    path = tmp / "app.db"
    path.unlink(missing_ok=True)
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE settings (id INTEGER PRIMARY KEY, name TEXT, value TEXT)")
    con.executemany(
        "INSERT INTO settings (name, value) VALUES (?, ?)",
        [("theme", "dark"), ("api_key", key), ("locale", "en_US.UTF-8")],
    )
    con.commit()
    con.close()
    return path.read_bytes(), "settings/value", 2, 1


def docx(key: str) -> tuple[bytes, str, int, int]:
    """A Word document whose second paragraph holds the key split across three runs (as Word
    writes it after a spell check): found in the joined text, paragraph 2."""
    w = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
    runs = "".join(
        f'<w:r><w:rPr><w:lang w:val="en-US"/></w:rPr><w:t xml:space="preserve">{p}</w:t></w:r>'
        for p in ("API key: " + key[:6], key[6:21], key[21:])
    )
    body = (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<w:document {w}><w:body>'
        "<w:p><w:r><w:t>Runbook</w:t></w:r></w:p>"
        f'<w:p><w:proofErr w:type="spellStart"/>{runs}<w:proofErr w:type="spellEnd"/></w:p>'
        "</w:body></w:document>"
    )
    types = (
        '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/'
        'package/2006/content-types"><Override PartName="/word/document.xml" ContentType="'
        'application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
        "</Types>"
    )
    data = _zip({"[Content_Types].xml": types.encode(), "word/document.xml": body.encode()})
    return data, "word/document.xml", 2, len("API key: ") + 1
