"""What a new user meets first: the licence, the examples' references, the container's git, the
README's pre-commit snippet, the summary's grammar and the inline allows of other scanners."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import ROOT, GitRepo, Result, write_files

Run = Callable[..., Result]


def test_license_is_the_apache_license_pyproject_names() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert 'license = "Apache-2.0"' in (ROOT / "pyproject.toml").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "[Apache-2.0](LICENSE)" in readme and "patent" in readme


def test_kubernetes_examples_reference_what_exists() -> None:
    here = ROOT / "examples" / "kubernetes"
    for yaml_file in here.glob("*.yaml"):
        for ref in re.findall(r"\b([\w.-]+\.(?:yaml|md))\b", yaml_file.read_text()):
            assert (here / ref).is_file(), f"{yaml_file.name} names {ref}, which is not there"
    readme = (here / "README.md").read_text()
    for target in re.findall(r"\]\(([^)#]+)", readme):
        assert (here / target).exists(), target
    assert "kubectl apply -f sweep-job.yaml" in readme and "merge-job.yaml" in readme


def _dockerfile_safe_directories() -> list[str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    values = []
    for line in text.splitlines():
        if not line.startswith("RUN "):
            continue
        for cmd in line[4:].split("&&"):
            argv = shlex.split(cmd)
            if argv[:5] == ["git", "config", "--system", "--add", "safe.directory"]:
                values.append(argv[5])
    return values


def test_container_git_trusts_the_mounted_repository(
    tmp_path: Path, make_repo: Callable[[Path], GitRepo], run_cli: Run, key: str
) -> None:
    """The image's `git config --system` lines, run against a system config of our own with the
    mount point /work moved to a temporary directory, make a repository owned by another user
    scannable there (and only there)."""
    dirs = _dockerfile_safe_directories()
    assert "/work" in dirs
    assert os.geteuid() == 0, "this test makes files owned by another user: run it as root (CI is)"
    mount = tmp_path / "work"
    system = tmp_path / "gitconfig-system"
    for value in dirs:
        mapped = str(mount) + value[len("/work") :] if value.startswith("/work") else value
        subprocess.run(
            ["git", "config", "--file", str(system), "--add", "safe.directory", mapped],
            check=True,
        )
    for where in (mount, tmp_path / "elsewhere"):
        repo = make_repo(where)
        repo.commit("config", {"app.env": f"K={key}\n"})
        for dirpath, dirnames, filenames in os.walk(where):
            for name in (*dirnames, *filenames):
                os.lchown(os.path.join(dirpath, name), 12345, 12345)
        os.chown(where, 12345, 12345)
    git_env = {"GIT_CONFIG_SYSTEM": str(system), "GIT_CONFIG_NOSYSTEM": "0"}
    ok = run_cli("git", ".", "-q", cwd=mount, extra_env=git_env)
    assert ok.returncode == 1, ok.output
    assert "app.env:1:3" in ok.stdout
    refused = run_cli("git", ".", cwd=tmp_path / "elsewhere", extra_env=git_env)
    assert refused.returncode == 2
    assert "dubious ownership" in refused.stderr and "Traceback" not in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_summary_counts_in_good_english(tmp_path: Path, run_cli: Run, key: str) -> None:
    write_files(tmp_path / "one", {"a.env": f"K={key}\n"})
    res = run_cli("scan", tmp_path / "one")
    assert "kascan: scanned 1 file, " in res.stdout
    assert "kascan: 1 candidate; 1 reported." in res.stdout
    write_files(tmp_path / "two", {"a.txt": "x\n", "b.txt": "y\n"})
    res = run_cli("scan", tmp_path / "two")
    assert (
        "kascan: scanned 2 files, " in res.stdout
        and "kascan: 0 candidates; 0 reported." in res.stdout
    )


def test_other_scanners_inline_allows(
    tmp_path: Path, git_repo: GitRepo, run_cli: Run, keys: Callable[[int], list[str]]
) -> None:
    a, b, c, d, e = keys(5)
    files = {
        "settings.py": (
            f'PLAIN = "{a}"\n'
            f'OURS = "{b}"  # kascan:allow\n'
            f'GITLEAKS = "{c}"  # gitleaks:allow\n'
            f'DETECT = "{d}"  # pragma: allowlist secret\n'
            f'NEXT = "{e}"\n'
            "# pragma: allowlist secret  (on its own line: allows nothing)\n"
        )
    }
    write_files(tmp_path / "tree", files)
    res = run_cli("scan", tmp_path / "tree", "-f", "json")
    assert [(f["path"], f["line"]) for f in res.json()["findings"]] == [  # type: ignore[union-attr]
        ("settings.py", 1),
        ("settings.py", 5),
    ]
    dropped = res.json()["summary"]["dropped"]  # type: ignore[index]
    assert dropped == {"inline-allow": 1, "gitleaks-allow": 1, "detect-secrets-allow": 1}
    text = run_cli("scan", tmp_path / "tree")
    assert "dropped 1 detect-secrets-allow, 1 gitleaks-allow, 1 inline-allow; 2 reported" in (
        text.stdout
    )
    # the same in history and in the staged change
    git_repo.commit("settings", files)
    hist = run_cli("git", git_repo.path, "-f", "json")
    assert hist.json()["summary"]["dropped"] == dropped  # type: ignore[index]
    git_repo.write("more.py", f'X = "{a}"  # gitleaks:allow\n')
    git_repo.git("add", "more.py")
    staged = run_cli("git", "--staged", cwd=git_repo.path)
    assert staged.returncode == 0, staged.output


# --- the README's pre-commit snippet -------------------------------------------------------------


def _readme_hook_config() -> str:
    text = (ROOT / "README.md").read_text()
    after = text.split("With [pre-commit](https://pre-commit.com)", 1)[1]
    return after.split("```yaml\n", 1)[1].split("```", 1)[0]


def _git_root(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_readme_pins_a_commit_that_resolves() -> None:
    config = _readme_hook_config()
    rev = re.search(r"rev: (\S+)", config)
    assert rev is not None and re.fullmatch(r"[0-9a-f]{40}", rev.group(1)), config
    assert _git_root("cat-file", "-t", rev.group(1)) == "commit"
    hooks = _git_root("show", f"{rev.group(1)}:.pre-commit-hooks.yaml")
    assert "- id: kascan\n" in hooks and "- id: kascan-push\n" in hooks


@pytest.mark.slow
def test_pre_commit_runs_the_readme_snippet_and_autoupdates(
    git_repo: GitRepo, env: dict[str, str], key: str, tmp_path: Path
) -> None:
    """The snippet as written, with `repo:` this checkout and `rev:` its HEAD (the commit under
    test; commit before running this test), blocks a commit that adds a key."""
    head = _git_root("rev-parse", "HEAD")
    config = _readme_hook_config()
    url = re.search(r"repo: (\S+)", config)
    assert url is not None
    pinned = re.search(r"rev: (\S+)", config)
    assert pinned is not None
    mine = config.replace(url.group(1), str(ROOT)).replace(pinned.group(1), head)
    git_repo.env["PRE_COMMIT_HOME"] = str(tmp_path / "pre-commit-home")
    git_repo.env["PATH"] = str(Path(sys.executable).parent) + ":" + env.get("PATH", "")
    git_repo.env.pop("PYTHONPATH", None)
    git_repo.commit("pre-commit config", {".pre-commit-config.yaml": mine})

    def pre_commit(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pre_commit", *args],
            cwd=git_repo.path,
            env=git_repo.env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    install = pre_commit("install", "--hook-type", "pre-commit", "--hook-type", "pre-push")
    assert install.returncode == 0, install.stdout + install.stderr
    git_repo.write("app/settings.py", f"API_KEY = '{key}'\n")
    git_repo.git("add", "-A")
    blocked = subprocess.run(
        ["git", "commit", "-m", "add settings"],
        cwd=git_repo.path,
        env=git_repo.env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert blocked.returncode != 0, blocked.stdout + blocked.stderr
    out = blocked.stdout + blocked.stderr
    assert "app/settings.py:1:12" in out and key[8:] not in out
    # autoupdate, as the README says, moves rev to the newest commit (no tags here)
    git_repo.git("reset", "-q")
    old = mine.replace(head, pinned.group(1))
    (git_repo.path / ".pre-commit-config.yaml").write_text(old)
    update = pre_commit("autoupdate", "--repo", str(ROOT))
    assert update.returncode == 0, update.stdout + update.stderr
    new = (git_repo.path / ".pre-commit-config.yaml").read_text()
    tags = _git_root("tag", "--points-at", _git_root("rev-parse", "HEAD")).split()
    assert re.search(r"rev: (\S+)", new).group(1) in (head, *tags)  # type: ignore[union-attr]
