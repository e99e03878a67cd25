"""Hidden places: archives, compressed logs, base64, UTF-16 and slow streams (issue 6).

Every archive and encoded file is built here at test time from keys made by ``make_key``.
"""

from __future__ import annotations

import base64
import bz2
import gzip
import io
import json
import lzma
import os
import struct
import subprocess
import sys
import tarfile
import time
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import PREFIX, Result, findings_of

Run = Callable[..., Result]


def found(result: Result) -> list[tuple[object, object, object, object]]:
    return sorted((f["path"], f["line"], f["column"], f["decoded"]) for f in findings_of(result))


def zip_bytes(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def tar_bytes(members: dict[str, bytes], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:  # type: ignore[call-overload]
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def scan_json(run_cli: Run, *args: object, input: bytes | str | None = None) -> Result:
    return run_cli("scan", *args, "-f", "json", input=input)


# --- archives ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["app.apk", "lib.jar", "pkg-1.0-py3-none-any.whl", "doc.docx"])
def test_zip_member_is_reported_with_its_path_line_and_column(
    run_cli: Run, tmp_path: Path, key: str, name: str
) -> None:
    config = f'{{\n  "name": "demo",\n  "apiKey": "{key}"\n}}\n'.encode()
    (tmp_path / name).write_bytes(zip_bytes({"assets/config.json": config, "a.txt": b"x"}))
    r = scan_json(run_cli, tmp_path / name)
    r.assert_no_leak(key)
    assert r.returncode == 1
    path = (tmp_path / name).as_posix()
    assert found(r) == [(f"{path}!assets/config.json", 3, 14, None)]


def test_zip_in_zip_and_stored_members_are_reported_once(
    run_cli: Run, tmp_path: Path, keys: Callable[[int], list[str]]
) -> None:
    k1, k2 = keys(2)
    inner = zip_bytes({"x.properties": f"a=1\nkey={k1}\n".encode()})
    outer = zip_bytes(
        {"lib/inner.jar": inner, "stored.txt": f"{k2}\n".encode()}, zipfile.ZIP_STORED
    )
    (tmp_path / "a.zip").write_bytes(outer)
    r = run_cli("scan", "-f", "json", "a.zip", cwd=tmp_path)
    r.assert_no_leak(k1, k2)
    # the stored key is also in the raw bytes: the archive is scanned through its members only
    assert found(r) == [
        ("a.zip!lib/inner.jar!x.properties", 2, 5, None),
        ("a.zip!stored.txt", 1, 1, None),
    ]


@pytest.mark.parametrize(
    ("name", "mode"),
    [("a.tar", "w"), ("a.tgz", "w:gz"), ("a.tar.bz2", "w:bz2"), ("a.tar.xz", "w:xz")],
)
def test_tar_members_plain_and_compressed(
    run_cli: Run, tmp_path: Path, key: str, name: str, mode: str
) -> None:
    data = tar_bytes({"etc/app.yaml": f"a: 1\nb:\n  token: {key}\n".encode()}, mode)
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / name).write_bytes(data)
    r = run_cli("scan", "-f", "json", "tree", cwd=tmp_path)
    r.assert_no_leak(key)
    assert r.returncode == 1
    assert found(r) == [(f"tree/{name}!etc/app.yaml", 3, 10, None)]


@pytest.mark.parametrize(
    ("name", "compress", "how"),
    [
        ("app.log.1.gz", gzip.compress, "gzip"),
        ("app.log.2.bz2", bz2.compress, "bzip2"),
        ("app.log.3.xz", lzma.compress, "xz"),
    ],
)
def test_lone_compressed_logs(
    run_cli: Run,
    tmp_path: Path,
    key: str,
    name: str,
    compress: Callable[[bytes], bytes],
    how: str,
) -> None:
    log = b"".join(f"2024-01-01 line {i}\n".encode() for i in range(1, 1000))
    log += f"2024-01-02 auth ok key={key}\n".encode()
    (tmp_path / name).write_bytes(compress(log))
    r = run_cli("scan", "-f", "json", name, cwd=tmp_path)
    r.assert_no_leak(key)
    assert found(r) == [(name, 1000, 24, how)]


def test_gzip_stream_on_stdin(run_cli: Run, key: str) -> None:
    r = scan_json(run_cli, "-", input=gzip.compress(f"one\ntwo {key}\n".encode()))
    r.assert_no_leak(key)
    assert found(r) == [("<stdin>", 2, 5, "gzip")]


def test_tgz_on_stdin(run_cli: Run, key: str) -> None:
    data = tar_bytes({"x/y.env": f"K={key}\n".encode()}, "w:gz")
    r = run_cli("scan", "-f", "json", "--stdin-name", "dump.tgz", "-", input=data)
    r.assert_no_leak(key)
    assert found(r) == [("dump.tgz!x/y.env", 1, 3, None)]


def test_tar_symlinks_and_hardlinks_are_not_followed(
    run_cli: Run, tmp_path: Path, keys: Callable[[int], list[str]]
) -> None:
    inside, outside = keys(2)
    (tmp_path / "secret.txt").write_text(outside)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        data = f"{inside}\n".encode()
        info = tarfile.TarInfo("real.txt")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
        for name, kind, target in [
            ("sym", tarfile.SYMTYPE, "../secret.txt"),
            ("abs", tarfile.SYMTYPE, str(tmp_path / "secret.txt")),
            ("hard", tarfile.LNKTYPE, "real.txt"),
        ]:
            link = tarfile.TarInfo(name)
            link.type = kind
            link.linkname = target
            tf.addfile(link)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "l.tar").write_bytes(buf.getvalue())
    r = run_cli("scan", "-f", "json", "sub", cwd=tmp_path)
    r.assert_no_leak(inside, outside)
    assert found(r) == [("sub/l.tar!real.txt", 1, 1, None)]


def test_nesting_depth_is_bounded(run_cli: Run, tmp_path: Path, key: str) -> None:
    data = f"k={key}\n".encode()
    name = "x.txt"
    for level in range(6):
        data = zip_bytes({name: data})
        name = f"n{level}.zip"
    (tmp_path / "deep.zip").write_bytes(data)
    r = run_cli("scan", "-f", "json", "deep.zip", cwd=tmp_path)
    r.assert_no_leak(key)
    assert r.returncode == 0
    assert "nested more than 4 deep: not opened" in r.stderr


def make_zip_bomb(path: Path, size: int = 1 << 30) -> None:
    """One member of ``size`` zeros, deflated, written without ever holding it: repeated
    full-flushed deflate blocks of 1 MiB of zeros (the CRC is never reached by the reader)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = comp.compress(b"\0" * (1 << 20)) + comp.flush(zlib.Z_FULL_FLUSH)
    tail = comp.flush()
    name = b"zeros.txt"
    csize = len(block) * (size >> 20) + len(tail)
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0, 0, csize, size, len(name), 0)
    with path.open("wb") as fh:
        fh.write(local + name)
        for _ in range(size >> 20):
            fh.write(block)
        fh.write(tail)
        cd_offset = fh.tell()
        central = struct.pack(
            "<4s6H3L5H2L",
            b"PK\x01\x02",
            20,
            20,
            0,
            8,
            0,
            0,
            0,
            csize,
            size,
            len(name),
            0,
            0,
            0,
            0,
            0,
            0,
        )
        fh.write(central + name)
        cd_size = fh.tell() - cd_offset
        fh.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, cd_size, cd_offset, 0))


@pytest.mark.slow
def test_zip_bomb_finishes_quickly_with_a_warning(run_cli: Run, tmp_path: Path, key: str) -> None:
    make_zip_bomb(tmp_path / "bomb.zip")
    assert (tmp_path / "bomb.zip").stat().st_size < 2 << 20
    (tmp_path / "plain.txt").write_text(f"x {key}\n")
    start = time.monotonic()
    r = run_cli("scan", "-f", "json", ".", cwd=tmp_path)
    elapsed = time.monotonic() - start
    r.assert_no_leak(key)
    assert elapsed < 30, elapsed
    assert r.returncode == 1  # the key in plain.txt, nothing from the bomb
    assert found(r) == [("plain.txt", 1, 3, None)]
    warnings = [line for line in r.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1
    assert "bomb.zip!zeros.txt: member stopped after 256.0 MiB decompressed (limit)" in warnings[0]


def test_corrupt_and_truncated_archives_warn_and_the_scan_goes_on(
    run_cli: Run, tmp_path: Path, keys: Callable[[int], list[str]]
) -> None:
    k1, k2, k3 = keys(3)
    stored = zip_bytes({"a.txt": f"key: {k1}\n".encode()}, zipfile.ZIP_STORED)
    (tmp_path / "cut.zip").write_bytes(stored[: len(stored) - 30])  # no central directory
    big = tar_bytes({"first.txt": f"{k2}\n".encode(), "second.bin": os.urandom(200_000)}, "w:gz")
    (tmp_path / "cut.tgz").write_bytes(big[: len(big) // 2])
    (tmp_path / "fake.gz").write_bytes(b"\x1f\x8b\x08" + b"\xff" * 40)
    (tmp_path / "ok.txt").write_text(f"{k3}\n")
    r = run_cli("scan", "-f", "json", ".", cwd=tmp_path)
    r.assert_no_leak(k1, k2, k3)
    assert r.returncode == 1
    # the unopenable zip is scanned as plain bytes: its stored key is still found
    paths = [p for p, *_ in found(r)]
    assert paths == ["cut.tgz!first.txt", "cut.zip", "ok.txt"]
    err = r.stderr
    assert "cannot open zip archive cut.zip: " in err and "scanned as plain bytes" in err
    assert "cannot read tar archive cut.tgz" in err or "cannot read gzip cut.tgz" in err
    assert "fake.gz" in err
    assert len([x for x in err.splitlines() if "warning" in x]) == 3


def test_no_temporary_files(run_cli: Run, tmp_path: Path, key: str) -> None:
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    data = tar_bytes({"a/b.txt": f"{key}\n".encode()}, "w:gz")
    (tmp_path / "x.zip").write_bytes(zip_bytes({"in.tgz": data}))
    r = run_cli("scan", "x.zip", cwd=tmp_path, extra_env={"TMPDIR": str(tmp)})
    r.assert_no_leak(key)
    assert "x.zip!in.tgz!a/b.txt:1:1" in r.stdout
    assert list(tmp.iterdir()) == []


# --- base64 -----------------------------------------------------------------------------------


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_base64_in_a_kubernetes_secret_at_each_alignment(
    run_cli: Run, tmp_path: Path, keys: Callable[[int], list[str]]
) -> None:
    ks = keys(5)
    values = [ks[0], "=" + ks[1], "k=" + ks[2]]  # the key at byte 0, 1 and 2 of a 3-byte group
    lines = ["apiVersion: v1", "kind: Secret", "metadata:", "  name: app", "data:"]
    lines += [f"  k{i}: {b64(v)}" for i, v in enumerate(values)]
    env = "A=1\nB=two\nKUBEADAPT_TOKEN=" + ks[3] + "\nC=3\n"
    lines.append(f"  env: {b64(env)}")  # deep inside a longer value
    url = base64.urlsafe_b64encode(b"\xff\xfe>" + ks[4].encode()).decode().rstrip("=")
    lines.append(f"  url: {url}")  # URL-safe alphabet, unpadded
    (tmp_path / "secret.yaml").write_text("\n".join(lines) + "\n")
    r = run_cli("scan", "-f", "json", "secret.yaml", cwd=tmp_path)
    r.assert_no_leak(*ks)
    assert found(r) == [
        ("secret.yaml", 6, 7, "base64"),
        ("secret.yaml", 7, 7, "base64"),
        ("secret.yaml", 8, 7, "base64"),
        ("secret.yaml", 9, 8 + (len("A=1\nB=two\nKUBEADAPT_TOKEN=") // 3) * 4, "base64"),
        ("secret.yaml", 10, 12, "base64"),
    ]
    # the encoded text is reported, never the key body; --no-base64 makes them disappear
    off = run_cli("scan", "-f", "json", "--no-base64", "secret.yaml", cwd=tmp_path)
    off.assert_no_leak(*ks)
    assert off.returncode == 0 and found(off) == []


def test_kubectl_json_on_stdin(run_cli: Run, keys: Callable[[int], list[str]]) -> None:
    ks = keys(3)
    doc = {
        "apiVersion": "v1",
        "kind": "Secret",
        "data": {"a": b64(ks[0]), "b": b64(" " + ks[1]), "c": b64("x=" + ks[2] + "\n")},
        "metadata": {"name": "s", "namespace": "default"},
    }
    text = json.dumps(doc, indent=4)
    r = scan_json(run_cli, "-", input=text)
    r.assert_no_leak(*ks)
    got = found(r)
    assert [(p, d) for p, _, _, d in got] == [("<stdin>", "base64")] * 3
    assert [ln for _, ln, _, _ in got] == [5, 6, 7]
    assert [c for *_, c, _ in got] == [15, 15, 15]


def test_double_base64_dockerconfigjson(run_cli: Run, tmp_path: Path, key: str) -> None:
    auth = b64("robot:" + key)
    config = json.dumps({"auths": {"registry.example.com": {"auth": auth}}})
    secret = (
        "apiVersion: v1\nkind: Secret\ntype: kubernetes.io/dockerconfigjson\ndata:\n"
        f"  .dockerconfigjson: {b64(config)}\n"
    )
    (tmp_path / "pull.yaml").write_text(secret)
    r = run_cli("scan", "-f", "json", "pull.yaml", cwd=tmp_path)
    r.assert_no_leak(key)
    assert r.returncode == 1
    [(path, line, _col, how)] = found(r)
    assert (path, line, how) == ("pull.yaml", 5, "base64 → base64")


def test_base64_inside_an_archive(run_cli: Run, tmp_path: Path, key: str) -> None:
    values = f"image: x\nsecret:\n  b64: {b64(key)}\n".encode()
    chart = tar_bytes({"chart/values.yaml": values}, "w:gz")
    (tmp_path / "chart.tgz").write_bytes(chart)
    r = run_cli("scan", "-f", "json", "chart.tgz", cwd=tmp_path)
    r.assert_no_leak(key)
    assert found(r) == [("chart.tgz!chart/values.yaml", 3, 8, "base64")]


# --- UTF-16 -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "bom", "how"),
    [
        ("utf-16-le", b"\xff\xfe", "utf-16le"),
        ("utf-16-le", b"", "utf-16le"),
        ("utf-16-be", b"\xfe\xff", "utf-16be"),
        ("utf-16-be", b"", "utf-16be"),
    ],
)
def test_utf16_text(
    run_cli: Run, tmp_path: Path, key: str, encoding: str, bom: bytes, how: str
) -> None:
    text = f"# settings\r\n\r\n$ApiKey = 'ünï {key}'\r\nWrite-Host done\r\n"
    (tmp_path / "setup.ps1").write_bytes(bom + text.encode(encoding))
    r = run_cli("scan", "-f", "json", "setup.ps1", cwd=tmp_path)
    r.assert_no_leak(key)
    assert found(r) == [("setup.ps1", 3, 16, how)]
    off = run_cli("scan", "-f", "json", "--no-utf16", "setup.ps1", cwd=tmp_path)
    assert off.returncode == 0 and found(off) == []


def test_utf16_string_inside_a_binary(run_cli: Run, tmp_path: Path, key: str) -> None:
    head = b"MZ" + os.urandom(2999).replace(b"\n", b"\0")  # odd length: the string is unaligned
    blob = head + b"\0\0" + key.encode("utf-16-le") + b"\0\0" + os.urandom(99)  # NUL-terminated
    (tmp_path / "app.dll").write_bytes(blob)
    r = run_cli("scan", "-f", "json", "app.dll", cwd=tmp_path)
    r.assert_no_leak(key)
    [(path, line, _col, how)] = found(r)
    assert (path, line, how) == ("app.dll", 1, "utf-16le")


# --- switches and suppression ---------------------------------------------------------------


def test_each_switch_turns_its_decoder_off(
    run_cli: Run, tmp_path: Path, keys: Callable[[int], list[str]]
) -> None:
    k1, k2, k3 = keys(3)
    (tmp_path / "a.zip").write_bytes(zip_bytes({"c.txt": f"{k1}\n".encode()}))
    (tmp_path / "s.yaml").write_text(f"data:\n  k: {b64(k2)}\n")
    (tmp_path / "w.txt").write_bytes(f"{k3}\n".encode("utf-16-le"))
    expect = {"archives": "a.zip!c.txt", "base64": "s.yaml", "utf16": "w.txt"}
    r = run_cli("scan", "-f", "json", ".", cwd=tmp_path)
    r.assert_no_leak(k1, k2, k3)
    assert sorted(p for p, *_ in found(r)) == sorted(expect.values())
    for name, path in expect.items():
        off = run_cli("scan", "-f", "json", f"--no-{name}", ".", cwd=tmp_path)
        off.assert_no_leak(k1, k2, k3)
        assert sorted(p for p, *_ in found(off)) == sorted(set(expect.values()) - {path})
    none = run_cli(
        "scan", "--no-archives", "--no-base64", "--no-utf16", "-f", "json", ".", cwd=tmp_path
    )
    assert none.returncode == 0 and found(none) == []


def test_placeholders_inside_wrappers_are_still_dropped(
    run_cli: Run, tmp_path: Path, key: str
) -> None:
    from kascan.heuristics import is_placeholder

    fake = PREFIX + "YourApiKeyGoesHere0000000000000x"
    assert len(fake) == len(key) and is_placeholder(fake[len(PREFIX) :])
    both = f"fake={fake}\nreal={key}\n"
    (tmp_path / "a.zip").write_bytes(zip_bytes({"c.txt": both.encode()}))
    (tmp_path / "s.yaml").write_text(f"data:\n  a: {b64(fake)}\n  b: {b64(key)}\n")
    (tmp_path / "w.txt").write_bytes(both.encode("utf-16-le"))
    r = run_cli("scan", "-f", "json", ".", cwd=tmp_path)
    r.assert_no_leak(key)
    assert found(r) == [
        ("a.zip!c.txt", 2, 6, None),
        ("s.yaml", 3, 6, "base64"),
        ("w.txt", 2, 6, "utf-16le"),
    ]
    summary = r.json()["summary"]
    assert isinstance(summary, dict) and summary["dropped"] == {"placeholder": 3}


# --- streams ----------------------------------------------------------------------------------


def test_findings_are_printed_before_stdin_ends(env: dict[str, str], key: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "kascan", "scan", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        for i in range(3):
            proc.stdin.write(f"log line {i}\n".encode())
            proc.stdin.flush()
            time.sleep(0.05)
        proc.stdin.write(f"  token: {b64(key)}\n".encode())
        proc.stdin.flush()
        line = proc.stdout.readline().decode()  # blocks until kascan prints: stdin still open
        assert proc.poll() is None
        assert line.startswith("<stdin>:4:10  kubeadapt-api-key  ")
        assert "(decoded from base64)" in line and key[len(PREFIX) :] not in line
        rest, err = proc.communicate(b"more\n", timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1
    assert key[len(PREFIX) :] not in rest.decode() + err.decode()


def test_expand_blob_api_for_git_sources(keys: Callable[[int], list[str]]) -> None:
    """``archives.expand(path, bytes)``: what the git source calls for a blob."""
    from kascan.match import find_candidates
    from kascan.rules import load_rules
    from kascan.sources.archives import Limits, expand
    from kascan.sources.decode import Decoders, decode_chunks

    k1, k2 = keys(2)
    blob = zip_bytes(
        {"conf/a.env": f"A=1\nK={k1}\n".encode(), "b.yaml": f"x: {b64(k2)}\n".encode()}
    )
    warnings: list[str] = []
    chunks = decode_chunks(expand("dist/app.jar", blob, warn=warnings.append), Decoders())
    got = sorted(
        (
            c.finding.path,
            c.finding.line,
            c.finding.column,
            c.finding.decoded,
            c.finding.secret.value,
        )
        for c in find_candidates(chunks, load_rules(()))
    )
    assert got == [
        ("dist/app.jar!b.yaml", 1, 4, "base64", k2),
        ("dist/app.jar!conf/a.env", 2, 3, None, k1),
    ]
    assert warnings == []
    # a plain blob is just scanned; a tiny member cap truncates with one warning
    plain = list(expand("x.txt", f"{k1}\n".encode()))
    assert [c.path for c in plain] == ["x.txt"]
    capped = list(
        expand("big.gz", gzip.compress(b"a" * 5000), Limits(max_member_bytes=1000), warnings.append)
    )
    assert sum(len(c.data) - c.fresh for c in capped) == 1000
    assert warnings == [
        "big.gz: member stopped after 1000 B decompressed (limit); the rest is not scanned"
    ]
