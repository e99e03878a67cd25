"""Hostile input, round two (issue 12): archives that kill readers, special files where a config
is expected, regexes that never finish, floods of encoded prefixes, and limits that hid content
in silence. Every test runs the real CLI on real files, repositories and archives."""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import GitRepo, Result, findings_of

Run = Callable[..., Result]


# --------------------------------------------------------------------------- hand-made zips


def _zip(
    members: list[tuple[bytes, bytes, bytes, int | None]], zip64_locator: int | None = None
) -> bytes:
    """A stored zip written byte by byte: (name, data, central extra, forced header offset)."""
    body = b""
    central = b""
    for name, data, extra, forced in members:
        crc = zlib.crc32(data)
        offset = len(body)
        body += struct.pack(
            "<4sHHHHHLLLHH", b"PK\x03\x04", 20, 0, 0, 0, 0, crc, len(data), len(data), len(name), 0
        )
        body += name + data
        central += struct.pack(
            "<4sHHHHHHLLLHHHHHLL",
            b"PK\x01\x02",
            45,
            45,
            0,
            0,
            0,
            0,
            crc,
            len(data),
            len(data),
            len(name),
            len(extra),
            0,
            0,
            0,
            0,
            offset if forced is None else forced,
        )
        central += name + extra
    n = len(members)
    tail = b""
    if zip64_locator is not None:
        tail = struct.pack("<4sLQL", b"PK\x06\x07", 0, zip64_locator, 1)
        n = 0xFFFF
    eocd = struct.pack(
        "<4sHHHHLLH",
        b"PK\x05\x06",
        0,
        0,
        n,
        n,
        0xFFFFFFFF if zip64_locator is not None else len(central),
        len(body),
        0,
    )
    return body + central + tail + eocd


def empty_name_zip(secret: str) -> bytes:
    """A member whose name is empty (zipfile's ``is_dir()`` raises IndexError)."""
    return _zip([(b"", f"token = {secret}\n".encode(), b"", None)])


def zip64_offset_zip() -> bytes:
    """A zip64 end locator pointing 2**63 bytes away (OverflowError on an in-memory seek)."""
    return _zip([(b"a", b"x", b"", None)], zip64_locator=2**63 + 5)


def absurd_member_zip(secret: str) -> bytes:
    """Two members: the first's zip64 header offset is 2**64 - 1 (OverflowError when opened),
    the second holds a key and must still be scanned."""
    extra = struct.pack("<HHQ", 1, 8, 2**64 - 1)
    return _zip(
        [
            (b"bad.txt", b"nothing here\n", extra, 0xFFFFFFFF),
            (b"good.txt", f"api = {secret}\n".encode(), b"", None),
        ]
    )


def warnings_of(result: Result) -> list[str]:
    return [ln for ln in result.stderr.splitlines() if ln.startswith("kascan: warning:")]


def test_hand_made_zips_are_what_they_claim(key: str) -> None:
    """The crafted archives really break zipfile the way the issue says (not some other way)."""
    with zipfile.ZipFile(io.BytesIO(empty_name_zip(key))) as zf, pytest.raises(IndexError):
        zf.infolist()[0].is_dir()
    with pytest.raises(OverflowError):
        io.BytesIO(zip64_offset_zip()).seek(2**63 + 5)
    with zipfile.ZipFile(io.BytesIO(absurd_member_zip(key))) as zf:
        with pytest.raises(OverflowError):
            zf.open("bad.txt")
        assert key.encode() in zf.read("good.txt")
    assert len(zip64_offset_zip()) <= 128 and len(empty_name_zip(key)) < 160


# --------------------------------------------------------------------------- item 4


def _jar(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


def _tree(root: Path, bad: bytes, other_key: str, files: int = 0) -> None:
    """``bad.zip`` on disk and nested in ``nested.jar`` (read from memory), among ``files``
    plain files, and a key in ``z-key.txt`` after them."""
    root.mkdir()
    for i in range(files):
        (root / f"f{i:03d}.txt").write_text(f"nothing {i}\n")
    (root / "bad.zip").write_bytes(bad)
    (root / "nested.jar").write_bytes(_jar({"lib/bad.zip": bad}))
    (root / "z-key.txt").write_text(f"KEY={other_key}\n")


def _assert_contained(r: Result, want: set[str], warnings: int, *secrets: str) -> None:
    assert r.returncode == 1, r.output
    r.assert_no_leak(*secrets)
    assert "internal error" not in r.stderr, r.stderr
    found = {str(f["path"]) for f in findings_of(r)}
    assert want <= found, (want, found)
    assert len(warnings_of(r)) == warnings, r.stderr


@pytest.mark.parametrize(
    "jobs", [["--jobs", "1"], [], ["--jobs", "2"]], ids=["jobs1", "default", "jobs2"]
)
@pytest.mark.parametrize("kind", ["zip64-offset", "absurd-member", "empty-name"])
def test_a_100_byte_zip_does_not_end_the_scan(
    tmp_path: Path, run_cli: Run, keys: Callable[[int], list[str]], kind: str, jobs: list[str]
) -> None:
    """Item 4: the bad zip is one warning (or, with an empty member name, simply scanned), and
    the key in the next file is reported, with or without workers (70 files: the batch of 64
    that holds the zip reaches a worker)."""
    inner, other = keys(2)
    bad = {
        "zip64-offset": zip64_offset_zip,
        "absurd-member": lambda: absurd_member_zip(inner),
        "empty-name": lambda: empty_name_zip(inner),
    }[kind]()
    root = tmp_path / "tree"
    _tree(root, bad, other, files=70)
    r = run_cli("scan", "-f", "json", *jobs, root)
    want = {"z-key.txt"}
    warnings = 2  # one per bad archive: bad.zip and nested.jar!lib/bad.zip
    if kind == "absurd-member":
        want |= {"bad.zip!good.txt", "nested.jar!lib/bad.zip!good.txt"}
    if kind == "empty-name":
        want |= {"bad.zip!?", "nested.jar!lib/bad.zip!?"}
        warnings = 0
    _assert_contained(r, want, warnings, inner, other)
    assert all("bad.zip" in w for w in warnings_of(r))


@pytest.mark.parametrize("kind", ["zip64-offset", "absurd-member", "empty-name"])
def test_a_bad_zip_on_stdin_and_nested_is_contained(
    tmp_path: Path, run_cli: Run, keys: Callable[[int], list[str]], kind: str
) -> None:
    """Item 4, in memory: on stdin (``scan - key.txt``) and nested in another zip."""
    inner, other, nested_key = keys(3)
    bad = {
        "zip64-offset": zip64_offset_zip,
        "absurd-member": lambda: absurd_member_zip(inner),
        "empty-name": lambda: empty_name_zip(inner),
    }[kind]()
    (tmp_path / "key.txt").write_text(f"KEY={other}\n")
    r = run_cli("scan", "-f", "json", "-", "key.txt", cwd=tmp_path, input=bad)
    warnings = 0 if kind == "empty-name" else 1
    want = {"key.txt"} | ({"<stdin>!good.txt"} if kind == "absurd-member" else set())
    _assert_contained(r, want, warnings, inner, other)

    outer = _jar({"a/bad.zip": bad, "b/key.env": f"KEY={nested_key}\n".encode()})
    (tmp_path / "outer.jar").write_bytes(outer)
    r = run_cli("scan", "-f", "json", "--jobs", "1", "outer.jar", cwd=tmp_path)
    want = {"outer.jar!b/key.env"}
    if kind == "absurd-member":
        want.add("outer.jar!a/bad.zip!good.txt")
    if kind == "empty-name":
        want.add("outer.jar!a/bad.zip!?")
    _assert_contained(r, want, warnings, inner, nested_key)


@pytest.mark.parametrize("kind", ["zip64-offset", "absurd-member"])
def test_a_bad_zip_in_history_does_not_end_the_scan(
    git_repo: GitRepo, run_cli: Run, keys: Callable[[int], list[str]], kind: str
) -> None:
    """Item 4 through ``kascan git``: blobs are read from memory."""
    inner, other = keys(2)
    bad = zip64_offset_zip() if kind == "zip64-offset" else absurd_member_zip(inner)
    git_repo.commit("add an archive", {"dist/bad.zip": bad})
    sha = git_repo.commit("add config", {"config.env": f"KEY={other}\n"})
    r = run_cli("git", "-f", "json", git_repo.path)
    want = {"config.env"} | ({"dist/bad.zip!good.txt"} if kind == "absurd-member" else set())
    _assert_contained(r, want, 1, inner, other)
    commits = {f["path"]: f.get("commit") for f in findings_of(r)}
    assert commits["config.env"] == sha
    assert json.loads(r.stdout)["findings"]
