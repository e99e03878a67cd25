"""The pack-order reader of ``kascan git`` (sources/git/blobstream.py) on real ``git cat-file
--batch`` output handed over a real pipe in random pieces: whatever sizes the reads return (a
header cut in two, a record across the buffer's end, a big blob), the same chunks come out."""

from __future__ import annotations

import base64
import io
import json
import os
import random
import subprocess
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from kascan.match import find_candidates
from kascan.model import Chunk, Decoders
from kascan.rules import builtin_rules
from kascan.sources.git.blobstream import READ, BlobStream
from kascan.sources.git.repo import open_repo
from kascan.sources.git.target import may_hide
from tests.conftest import GitRepo, Result

PREFIX = b"ka_" + b"live_"
TEXT = bytes(b"abcdefgh \n"[i % 10] for i in range(256))  # random bytes -> text without needles


def _zip_with(text: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("inner/config.env", text)
    return out.getvalue()


def _history(repo: GitRepo, ks: list[str], rng: random.Random) -> None:
    """Many small blobs, some near the reader's buffer size, two bigger than a window, an
    empty one, a zip, a base64 form, an LFS pointer, and a key in a commit message."""
    files: dict[str, str | bytes] = {
        f"small/{i:03d}.txt": f"{i}\n" * rng.randint(0, 40) for i in range(300)
    }
    for i in range(12):
        size = rng.choice([READ - 70, READ // 2 + 13, rng.randint(1, READ), rng.randint(1, 4096)])
        body = rng.randbytes(size).translate(TEXT)
        if i % 3 == 0:
            at = rng.randint(0, max(0, size - 60))
            body = body[:at] + f"K={ks[i % len(ks)]}\n".encode() + body[at:]
        files[f"mid/{i:02d}.txt"] = body
    files["big/one.txt"] = "y" * (READ + 5000) + f"\n{ks[0]}\n"
    files["big/two.bin"] = bytes(rng.randbytes(3 * READ))
    files["empty.txt"] = ""
    files["archive.zip"] = _zip_with(f"TOKEN={ks[1]}\n")
    files["b64.txt"] = base64.b64encode(f"key={ks[2]}".encode()).decode() + "\n"
    files["big.psd"] = "version https://git-lfs.github.com/spec/v1\noid sha256:" + "0" * 64 + "\n"
    files["end.txt"] = f"{ks[3]}"  # no newline: the key ends where the record does
    repo.commit("many", files)
    repo.commit(f"rotate {ks[4]}", {"note.txt": "rotated\n"})


def _batch_output(repo: GitRepo) -> bytes:
    """What the feeder makes git write: every blob, commit and tag, in pack order."""
    listing = repo.git(
        "cat-file",
        "--batch-all-objects",
        "--unordered",
        "--batch-check=%(objecttype) %(objectname)",
    )
    ids = "".join(ln.split()[1] + "\n" for ln in listing.splitlines() if not ln.startswith("tree"))
    proc = subprocess.run(
        ["git", "cat-file", "--batch"],
        cwd=repo.path,
        env=repo.env,
        input=ids.encode(),
        capture_output=True,
        check=True,
    )
    return proc.stdout


def _read(stream: BlobStream, data: bytes, pieces: Callable[[], int] | None) -> list[Chunk]:
    """The chunks the reader makes of ``data`` written into a pipe whole, or in pieces."""
    r, w = os.pipe()

    def write() -> None:
        view = memoryview(data)
        at = 0
        try:
            while at < len(data):
                n = pieces() if pieces is not None else len(data)
                end = min(len(data), at + n)
                while at < end:
                    at += os.write(w, view[at:end])
                if pieces is not None and n % 7 == 0:
                    time.sleep(0.001)  # let the reader drain the pipe: its next read is short
        finally:
            os.close(w)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        return list(stream._parse(r))
    finally:
        os.close(r)
        writer.join()


@pytest.mark.parametrize("gated", [True, False])
def test_the_same_chunks_whatever_the_reads_return(
    git_repo: GitRepo, keys: Callable[[int], list[str]], rng: random.Random, gated: bool
) -> None:
    ks = keys(5)
    _history(git_repo, ks, rng)
    data = _batch_output(git_repo)
    repo = open_repo(str(git_repo.path))

    def stream() -> BlobStream:
        wants = may_hide(Decoders()) if gated else None
        return BlobStream(repo, gate=PREFIX if gated else None, wants=wants, objects=True)

    whole = stream()
    expected = _read(whole, data, None)
    kinds = git_repo.git("cat-file", "--batch-all-objects", "--batch-check=%(objecttype)")
    blobs = kinds.split().count("blob")
    assert (whole.blobs, whole.lfs, whole.missing) == (blobs, 1, 0)
    found = {c.data for c in expected if c.whole}
    if gated:  # only what can hold a key: the prefix, the zip, the base64 form, the message
        encoded = base64.b64encode(f"key={ks[2]}".encode())
        assert all(PREFIX in d or d.startswith(b"PK\x03\x04") or encoded in d for d in found)
        assert any(d.startswith(b"PK\x03\x04") for d in found)
        assert ks[3].encode() in found
        assert len(found) == 7  # 4 of the mid blobs hold a key, end.txt, the zip, b64.txt
    else:
        assert len(found) == blobs - 2  # every blob, but the two bigger than a window
    messages = [c for c in expected if c.path.endswith(" message")]
    assert any(ks[4].encode() in c.data for c in messages)
    assert sum(1 for c in expected if c.path == "" and not c.whole) > 4  # the big ones' windows
    read = [(c.origin, c.data) for c in expected if c.whole or c.path]
    read += _windowed(expected).items()
    assert _found(expected) == {(oid, k) for oid, body in read for k in ks if k.encode() in body}
    for seed in range(3):
        pick = random.Random(seed)

        def pieces(pick: random.Random = pick) -> int:
            return pick.randint(1, 90) if pick.random() < 0.5 else pick.randint(1, 3 * READ // 2)

        cut = stream()
        got = _read(cut, data, pieces)
        # whole blobs and objects as they were; a big blob's windows are cut where its reads
        # end (as always), but they hold the same bytes and give the same findings
        assert [c for c in got if c.whole or c.path] == [c for c in expected if c.whole or c.path]
        assert _windowed(got) == _windowed(expected)
        assert _found(got) == _found(expected)
        assert (cut.blobs, cut.size, cut.lfs) == (whole.blobs, whole.size, whole.lfs)
    assert {oid: git_repo.git("cat-file", "-s", oid) for oid in _windowed(expected)} == {
        oid: str(len(body)) for oid, body in _windowed(expected).items()
    }


def _windowed(chunks: list[Chunk]) -> dict[str | None, bytes]:
    """The bytes of each blob read in windows: each window's new bytes, in order."""
    out: dict[str | None, bytes] = {}
    for c in chunks:
        if not c.whole and not c.path:
            out[c.origin] = out.get(c.origin, b"") + c.data[c.fresh : len(c.data) - c.tail]
    return out


def _found(chunks: list[Chunk]) -> set[tuple[str | None, str]]:
    """(object, key) of every match of the built-in rule (no decoders: the raw bytes only)."""
    found = find_candidates(chunks, builtin_rules())
    return {(c.origin, c.finding.secret.value) for c in found}


def _many_blobs(path: Path, ks: list[str], env: dict[str, str]) -> None:
    """A bare repository of three commits and ~13,000 blobs (more than the feeder's ``TURN``
    per reader), keys in blobs spread over the pack, one in a blob bigger than a window and one
    in a zip (six keys in the small blobs, a seventh in the big one, an eighth in the zip)."""
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True, env=env)
    proc = subprocess.Popen(
        ["git", "--git-dir", str(path), "fast-import", "--quiet"], stdin=subprocess.PIPE, env=env
    )
    assert proc.stdin is not None
    w = proc.stdin.write
    mark = 0

    def blob(data: bytes) -> int:
        nonlocal mark
        mark += 1
        w(b"blob\nmark :%d\ndata %d\n%s\n" % (mark, len(data), data))
        return mark

    commits: list[list[tuple[int, str]]] = []
    for c in range(3):
        files = []
        for i in range(4400):
            body = b"c%d f%d %s\n" % (c, i, os.urandom(6).hex().encode()) * 3
            if i % 977 == 0:
                body += f"KUBEADAPT_API_KEY={ks[(i // 977 + c) % 6]}\n".encode()
            files.append((blob(body), f"d{i % 40}/f{i}.txt"))
        if c == 1:
            big = b"x" * (READ + 12345) + f"\ntoken={ks[6]}\n".encode()
            files.append((blob(big), "big/blob.txt"))
            files.append((blob(_zip_with(f"TOKEN={ks[7]}\n")), "dist/app.zip"))
        commits.append(files)
    for c, files in enumerate(commits):
        w(b"commit refs/heads/main\ncommitter T <t@example.com> %d +0000\n" % (1700000000 + c))
        w(b"data 3\nc%d\n" % c)
        w(b"deleteall\n")
        w(b"".join(b"M 100644 :%d %s\n" % (m, name.encode()) for m, name in files))
    proc.stdin.close()
    assert proc.wait() == 0


def test_two_or_three_readers_find_what_one_finds(
    tmp_path: Path,
    env: dict[str, str],
    run_cli: Callable[..., Result],
    keys: Callable[[int], list[str]],
) -> None:
    """``cat-file`` processes side by side (``KASCAN_GIT_READERS``): the same findings, in the
    same order, the same counts, as one reader in the caller's thread."""
    repo = tmp_path / "many.git"
    _many_blobs(repo, keys(8), env)
    reports = {}
    for n in ("1", "2", "3"):
        res = run_cli("git", repo, "-f", "json", extra_env={"KASCAN_GIT_READERS": n})
        assert res.returncode == 1, res.stderr
        report = json.loads(res.stdout)
        reports[n] = (
            [(f["path"], f["line"], f["commit"], f["fingerprint"]) for f in report["findings"]],
            report["summary"],
        )
    assert reports["1"] == reports["2"] == reports["3"]
    paths = {p for p, *_ in reports["1"][0]}
    assert "big/blob.txt" in paths and any(p.startswith("dist/app.zip") for p in paths)
    assert len(reports["1"][0]) >= 8 and reports["1"][1]["blobs"] > 13000
