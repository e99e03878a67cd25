"""Fleet sweeps: the list of repositories to scan (arguments, ``--repos-from``, a GitHub
organisation), its deterministic shards, per-repository state for resumable sweeps, and the runner
that scans repositories concurrently so that one failure does not stop the others."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

import click

from kascan.errors import KascanError
from kascan.fleet_options import RepoQuery
from kascan.model import Finding, scrub
from kascan.stats import ScanStats, prefixed
from kascan.urls import canonical_repo

if TYPE_CHECKING:
    from kascan.report import RepoSummary

F = TypeVar("F", bound=Callable[..., object])

STATE_VERSION = 1

# --- canonical names (kascan.urls.canonical_repo) and shards --------------------------------------


def repo_hash(ref: str) -> str:
    return hashlib.sha256(canonical_repo(ref).encode()).hexdigest()


def shard_of(ref: str, count: int) -> int:
    """Which of ``count`` shards a repository belongs to: a hash of its canonical name, so the
    answer does not depend on the order or content of the rest of the list."""
    return int(repo_hash(ref)[:16], 16) % count


def parse_shard(value: str, environ: dict[str, str] | None = None) -> tuple[int, int]:
    """``I/N`` (0-based, like a Kubernetes completion index) or ``/N``: I from
    ``JOB_COMPLETION_INDEX``."""
    env = os.environ if environ is None else environ
    idx, sep, count = value.partition("/")
    if not sep:
        raise KascanError(f"--shard {value!r}: expected I/N (e.g. 0/4) or /N")
    if not idx.strip():
        idx = env.get("JOB_COMPLETION_INDEX", "")
        if not idx:
            raise KascanError(
                f"--shard {value!r}: no index given and JOB_COMPLETION_INDEX is unset"
            )
    try:
        i, n = int(idx), int(count)
    except ValueError:
        raise KascanError(f"--shard {value!r}: I and N must be integers (I/N)") from None
    if n < 1 or not 0 <= i < n:
        raise KascanError(f"--shard {i}/{n}: need N >= 1 and 0 <= I < N (I is 0-based)")
    return i, n


def pick_shard(refs: Iterable[str], index: int, count: int) -> list[str]:
    return [r for r in refs if shard_of(r, count) == index]


def dedupe_repos(refs: Iterable[str]) -> list[str]:
    """The first spelling of each repository, in order."""
    seen: set[str] = set()
    out: list[str] = []
    for r in refs:
        c = canonical_repo(r)
        if c not in seen:
            seen.add(c)
            out.append(r)
    return out


def read_repos_file(path: Path, option: str = "--repos-from") -> list[str]:
    """One path, clone URL (or image reference) a line; blank lines and ``#`` comments are
    skipped."""
    try:
        text = click.open_file(str(path), encoding="utf-8").read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise KascanError(f"cannot read {option} {path}: {reason}") from None
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


@dataclass(frozen=True)
class RepoSelection:
    repos: tuple[str, ...]
    listed: int  # before sharding
    shard: tuple[int, int] | None


def resolve_repos(
    args: Sequence[str], query: RepoQuery, warn: Callable[[str], None] = lambda _: None
) -> RepoSelection:
    """Arguments, then ``--repos-from``, then GitHub listings; de-duplicated; then the shard."""
    q = query
    picked = parse_shard(q.shard) if q.shard else None  # fail fast, before any network call
    refs = list(args)
    if q.repos_from is not None:
        refs.extend(read_repos_file(q.repos_from))
    sources: tuple[tuple[Literal["org", "user"], str | None], ...] = (
        ("org", q.github_org),
        ("user", q.github_user),
    )
    for kind, name in sources:
        if name:
            from kascan.github_api import list_repos

            found = list_repos(
                q.github_api_url,
                kind,
                name,
                token=os.environ.get("GITHUB_TOKEN") or None,
                include_forks=q.include_forks,
                include_archived=not q.exclude_archived,
                warn=warn,
            )
            refs.extend(r.clone_url for r in found)
    refs = dedupe_repos(refs)
    listed = len(refs)
    if picked is not None:
        refs = pick_shard(refs, *picked)
    return RepoSelection(tuple(refs), listed, picked)


# --- resumable state --------------------------------------------------------------------------


def refs_fingerprint(ref: str, timeout: float = 300) -> str:
    """sha256 of ``git ls-remote`` (every ref and HEAD): it changes when anything is pushed."""
    import subprocess

    from kascan.sources.git.process import SAFE_CONFIG, git_env

    cmd = ["git", *SAFE_CONFIG, "ls-remote", "--", ref]
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            env=git_env(network=True),
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KascanError(f"cannot list refs of {ref}: {exc}") from None
    if proc.returncode != 0:
        msg = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise KascanError(
            f"cannot list refs of {ref}: {msg[-1] if msg else 'git ls-remote failed'}"
        )
    lines = sorted(proc.stdout.splitlines())
    return "sha256:" + hashlib.sha256(b"\n".join(lines)).hexdigest()


@dataclass
class RepoState:
    repo: str
    refs: str
    config: str
    findings: list[Finding]
    stats: ScanStats


class StateStore:
    """One JSON file per repository in DIR (mode 0600): refs fingerprint, scan configuration and
    the findings of the last completed scan, keys redacted (fingerprints identify them)."""

    def __init__(self, root: Path, config: str) -> None:
        self.root = root
        self.config = config
        try:
            root.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise KascanError(f"cannot create --state {root}: {exc.strerror or exc}") from None

    def path(self, repo: str) -> Path:
        return self.root / f"{repo_hash(repo)[:24]}.json"

    def load(self, repo: str, refs: str) -> RepoState | None:
        """The recorded scan of ``repo`` if it was made at these refs with this configuration."""
        import json

        from kascan.reportio import finding_from_dict, stats_from_dict

        p = self.path(repo)
        try:
            doc = json.loads(p.read_text("utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None  # unreadable or torn: scan again
        if not isinstance(doc, dict) or doc.get("version") != STATE_VERSION:
            return None
        if doc.get("refs") != refs or doc.get("config") != self.config:
            return None
        if doc.get("canonical") != canonical_repo(repo):
            return None
        try:
            found = [finding_from_dict(d, repo) for d in doc["findings"]]
            stats = stats_from_dict(doc["stats"])
        except (KeyError, TypeError, ValueError):
            return None
        return RepoState(repo, refs, self.config, found, stats)

    def save(self, state: RepoState) -> None:
        import json
        import tempfile
        import time

        from kascan.report import ReportContext
        from kascan.report.json_report import finding_dict

        ctx = ReportContext(state.stats)  # never --show-secrets: state keeps redacted keys only
        doc = {
            "version": STATE_VERSION,
            "repo": state.repo,
            "canonical": canonical_repo(state.repo),
            "refs": state.refs,
            "config": state.config,
            "completed": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "stats": state.stats.as_dict(),
            "findings": [finding_dict(f, ctx) for f in state.findings],
        }
        target = self.path(state.repo)
        try:
            fd, tmp = tempfile.mkstemp(prefix=".state.", dir=self.root)
            try:
                os.fchmod(fd, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump(doc, fh, indent=1, ensure_ascii=False)
                os.replace(tmp, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            raise KascanError(f"cannot write state {target}: {exc.strerror or exc}") from None


def config_fingerprint(parts: Iterable[str | bytes]) -> str:
    """What a recorded scan depends on besides the refs: kascan's version, rules, options."""
    from kascan import __version__

    h = hashlib.sha256(__version__.encode())
    for p in parts:
        h.update(b"\0" + (p.encode() if isinstance(p, str) else p))
    return "sha256:" + h.hexdigest()


# --- the sweep ----------------------------------------------------------------------------------


@dataclass
class RepoOutcome:
    repo: str
    findings: list[Finding] = field(default_factory=list)
    stats: ScanStats = field(default_factory=ScanStats)
    error: str | None = None
    reused: bool = False
    seconds: float = 0.0

    def summary(self) -> RepoSummary:
        from kascan.report import RepoSummary

        return RepoSummary(
            repo=self.repo,
            commits=self.stats.extra.get("commits", 0),
            blobs=self.stats.extra.get("blobs", 0),
            findings=len(self.findings),
            live=sum(f.verification.status.startswith("live") for f in self.findings),
            status="failed" if self.error else ("reused" if self.reused else "scanned"),
            error=self.error,
        )


ScanOne = Callable[[str, ScanStats, Callable[[str], None]], list[Finding]]


def sweep(
    repos: Sequence[str],
    scan_one: ScanOne,
    *,
    jobs: int = 1,
    state: StateStore | None = None,
    warn: Callable[[str], None] = lambda _: None,
) -> Iterator[RepoOutcome]:
    """Scan every repository (``jobs`` at once); yield each outcome as it completes. A repository
    that fails yields an outcome with ``error`` set and the others go on."""
    import time
    from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

    def one(repo: str) -> RepoOutcome:
        start = time.monotonic()
        out = RepoOutcome(repo)
        try:
            refs = refs_fingerprint(repo) if state is not None else ""
            if state is not None:
                prior = state.load(repo, refs)
                if prior is not None:
                    out.findings, out.stats, out.reused = prior.findings, prior.stats, True
                    return out
            # a limit warning and a -v line keep their kind under the repository's name
            out.findings = scan_one(repo, out.stats, lambda m: warn(prefixed(f"{repo}: ", m)))
            if state is not None:
                state.save(RepoState(repo, refs, state.config, out.findings, out.stats))
        except KascanError as exc:
            out.error = scrub(exc.format_message())
        except Exception as exc:  # one repository's surprise must not end the sweep
            out.error = scrub(f"{type(exc).__name__}: {exc}")
        finally:
            out.seconds = time.monotonic() - start
        return out

    if jobs <= 1:
        for r in repos:
            yield one(r)
        return
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="kascan-repo")
    pending: set[Future[RepoOutcome]] = set()
    it = iter(repos)
    try:
        for r in it:
            pending.add(pool.submit(one, r))
            if len(pending) >= jobs * 2:
                break
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                yield fut.result()
                nxt = next(it, None)
                if nxt is not None:
                    pending.add(pool.submit(one, nxt))
    finally:
        for fut in pending:
            fut.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


def summary_line(s: RepoSummary) -> str:
    line = (
        f"repo {s.repo}: {s.commits} commits, {s.blobs} blobs, {s.findings} findings, {s.live} live"
    )
    if s.status == "reused":
        line += " (unchanged since the last sweep: findings reused)"
    if s.error:
        line += f" — FAILED: {s.error}"
    return line
