"""The one git child environment and how git is run.

The scanned repository is treated as hostile: git runs with the ``GIT_*`` variables scrubbed from
its environment, with no transport at all (no lazy fetch can run the repository's
``uploadpack`` or ``sshCommand``), and with its hooks, fsmonitor, external diff, textconv and
signature programs switched off. Output is read with ``-z`` where git offers it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO

from kascan.errors import KascanError

LFS_POINTER = b"version https://git-lfs.github.com/spec/v1"

# Settings of the scanned repository that could run a program or change what git prints.
SAFE_CONFIG: tuple[str, ...] = tuple(
    arg
    for setting in (
        "core.hooksPath=/dev/null",
        "core.fsmonitor=",
        "diff.external=",
        "core.pager=cat",
        "core.quotePath=false",
        "log.showSignature=false",
        "log.decorate=false",
        "diff.noprefix=false",
        "diff.mnemonicPrefix=false",
        "diff.relative=false",
        "diff.interHunkContext=0",
        "color.ui=false",
        "protocol.ext.allow=never",
        "gc.auto=0",
        "maintenance.auto=false",
    )
    for arg in ("-c", setting)
)

# Variables a user sets for how git reaches a server; everything else GIT_* is dropped.
_KEEP_ENV = frozenset(
    {
        "GIT_EXEC_PATH",
        "GIT_SSH",
        "GIT_SSH_COMMAND",
        "GIT_SSH_VARIANT",
        "GIT_ASKPASS",
        "GIT_SSL_CAINFO",
        "GIT_SSL_CAPATH",
        "GIT_SSL_NO_VERIFY",
        "GIT_HTTP_PROXY_AUTHMETHOD",
        "GIT_CONFIG_NOSYSTEM",
        "GIT_CONFIG_GLOBAL",
        "GIT_CONFIG_SYSTEM",
        "GIT_ALLOW_PROTOCOL",
    }
)


# No transport is allowed by this name: a git child that reads a scanned repository may not reach
# any remote, so a lazy fetch of a missing object (``remote.<name>.promisor``, a partial clone)
# cannot run that repository's ``remote.<name>.uploadpack`` or ``core.sshCommand``. The variable
# takes precedence over every ``protocol.*.allow`` setting of the repository's own config.
NO_TRANSPORT = "kascan-no-network"


def git_env(keep: Iterable[str] = (), *, network: bool = False) -> dict[str, str]:
    """The environment for a git child: no ``GIT_*`` from a hook, no prompts, no replacements,
    and, unless ``network`` (only ``git clone`` of a URL the user named), no transport at all."""
    kept = _KEEP_ENV | set(keep)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") or k in kept}
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["GIT_NO_REPLACE_OBJECTS"] = "1"  # read the objects as stored, not what refs/replace says
    env["GIT_OPTIONAL_LOCKS"] = "0"
    env["GIT_LITERAL_PATHSPECS"] = "1"
    if not network:
        env["GIT_ALLOW_PROTOCOL"] = NO_TRANSPORT
        env["GIT_NO_LAZY_FETCH"] = "1"  # git >= 2.45 knows it; GIT_ALLOW_PROTOCOL covers older
    return env


@dataclass(frozen=True, slots=True)
class GitRepo:
    display: str  # as given on the command line
    git_dir: str
    work_tree: str | None
    index_file: str | None = None  # the hook's GIT_INDEX_FILE (e.g. ``git commit -a``)
    shallow: bool = False
    object_format: str = "sha1"

    def argv(self, *args: str) -> list[str]:
        base = ["git", f"--git-dir={self.git_dir}"]
        if self.work_tree:
            base.append(f"--work-tree={self.work_tree}")
        return [*base, *SAFE_CONFIG, *args]

    def env(self) -> dict[str, str]:
        env = git_env()
        if self.index_file:
            env["GIT_INDEX_FILE"] = self.index_file
        return env


def last_line(stderr: bytes) -> str:
    from kascan.model import scrub

    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    fatal = [ln for ln in lines if ln.startswith(("fatal: ", "error: "))]
    text = fatal[0] if fatal else lines[-1] if lines else "git failed"
    for prefix in ("fatal: ", "error: "):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    return scrub(text)


def run_git(
    repo: GitRepo, *args: str, check: bool = True, input: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    try:
        proc = subprocess.run(
            repo.argv(*args), env=repo.env(), input=input, capture_output=True, check=False
        )
    except OSError as exc:
        raise KascanError(f"cannot run git: {exc.strerror or exc}") from None
    if check and proc.returncode != 0:
        raise KascanError(f"git {args[0]} failed in {repo.display}: {last_line(proc.stderr)}")
    return proc


def popen(
    repo: GitRepo, *args: str, stdin: int | IO[bytes] | None = subprocess.DEVNULL
) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(
            repo.argv(*args),
            env=repo.env(),
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=1 << 20,
        )
    except OSError as exc:
        raise KascanError(f"cannot run git: {exc.strerror or exc}") from None


def finish(repo: GitRepo, proc: subprocess.Popen[bytes], what: str) -> None:
    """Wait for a streaming git child; a failure is fatal (a partial read must not look clean)."""
    stderr = proc.stderr.read() if proc.stderr else b""
    rc = proc.wait()
    if rc != 0:
        raise KascanError(f"git {what} failed in {repo.display}: {last_line(stderr)}")


def kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(OSError):
            proc.kill()
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        proc.wait(timeout=5)
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()
