"""Benchmark ``kascan git`` against git's own floor, on a repository built with fast-import.

    python bench/git_bench.py [--files 5000] [--commits 1000] [--per-commit 20] [--runs 3]

Builds ``bench/.corpus/history.git`` (once) from real Python sources found on this machine: a
first commit of ``--files`` files, then ``--commits`` commits that each edit ``--per-commit`` files
(two keys are committed and deleted on the way). Then it times, whole process, wall clock:

- ``git cat-file --batch-all-objects --batch > /dev/null``: the cost of inflating every object;
- ``kascan git`` over the whole history;
- ``kascan git --staged`` with a 10-file change staged in a checkout of the same repository.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import string
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CORPUS = HERE / ".corpus"


def sources(n: int) -> list[bytes]:
    lib = Path(sysconfig.get_paths()["stdlib"])
    out: list[bytes] = []
    for p in sorted(lib.rglob("*.py")):
        try:
            data = p.read_bytes()
        except OSError:
            continue
        if 200 < len(data) < 200_000:
            out.append(data)
        if len(out) >= n:
            break
    while len(out) < n:
        out.extend(out[: n - len(out)])
    return out


def make_key(rng: random.Random) -> str:
    return "ka_" + "live_" + "".join(rng.choices(string.ascii_letters + string.digits, k=32))


def build(path: Path, files: int, commits: int, per_commit: int) -> None:
    rng = random.Random(42)
    content = sources(files)
    names = [f"pkg{i % 50:02d}/mod{i:05d}.py" for i in range(files)]
    subprocess.run(["git", "init", "-q", "-b", "main", "--bare", str(path)], check=True)
    proc = subprocess.Popen(
        ["git", "--git-dir", str(path), "fast-import", "--quiet"], stdin=subprocess.PIPE
    )
    assert proc.stdin is not None
    w = proc.stdin.write
    mark = 0
    date = 1_700_000_000

    def blob(data: bytes) -> int:
        nonlocal mark
        mark += 1
        w(b"blob\nmark :%d\ndata %d\n" % (mark, len(data)) + data + b"\n")
        return mark

    def commit(msg: str, changes: list[tuple[str, int | None]]) -> None:
        nonlocal date
        date += 3600
        w(b"commit refs/heads/main\n")
        w(b"author Bench <bench@example.com> %d +0000\n" % date)
        w(b"committer Bench <bench@example.com> %d +0000\n" % date)
        m = msg.encode()
        w(b"data %d\n%s\n" % (len(m), m))
        for name, mk in changes:
            if mk is None:
                w(b"D %s\n" % name.encode())
            else:
                w(b"M 100644 :%d %s\n" % (mk, name.encode()))

    current = list(content)
    commit("initial import", [(n, blob(c)) for n, c in zip(names, current)])
    key_at = {commits // 3: make_key(rng), 2 * commits // 3: make_key(rng)}
    for i in range(commits):
        changes: list[tuple[str, int | None]] = []
        for j in rng.sample(range(files), per_commit):
            line = f"# change {i} {rng.random()}\n".encode()
            if i in key_at and not changes:
                line += f"API_KEY = '{key_at[i]}'\n".encode()
            lines = current[j].split(b"\n")
            lines.insert(rng.randrange(len(lines)), line.rstrip(b"\n"))
            current[j] = b"\n".join(lines)
            changes.append((names[j], blob(current[j])))
        commit(f"change {i}", changes)
    proc.stdin.close()
    if proc.wait() != 0:
        raise SystemExit("fast-import failed")
    subprocess.run(["git", "--git-dir", str(path), "gc", "-q"], check=True)


def timed(argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> float:
    t = time.perf_counter()
    with open(os.devnull, "wb") as null:
        subprocess.run(argv, cwd=cwd, env=env, stdout=null, stderr=null, check=False)
    return time.perf_counter() - t


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=5000)
    ap.add_argument("--commits", type=int, default=1000)
    ap.add_argument("--per-commit", type=int, default=20)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    CORPUS.mkdir(exist_ok=True)
    repo = CORPUS / f"history-{a.files}-{a.commits}-{a.per_commit}.git"
    if not repo.exists():
        build(repo, a.files, a.commits, a.per_commit)
    objects = subprocess.run(
        ["git", "--git-dir", str(repo), "count-objects", "-v"], capture_output=True, text=True
    ).stdout
    print(f"repository {repo.name}:", " ".join(objects.split()))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    kascan = [sys.executable, "-m", "kascan"]
    rows = {
        "git cat-file --batch-all-objects --batch": [
            "sh",
            "-c",
            f"git --git-dir '{repo}' cat-file --batch-all-objects --batch >/dev/null",
        ],
        "kascan git (full history)": [*kascan, "git", str(repo), "-q"],
    }
    for name, argv in rows.items():
        times = [timed(argv, env=env) for _ in range(a.runs)]
        print(f"{name}: " + ", ".join(f"{t:.2f}s" for t in times))
    work = CORPUS / "checkout"
    if work.exists():
        shutil.rmtree(work)
    subprocess.run(["git", "clone", "-q", str(repo), str(work)], check=True)
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=work, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in tracked[:10]:
        with open(work / name, "a") as fh:
            fh.write("# a small staged change\n")
    subprocess.run(["git", "add", *tracked[:10]], cwd=work, check=True)
    times = [timed([*kascan, "git", "--staged", "-q"], cwd=work, env=env) for _ in range(a.runs)]
    print(
        f"kascan git --staged (10 files staged in {len(tracked)} tracked): "
        + ", ".join(f"{t * 1000:.0f}ms" for t in times)
    )
    times = [timed([*kascan, "--version"], env=env) for _ in range(a.runs)]
    print("kascan --version (start-up floor): " + ", ".join(f"{t * 1000:.0f}ms" for t in times))


if __name__ == "__main__":
    main()
