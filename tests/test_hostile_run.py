"""Hostile input, the run itself: signals, clones that never answer, resumable sweeps that must
not reuse what other options found, and a pull request that tries to exempt itself."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import GitRepo, Result, findings_of


def _zip_with(key: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("conf/app.properties", f"api.key={key}\n" + "x=1\n" * 5000)
    return buf.getvalue()


def test_state_is_not_reused_across_decoder_switches(
    git_repo: GitRepo, run_cli: Callable[..., Result], key: str, tmp_path: Path
) -> None:
    """A sweep with --no-archives records nothing in the zip; a later full sweep of the same
    refs must scan again, not reuse that (issue 12 item 13)."""
    git_repo.commit("bundle", {"dist/bundle.zip": _zip_with(key)})
    state = tmp_path / "state"
    first = run_cli("git", git_repo.path, "--state", state, "--no-archives", "-f", "json")
    assert first.returncode == 0, first.output
    again = run_cli("git", git_repo.path, "--state", state, "--no-archives", "-f", "json")
    assert "unchanged since the last sweep" in again.stderr  # the same options: reused
    full = run_cli("git", git_repo.path, "--state", state, "-f", "json")
    assert full.returncode == 1, full.output
    assert [f["path"] for f in findings_of(full)] == ["dist/bundle.zip!conf/app.properties"]
    assert "unchanged since the last sweep" not in full.stderr
    full.assert_no_leak(key)


def _spawn(args: list[str], env: dict[str, str], **kw: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "kascan", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kw,  # type: ignore[call-overload]
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_writes_what_was_found(
    env: dict[str, str], key: str, tmp_path: Path, sig: signal.Signals
) -> None:
    """SIGTERM/SIGHUP end a run like ^C: the report holds what was found, one line, 128+N."""
    report = tmp_path / "r.json"
    proc = _spawn(["scan", "-", "-o", str(report)], env, stdin=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(f"token={key}\n".encode())
    proc.stdin.flush()
    line = proc.stdout.readline()  # the finding, streamed as soon as the line was read
    assert b"<stdin>:1:7" in line
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + sig, err
    assert b"Traceback" not in err
    assert f"interrupted ({sig.name})".encode() in err
    doc = json.loads(report.read_text())
    assert [(f["path"], f["line"]) for f in doc["findings"]] == [("<stdin>", 1)]
    assert key[8:].encode() not in out + err + report.read_bytes()


def _hanging_ssh(tmp_path: Path, env: dict[str, str]) -> dict[str, str]:
    """An ssh transport that never answers (the user's GIT_SSH_COMMAND is honoured by clones)."""
    e = dict(env)
    e["GIT_SSH_COMMAND"] = "sleep 60 #"
    e["TMPDIR"] = str(tmp_path / "tmp")
    (tmp_path / "tmp").mkdir()
    return e


def test_a_clone_that_never_answers_times_out(tmp_path: Path, env: dict[str, str]) -> None:
    e = _hanging_ssh(tmp_path, env)
    e["KASCAN_CLONE_TIMEOUT"] = "2"
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "kascan", "git", "ssh://git.example.invalid/x.git"],
        env=e,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert time.monotonic() - start < 30
    assert proc.returncode == 2
    err = proc.stderr.decode()
    assert "cannot clone ssh://git.example.invalid/x.git: no answer in 2 s" in err
    assert len(err.strip().splitlines()) == 1, err
    assert os.listdir(tmp_path / "tmp") == []  # the private clone directory is gone


def test_sigterm_during_a_clone_leaves_nothing_behind(tmp_path: Path, env: dict[str, str]) -> None:
    e = _hanging_ssh(tmp_path, env)
    proc = _spawn(["git", "ssh://git.example.invalid/x.git"], e, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not os.listdir(tmp_path / "tmp") and time.monotonic() < deadline:
        time.sleep(0.05)  # the clone has started: its private directory exists
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert b"Traceback" not in err
    assert os.listdir(tmp_path / "tmp") == []
    leftover = subprocess.run(["pgrep", "-f", "sleep 60 #"], capture_output=True, check=False)
    assert leftover.stdout.strip() == b"", "the clone's transport was left running"


@pytest.mark.parametrize("how", ["config", "kascanignore", "baseline"])
def test_a_pull_request_cannot_exempt_itself(
    git_repo: GitRepo, run_cli: Callable[..., Result], key: str, how: str
) -> None:
    """In --range mode the config, .kascanignore and baseline come from the base commit, never
    from the change (issue 12 item 16)."""
    base = git_repo.commit("base", {"README.md": "# app\n"})
    files: dict[str, str | bytes] = {"deploy/app.env": f"KEY={key}\n"}
    if how == "config":
        files[".kascan.toml"] = 'exclude = ["deploy/"]\n'
    elif how == "kascanignore":
        files[".kascanignore"] = "deploy/\n"
    else:
        found = run_cli("scan", "-", "-f", "json", input=f"KEY={key}\n")
        files["baseline.json"] = found.stdout
        files[".kascan.toml"] = 'baseline = "baseline.json"\n'
    head = git_repo.commit("add the key and exempt it", files)
    result = run_cli("git", git_repo.path, "--range", f"{base}..{head}", "-f", "json")
    assert result.returncode == 1, result.output
    assert [(f["path"], f["commit"]) for f in findings_of(result)] == [("deploy/app.env", head)]
    result.assert_no_leak(key)
    # the same exemption already in the base applies (the base is trusted)
    nxt = git_repo.commit("more", {"deploy/other.env": f"KEY2={key}\n"})
    later = run_cli("git", git_repo.path, "--range", f"{head}..{nxt}", "-f", "json")
    assert later.returncode == 0, later.output
