#!/usr/bin/env python3
"""kascan benchmark: builds its corpora deterministically, runs kascan against reference tools
several times (alternating, warm cache), and prints a markdown table of medians and ratios.

    python bench/run.py            # full: a >= 10,000-file / 100 MB tree, a 2 GiB file,
                                   # a >= 200,000-object synthetic git history, hook latency
    python bench/run.py --quick    # a tiny corpus in a few seconds (the CI smoke run)
    python bench/run.py --history-repo /path/to/u-boot.git
                                   # real corpora, built from that git directory: the tree is
                                   # ``git archive`` of a fixed commit with 50 keys planted at
                                   # seeded places, the history all objects reachable from an
                                   # older fixed commit plus 3 commits with keys
                                   # (env KASCAN_BENCH_REPO does the same)

Corpora live in bench/.corpus/ (gitignored) and are rebuilt only when their recipe changes.
References: ripgrep (``rg`` on PATH; Debian: ``apt-get install ripgrep``), ``git cat-file``, and
Kingfisher for the hook (``pip install -e '.[bench]'``: PyPI ``kingfisher-bin``).
Peak RSS is read with ``wait4`` (the same number ``/usr/bin/time -f %M`` prints).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import string
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CORPUS = HERE / ".corpus"
PREFIX = "ka_" + "live_"  # split: no key-shaped literal in the repository
ALNUM = string.ascii_letters + string.digits
RECIPE = 3  # bump when a corpus recipe changes: the corpus is rebuilt

# Runs ``kascan`` in-process, then writes to KASCAN_BENCH_RSS the peak RSS (KiB) of this process
# (VmHWM: ru_maxrss would include the bench's own size, which survives fork and exec on Linux)
# and of the children it waited for (its workers; and git, for history scans).
WRAPPER = """\
import os, resource, sys
sys.argv[0] = "kascan"
from kascan.cli import main
def peak():
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    main()
finally:
    with open(os.environ["KASCAN_BENCH_RSS"], "w") as fh:
        kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        fh.write(f"{peak()} {kids}")
"""


def make_key(rng: random.Random) -> str:
    sys.path.insert(0, str(ROOT))
    from kascan.heuristics import is_placeholder

    while True:
        body = "".join(rng.choices(ALNUM, k=32))
        if not is_placeholder(body):
            return PREFIX + body


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def git_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_AUTHOR_NAME="Bench",
        GIT_AUTHOR_EMAIL="bench@example.com",
        GIT_COMMITTER_NAME="Bench",
        GIT_COMMITTER_EMAIL="bench@example.com",
        GIT_AUTHOR_DATE="2024-01-01T00:00:00+00:00",
        GIT_COMMITTER_DATE="2024-01-01T00:00:00+00:00",
    )
    return env


def git(*args: str, cwd: Path, input: bytes | None = None) -> str:
    proc = subprocess.run(
        ["git", *args], cwd=cwd, env=git_env(), input=input, capture_output=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"git {' '.join(args)} failed: {proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode()


# --------------------------------------------------------------------------- corpora


def _fresh(dest: Path, recipe: dict[str, object]) -> bool:
    """True if ``dest`` was already built from ``recipe``; otherwise it is emptied."""
    stamp = dest / ".bench-recipe.json"
    want = json.dumps({**recipe, "recipe": RECIPE}, sort_keys=True)
    if stamp.is_file() and stamp.read_text() == want:
        return True
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    return False


def _stamp(dest: Path, recipe: dict[str, object]) -> None:
    (dest / ".bench-recipe.json").write_text(
        json.dumps({**recipe, "recipe": RECIPE}, sort_keys=True)
    )


def _library_files() -> Iterator[tuple[Path, str]]:
    """Files of the local Python installation's library folders, in a stable order."""
    paths = sysconfig.get_paths()
    stdlib = Path(paths["stdlib"]).resolve()
    roots = [("stdlib", stdlib)]
    for name in ("purelib", "platlib"):
        p = Path(paths[name]).resolve()
        if p.is_dir() and all(p != r for _, r in roots):
            roots.append((name, p))
    skip = {r for _, r in roots[1:]}
    for label, top in roots:
        for dirpath, dirnames, filenames in os.walk(top):
            here = Path(dirpath)
            dirnames[:] = sorted(
                d for d in dirnames if d != "__pycache__" and (here / d) not in skip
            )
            for name in sorted(filenames):
                p = here / name
                yield p, f"{label}/{p.relative_to(top).as_posix()}"


@dataclass
class Tree:
    path: Path
    files: int
    bytes: int
    planted: int  # keys kascan must report with default settings


def build_tree(dest: Path, min_files: int, min_bytes: int) -> Tree:
    recipe = {"kind": "tree", "files": min_files, "bytes": min_bytes, "py": sys.version}
    manifest = dest / ".bench-manifest.json"
    if _fresh(dest, recipe) and manifest.is_file():
        return Tree(dest, **json.loads(manifest.read_text()))
    log(f"building tree corpus in {dest} (>= {min_files} files, >= {min_bytes >> 20} MiB)")
    rng = random.Random(20240601)
    files = size = 0
    texts: list[Path] = []
    for src, rel in _library_files():
        if files >= min_files and size >= min_bytes:
            break
        try:
            st = src.lstat()
        except OSError:
            continue
        if not src.is_file() or src.is_symlink() or st.st_size > 8 << 20:
            continue
        out = dest / "lib" / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copyfile(src, out)
        except OSError:
            continue
        files += 1
        size += st.st_size
        if rel.endswith((".py", ".txt", ".cfg", ".toml")):
            texts.append(out)
    planted = 0
    # keys in ordinary text files (appended to some copies)
    for p in rng.sample(texts, min(20, len(texts))):
        with p.open("a", encoding="utf-8") as fh:
            fh.write(f'\nKUBEADAPT_API_KEY = "{make_key(rng)}"\n')
        planted += 1
    # hidden files and directories
    dirs = sorted({p.parent for p in texts})
    for i, d in enumerate(rng.sample(dirs, min(10, len(dirs)))):
        (d / ".env").write_text(f"KUBEADAPT_API_KEY={make_key(rng)}\nDEBUG=1\n")
        hidden = d / ".config" / f"deploy{i}"
        hidden.mkdir(parents=True)
        (hidden / "settings.yml").write_text(f"kubeadapt:\n  api_key: {make_key(rng)}\n")
        planted += 2
    # binaries: random bytes with a key inside
    for i in range(3):
        blob = bytearray(rng.randbytes(64 << 10))
        k = make_key(rng).encode()
        at = 1000 + i * 9000
        blob[at - 1 : at + len(k) + 1] = b"\0" + k + b"\0"
        (dest / "lib" / f"blob{i}.bin").write_bytes(bytes(blob))
        planted += 1
    # ignored by .gitignore: neither kascan (by default) nor rg should read these
    (dest / ".gitignore").write_text("ignored-build/\n*.log\n")
    (dest / "ignored-build").mkdir()
    (dest / "ignored-build" / "out.txt").write_text(f"token={make_key(rng)}\n")
    (dest / "server.log").write_text(f"token={make_key(rng)}\n")
    git("init", "-q", cwd=dest)  # so that rg honours .gitignore as kascan does
    tree = Tree(dest, files + planted, size, planted)
    manifest.write_text(json.dumps({"files": tree.files, "bytes": tree.bytes, "planted": planted}))
    _stamp(dest, recipe)
    return tree


def build_text_tree(dest: Path, nkeys: int) -> Tree:
    """Plain text: every ``.py`` file of the Python installation's stdlib folder (CPython 3.11:
    13,353 files, 190 MB), with ``nkeys`` keys appended to seeded files. No archive, no binary:
    what the decoders cost on text, where none of them finds anything."""
    recipe = {"kind": "text-tree", "keys": nkeys, "py": sys.version, "git": 1}
    manifest = dest / ".bench-manifest.json"
    if _fresh(dest, recipe) and manifest.is_file():
        return Tree(dest, **json.loads(manifest.read_text()))
    log(f"building the plain-text tree in {dest} (the stdlib's .py files)")
    files = size = 0
    copied: list[Path] = []
    for src, rel in _library_files():
        if not rel.startswith("stdlib/") or not rel.endswith(".py") or src.is_symlink():
            continue
        out = dest / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copyfile(src, out)
        except OSError:
            continue
        files += 1
        size += out.stat().st_size
        copied.append(out)
    git("init", "-q", cwd=dest)  # its own repository: the checkout's .gitignore is not its
    rng = random.Random(20240602)
    for p in rng.sample(copied, min(nkeys, len(copied))):
        with p.open("a", encoding="utf-8") as fh:
            fh.write(f'\nKUBEADAPT_API_KEY = "{make_key(rng)}"\n')
    tree = Tree(dest, files, size, min(nkeys, len(copied)))
    manifest.write_text(
        json.dumps({"files": tree.files, "bytes": tree.bytes, "planted": tree.planted})
    )
    _stamp(dest, recipe)
    return tree


def build_big_file(dest: Path, size: int) -> tuple[Path, int]:
    """A sparse-ish file: holes plus a data block with a key every 256 MiB."""
    recipe = {"kind": "big", "size": size}
    path = dest / "big.bin"
    if _fresh(dest, recipe) and path.is_file():
        return path, json.loads((dest / "keys.json").read_text())
    log(f"building a {size >> 20} MiB sparse file in {dest}")
    rng = random.Random(99)
    n = 0
    with path.open("wb") as fh:
        fh.truncate(size)
        for off in range(64 << 20, size, 256 << 20):
            fh.seek(off)
            text = "".join(rng.choices(ALNUM + "  \n", k=1 << 20))
            fh.write(f"{text}\napi_key = {make_key(rng)}\n{text}".encode())
            n += 1
    (dest / "keys.json").write_text(str(n))
    _stamp(dest, recipe)
    return path, n


def build_dense_copy(dest: Path, sparse: Path) -> Path:
    """``sparse`` with its holes written out as NUL bytes (the same bytes, all on disk)."""
    st = sparse.stat()
    recipe = {"kind": "dense", "of": str(sparse), "size": st.st_size, "mtime": st.st_mtime_ns}
    path = dest / "big-dense.bin"
    if _fresh(dest, recipe) and path.is_file():
        return path
    log(f"writing {sparse.name} out without holes in {dest}")
    with sparse.open("rb") as src, path.open("wb") as out:
        while block := src.read(8 << 20):
            out.write(block)
    _stamp(dest, recipe)
    return path


def _fast_import_stream(commits: int, per_commit: int, dirs: int, per_dir: int) -> Iterator[bytes]:
    rng = random.Random(4242)
    words = ["alpha", "beta", "gamma", "delta", "kube", "node", "pod", "cost", "cpu", "mem"]
    paths = [f"pkg{d:03d}/mod{f:03d}.py" for d in range(dirs) for f in range(per_dir)]
    bodies = {
        p: [
            f"{rng.choice(words)}_{i} = {rng.randrange(10**9)}  # {rng.choice(words)}\n"
            for i in range(24)
        ]
        for p in paths
    }
    key_commits = set(rng.sample(range(1, commits), min(12, commits - 1)))
    mark = 0
    for c in range(commits):
        out = [f"commit refs/heads/main\nmark :{c + 1}\n"]
        ts = 1700000000 + c * 60
        out.append(f"author Bench <bench@example.com> {ts} +0000\n")
        out.append(f"committer Bench <bench@example.com> {ts} +0000\n")
        msg = f"change {c}\n"
        out.append(f"data {len(msg)}\n{msg}")
        if c:
            out.append(f"from :{c}\n")
        for p in rng.sample(paths, per_commit):
            lines = bodies[p]
            lines[rng.randrange(len(lines))] = f"value_{c} = {rng.randrange(10**12)}\n"
            data = "".join(lines)
            if c in key_commits and p == paths[c % len(paths)]:
                data += f"API_KEY = '{make_key(rng)}'\n"  # gone again at the file's next change
            blob = data.encode()
            out.append(f"M 100644 inline {p}\ndata {len(blob)}\n")
            mark += 1
            yield "".join(out).encode() + blob + b"\n"
            out = []
        if c in key_commits:
            p = paths[c % len(paths)]
            blob = (f"API_KEY = '{make_key(rng)}'\n").encode()
            yield f"M 100644 inline {p}.env\ndata {len(blob)}\n".encode() + blob + b"\n"
        yield "".join(out).encode() + b"\n"


def build_history(dest: Path, commits: int, per_commit: int, dirs: int, per_dir: int) -> Path:
    recipe = {"kind": "history", "c": commits, "m": per_commit, "d": dirs, "f": per_dir}
    if _fresh(dest, recipe) and (dest / "HEAD").exists():
        return dest
    log(f"building a synthetic history in {dest} ({commits} commits x {per_commit} files)")
    git("init", "-q", "--bare", "-b", "main", ".", cwd=dest)
    proc = subprocess.Popen(
        ["git", "fast-import", "--quiet", "--depth=10"],
        cwd=dest,
        env=git_env(),
        stdin=subprocess.PIPE,
    )
    assert proc.stdin is not None
    buf: list[bytes] = []
    for piece in _fast_import_stream(commits, per_commit, dirs, per_dir):
        buf.append(piece)
        if len(buf) > 2000:
            proc.stdin.write(b"".join(buf))
            buf.clear()
    proc.stdin.write(b"".join(buf))
    proc.stdin.close()
    if proc.wait() != 0:
        raise SystemExit("git fast-import failed")
    _stamp(dest, recipe)
    return dest


def build_small_history(dest: Path) -> Path:
    """A small real history: a clone of this repository (or of the history above if none)."""
    recipe = {"kind": "small-history", "head": _head(ROOT)}
    if _fresh(dest, recipe) and (dest / "HEAD").exists():
        return dest
    shutil.rmtree(dest)
    src = ROOT if (ROOT / ".git").exists() else None
    if src is None:
        dest.mkdir(parents=True)
        git("init", "-q", "--bare", ".", cwd=dest)
    else:
        git("clone", "-q", "--bare", "--no-local", str(src), str(dest), cwd=ROOT.parent)
    _stamp(dest, recipe)
    return dest


def _head(repo: Path) -> str:
    try:
        return git("rev-parse", "HEAD", cwd=repo).strip()
    except SystemExit:
        return ""


def build_hook_repo(dest: Path, files: int, changed: int) -> Path:
    """A repository of ``files`` files with ``changed`` small staged changes (one with a key)."""
    recipe = {"kind": "hook", "files": files, "changed": changed}
    if _fresh(dest, recipe) and (dest / ".git").exists():
        return dest
    log(f"building a {files}-file repository with {changed} staged changes in {dest}")
    rng = random.Random(7)
    git("init", "-q", "-b", "main", ".", cwd=dest)
    stream = [b"commit refs/heads/main\ncommitter Bench <b@example.com> 1700000000 +0000\n"]
    stream.append(b"data 5\ninit\n")
    for i in range(files):
        blob = f"# file {i}\nvalue = {rng.randrange(10**9)}\n".encode()
        stream.append(f"M 100644 inline src/d{i % 50:02d}/f{i:05d}.py\ndata {len(blob)}\n".encode())
        stream.append(blob + b"\n")
    git("fast-import", "--quiet", cwd=dest, input=b"".join(stream) + b"\n")
    git("checkout", "-q", "-f", "main", cwd=dest)
    for i in range(changed):
        p = dest / "src" / f"d{i % 50:02d}" / f"f{i:05d}.py"
        extra = f"API_KEY = '{make_key(rng)}'\n" if i == 0 else f"more = {i}\n"
        with p.open("a") as fh:
            fh.write(extra)
    git("add", "-A", cwd=dest)
    _stamp(dest, recipe)
    return dest


# --------------------------------------------------------------------------- real corpora

# Defaults name commits of the public u-boot repository (any clone or mirror of it has them); any
# other repository works with --tree-rev/--history-rev naming commits it has.
REAL_TREE_REV = "d637294e264adfeb29f390dfc393106fd4d41b17"  # v2022.01: 17,911 files, 109 MB
REAL_HISTORY_REV = "92fa7f53f1f3f03296f8ffb14bdf1baefab83368"  # v2015.01: 294,000 objects
SNIFF = 8192


def _src_git(src: Path, *args: str, input: bytes | None = None) -> bytes:
    proc = subprocess.run(
        ["git", "--git-dir", str(src), *args],
        env=git_env(),
        input=input,
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(
            f"git {' '.join(args[:3])} in {src} failed: {proc.stderr.decode(errors='replace')}"
        )
    return proc.stdout


def _resolve(src: Path, rev: str) -> str:
    if not (src / "objects").is_dir() and (src / ".git").is_dir():
        src = src / ".git"
    return (
        _src_git(src, "rev-parse", "--verify", "--end-of-options", f"{rev}^{{commit}}")
        .decode(errors="replace")
        .strip()
    )


def _git_dir(src: Path) -> Path:
    return src / ".git" if (src / ".git").is_dir() else src


def _encodings(key: str) -> dict[str, bytes]:
    import base64

    return {
        "plain": f'KUBEADAPT_API_KEY="{key}"'.encode(),
        "base64": b"  token: " + base64.b64encode(f"KUBEADAPT_API_KEY={key}\n".encode()),
        "utf-16": ("\ufeff" + f"kubeadapt:\n  api_key: {key}\n").encode("utf-16-le"),
    }


def build_real_tree(dest: Path, src: Path, rev: str, nkeys: int) -> Tree:
    """``git archive`` of ``rev`` with ``nkeys`` keys planted at seeded places: most as a line
    inserted in a seeded text file at a seeded line, a tenth base64-encoded the same way, a tenth
    in new UTF-16 files (with BOM) in seeded directories."""
    src = _git_dir(src)
    sha = _resolve(src, rev)
    recipe = {"kind": "real-tree", "rev": sha, "keys": nkeys}
    manifest = dest / ".bench-manifest.json"
    if _fresh(dest, recipe) and manifest.is_file():
        return Tree(dest, **json.loads(manifest.read_text()))
    log(f"building the tree corpus in {dest}: git archive {sha[:12]} of {src}")
    archive = subprocess.Popen(
        ["git", "--git-dir", str(src), "archive", "--format=tar", sha],
        env=git_env(),
        stdout=subprocess.PIPE,
    )
    untar = subprocess.run(
        ["tar", "-x", "--no-same-owner", "-C", str(dest)], stdin=archive.stdout, check=False
    )
    if archive.wait() != 0 or untar.returncode != 0:
        raise SystemExit(f"git archive {sha} of {src} failed")
    git("init", "-q", cwd=dest)  # so that rg honours the .gitignore files as kascan does
    names = sorted(
        n.decode()
        for n in _src_git(src, "ls-tree", "-r", "-z", "--name-only", sha).split(b"\0")
        if n
    )
    texts: list[str] = []
    files = size = 0
    for name in names:
        p = dest / name
        if p.is_symlink() or not p.is_file():
            continue
        files += 1
        n = p.stat().st_size
        size += n
        if 200 <= n <= 1 << 20:
            head = p.read_bytes()[:SNIFF]
            if b"\0" not in head and head.isascii():
                texts.append(name)
    listed = subprocess.run(  # exit 1: nothing is ignored
        ["git", "check-ignore", "--no-index", "-z", "--stdin"],
        cwd=dest,
        env=git_env(),
        input="\0".join(texts).encode(),
        capture_output=True,
        check=False,
    )
    if listed.returncode not in (0, 1):
        raise SystemExit(f"git check-ignore failed: {listed.stderr.decode(errors='replace')}")
    ignored = set(listed.stdout.decode().split("\0"))
    texts = [
        t for t in texts if t not in ignored and not any(c.startswith(".") for c in t.split("/"))
    ]
    rng = random.Random(20220110)
    n_utf16 = n_b64 = max(nkeys // 10, 1)
    n_plain = nkeys - n_utf16 - n_b64
    for i, name in enumerate(rng.sample(texts, n_plain + n_b64)):
        p = dest / name
        lines = p.read_bytes().split(b"\n")
        at = rng.randrange(len(lines))
        lines.insert(at, _encodings(make_key(rng))["plain" if i < n_plain else "base64"])
        p.write_bytes(b"\n".join(lines))
        size += len(lines[at]) + 1
    dirs = sorted({str(Path(t).parent) for t in texts})
    for i, d in enumerate(rng.sample(dirs, n_utf16)):
        data = _encodings(make_key(rng))["utf-16"]
        (dest / d / f"bench-settings-{i}.txt").write_bytes(data)
        files += 1
        size += len(data)
    tree = Tree(dest, files, size, nkeys)
    manifest.write_text(json.dumps({"files": tree.files, "bytes": tree.bytes, "planted": nkeys}))
    _stamp(dest, recipe)
    return tree


def build_real_history(dest: Path, src: Path, rev: str) -> tuple[Path, int]:
    """Every object reachable from ``rev`` (fetched from ``src``), plus a commit adding 3 keys
    (plain, base64, UTF-16) and one removing them again. Returns the repository and its keys."""
    src = _git_dir(src)
    sha = _resolve(src, rev)
    recipe = {"kind": "real-history", "rev": sha}
    if _fresh(dest, recipe) and (dest / "HEAD").exists():
        return dest, 3
    log(f"building the history corpus in {dest}: objects of {sha[:12]} from {src}")
    git("init", "-q", "--bare", "-b", "main", ".", cwd=dest)
    upload = "git -c uploadpack.allowAnySHA1InWant=true upload-pack"
    git("fetch", "-q", "--no-tags", "--upload-pack", upload, str(src.resolve()),
        f"{sha}:refs/heads/main", cwd=dest)  # fmt: skip
    rng = random.Random(20150113)
    files = {
        "configs/.env": _encodings(make_key(rng))["plain"] + b"\n",
        "doc/bench-token.yml": _encodings(make_key(rng))["base64"] + b"\n",
        "doc/bench-notes-utf16.txt": _encodings(make_key(rng))["utf-16"],
    }
    out = [b"commit refs/heads/main\ncommitter Bench <bench@example.com> 1700000000 +0000\n"]
    out.append(b"data 9\nadd keys\nfrom " + sha.encode() + b"\n")
    for name, data in files.items():
        out.append(f"M 100644 inline {name}\ndata {len(data)}\n".encode() + data + b"\n")
    out.append(b"\ncommit refs/heads/main\ncommitter Bench <bench@example.com> 1700000060 +0000\n")
    out.append(b"data 12\nremove keys\n")
    out.extend(f"D {name}\n".encode() for name in files)
    git("fast-import", "--quiet", cwd=dest, input=b"".join(out) + b"\n")
    _stamp(dest, recipe)
    return dest, len(files)


# --------------------------------------------------------------------------- running


@dataclass
class Run:
    seconds: float
    rss_kib: int  # kascan's own process (or the reference's, with its children)
    tree_rss_kib: int  # the largest child kascan waited for (workers, git)
    returncode: int
    stdout: bytes
    cpu: float = 0.0  # user + system seconds, with the children waited for (workers, git)


# exit codes of a run that worked: findings or none (Kingfisher: 200 findings, 205 validated)
OK_CODES = (0, 1, 200, 205)
NO_MESSAGES = "kascan git --no-messages (files only)"
DECODERS_OFF = "kascan scan, every decoder off"
NO_DECODERS = ["--no-archives", "--no-base64", "--no-utf16", "--no-utf32", "--no-percent",
               "--no-escapes", "--no-hex"]  # fmt: skip
# kascan of this checkout as a reference command (started as the measured runs are, minus the
# peak-RSS wrapper)
FLOOR = [sys.executable, str(HERE / "floor.py")]  # the least a Python process must do
FLOOR_TREE = "python floor: scandir, one read, find; 2 processes, no ignores"
FLOOR_FILE = "python floor: preadv + Hyperscan (prefix only), 2 threads"
START_UP = "kascan scan of an empty directory (start-up)"
KASCAN = [
    "env",
    f"PYTHONPATH={ROOT}",
    sys.executable,
    "-c",
    "import sys; sys.argv[0] = 'kascan'; from kascan.cli import main; main()",
]


def _empty_dir(base: Path) -> Path:
    empty = base / "empty"
    empty.mkdir(parents=True, exist_ok=True)
    return empty


def run_once(
    cmd: Sequence[str], cwd: Path | None = None, kascan: bool = False, keep: bool = False
) -> Run:
    """One timed run; stdout is drained and dropped unless ``keep`` (git cat-file writes GBs).

    The bench process stays small: on Linux a child's peak RSS starts at its parent's size
    (it survives the exec), so a big bench process would inflate every measurement.
    """
    env = dict(os.environ)
    rss_file = None
    if kascan:
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        fd, rss_file = tempfile.mkstemp(prefix="kascan-rss-")
        os.close(fd)
        env["KASCAN_BENCH_RSS"] = rss_file
        cmd = [sys.executable, "-c", WRAPPER, *cmd]
    with tempfile.TemporaryFile() as errf:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=errf)
        assert proc.stdout is not None
        kept: list[bytes] = []
        while block := proc.stdout.read1(1 << 20):
            if keep:
                kept.append(block)
        out = b"".join(kept)
        _pid, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.stdout.close()
        proc.returncode = os.waitstatus_to_exitcode(status)
        errf.seek(0)
        err = errf.read()
    tree_rss = usage.ru_maxrss
    own = tree_rss
    if rss_file is not None:
        try:
            own, tree_rss = (int(x) for x in Path(rss_file).read_text().split())
        except ValueError:
            own = tree_rss = 0
        os.unlink(rss_file)
    if proc.returncode not in (OK_CODES if not kascan else (0, 1)):
        detail = err.decode(errors="replace")[-2000:]
        raise SystemExit(f"{' '.join(map(str, cmd[-6:]))} exited {proc.returncode}: {detail}")
    return Run(elapsed, own, tree_rss, proc.returncode, out, usage.ru_utime + usage.ru_stime)


@dataclass
class Bench:
    name: str
    kascan: list[str]  # kascan arguments
    refs: list[tuple[str, list[str]]]  # (label, command)
    cwd: Path | None = None
    targets: dict[str, float] = field(default_factory=dict)  # ref label -> max ratio
    own_rss_only: bool = False  # history: git's own memory is not kascan's
    seconds_target: float | None = None
    expect: int | None = None  # findings kascan must report
    results: dict[str, list[Run]] = field(default_factory=dict)


def count_findings(out: bytes) -> int:
    return len(json.loads(out)["findings"])


def run_bench(b: Bench, runs: int) -> None:
    have = [(label, cmd) for label, cmd in b.refs if shutil.which(cmd[0])]
    missing = [cmd[0] for _label, cmd in b.refs if not shutil.which(cmd[0])]
    if missing:
        log(f"{b.name}: not found, its rows are reported as missing: {', '.join(missing)}")
    if b.expect is not None:
        r = run_once([*b.kascan, "-f", "json", "-q"], b.cwd, kascan=True, keep=True)
        got = count_findings(r.stdout)
        if got != b.expect:
            raise SystemExit(f"{b.name}: kascan reported {got} keys, expected {b.expect}")
    # warm-up: one untimed run of each, then alternate
    run_once(b.kascan, b.cwd, kascan=True)
    for _label, cmd in have:
        run_once(cmd, b.cwd)
    b.results = {"kascan": []} | {label: [] for label, _ in have}
    for _ in range(runs):
        b.results["kascan"].append(run_once(b.kascan, b.cwd, kascan=True))
        for label, cmd in have:
            b.results[label].append(run_once(cmd, b.cwd))


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def table(benches: Sequence[Bench]) -> str:
    rows = [
        "| benchmark | kascan (s) | kascan peak RSS | reference | reference (s) | ratio | target "
        "| met |",
        "|---|---:|---:|---|---:|---:|---:|:---:|",
    ]
    for b in benches:
        ks = b.results.get("kascan", [])
        if not ks:
            rows.append(f"| {b.name} | pending | | | | | | |")
            continue
        k = median([r.seconds for r in ks])
        rss = max(r.rss_kib if b.own_rss_only else max(r.rss_kib, r.tree_rss_kib) for r in ks)
        rss_txt = f"{rss / 1024:.1f} MiB"
        rss_ok = rss < 50 * 1024
        first = True
        for label, cmd in b.refs or [("(none)", [""])]:
            runs = b.results.get(label)
            name = b.name if first else ""
            kcol = f"{k:.3f}" if first else ""
            mcol = f"{rss_txt}{'' if rss_ok else ' (!)'}" if first else ""
            if label == "(none)" or not runs:
                missing = "" if label == "(none)" else f"{label}: **{cmd[0]} not found**"
                target = b.seconds_target
                met = "" if target is None else ("yes" if k <= target else "no")
                rows.append(
                    f"| {name} | {kcol} | {mcol} | {missing} | | | "
                    f"{'' if target is None else f'<= {target:.3f} s'} | {met} |"
                )
            else:
                r = median([x.seconds for x in runs])
                ratio = k / r if r else float("inf")
                t = b.targets.get(label)
                target, met = ("", "") if t is None else (f"<= {t}x", "yes" if ratio <= t else "no")
                if t is None and b.seconds_target is not None and first:
                    ok = k <= b.seconds_target
                    target, met = f"<= {b.seconds_target:.3f} s", "yes" if ok else "no"
                rows.append(
                    f"| {name} | {kcol} | {mcol} | `{label}` | {r:.3f} | {ratio:.2f}x | "
                    f"{target} | {met} |"
                )
            first = False
    return "\n".join(rows)


def cpu_table(benches: Sequence[Bench]) -> str:
    """The same runs in CPU seconds (user + system, children included): on a shared machine
    the wall clock depends on what else runs, the CPU a run needs much less."""
    rows = [
        "| benchmark | kascan CPU (s) | reference | reference CPU (s) | CPU ratio |",
        "|---|---:|---|---:|---:|",
    ]
    for b in benches:
        ks = b.results.get("kascan", [])
        if not ks:
            continue
        k = median([r.cpu for r in ks])
        first = True
        for label, _cmd in b.refs:
            runs = b.results.get(label)
            if not runs:
                continue
            r = median([x.cpu for x in runs])
            ratio = f"{k / r:.2f}x" if r else "inf"
            name, kcol = (b.name, f"{k:.3f}") if first else ("", "")
            rows.append(f"| {name} | {kcol} | `{label}` | {r:.3f} | {ratio} |")
            first = False
    return "\n".join(rows)


def hook_summary(benches: Sequence[Bench]) -> str:
    """The commit hook in one line: whole-process milliseconds and the ratio to Kingfisher."""
    hook = next((b for b in benches if b.name.startswith("hook:") and b.results), None)
    if hook is None:
        return ""
    k = median([r.seconds for r in hook.results["kascan"]])
    line = f"Commit hook ({hook.name[len('hook: ') :]}): {k * 1000:.0f} ms whole process"
    if hook.seconds_target is not None:
        ok = "met" if k <= hook.seconds_target else "NOT met"
        line += f" (target < {hook.seconds_target * 1000:.0f} ms: {ok})"
    kf = hook.results.get("kingfisher scan . --staged")
    if kf:
        r = median([x.seconds for x in kf])
        line += f"; Kingfisher {r * 1000:.0f} ms: {k / r:.2f}x (target <= 1.0x)"
    return line + "."


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    rg = "missing"
    if shutil.which("rg"):
        rg = subprocess.run(["rg", "--version"], capture_output=True, text=True).stdout.split("\n")[
            0
        ]
    gitv = subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.strip()
    try:
        load = ", load average before the run " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    except (AttributeError, OSError):
        load = ""
    return (
        f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}, {rg}, {gitv}{load}"
    )


def kascan_has(command: str) -> bool:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "kascan", command, "--help"],
        env=env,
        capture_output=True,
        check=False,
    )
    return proc.returncode == 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny corpus, seconds (CI smoke test)")
    ap.add_argument(
        "--runs", type=int, default=None, help="timed runs per command (default 5, quick 2)"
    )
    ap.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only benchmarks whose name contains NAME (repeatable)",
    )
    ap.add_argument("--jobs", default=None, help="pass --jobs to kascan scan")
    ap.add_argument(
        "--corpus", type=Path, default=CORPUS, help=f"where corpora are built ({CORPUS})"
    )
    ap.add_argument(
        "--history-repo",
        type=Path,
        default=os.environ.get("KASCAN_BENCH_REPO") or None,
        metavar="PATH",
        help="a git directory (bare or not) to build the real tree and history from\n"
        "(default: $KASCAN_BENCH_REPO; without one: synthetic corpora)",
    )
    ap.add_argument("--tree-rev", default=REAL_TREE_REV, help="commit of the real tree")
    ap.add_argument("--history-rev", default=REAL_HISTORY_REV, help="tip of the real history")
    ap.add_argument("--tree-keys", type=int, default=50, help="keys planted in the real tree")
    args = ap.parse_args(argv)
    runs = args.runs or (2 if args.quick else 5)
    quick = args.quick
    base = args.corpus / ("quick" if quick else "full")
    base.mkdir(parents=True, exist_ok=True)
    jobs = ["--jobs", args.jobs] if args.jobs else []
    t0 = time.perf_counter()
    where = machine()
    # An installed kascan has bytecode; a checkout run with PYTHONDONTWRITEBYTECODE=1 would
    # compile every module on every run (~40 ms): measure what users run.
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(ROOT / "kascan")],
        check=False,
        capture_output=True,
    )
    if not shutil.which("rg"):
        log(
            "ripgrep (rg) not found on PATH: its rows are reported as missing "
            "(Debian/Ubuntu: apt-get install ripgrep)"
        )

    def wanted(name: str) -> bool:
        return not args.only or any(o in name for o in args.only)

    benches: list[Bench] = []
    real = args.history_repo
    tname = "tree"
    if wanted("tree"):
        if real is not None:
            tree = build_real_tree(base / "real-tree", real, args.tree_rev, args.tree_keys)
            tname = (
                f"tree (real: {tree.files} files, {tree.bytes / 1e6:.0f} MB, {args.tree_keys} keys)"
            )
        elif quick:
            tree = build_tree(base / "tree", 300, 2 << 20)
        else:
            tree = build_tree(base / "tree", 13000, 110 << 20)
        tname = (
            tname if real is not None else f"tree ({tree.files} files, {tree.bytes / 1e6:.0f} MB)"
        )
        benches.append(
            Bench(
                tname,
                ["scan", str(tree.path), *jobs],
                [
                    ("rg -F ka_live_", ["rg", "-F", "ka_live_", str(tree.path)]),
                    (
                        "rg -uuu -a -F ka_live_",
                        ["rg", "-uuu", "-a", "-F", "ka_live_", str(tree.path)],
                    ),
                    (  # (this tree's archives are opened: real work the reference skips)
                        DECODERS_OFF,
                        [*KASCAN, "scan", *NO_DECODERS, str(tree.path), *jobs],
                    ),
                    (FLOOR_TREE, [*FLOOR, "tree", str(tree.path), "2"]),
                    (START_UP, [*KASCAN, "scan", str(_empty_dir(base))]),
                ],
                targets={} if quick else {"rg -F ka_live_": 1.5, "rg -uuu -a -F ka_live_": 1.2},
                expect=tree.planted,
            )
        )
    if not quick and (wanted("tree") or wanted("plain text")):
        text = build_text_tree(base / "text-tree", 20)
        benches.append(
            Bench(
                f"tree (plain text: {text.files} .py files, {text.bytes / 1e6:.0f} MB)",
                ["scan", str(text.path), *jobs],
                [
                    ("rg -F ka_live_", ["rg", "-F", "ka_live_", str(text.path)]),
                    (  # the decoders together cost at most 10% more than none of them
                        DECODERS_OFF,
                        [*KASCAN, "scan", *NO_DECODERS, str(text.path), *jobs],
                    ),
                ],
                targets={DECODERS_OFF: 1.1},
                expect=text.planted,
            )
        )
    if not quick and wanted("2 GiB"):
        big, nkeys = build_big_file(base / "big", 2 << 30)
        # the same bytes with the holes written out: kascan skips a sparse file's holes
        # (SEEK_DATA), ripgrep reads them as NUL bytes; this one both read
        dense = build_dense_copy(base / "big-dense", big)
        for name, path in (("one 2 GiB file", big), ("one 2 GiB file, no holes", dense)):
            benches.append(
                Bench(
                    name,
                    ["scan", str(path), *jobs],
                    [
                        ("rg -a -F ka_live_", ["rg", "-a", "-F", "ka_live_", str(path)]),
                        (FLOOR_FILE, [*FLOOR, "file", str(path), "2"]),
                    ],
                    targets={"rg -a -F ka_live_": 2.0},
                    expect=nkeys,
                )
            )
    have_git = kascan_has("git")
    # (name, repository, the 1.3x target applies, keys to find)
    histories: list[tuple[str, Path, bool, int | None]] = []
    if wanted("history") and real is not None:
        hist, keys = build_real_history(base / "real-history", real, args.history_rev)
        listing = git("cat-file", "--batch-all-objects", "--batch-check", cwd=hist)
        name = f"history (real: {len(listing.splitlines())} objects)"
        histories.append((name, hist, not quick, keys))
    elif wanted("history"):
        hist = (
            build_history(base / "history", 400, 4, 10, 20)
            if quick
            else build_history(base / "history", 16000, 8, 50, 40)
        )
        listing = git("cat-file", "--batch-all-objects", "--batch-check", cwd=hist)
        histories.append((f"history ({len(listing.splitlines())} objects)", hist, not quick, None))
        small = build_small_history(base / "small-history")
        histories.append(("history (this repository: start-up bound)", small, False, None))
    for label, repo, with_target, keys in histories:
        b = Bench(
            label,
            ["git", str(repo)],
            [
                (
                    "git cat-file --batch-all-objects --batch --unordered",
                    [
                        "git",
                        "-C",
                        str(repo),
                        "cat-file",
                        "--batch-all-objects",
                        "--batch",
                        "--unordered",
                    ],
                ),
                (  # issue 18: the same scan without commit/tag messages and identities
                    NO_MESSAGES,
                    [sys.executable, "-m", "kascan", "git", "--no-messages", str(repo)],
                ),
                (  # the floor: git writing to /dev/null, no pipe, no reader
                    "same, > /dev/null",
                    [
                        "sh",
                        "-c",
                        'exec git -C "$1" cat-file --batch-all-objects --batch --unordered'
                        " > /dev/null",
                        "sh",
                        str(repo),
                    ],
                ),
            ],
            targets={
                "git cat-file --batch-all-objects --batch --unordered": 1.3,
                "same, > /dev/null": 1.3,
                NO_MESSAGES: 1.05,  # issue 18: messages and identities cost <= 5% more
            }
            if with_target
            else {},
            own_rss_only=True,
            expect=keys,
        )
        if not have_git:
            b.name += " — `kascan git` pending"
            b.kascan = []
        benches.append(b)
    if wanted("hook") or wanted("start"):
        hook = build_hook_repo(base / "hook", 500 if quick else 5000, 10)
        small_files = [str(p) for p in sorted((hook / "src").rglob("*.py"))[:10]]
        benches.append(
            Bench(
                "start-up: kascan --help",
                ["--help"],
                [("python -c pass", [sys.executable, "-c", "pass"])],
            )
        )
        benches.append(
            Bench(
                "kascan scan <10 small files>",
                ["scan", *small_files],
                [("python -c 'import click'", [sys.executable, "-c", "import click"])],
                seconds_target=0.1,
            )
        )
        kingfisher = shutil.which("kingfisher") or str(Path(sys.executable).parent / "kingfisher")
        # what pre-commit runs: the entry of .pre-commit-hooks.yaml, then the staged names
        staged = git("diff", "--cached", "--name-only", "-z", cwd=hook).split("\0")
        hb = Bench(
            f"hook: kascan git --staged --files -- NAMES ({500 if quick else 5000} files, "
            f"{len([n for n in staged if n])} staged)",
            ["git", "--staged", "--files", "--", *(n for n in staged if n)],
            [
                ("git diff --cached -U0", ["git", "diff", "--cached", "-U0", "--no-color"]),
                (  # offline: no validation of what it finds, no update check
                    "kingfisher scan . --staged",
                    [kingfisher, "scan", ".", "--staged", "--no-validate", "--no-update-check"],
                ),
            ],
            cwd=hook,
            targets={"kingfisher scan . --staged": 1.0},
            seconds_target=0.1,
        )
        if not have_git:
            hb.name += " — pending"
            hb.kascan = []
        benches.append(hb)
    for b in benches:
        if not b.kascan:
            continue
        log(f"running: {b.name}")
        run_bench(b, runs)
    print(
        f"\nkascan benchmark ({'quick' if quick else 'full'}, median of {runs} alternating runs, "
        "warm cache)\n"
    )
    print(f"Machine: {where}\n")
    print(table(benches))
    hook_line = hook_summary(benches)
    if hook_line:
        print(f"\n{hook_line}")
    print("\nThe same runs in CPU seconds (median; user + system, children included):\n")
    print(cpu_table(benches))
    log(f"done in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
