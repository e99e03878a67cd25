"""``-v/--verbose``: one line on stderr for each file skipped, archive member not opened and
candidate dropped, and why; through the real CLI on real files, repositories and images.

Without ``-v`` none of these lines appear and the report and summary are the same; ``--jobs 2``
prints the same lines in the same order as ``--jobs 1``; names are escaped; no key is printed
(a dropped candidate shows only its redacted form).

A tree has no file-size limit (every file is read in windows, however big): what is "over the
size limit" is an image layer over ``--max-layer-size`` (and, in archives, a member nested past
the depth limit), tested below.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import PREFIX, GitRepo, Result, make_key

Run = Callable[..., Result]

PLACEHOLDER = PREFIX + "abcdefghijklmnopqrstuvwxyz123456"  # a sequence: dropped as a placeholder
LINK = "a symbolic link (followed with --follow-symlinks)"
BASELINE = "in the baseline (a known key, by fingerprint)"
PLACEHOLDER_WHY = "a placeholder (a sequence, a repeated pattern or a word like 'example')"
DEEP = "zip nested more than 4 deep (archive-depth limit); scanned as plain bytes"
EXCLUDED = "excluded by an exclude pattern (the config's exclude, .kascanignore or --exclude)"


def red(key: str) -> str:
    return key[: len(PREFIX) + 4] + "…"


def _zip(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0))
            info.external_attr = (0o120777 << 16) | 0x20  # a symbolic link, as Info-ZIP writes
            zf.writestr(info, target)
    return buf.getvalue()


def deep_zip(key: str) -> bytes:
    """``bundle.zip`` holding ``l1.zip`` holding ... ``l5.zip`` (the key at the bottom), and a
    symbolic link member: the fifth zip is past the depth limit (4)."""
    data = _zip({"app.env": f"KEY={key}\n".encode()})
    for i in range(5, 1, -1):
        data = _zip({f"l{i}.zip": data})
    return _zip({"l1.zip": data}, links={"lnk": "/etc/passwd"})


def lines_of(stderr: str) -> list[str]:
    """The -v lines of a run (``kascan: skipped PATH: WHY``, ``not opened …``, ``dropped …``;
    not the summary's ``kascan: skipped 3 ignored, 1 symlink.``)."""
    heads = tuple(f"kascan: {v}" for v in ("skipped ", "not opened ", "dropped "))
    return [ln for ln in stderr.splitlines() if ln.startswith(heads) and ": " in ln[8:]]


def without(stderr: str, lines: list[str]) -> list[str]:
    """The other stderr lines (timings taken out)."""
    drop = set(lines)
    return [
        re.sub(r" in \d+\.\d+ s\.", " in T s.", ln) for ln in stderr.splitlines() if ln not in drop
    ]


@pytest.fixture
def tree(tmp_path: Path, rng: random.Random, run_cli: Run) -> tuple[Path, dict[str, str], Path]:
    """A tree with one of each thing -v names, and a baseline that holds ``old``."""
    keys = {name: make_key(rng) for name in ("real", "old", "ignored", "inline", "fixture")}
    keys["deep"] = make_key(rng)
    root = tmp_path / "t"
    root.mkdir()
    (root / ".gitignore").write_text("# build output\nbuild/\n*.log\n")
    (root / "build").mkdir()
    (root / "build" / "out.env").write_text(f"KEY={keys['ignored']}\n")  # the directory: 1 line
    (root / "build" / "more.env").write_text("nothing\n")
    (root / "app.log").write_text("started\n")
    (root / "sub").mkdir()
    (root / "sub" / ".gitignore").write_text("secret.txt\n")
    (root / "sub" / "secret.txt").write_text("x\n")
    (root / "sub" / "kept.txt").write_text("x\n")
    (root / "real.env").write_text(f"KEY={keys['real']}\n")
    (root / "link").symlink_to("real.env")
    os.mkfifo(root / "fifo")
    (root / "bundle.zip").write_bytes(deep_zip(keys["deep"]))
    (root / "docs").mkdir()
    (root / "docs" / "README.md").write_text(f"# setup\n\nexport KEY={PLACEHOLDER}\n")
    (root / "old.env").write_text(f"KEY={keys['old']}\n")
    (root / "inline.env").write_text(f"KEY={keys['inline']}  # kascan:allow test fixture\n")
    (root / "fixtures").mkdir()
    (root / "fixtures" / "test.env").write_text(f"KEY={keys['fixture']}\n")
    rules = tmp_path / "rules.toml"
    rules.write_text("[[allowlists]]\ndescription = 'test fixtures'\npaths = ['''^fixtures/''']\n")
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "old.env").write_text(f"KEY={keys['old']}\n")
    baseline = tmp_path / "baseline.json"
    r = run_cli("scan", earlier, "-q", "-o", f"json:{baseline}")
    assert r.returncode == 1, r.output
    args = ["--baseline", str(baseline), "--rules", str(rules)]
    (tmp_path / "args").write_text(json.dumps(args))
    return root, keys, tmp_path / "args"


def _args(path: Path) -> list[str]:
    out: list[str] = json.loads(path.read_text())
    return out


def test_each_skip_and_drop_is_one_line_and_nothing_without_v(
    tree: tuple[Path, dict[str, str], Path], run_cli: Run
) -> None:
    root, keys, args_file = tree
    args = _args(args_file)
    quiet = run_cli("scan", ".", "--jobs", "1", "-f", "json", *args, cwd=root)
    loud = run_cli("scan", ".", "--jobs", "1", "-f", "json", "-v", *args, cwd=root)
    for r in (quiet, loud):
        assert r.returncode == 1, r.output
        r.assert_no_leak(*keys.values())
    got = lines_of(loud.stderr)
    assert got == [  # in walk order (sorted, depth first)
        "kascan: skipped app.log: ignored by .gitignore:3 (*.log)",
        "kascan: skipped build/: ignored by .gitignore:2 (build/)",  # one line, not per file
        f"kascan: not opened bundle.zip!l1.zip!l2.zip!l3.zip!l4.zip: {DEEP}",
        "kascan: skipped bundle.zip!lnk: a symbolic link in the archive (never followed)",
        f"kascan: dropped a candidate in docs/README.md:3:12 ({red(PLACEHOLDER)}): "
        + PLACEHOLDER_WHY,
        "kascan: skipped fifo: a FIFO, not a regular file",
        f"kascan: dropped a candidate in fixtures/test.env:1:5 ({red(keys['fixture'])}): "
        "allowlist 'test fixtures'",
        f"kascan: dropped a candidate in inline.env:1:5 ({red(keys['inline'])}): "
        "a kascan:allow comment on its line",
        f"kascan: skipped link: {LINK}",
        f"kascan: dropped a candidate in old.env:1:5 ({red(keys['old'])}): {BASELINE}",
        "kascan: skipped sub/secret.txt: ignored by sub/.gitignore:1 (secret.txt)",
    ], "\n".join(got)
    assert not lines_of(quiet.stderr)
    # the report, the summary and the other stderr lines are the same with and without -v
    assert loud.stdout == quiet.stdout
    assert without(loud.stderr, got) == without(quiet.stderr, [])
    summary = json.loads(quiet.stdout)["summary"]
    assert summary["skipped"] == {"ignored": 3, "special": 1, "symlink": 1}
    assert summary["dropped"] == {
        "allowlist": 1, "baseline": 1, "inline-allow": 1, "placeholder": 1,
    }  # fmt: skip
    assert "build/out.env" not in loud.stderr and "more.env" not in loud.stderr


def _filler(root: Path, n: int = 150) -> None:
    """Enough files for the tree to go to worker processes, with skips among them."""
    for i in range(n):
        d = root / "filler" / f"d{i % 6}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:03d}.txt").write_text(f"line {i}\n" * 20)
        if i % 10 == 0:
            (d / f"x{i:03d}.log").write_text("log\n")
        if i % 15 == 0:
            (d / f"l{i:03d}").symlink_to(f"f{i:03d}.txt")
        if i % 25 == 0:
            (d / f"p{i:03d}.md").write_text(f"KEY={PLACEHOLDER}\n")


def test_jobs_2_prints_the_same_lines_in_the_same_order(
    tree: tuple[Path, dict[str, str], Path], run_cli: Run
) -> None:
    root, keys, args_file = tree
    _filler(root)
    args = ["scan", ".", "-v", *_args(args_file)]
    one = run_cli(*args, "--jobs", "1", cwd=root)
    two = run_cli(*args, "--jobs", "2", cwd=root)
    assert one.returncode == two.returncode == 1, one.output + two.output
    assert lines_of(one.stderr) == lines_of(two.stderr)
    assert without(one.stdout, []) == without(two.stdout, [])  # findings and summary
    got = lines_of(two.stderr)
    assert len(got) == 11 + 15 + 10 + 6, "\n".join(got)
    assert "kascan: skipped filler/d0/x000.log: ignored by .gitignore:3 (*.log)" in got
    assert f"kascan: skipped filler/d0/l000: {LINK}" in got
    two.assert_no_leak(*keys.values())


def test_hostile_names_are_escaped_and_key_shaped_names_redacted(
    tmp_path: Path, run_cli: Run, key: str
) -> None:
    root = tmp_path / "t"
    root.mkdir()
    (root / ".gitignore").write_text("*.log\n")
    (root / "evil\x1b]0;owned\x07\x1b[2J.log").write_text("x\n")
    (root / "bidi\u202etxt.log").write_text("x\n")
    (root / "new\nline").symlink_to("nowhere")
    (root / f"{key}.log").write_text("x\n")  # a key in a name is still a key
    r = run_cli("scan", ".", "-v", cwd=root)
    assert r.returncode == 0, r.output
    for raw in ("\x1b", "\x07", "\u202e"):
        assert raw not in r.stderr
    got = lines_of(r.stderr)
    assert "kascan: skipped bidi\\u202etxt.log: ignored by .gitignore:1 (*.log)" in got
    assert (
        "kascan: skipped evil\\x1b]0;owned\\x07\\x1b[2J.log: ignored by .gitignore:1 (*.log)" in got
    )
    assert f"kascan: skipped {red(key)}.log: ignored by .gitignore:1 (*.log)" in got
    assert f"kascan: skipped new\\nline: {LINK}" in got
    assert len(got) == 4, got
    r.assert_no_leak(key)


def test_with_q_the_lines_still_show_but_nothing_else(
    tree: tuple[Path, dict[str, str], Path], run_cli: Run
) -> None:
    root, keys, args_file = tree
    loud = run_cli("scan", ".", "-v", *_args(args_file), cwd=root)
    both = run_cli("scan", ".", "-v", "-q", *_args(args_file), cwd=root)
    assert both.returncode == 1
    assert lines_of(both.stderr) == lines_of(loud.stderr)
    assert both.stderr.splitlines() == lines_of(both.stderr)  # no summary, no warning
    assert "warning:" in loud.stderr  # (which -q hides: the depth limit)
    both.assert_no_leak(*keys.values())


def test_excludes_kascanignore_and_loops_name_their_source(
    tmp_path: Path, run_cli: Run, key: str
) -> None:
    root = tmp_path / "t"
    (root / "web").mkdir(parents=True)
    (root / "web" / "app.min.js").write_text("x\n")
    (root / "web" / "app.js").write_text(f"k = '{key}'\n")
    (root / ".kascanignore").write_text("# generated\n\nfixtures/\n")
    (root / "fixtures").mkdir()
    (root / "loop").mkdir()
    (root / "loop" / "again").symlink_to("..")
    r = run_cli("scan", ".", "-v", "--exclude", "*.min.js", "--follow-symlinks", cwd=root)
    assert r.returncode == 1, r.output
    assert lines_of(r.stderr) == [
        "kascan: skipped fixtures/: ignored by .kascanignore:3 (fixtures/)",
        "kascan: skipped loop/again/: a symbolic link loop (this directory is walked already)",
        "kascan: skipped web/app.min.js: ignored by an exclude pattern (--exclude or the "
        "config's exclude) (*.min.js)",
    ]
    # a subdirectory scanned among others: paths and ignore files carry its prefix
    (tmp_path / "other").mkdir()
    (root / "web" / ".gitignore").write_text("*.map\n")
    (root / "web" / "app.js.map").write_text("x\n")
    r = run_cli("scan", "t/web", "other", "-v", cwd=tmp_path)
    assert "kascan: skipped t/web/app.js.map: ignored by t/web/.gitignore:1 (*.map)" in r.stderr
    r.assert_no_leak(key)


def test_git_history_staged_and_range(git_repo: GitRepo, run_cli: Run, keys: Callable) -> None:
    secret, real = keys(2)
    repo = git_repo
    base = repo.commit("initial", {"README.md": "# app\n", ".kascanignore": "secret.env\n"})
    head = repo.commit(
        "add things",
        {
            "secret.env": f"KEY={secret}\n",
            "bundle.zip": deep_zip(real),
            "docs/setup.md": f"KEY={PLACEHOLDER}\n",
        },
    )
    blob = repo.git("rev-parse", "HEAD:bundle.zip")[:12]
    short = head[:12]
    r = run_cli("git", repo.path, "-v")
    assert r.returncode == 1, r.output  # the fifth zip, read as bytes, is stored: its key shows
    assert lines_of(r.stderr) == [
        f"kascan: not opened blob {blob}!l1.zip!l2.zip!l3.zip!l4.zip: {DEEP}",
        f"kascan: skipped blob {blob}!lnk: a symbolic link in the archive (never followed)",
        f"kascan: dropped a candidate in secret.env:1:5 (commit {short}) ({red(secret)}): "
        f"{EXCLUDED} (secret.env)",
        f"kascan: dropped a candidate in docs/setup.md:1:5 (commit {short}) "
        f"({red(PLACEHOLDER)}): {PLACEHOLDER_WHY}",
    ]
    quiet = run_cli("git", repo.path)
    assert not lines_of(quiet.stderr) and without(quiet.stdout, []) == without(r.stdout, [])
    r = run_cli("git", repo.path, "--range", f"{base}..{head}", "-v")
    assert f"kascan: skipped secret.env (commit {short}): {EXCLUDED} (secret.env)" in lines_of(
        r.stderr
    ), r.stderr
    assert f"kascan: not opened bundle.zip!l1.zip!l2.zip!l3.zip!l4.zip: {DEEP}" in r.stderr
    repo.write("secret.env", f"KEY={secret}\nMORE={real}\n")
    repo.git("add", "secret.env")
    r = run_cli("git", "--staged", "-v", cwd=repo.path)
    assert r.returncode == 0, r.output
    assert lines_of(r.stderr) == [f"kascan: skipped secret.env: {EXCLUDED} (secret.env)"]
    for res in (r, quiet):
        res.assert_no_leak(secret, real)


class _TarLayer:
    """A layer whose tar is given as it is (here: with a symbolic link)."""

    def __init__(self, files: dict[str, bytes], links: dict[str, str]) -> None:
        self.files, self.links = files, links

    def tar(self) -> bytes:
        import tarfile

        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
            for name, data in self.files.items():
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), 0o644, 1700000000
                tf.addfile(info, io.BytesIO(data))
            for name, target in self.links.items():
                info = tarfile.TarInfo(name)
                info.type, info.linkname, info.mtime = tarfile.SYMTYPE, target, 1700000000
                tf.addfile(info)
        return buf.getvalue()


def test_image_layers_over_the_size_limit_and_links_in_layers(
    tmp_path: Path, run_cli: Run, key: str, rng: random.Random
) -> None:
    from tests.image_util import Layer, Layout

    layout = Layout(tmp_path / "layout")
    small = _TarLayer({"app/.env": f"KEY={key}\n".encode()}, {"app/link": ".env"})
    big = Layer({"opt/blob.bin": rng.randbytes(40 << 10)})  # incompressible: 40 KiB gzipped
    desc, built = layout.image([small, big])  # type: ignore[list-item]
    layout.tag(desc, "app")
    ref = f"oci:{layout.root}:app"
    r = run_cli("image", ref, "--max-layer-size", "16K", "-v")
    assert r.returncode == 1, r.output
    got = lines_of(r.stderr)
    assert len(got) == 2, r.stderr
    over, link = got
    assert over.startswith("kascan: skipped ") and f": layer 2 {built.diff_ids[1]}" in over
    assert over.endswith("over the layer size limit (16.0 KiB)"), over
    assert f": layer 1 {built.diff_ids[0]}" in link
    assert link.endswith("!app/link: a symbolic link in the layer (never followed)"), link
    quiet = run_cli("image", ref, "--max-layer-size", "16K")
    assert not lines_of(quiet.stderr)
    assert without(quiet.stdout, []) == without(r.stdout, [])
    r.assert_no_leak(key)


def test_merge_names_the_duplicates_and_the_baseline(
    tmp_path: Path, run_cli: Run, keys: Callable
) -> None:
    a, b = keys(2)
    root = tmp_path / "t"
    root.mkdir()
    (root / "app.env").write_text(f"A={a}\nB={b}\n")
    one, two, base = (tmp_path / n for n in ("one.json", "two.json", "base.json"))
    for out in (one, two):  # two reports (not the same bytes: read once) that share findings
        assert run_cli("scan", ".", "-q", "-o", f"json:{out}", cwd=root).returncode == 1
        (root / "more.txt").write_text("more\n")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "app.env").write_text(f"A={a}\n")
    assert run_cli("scan", ".", "-q", "-o", f"json:{base}", cwd=tmp_path / "old").returncode == 1
    r = run_cli("merge", one, two, "--baseline", base, "-v")
    assert r.returncode == 1, r.output
    dup = "a duplicate: the same finding is in an earlier report"
    assert lines_of(r.stderr) == [
        f"kascan: dropped a candidate in app.env:1:3 ({red(a)}): {dup}",
        f"kascan: dropped a candidate in app.env:2:3 ({red(b)}): {dup}",
        f"kascan: dropped a candidate in app.env:1:3 ({red(a)}): {BASELINE}",
    ]
    quiet = run_cli("merge", one, two, "--baseline", base)
    assert not lines_of(quiet.stderr) and without(quiet.stdout, []) == without(r.stdout, [])
    r.assert_no_leak(a, b)


@pytest.mark.parametrize("command", ["scan", "git", "image", "merge"])
def test_every_command_lists_v_among_the_report_options(run_cli: Run, command: str) -> None:
    text = run_cli(command, "--help").stdout
    reports = text.split("Reports:")[1].split("Verification and exit status:")[0]
    assert "-v, --verbose" in reports


def test_lines_and_the_progress_line_do_not_overlap(env: dict[str, str], tmp_path: Path) -> None:
    """On a terminal, each -v line starts on a cleared line: the progress line is taken down
    first (and drawn again at its next tick), never left glued in front of it."""
    import pty

    tree = tmp_path / "t"
    for i in range(400):
        d = tree / f"d{i % 5}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:03d}.txt").write_text("nothing to see here\n" * 400)
        if i % 40 == 0:
            (d / f"l{i:03d}").symlink_to(f"f{i:03d}.txt")
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "kascan", "scan", ".", "--jobs", "1", "-v"],
        cwd=tree,
        env=env,
        stdout=subprocess.PIPE,
        stderr=slave,
        stdin=subprocess.DEVNULL,
    )
    os.close(slave)
    seen = b""
    while True:
        try:
            block = os.read(master, 65536)
        except OSError:
            break
        if not block:
            break
        seen += block
    assert proc.stdout is not None
    proc.stdout.read()
    os.close(master)
    assert proc.wait() == 0
    shown = seen.replace(b"\r\n", b"\n")
    lines = [ln for ln in shown.split(b"\n") if b"kascan: skipped d" in ln]
    assert len(lines) == 10, shown[-2000:]
    for ln in lines:  # whatever the progress line drew before, it was cleared first
        assert ln.rsplit(b"\r\x1b[K", 1)[-1].startswith(b"kascan: skipped d"), ln
    assert b"kascan: scanning: " in shown
