"""`kascan scan` end to end: the real CLI in a subprocess over real files."""

from __future__ import annotations

import json
import os
import random
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from kascan.sources.stream import WINDOW

from .conftest import PREFIX, ROOT, Result, findings_of, locations, make_key, write_files

Run = Callable[..., Result]


def test_recall_across_file_types(
    tmp_path: Path, run_cli: Run, keys: Callable[[int], list[str]]
) -> None:
    k = keys(8)
    minified = "var a=1;" * 12_500 + f'const k="{k[4]}";' + "b=2;" * 12_500
    write_files(
        tmp_path,
        {
            "deploy/values.yaml": f"kubeadapt:\n  apiKey: {k[0]}\n",
            "config.json": json.dumps({"kubeadapt": {"key": k[1]}}, indent=2),
            ".env": f"# secrets\nKUBEADAPT_API_KEY={k[2]}\n",
            "app/client.py": f'import os\n\nKEY = "{k[3]}"  # TODO remove\n',
            "static/bundle.min.js": minified,
            "bin/app.so": os.urandom(5000).replace(b"ka_", b"xx_")
            + b"\x00"
            + k[5].encode()
            + b"\x00"
            + b"\xde\xad" * 100,
            "last-bytes.txt": f"token: {k[6]}",
            ".hidden/dir/notes.md": f"\ufeff`{k[7]}`\n",
        },
    )
    res = run_cli("scan", tmp_path, "--format", "json")
    assert res.returncode == 1, res.stderr
    res.assert_no_leak(*k)
    got = {(f["path"], f["line"], f["column"]) for f in findings_of(res)}
    assert got == {
        ("deploy/values.yaml", 2, 11),
        ("config.json", 3, 13),
        (".env", 2, 19),
        ("app/client.py", 3, 8),
        ("static/bundle.min.js", 1, 100_010),
        ("bin/app.so", *line_col(tmp_path / "bin/app.so", k[5])),
        ("last-bytes.txt", 1, 8),
        (".hidden/dir/notes.md", 1, 3),
    }
    fps = {f["fingerprint"] for f in findings_of(res)}
    import hashlib

    assert fps == {"sha256:" + hashlib.sha256(x.encode()).hexdigest() for x in k}


def line_col(path: Path, key: str) -> tuple[int, int]:
    data = path.read_bytes()
    pos = data.index(key.encode())
    start = data.rfind(b"\n", 0, pos) + 1
    return data.count(b"\n", 0, pos) + 1, len(data[start:pos].decode("utf-8", "replace")) + 1


def test_decoys_dropped_random_kept_and_counted(tmp_path: Path, run_cli: Run, key: str) -> None:
    write_files(
        tmp_path,
        {
            "docs.md": f"Use `{PREFIX}{'x' * 32}` as in the docs.\n",
            "sample.env": f"A={PREFIX}{'Ab1' * 10}Ab\nB={PREFIX}abcdefghijklmnopqrstuvwxyz012345\n",
            "real.env": f"KEY={key}\n",
            "glued.txt": f"x{key} {key}Z\n",
        },
    )
    res = run_cli("scan", tmp_path)
    assert res.returncode == 1
    res.assert_no_leak(key)
    lines = [
        ln for ln in res.stdout.splitlines() if ln.startswith(("docs", "sample", "real", "glued"))
    ]
    assert lines == [f"real.env:1:5  kubeadapt-api-key  {key[:12]}…"]
    assert "4 candidates, dropped 2 low-entropy, 1 placeholder; 1 reported." in res.stdout
    assert "scanned 4 files" in res.stdout


@pytest.mark.slow
def test_large_file_keys_straddling_windows(
    tmp_path: Path, run_cli: Run, rng: random.Random
) -> None:
    """A 24 MiB file, keys planted across every 4 MiB window edge; exact lines."""
    keys = [make_key(rng) for _ in range(6)]
    line = b"0123456789abcdefghijklmnopqrstuvwxyz 0123456789abcdefghijklmnopqrstuvwxyz\n"
    big = bytearray(line * ((6 * WINDOW) // len(line) + 1))
    expected = []
    for i, k in enumerate(keys, start=1):
        edge = i * WINDOW - 4096 - 10 * i  # inside the overlap region, at different offsets
        pos = edge if i % 2 else i * WINDOW - 5
        big[pos : pos + len(k) + 2] = b" " + k.encode() + b" "
        expected.append((big.count(b"\n", 0, pos + 1) + 1, k))
    (tmp_path / "huge.log").write_bytes(bytes(big))
    res = run_cli("scan", tmp_path / "huge.log", "-f", "json", "--show-secrets")
    assert res.returncode == 1, res.stderr
    got = [(f["line"], f["secret"]) for f in findings_of(res)]
    assert got == expected
    assert res.json()["summary"]["bytes"] == len(big)  # type: ignore[index]


def test_stdin_and_stdin_name(run_cli: Run, key: str) -> None:
    log = f"2024-01-01 INFO start\n2024-01-01 DEBUG auth header Bearer {key}\n"
    res = run_cli("scan", "-", "-f", "json", input=log)
    assert res.returncode == 1
    assert locations(res) == [("<stdin>", 2, 37)]
    res = run_cli("scan", "-", "--stdin-name", "pod/web.log", input=log)
    assert res.stdout.startswith("pod/web.log:2:37  kubeadapt-api-key")
    res.assert_no_leak(key)
    clean = run_cli("scan", "-", input="nothing here\n")
    assert clean.returncode == 0
    assert "scanned 1 file," in clean.stdout


def test_ignore_sources(
    tmp_path: Path, run_cli: Run, home: Path, keys: Callable[[int], list[str]]
) -> None:
    k = keys(11)
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    write_files(
        repo,
        {
            ".gitignore": "*.log\n!keep.log\nbuild/\n",
            "a.log": k[0],
            "keep.log": k[1],
            "build/out.txt": k[2],
            "src/.gitignore": "gen_*\n",
            "src/gen_x.py": k[3],
            "src/real.py": k[4],
            ".kascanignore": "fixtures/\n",
            "fixtures/f.txt": k[5],
            "vendor/v.txt": k[6],
            "local.secret": k[7],
            "globally.ignored": k[8],
            "docs/x.md": k[9],
            ".git/config.bak": k[10],  # .git is never walked
        },
    )
    (repo / ".git" / "info").mkdir(exist_ok=True)
    (repo / ".git" / "info" / "exclude").write_text("*.secret\n")
    (home / ".config" / "git").mkdir(parents=True)
    (home / ".config" / "git" / "ignore").write_text("*.ignored\n")

    res = run_cli("scan", repo, "--exclude", "vendor/", "-f", "json")
    assert sorted(f["path"] for f in findings_of(res)) == ["docs/x.md", "keep.log", "src/real.py"]
    assert res.json()["summary"]["skipped"]["ignored"] == 7  # type: ignore[index]

    # a core.excludesFile in the global git config wins over the XDG default
    (home / "custom-ignore").write_text("docs/\n")
    (home / ".gitconfig").write_text(f"[core]\n\texcludesFile = {home / 'custom-ignore'}\n")
    res = run_cli("scan", repo, "--exclude", "vendor/", "-f", "json")
    assert sorted(f["path"] for f in findings_of(res)) == [
        "globally.ignored",
        "keep.log",
        "src/real.py",
    ]

    # scanning a subdirectory still honours the repository root's .gitignore
    res = run_cli("scan", repo / "build", "-f", "json")
    assert res.returncode == 0, res.stdout

    res = run_cli("scan", repo, "--no-ignore", "-f", "json")
    assert len(findings_of(res)) == 10
    res.assert_no_leak(*k)
    res = run_cli("scan", repo, "--no-ignore", "--exclude", "*.log", "-f", "json")
    assert len(findings_of(res)) == 8


def test_inline_allow_pragma(
    tmp_path: Path, run_cli: Run, keys: Callable[[int], list[str]]
) -> None:
    a, b = keys(2)
    write_files(tmp_path, {"t.py": f'A = "{a}"  # kascan:allow test fixture\nB = "{b}"\n'})
    res = run_cli("scan", tmp_path, "-f", "json")
    assert locations(res) == [("t.py", 2, 6)]
    assert res.json()["summary"]["dropped"] == {"inline-allow": 1}  # type: ignore[index]


def test_baseline(tmp_path: Path, run_cli: Run, keys: Callable[[int], list[str]]) -> None:
    a, b = keys(2)
    tree = tmp_path / "tree"
    write_files(tree, {"a.env": f"K={a}\n"})
    base = tmp_path / "baseline.json"
    first = run_cli("scan", tree, "-o", base)
    assert first.returncode == 1
    assert base.is_file() and a[len(PREFIX) :] not in base.read_text()
    assert run_cli("scan", tree, "--baseline", base).returncode == 0
    # the same key moved to another line and file is still known; a new key is not
    write_files(tree, {"a.env": f"\n\nK={a}\n", "b.env": f"K={b}\nK2={a}\n"})
    res = run_cli("scan", tree, "--baseline", base, "-f", "json")
    assert res.returncode == 1
    assert locations(res) == [("b.env", 1, 3)]
    assert res.json()["summary"]["dropped"] == {"baseline": 2}  # type: ignore[index]
    # a baseline that is not a kascan report is a clear error
    (tmp_path / "bad.json").write_text('{"findings": [\n  1,\n')
    bad = run_cli("scan", tree, "--baseline", tmp_path / "bad.json")
    assert bad.returncode == 2
    assert "cannot read baseline" in bad.stderr and "not JSON (line 3)" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_config_files(tmp_path: Path, run_cli: Run, keys: Callable[[int], list[str]]) -> None:
    a, b, c = keys(3)
    write_files(tmp_path, {"fixtures/x.txt": a, "src/y.txt": b, "old.txt": c})
    run_cli("scan", tmp_path / "old.txt", "-o", tmp_path / "kascan-baseline.json")
    (tmp_path / ".kascan.toml").write_text(
        'exclude = ["fixtures/"]\nbaseline = "kascan-baseline.json"\n'
    )
    res = run_cli("scan", tmp_path, "-f", "json")
    assert locations(res) == [("src/y.txt", 1, 1)]
    (tmp_path / ".kascan.toml").unlink()
    (tmp_path / "pyproject.toml").write_text('[tool.kascan]\nexclude = ["src/"]\n')
    res = run_cli("scan", tmp_path, "-f", "json")
    assert sorted(p for p, _, _ in locations(res)) == ["fixtures/x.txt", "old.txt"]
    (tmp_path / "pyproject.toml").write_text("[tool.kascan]\nexclude = 3\n")
    bad = run_cli("scan", tmp_path)
    assert bad.returncode == 2 and "exclude must be a list" in bad.stderr
    (tmp_path / "pyproject.toml").write_text("[tool.kascan]\nexclud = []\n")
    bad = run_cli("scan", tmp_path)
    assert bad.returncode == 2 and "unknown key 'exclud'" in bad.stderr
    (tmp_path / "pyproject.toml").write_text("[tool.kascan\n")
    bad = run_cli("scan", tmp_path)
    assert bad.returncode == 2 and "not valid TOML" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_user_rules_file(tmp_path: Path, run_cli: Run, key: str, rng: random.Random) -> None:
    token = "ghp_" + "".join(
        rng.choices("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", k=36)
    )
    rules = tmp_path / "gitleaks.toml"
    # a rule copied from gitleaks' default config, unchanged
    rules.write_text(
        """
title = "custom"
[[rules]]
id = "github-pat"
description = "Uncovered a GitHub Personal Access Token, potentially leading to unauthorized repository access and sensitive content exposure."
regex = '''ghp_[0-9a-zA-Z]{36}'''
entropy = 3
keywords = ["ghp_"]
"""
    )
    write_files(tmp_path / "t", {"a.txt": f"{token}\n{key}\n"})
    res = run_cli("scan", tmp_path / "t", "--rules", rules, "-f", "json")
    assert [(f["rule_id"], f["line"]) for f in findings_of(res)] == [
        ("github-pat", 1),
        ("kubeadapt-api-key", 2),
    ]
    assert token not in res.output
    res.assert_no_leak(key)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[[rules]\nid='x'", "not valid TOML"),
        ("[[rules]]\nid='x'\nregex='(unclosed'", "bad regex"),
        ("[[rules]]\nregex='abc'", "has no id"),
        ("[[rules]]\nid='x'\nregex='a(b)'\nsecretGroup=3", "secretGroup 3"),
    ],
)
def test_bad_rules_exit_2(tmp_path: Path, run_cli: Run, content: str, message: str) -> None:
    (tmp_path / "r.toml").write_text(content)
    res = run_cli("scan", tmp_path, "--rules", tmp_path / "r.toml")
    assert res.returncode == 2
    assert message in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert "Traceback" not in res.stderr


def test_exit_codes_and_errors(tmp_path: Path, run_cli: Run, key: str) -> None:
    write_files(tmp_path, {"clean.txt": "nothing\n"})
    assert run_cli("scan", tmp_path).returncode == 0
    missing = run_cli("scan", tmp_path / "nope")
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"Error: no such file or directory: {tmp_path / 'nope'}"
    assert run_cli("scan", "--bogus").returncode == 2
    assert run_cli("scan", "-f", "xml").returncode == 2
    assert run_cli("frobnicate").returncode == 2
    write_files(tmp_path, {"leak.txt": key})
    assert run_cli("scan", tmp_path).returncode == 1
    unwritable = run_cli("scan", tmp_path, "-o", tmp_path / "no" / "dir" / "r.json")
    assert unwritable.returncode == 2
    assert "cannot write report" in unwritable.stderr
    assert "leak.txt:1:1" in unwritable.output  # what was found is not lost
    unwritable.assert_no_leak(key)


def test_special_files_and_symlink_loops(tmp_path: Path, run_cli: Run, key: str) -> None:
    write_files(tmp_path, {"d/leak.txt": key})
    os.mkfifo(tmp_path / "d" / "fifo")
    (tmp_path / "d" / "loop").symlink_to(tmp_path / "d")
    (tmp_path / "d" / "link.txt").symlink_to(tmp_path / "d" / "leak.txt")
    res = run_cli("scan", tmp_path, "-f", "json", timeout=30)
    assert locations(res) == [("d/leak.txt", 1, 1)]
    skipped = res.json()["summary"]["skipped"]
    assert skipped == {"special": 1, "symlink": 2}
    res = run_cli("scan", tmp_path, "--follow-symlinks", "-f", "json", timeout=30)
    assert sorted(p for p, _, _ in locations(res)) == ["d/leak.txt", "d/link.txt"]
    assert res.json()["summary"]["skipped"]["symlink-loop"] == 1  # type: ignore[index]


def test_unreadable_file_is_a_warning(tmp_path: Path) -> None:
    from kascan.sources.files import FileRef, read_file
    from kascan.stats import ScanStats

    stats = ScanStats()
    warnings: list[str] = []
    assert list(read_file(FileRef(str(tmp_path / "gone"), "gone"), stats, warnings.append)) == []
    assert stats.unreadable == 1 and stats.files == 0
    assert warnings == ["cannot read gone: No such file or directory"]


def test_multiple_roots_and_relative_paths(
    tmp_path: Path, run_cli: Run, keys: Callable[[int], list[str]]
) -> None:
    a, b = keys(2)
    write_files(tmp_path, {"one/a.txt": a, "two/sub/b.txt": b})
    res = run_cli("scan", "one", "two", "-f", "json", cwd=tmp_path)
    assert sorted(p for p, _, _ in locations(res)) == ["one/a.txt", "two/sub/b.txt"]
    res = run_cli("scan", "-f", "json", cwd=tmp_path / "two")
    assert locations(res) == [("sub/b.txt", 1, 1)]
    res = run_cli("scan", "two/sub/b.txt", "-f", "json", cwd=tmp_path)
    assert locations(res) == [("two/sub/b.txt", 1, 1)]


def test_no_key_body_in_any_format_or_output(
    tmp_path: Path, run_cli: Run, keys: Callable[[int], list[str]]
) -> None:
    from kascan.report import FORMATS

    k = keys(3)
    write_files(tmp_path / "t", {"a.txt": k[0], "b/c.yaml": f"x: {k[1]}\ny: {k[2]}\n"})
    for fmt in FORMATS:
        out = tmp_path / f"report.{fmt}"
        res = run_cli("scan", tmp_path / "t", "-f", fmt, "-o", f"{fmt}:{out}", "-o", "-")
        assert res.returncode == 1, (fmt, res.stderr)
        res.assert_no_leak(*k)
        text = out.read_text()
        assert text.strip()
        for key in k:
            assert key[len(PREFIX) :] not in text, fmt
    shown = run_cli("scan", tmp_path / "t", "--show-secrets", "-f", "json")
    assert {f["secret"] for f in findings_of(shown)} == set(k)


def test_text_report_and_summary_go_to_the_right_streams(
    tmp_path: Path, run_cli: Run, key: str
) -> None:
    write_files(tmp_path / "t", {"a.txt": key})
    text = run_cli("scan", tmp_path / "t")
    assert text.stdout.splitlines()[0] == f"a.txt:1:1  kubeadapt-api-key  {key[:12]}…"
    assert "revoke it in the Kubeadapt dashboard (Settings → API Keys)" in text.stdout
    js = run_cli("scan", tmp_path / "t", "-f", "json")
    json.loads(js.stdout)
    assert "kascan: scanned 1 file," in js.stderr
    quiet = run_cli("scan", tmp_path / "t", "-f", "json", "-q")
    assert quiet.stderr == ""
    both = run_cli("scan", tmp_path / "t", "-o", tmp_path / "r.json")
    assert both.stdout.startswith("a.txt:1:1")  # text on the terminal, JSON in the file
    assert json.loads((tmp_path / "r.json").read_text())["findings"][0]["line"] == 1
    empty = run_cli("scan", tmp_path / "t" / "a.txt", "--exclude", "*")
    assert empty.returncode == 1  # a file named explicitly is scanned


def test_nothing_scanned_is_said(tmp_path: Path, run_cli: Run) -> None:
    (tmp_path / "empty").mkdir()
    res = run_cli("scan", tmp_path / "empty")
    assert res.returncode == 0
    assert "WARNING: nothing was scanned." in res.stdout
    assert "no leaked keys found" not in res.stdout


def test_project_scans_itself_clean(run_cli: Run) -> None:
    res = run_cli("scan", ROOT, "-f", "json")
    assert res.returncode == 0, res.stdout[:2000]
    assert res.json()["summary"]["files"] > 20  # type: ignore[index]
