"""`kascan baseline update` / `audit`: a baseline that never loses a key, and why each key is in it."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pexpect

from .conftest import PREFIX, Result, locations, write_files

Run = Callable[..., Result]


def entries(path: Path) -> list[dict[str, object]]:
    doc = json.loads(path.read_text())
    found = doc["findings"]
    assert isinstance(found, list)
    return found


def states(path: Path) -> dict[str, tuple[object, ...]]:
    """path -> (state, reason) of every entry."""
    out = {}
    for e in entries(path):
        t = e.get("triage") or {}
        assert isinstance(t, dict)
        out[str(e["path"])] = (t.get("state"), t.get("reason"))
    return out


def fingerprint_of(path: Path, rel: str) -> str:
    return next(str(e["fingerprint"]) for e in entries(path) if e["path"] == rel)


def assert_no_body(path: Path, *keys: str) -> None:
    text = path.read_text()
    for k in keys:
        assert k[len(PREFIX) :] not in text


def test_update_audit_scan_workflow(
    tmp_path: Path, run_cli: Run, keys: Callable[[int], list[str]]
) -> None:
    a, b, c = keys(3)
    tree = tmp_path / "tree"
    base = tmp_path / "B.json"
    write_files(tree, {"tests/fixture.env": f"K={a}\n", "README.md": "# nothing\n"})
    # create
    made = run_cli("baseline", "update", base, tree)
    assert made.returncode == 0, made.output
    made.assert_no_leak(a)
    assert states(base) == {"tests/fixture.env": ("untriaged", None)}
    assert "1 key (1 entry): 1 added, 0 pruned; 1 untriaged" in made.stderr
    doc = json.loads(base.read_text())
    assert doc["command"] == "baseline" and doc["tool"]["name"] == "kascan"
    # add a key; update keeps the old entry and adds the new one
    write_files(tree, {"src/settings.py": f'KEY = "{b}"\n'})
    again = run_cli("baseline", "update", base, tree)
    assert again.returncode == 0, again.output
    assert "2 keys (2 entries): 1 added, 0 pruned" in again.stderr
    assert states(base) == {
        "src/settings.py": ("untriaged", None),
        "tests/fixture.env": ("untriaged", None),
    }
    # untriaged keys are still reported by a scan with the baseline
    res = run_cli("scan", tree, "--baseline", base, "-f", "json")
    assert res.returncode == 1
    assert locations(res) == [("src/settings.py", 1, 8), ("tests/fixture.env", 1, 3)]
    # audit marks one false-positive, by 12 hex digits of its fingerprint
    fp = fingerprint_of(base, "tests/fixture.env")
    marked = run_cli(
        "baseline", "audit", base, "--mark", fp[7:19] + "=false-positive", "--reason", "test data"
    )
    assert marked.returncode == 0, marked.output
    assert states(base)["tests/fixture.env"] == ("false-positive", "test data")
    assert states(base)["src/settings.py"] == ("untriaged", None)
    # a scan reports only the untriaged key
    res = run_cli("scan", tree, "--baseline", base, "-f", "json")
    assert res.returncode == 1
    assert locations(res) == [("src/settings.py", 1, 8)]
    assert res.json()["summary"]["dropped"] == {"baseline": 1}  # type: ignore[index]
    # the marked key moved elsewhere: update keeps its triage for the new place
    write_files(tree, {"docs/example.md": f"use `{a}`\n", "src/other.py": f"X = '{c}'\n"})
    run_cli("baseline", "update", base, tree)
    assert states(base)["docs/example.md"] == ("false-positive", "test data")
    assert states(base)["src/other.py"] == ("untriaged", None)
    # --list shows states and reasons, never a key body
    listed = run_cli("baseline", "audit", base, "--list")
    assert listed.returncode == 0
    listed.assert_no_leak(a, b, c)
    assert "3 keys: 2 untriaged, 1 false-positive" in listed.stdout
    assert f"{fp[:19]}  false-positive  {a[: len(PREFIX) + 4]}…" in listed.stdout
    assert "reason: test data (" in listed.stdout
    # accepted and revoked are baselined too; untriaged resets
    rest = {e["path"]: str(e["fingerprint"]) for e in entries(base)}
    res = run_cli(
        "baseline",
        "audit",
        base,
        "--mark",
        f"{rest['src/settings.py']}=accepted",
        "--mark",
        f"{rest['src/other.py']}=revoked",
        "--reason",
        "staging key, scoped read-only",
        "--reason",
        "revoked 2024-05-01",
    )
    assert res.returncode == 0, res.output
    assert states(base)["src/settings.py"] == ("accepted", "staging key, scoped read-only")
    assert states(base)["src/other.py"] == ("revoked", "revoked 2024-05-01")
    clean = run_cli("scan", tree, "--baseline", base)
    assert clean.returncode == 0, clean.output
    run_cli("baseline", "audit", base, "--mark", f"{rest['src/other.py']}=untriaged")
    assert states(base)["src/other.py"] == ("untriaged", None)
    assert run_cli("scan", tree, "--baseline", base).returncode == 1
    for path in (base,):
        assert_no_body(path, a, b, c)


def test_prune_and_never_drop(
    tmp_path: Path, run_cli: Run, keys: Callable[[int], list[str]]
) -> None:
    a, b = keys(2)
    tree = tmp_path / "tree"
    base = tmp_path / "B.json"
    write_files(tree, {"a.env": f"A={a}\n", "b.env": f"B={b}\n"})
    run_cli("baseline", "update", base, tree)
    (tree / "a.env").unlink()
    kept = run_cli("baseline", "update", base, tree)
    assert "0 added, 0 pruned" in kept.stderr
    assert sorted(states(base)) == ["a.env", "b.env"]  # a key no longer found is kept
    pruned = run_cli("baseline", "update", base, tree, "--prune")
    assert pruned.returncode == 0, pruned.output
    assert "1 key (1 entry): 0 added, 1 pruned" in pruned.stderr
    assert sorted(states(base)) == ["b.env"]
    # the scan options of `kascan scan` apply (here --exclude), and nothing at all is dropped
    write_files(tree, {"vendor/x.env": f"A={a}\n"})
    run_cli("baseline", "update", base, tree, "--exclude", "vendor/")
    assert sorted(states(base)) == ["b.env"]


def test_update_scans_without_the_configured_baseline(
    tmp_path: Path, run_cli: Run, keys: Callable[[int], list[str]]
) -> None:
    """The file named by `baseline =` in .kascan.toml is the one being updated: its marked keys
    must still be seen by the scan, or --prune would drop them."""
    a, b = keys(2)
    write_files(tmp_path, {"a.env": f"A={a}\n", "b.env": f"B={b}\n"})
    (tmp_path / ".kascan.toml").write_text('baseline = "B.json"\n')
    base = tmp_path / "B.json"
    assert run_cli("baseline", "update", "B.json", cwd=tmp_path).returncode == 0
    fp = fingerprint_of(base, "a.env")
    run_cli("baseline", "audit", base, "--mark", f"{fp}=accepted", "--reason", "fixture")
    res = run_cli("baseline", "update", "B.json", ".", "--prune", cwd=tmp_path)
    assert res.returncode == 0, res.output
    assert states(base) == {"a.env": ("accepted", "fixture"), "b.env": ("untriaged", None)}
    # and the plain scan uses it from the config
    scan = run_cli("scan", ".", "-f", "json", cwd=tmp_path)
    assert locations(scan) == [("b.env", 1, 3)]


def test_report_over_the_baseline_in_use(
    tmp_path: Path, run_cli: Run, keys: Callable[[int], list[str]]
) -> None:
    a, b, c = keys(3)
    tree = tmp_path / "tree"
    write_files(tree, {"a.env": f"A={a}\n"})
    base = tmp_path / "B.json"
    # a plain report used as a baseline (the README's way): -o over it keeps its entries
    assert run_cli("scan", tree, "-o", base).returncode == 1
    write_files(tree, {"b.env": f"B={b}\n"})
    res = run_cli("scan", tree, "--baseline", base, "-o", base)
    assert res.returncode == 1, res.output
    assert "b.env:1:3" in res.stdout and "a.env" not in res.stdout
    assert sorted(states(base)) == ["a.env", "b.env"]
    assert all(s == (None, None) for s in states(base).values())  # a plain report stays plain
    assert run_cli("scan", tree, "--baseline", base).returncode == 0  # nothing came back
    # a triaged baseline: the new key is added untriaged, the marked ones keep their marks
    run_cli("baseline", "update", base, tree)
    for rel in ("a.env", "b.env"):
        fp = fingerprint_of(base, rel)
        run_cli("baseline", "audit", base, "--mark", f"{fp}=accepted", "--reason", f"{rel} ok")
    write_files(tree, {"c.env": f"C={c}\n"})
    res = run_cli("scan", tree, "--baseline", base, "-o", f"json:{base}")
    assert res.returncode == 1
    assert states(base) == {
        "a.env": ("accepted", "a.env ok"),
        "b.env": ("accepted", "b.env ok"),
        "c.env": ("untriaged", None),
    }
    # any other format over the baseline is refused before the scan, the file unchanged
    before = base.read_bytes()
    for out in (f"sarif:{base}", f"text:{base}"):
        bad = run_cli("scan", tree, "--baseline", base, "-o", out)
        assert bad.returncode == 2
        assert bad.stderr.strip().splitlines()[-1].startswith("Error: refusing to write a ")
        assert "over the baseline" in bad.stderr and "Traceback" not in bad.stderr
        assert base.read_bytes() == before
    # the same through the config's `baseline =` and another spelling of the path
    (tree / ".kascan.toml").write_text(f'baseline = "{base}"\n')
    bad = run_cli("scan", ".", "-o", f"sarif:{tmp_path}/tree/../B.json", cwd=tree)
    assert bad.returncode == 2 and "over the baseline" in bad.stderr
    assert base.read_bytes() == before
    # kascan merge refuses the same way
    bad = run_cli("merge", base, "--baseline", base, "-o", f"sarif:{base}")
    assert bad.returncode == 2 and "over the baseline" in bad.stderr
    assert base.read_bytes() == before
    assert_no_body(base, a, b, c)


def test_audit_errors(tmp_path: Path, run_cli: Run, keys: Callable[[int], list[str]]) -> None:
    (a,) = keys(1)
    write_files(tmp_path / "tree", {"a.env": f"A={a}\n"})
    base = tmp_path / "B.json"
    run_cli("baseline", "update", base, tmp_path / "tree")
    before = base.read_bytes()

    def fails(*args: str, message: str, code: int = 2) -> None:
        res = run_cli("baseline", "audit", base, *args)
        assert res.returncode == code, res.output
        assert message in res.stderr, res.stderr
        assert "Traceback" not in res.stderr
        assert base.read_bytes() == before

    fails(message="needs a terminal")  # stdin is not a terminal under run_cli
    fails("--mark", "deadbeefdeadbeef=accepted", "--reason", "x", message="no key in")
    fails("--mark", "dead=accepted", "--reason", "x", message="too short")
    fails("--mark", fingerprint_of(base, "a.env") + "=ok", message="STATE one of")
    fails("--mark", fingerprint_of(base, "a.env") + "=revoked", message="needs a --reason")
    fails("--reason", "why", message="--reason goes with --mark")
    missing = run_cli("baseline", "audit", tmp_path / "nope.json", "--list")
    assert missing.returncode == 2 and "cannot read baseline" in missing.stderr
    # a state the file should not have: the scan says so in one line
    doc = json.loads(before)
    doc["findings"][0]["triage"] = {"state": "\x1b[31mfine"}
    base.write_text(json.dumps(doc))
    res = run_cli("scan", tmp_path / "tree", "--baseline", base)
    assert res.returncode == 2 and "unknown triage state" in res.stderr
    assert "\x1b" not in res.stderr


def test_hostile_names_are_escaped(tmp_path: Path, run_cli: Run, key: str) -> None:
    tree = tmp_path / "tree"
    name = "x\x1b]0;pwned\x07\x1b[2J.env"
    write_files(tree, {name: f"K={key}\n"})
    base = tmp_path / "B.json"
    assert run_cli("baseline", "update", base, tree).returncode == 0
    listed = run_cli("baseline", "audit", base, "--list")
    assert listed.returncode == 0
    assert "\x1b" not in listed.stdout and "\x07" not in listed.stdout
    assert "x\\x1b]0;pwned\\x07\\x1b[2J.env:1:3" in listed.stdout


def test_interactive_audit_in_a_pty(
    tmp_path: Path, run_cli: Run, env: dict[str, str], keys: Callable[[int], list[str]]
) -> None:
    a, b, c = keys(3)
    tree = tmp_path / "tree"
    write_files(tree, {"a.env": f"A={a}\n", "b.env": f"B={b}\n", "c.env": f"C={c}\n"})
    base = tmp_path / "B.json"
    run_cli("baseline", "update", base, tree)
    child = pexpect.spawn(
        sys.executable,
        ["-m", "kascan", "baseline", "audit", str(base)],
        env=env,
        encoding="utf-8",
        timeout=30,
        dimensions=(40, 200),
    )
    child.expect(r"\[1/3\] ka_live_\w{4}…  sha256:[0-9a-f]{12}  untriaged")
    child.expect("a.env:1:3")
    child.expect(r"\(f\)alse positive, \(a\)ccepted, \(r\)evoked, \(s\)kip, \(q\)uit \[s\]: ")
    child.sendline("x")  # not an answer: asked again
    child.expect("answer f, a, r, s or q")
    child.expect(r"\(q\)uit \[s\]: ")
    child.sendline("f")
    child.expect("reason: ")
    child.sendline("")  # a reason is required
    child.expect("reason: ")
    child.sendline("fixture for the parser tests")
    child.expect(r"\[2/3\].*b.env:1:3")
    child.expect(r"\[s\]: ")
    child.sendline("")  # the default: skip
    child.expect(r"\[3/3\].*c.env:1:3")
    child.expect(r"\[s\]: ")
    child.sendline("r")
    child.expect("reason: ")
    child.sendline("revoked in the dashboard")
    child.expect(r"marked 2 keys; 1 untriaged, 1 false-positive, 1 revoked\.")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert b[len(PREFIX) :] not in (child.before or "")
    assert states(base) == {
        "a.env": ("false-positive", "fixture for the parser tests"),
        "b.env": ("untriaged", None),
        "c.env": ("revoked", "revoked in the dashboard"),
    }
    res = run_cli("scan", tree, "--baseline", base, "-f", "json")
    assert locations(res) == [("b.env", 1, 3)]
    # ^C halfway: what was answered before is kept, the exit is 130
    child = pexpect.spawn(
        sys.executable,
        ["-m", "kascan", "baseline", "audit", str(base), "--all"],
        env=env,
        encoding="utf-8",
        timeout=30,
    )
    child.expect(r"\[1/3\].*false-positive")
    child.expect(r"\[s\]: ")
    child.sendline("a")
    child.expect("reason: ")
    child.sendline("accepted after all")
    child.expect(r"\[2/3\]")
    child.expect(r"\[s\]: ")
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
    assert states(base)["a.env"] == ("accepted", "accepted after all")
    assert states(base)["b.env"] == ("untriaged", None)
