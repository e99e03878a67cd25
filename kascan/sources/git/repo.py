"""Finding, opening and cloning the repository to scan; resolving its revisions."""

from __future__ import annotations

import contextlib
import os
import subprocess
from dataclasses import replace

from kascan.errors import KascanError
from kascan.sources.git.process import SAFE_CONFIG, GitRepo, git_env, last_line, run_git

# ---------------------------------------------------------------------------------------------
# Finding the repository


def open_repo(path: str, display: str | None = None, *, inherit: bool = False) -> GitRepo:
    """The repository at ``path`` (a work tree, a subdirectory of one, or a bare repository).

    With ``inherit`` (the default repository, ``.``), the ``GIT_DIR``/``GIT_WORK_TREE``/
    ``GIT_INDEX_FILE`` that a hook runs with are honoured: they name the repository and the index
    the commit is being made from. They are resolved here once and then passed explicitly.
    """
    display = display if display is not None else path
    if not os.path.isdir(path):
        what = "no such directory" if not os.path.exists(path) else "not a directory"
        raise KascanError(f"not a git repository: {display} ({what})")
    keep = ("GIT_DIR", "GIT_WORK_TREE") if inherit else ()
    env = git_env(keep)
    try:
        proc = subprocess.run(
            [
                *["git", "-C", path, *SAFE_CONFIG, "rev-parse"],
                "--absolute-git-dir",
                "--is-bare-repository",
                "--is-shallow-repository",
                "--show-object-format",
                "--show-toplevel",  # last: it fails (after the others) without a work tree
            ],
            env=env,
            capture_output=True,
            check=False,
        )
    except OSError as exc:
        raise KascanError(f"cannot run git: {exc.strerror or exc}") from None
    out = proc.stdout.decode("utf-8", "surrogateescape").splitlines()
    if len(out) < 4 or (proc.returncode != 0 and b"work tree" not in proc.stderr):
        reason = last_line(proc.stderr)
        detail = "" if reason.startswith("not a git repository") else f" ({reason})"
        raise KascanError(f"not a git repository: {display}{detail}")
    git_dir, bare, shallow, fmt = out[:4]
    work_tree = out[4] if bare != "true" and proc.returncode == 0 and len(out) > 4 else None
    index_file = None
    if inherit and os.environ.get("GIT_INDEX_FILE"):
        index_file = os.path.abspath(os.environ["GIT_INDEX_FILE"])
    return GitRepo(display, git_dir, work_tree, index_file, shallow == "true", fmt)


def is_url(arg: str) -> bool:
    """A clone URL (``https://``, ``ssh://``, ``file://``, ``git@host:path``), not a local path."""
    if "://" in arg:
        return True
    if os.path.exists(arg):
        return False
    head, sep, _ = arg.partition(":")
    return bool(sep) and "/" not in head and len(head) > 1


def is_bundle(arg: str) -> bool:
    """A git bundle file (``git bundle create``): scanned as the history it carries."""
    try:
        with open(arg, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return False
    return head.startswith((b"# v2 git bundle\n", b"# v3 git bundle\n"))


_SCHEMES = ("https://", "http://", "ssh://", "git://", "file://", "git+ssh://", "ssh+git://")


def safe_url(url: str) -> str:
    """The URL without any password, for messages."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        userinfo, _, hostpart = rest.partition("@")
        user = userinfo.split(":", 1)[0]
        return f"{scheme}://{user}:***@{hostpart}" if ":" in userinfo else url
    return url


# the transports a clone may use unless the user's GIT_ALLOW_PROTOCOL says otherwise: never
# ``ext::`` (runs a command) or ``fd::`` (reads a descriptor, and can wait for ever)
CLONE_PROTOCOLS = "file:git:http:https:ssh"
CLONE_TIMEOUT = 1800.0  # seconds; KASCAN_CLONE_TIMEOUT overrides


def clone(url: str, dest: str) -> GitRepo:
    """A mirror of ``url`` in ``dest`` (a private temporary directory), bounded in time: bare,
    with every ref the server advertises (``+refs/*:refs/*``: pull-request heads, notes, any
    namespace), not only its branches and tags."""
    shown = safe_url(url)
    if url.startswith("-") or ("://" in url and not url.lower().startswith(_SCHEMES)):
        raise KascanError(f"cannot clone {shown}: unsupported URL scheme")
    env = git_env(network=True)
    env.setdefault("GIT_ALLOW_PROTOCOL", CLONE_PROTOCOLS)
    try:
        timeout = float(os.environ.get("KASCAN_CLONE_TIMEOUT") or CLONE_TIMEOUT)
    except ValueError:
        raise KascanError("KASCAN_CLONE_TIMEOUT must be a number of seconds") from None
    argv = ["git", *SAFE_CONFIG, "clone", "--mirror", "--quiet", "--no-local", "--", url, dest]
    try:
        proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: a timeout ends its helpers too
        )
    except OSError as exc:
        raise KascanError(f"cannot run git: {exc.strerror or exc}") from None
    try:
        _, stderr = proc.communicate(timeout=timeout)
    except BaseException as exc:  # a timeout, ^C or SIGTERM: no git left behind
        import signal

        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if isinstance(exc, subprocess.TimeoutExpired):
            raise KascanError(
                f"cannot clone {shown}: no answer in {timeout:g} s (KASCAN_CLONE_TIMEOUT)"
            ) from None
        raise
    if proc.returncode != 0:
        reason = last_line(stderr).replace(url, shown)
        raise KascanError(f"cannot clone {shown}: {reason}")
    repo = open_repo(dest, shown)
    return replace(repo, display=shown)


def resolve_commit(repo: GitRepo, rev: str) -> str:
    if rev.startswith("-"):
        raise KascanError(f"unknown revision {rev!r} in {repo.display}")
    proc = run_git(
        repo, "rev-parse", "--verify", "--quiet", "--end-of-options", rev + "^{commit}", check=False
    )
    if proc.returncode != 0:
        raise KascanError(f"unknown revision {rev!r} in {repo.display}")
    return proc.stdout.decode().strip()


def read_blob_at(repo: GitRepo, spec: str) -> bytes | None:
    """``git cat-file blob <spec>`` (e.g. ``HEAD:.kascan.toml``); None when there is none."""
    proc = run_git(repo, "cat-file", "blob", spec, check=False)
    return proc.stdout if proc.returncode == 0 else None
