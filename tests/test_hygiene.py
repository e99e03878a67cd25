"""Secret hygiene: no key body in any output, report, warning or error of any command, format,
verbosity or error path, unless --show-secrets (and then only where the user asked for it)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from kascan.report import FORMATS

from .conftest import PREFIX, GitRepo, Result, write_files
from .test_verify import Api, make_api  # noqa: F401  (the fake Kubeadapt API fixture)

Run = Callable[..., Result]


class Collector:
    def __init__(self, secrets: list[str], out_dir: Path) -> None:
        self.bodies = [s[len(PREFIX) :] for s in secrets]
        self.out_dir = out_dir
        self.calls = 0

    def check(self, res: Result, what: str) -> None:
        self.calls += 1
        assert "Traceback" not in res.stderr or "--debug" in what, (what, res.stderr[-500:])
        blobs = {"stdout": res.stdout, "stderr": res.stderr}
        for p in self.out_dir.rglob("*"):
            if p.is_file():
                blobs[str(p)] = p.read_text("utf-8", "replace")
        for name, text in blobs.items():
            for body in self.bodies:
                assert body not in text, f"key body in {name} of: {what}"


@pytest.fixture
def world(
    tmp_path: Path,
    make_repo: Callable[[Path], GitRepo],
    keys: Callable[[int], list[str]],
    make_api: Callable[..., Api],  # noqa: F811
) -> tuple[list[str], Path, GitRepo, Api]:
    k = keys(6)
    api = make_api({k[0]: "live", k[1]: "error", k[2]: "inactive", k[3]: "waf", k[4]: "stall"})
    tree = tmp_path / "tree"
    write_files(
        tree,
        {
            "a.env": f"A={k[0]}\nB={k[1]}\n",
            "b/c.yaml": f"c: {k[2]}\nd: {k[3]}  # kascan:allow\n",
            "d.txt": k[4],
        },
    )
    repo = make_repo(tmp_path / "repo")
    repo.commit("one", {"x.env": f"X={k[0]}\n"})
    repo.commit("two", {"x.env": "X=gone\n", "y.env": f"Y={k[5]}\n"})
    repo.write("staged.env", f"S={k[1]}\n")
    repo.git("add", "staged.env")
    return k, tree, repo, api


def test_no_key_body_anywhere(
    tmp_path: Path, run_cli: Run, world: tuple[list[str], Path, GitRepo, Api]
) -> None:
    k, tree, repo, api = world
    out = tmp_path / "out"
    out.mkdir()
    c = Collector(k, out)
    verify = ["--verify", "--api-url", api.url, "--verify-timeout", "0.5", "--verify-max-time", "5"]
    targets: list[tuple[str, list[str]]] = [
        ("scan", ["scan", str(tree)]),
        ("git history", ["git", str(repo.path)]),
        ("git staged", ["git", "--staged"]),
        ("git range", ["git", "--range", "HEAD~1..HEAD"]),
    ]
    runs = [
        *itertools.product(targets, FORMATS, ([],)),
        *itertools.product(targets, ("text", "json"), (["-q"], ["--debug"])),
        *itertools.product(targets[:2], FORMATS, (verify,)),
    ]
    for (name, base), fmt, extra in runs:
        args = [*base, "-f", fmt, *extra, "-o", f"{fmt}:{out / ('r.' + fmt)}", "-o", "-"]
        res = run_cli(*args, cwd=repo.path if name.startswith("git") else tree)
        assert res.returncode == 1, (name, fmt, extra, res.stderr[-800:])
        c.check(res, f"{name} {fmt} {extra}")

    # kascan verify: every status, by argument and by stdin
    for key in k[:5]:
        c.check(
            run_cli("verify", key, "--api-url", api.url, "--verify-timeout", "0.5"), "verify arg"
        )
        c.check(
            run_cli("verify", "--api-url", api.url, "--verify-timeout", "0.5", input=key + "\n"),
            "verify stdin",
        )

    # error paths that might echo what they were given
    errors = [
        ["scan", str(tree / k[0])],  # a key pasted as a path
        ["scan", str(tree), "--verify", "--api-url", f"http://example.com/{k[0]}"],
        ["scan", str(tree), "--verify", "--api-url", f"https://{k[1]}:{k[2]}@127.0.0.1/"],
        ["verify", k[0] + "X"],  # 33 characters: not a key
        ["verify", "--api-url", "ftp://x", k[0]],
        ["scan", str(tree), "-o", str(tree / "nodir" / "r.json")],
        ["git", str(tree)],  # not a repository
        ["git", str(repo.path), "--range", f"{k[0]}..HEAD"],
        ["scan", str(tree), "--baseline", str(tree / "a.env")],  # not JSON, holds keys
        ["scan", str(tree), "--rules", str(tree / "a.env")],  # not TOML, holds keys
    ]
    for args in errors:
        res = run_cli(*args, cwd=repo.path)
        assert res.returncode == 2, (args[0], res.stdout, res.stderr)
        c.check(res, "error " + " ".join(args[:1]))
    assert c.calls == len(runs) + 10 + len(errors)

    # --show-secrets shows keys where asked (json/text), never in SARIF or annotations
    shown = run_cli("scan", str(tree), "--show-secrets", "-f", "json")
    assert k[0] in shown.stdout
    for fmt in ("sarif", "github"):
        res = run_cli("scan", str(tree), "--show-secrets", "-f", fmt)
        assert all(b not in res.output for b in c.bodies), fmt
