"""The GitHub Action's scan step: ``python -m kascan.action`` (see action.yml at the repo top).

It reads what the runner provides (``GITHUB_EVENT_NAME``, the ``GITHUB_EVENT_PATH`` payload,
``GITHUB_WORKSPACE``, ``GITHUB_OUTPUT``, ``GITHUB_STEP_SUMMARY``, ``RUNNER_TEMP``) and the action's
inputs as ``INPUT_*`` variables, decides what to scan, runs kascan once with three reports
(annotations on stdout, JSON for itself, SARIF for code scanning), then writes the step outputs
and a job summary. Everything here runs the same on a laptop with those variables set.

What is scanned (``mode: auto``):
- ``pull_request``/``pull_request_target``: the PR's commits, ``base.sha..head.sha``;
- ``push``: the pushed commits, ``before..after``; the whole history on a new branch (``before``
  all zeros or ``created``); nothing when a branch is deleted;
- ``merge_group``: ``base_sha..head_sha``;
- anything else (schedule, workflow_dispatch, …): the whole history.
An empty range (a push that adds no commits) is a clean pass. ``mode: history`` scans the whole
history, ``mode: path`` the files under ``path``.

Exit status: 0 pass, 1 findings that ``fail-on`` fails on, 2 error.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from kascan.errors import KascanError
from kascan.model import redact

ZERO_SHA = "0" * 40
MODES = ("auto", "history", "path")
FAIL_ON = ("any", "live", "live-or-unknown", "never")
LIVE = frozenset({"live", "live-limited"})
SUMMARY_ROWS = 200  # a step summary is capped at 1 MiB; the SARIF and annotations have them all
PR_EVENTS = frozenset({"pull_request", "pull_request_target"})

PlanKind = Literal["range", "history", "path", "empty"]


@dataclass(frozen=True, slots=True)
class Inputs:
    mode: str = "auto"
    path: str = "."
    verify: bool = False
    api_url: str = ""
    fail_on: str = "any"
    sarif_file: str = "kascan.sarif"
    sarif_category: str = ""
    baseline: str = ""
    args: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Inputs:
        def get(name: str, default: str) -> str:
            return env.get(f"INPUT_{name}", default).strip() or default

        mode = get("MODE", "auto").lower()
        if mode not in MODES:
            raise KascanError(f"input mode: {mode!r} is not one of {', '.join(MODES)}")
        fail_on = get("FAIL_ON", "any").lower()
        if fail_on not in FAIL_ON:
            raise KascanError(f"input fail-on: {fail_on!r} is not one of {', '.join(FAIL_ON)}")
        verify_raw = get("VERIFY", "false").lower()
        if verify_raw not in ("true", "false", "1", "0", "yes", "no"):
            raise KascanError(f"input verify: {verify_raw!r} is not true or false")
        verify = verify_raw in ("true", "1", "yes")
        if fail_on in ("live", "live-or-unknown") and not verify:
            raise KascanError(f"input fail-on: {fail_on} needs verify: true")
        try:
            args = tuple(shlex.split(env.get("INPUT_ARGS", "")))
        except ValueError as exc:
            raise KascanError(f"input args: cannot split {exc}") from None
        for a in args:
            if a in ("-f", "--format", "--by-key") or a.startswith(("--format=", "-f")):
                raise KascanError(
                    f"input args: {a!r}: the Action chooses the format of stdout (its "
                    "annotations); write another report with -o FORMAT:FILE"
                )
        return cls(
            mode=mode,
            path=get("PATH", "."),
            verify=verify,
            api_url=get("API_URL", ""),
            fail_on=fail_on,
            sarif_file=env.get("INPUT_SARIF_FILE", "kascan.sarif").strip(),
            sarif_category=get("SARIF_CATEGORY", ""),
            baseline=get("BASELINE", ""),
            args=args,
        )


@dataclass(frozen=True, slots=True)
class Plan:
    kind: PlanKind
    args: tuple[str, ...]  # the kascan command line after ``kascan``
    describe: str  # for the log and the summary
    notes: tuple[str, ...] = ()  # warnings worth an annotation


def _git(repo: Path, *args: str, network: bool = False) -> subprocess.CompletedProcess[str]:
    """git in the workspace: the scanner's safe settings; no transport unless ``network`` (the
    one fetch of a missing commit from the checkout's own ``origin``)."""
    from kascan.sources.git.process import SAFE_CONFIG, git_env

    return subprocess.run(
        ["git", *SAFE_CONFIG, *args],
        cwd=repo,
        env=git_env(network=network),
        capture_output=True,
        text=True,
        check=False,
    )


def _has_commit(repo: Path, sha: str) -> bool:
    return _git(repo, "cat-file", "-e", f"{sha}^{{commit}}").returncode == 0


def _ensure_commit(repo: Path, sha: str) -> bool:
    """True when ``sha`` is in the clone, fetching it from ``origin`` if it is not (yet)."""
    if _has_commit(repo, sha):
        return True
    _git(repo, "fetch", "--no-tags", "--quiet", "origin", sha, network=True)
    return _has_commit(repo, sha)


def _count(repo: Path, base: str, head: str) -> int:
    proc = _git(repo, "rev-list", "--count", f"{base}..{head}")
    if proc.returncode != 0:
        raise KascanError(f"cannot list commits {base[:12]}..{head[:12]}: {proc.stderr.strip()}")
    return int(proc.stdout.strip() or 0)


def _event_range(event: str, payload: Mapping[str, object]) -> tuple[str, str] | str | None:
    """(base, head) for a range; "history" for everything; None when there is nothing to scan."""

    def dig(*keys: str) -> str:
        node: object = payload
        for k in keys:
            node = node.get(k) if isinstance(node, Mapping) else None
        return node if isinstance(node, str) else ""

    if event in PR_EVENTS:
        base, head = dig("pull_request", "base", "sha"), dig("pull_request", "head", "sha")
        if not (base and head):
            raise KascanError(f"{event} event payload has no pull_request base/head sha")
        return base, head
    if event == "merge_group":
        base, head = dig("merge_group", "base_sha"), dig("merge_group", "head_sha")
        if not (base and head):
            raise KascanError("merge_group event payload has no base_sha/head_sha")
        return base, head
    if event == "push":
        before, after = dig("before"), dig("after")
        if not after:
            raise KascanError("push event payload has no 'after' sha")
        if after == ZERO_SHA or payload.get("deleted") is True:
            return None  # a deleted branch brings no commits
        if not before or before == ZERO_SHA or payload.get("created") is True:
            return "history"
        return before, after
    return "history"


def _common(inputs: Inputs) -> list[str]:
    args: list[str] = []
    if inputs.baseline:
        args += ["--baseline", inputs.baseline]
    if inputs.verify:
        args.append("--verify")
        if inputs.api_url:
            args += ["--api-url", inputs.api_url]
    return args


def plan_scan(inputs: Inputs, event: str, payload: Mapping[str, object], workspace: Path) -> Plan:
    """What to scan for this event: the kascan arguments and a description."""
    target = inputs.path
    if inputs.mode == "path":
        # kascan prints paths relative to its working directory (the workspace, the repository
        # root): a target inside the workspace is passed relative to it, so SARIF, annotations
        # and the summary all name repository files with no --path-prefix
        arg = _relative_to(workspace, target).strip("/") or target
        if arg.startswith("-"):
            arg = "./" + arg  # a path, never an option
        return Plan("path", ("scan", arg), f"files under {target}")
    repo = workspace / target
    what = "history" if inputs.mode == "history" else _event_range(event, payload)
    notes: list[str] = []
    if _git(repo, "rev-parse", "--is-shallow-repository").stdout.strip() == "true":
        notes.append(
            "the clone is shallow, so history is incomplete: use actions/checkout with "
            "fetch-depth: 0"
        )
    if what is None:
        return Plan("empty", (), f"nothing: the {event} event brings no commits", tuple(notes))
    if isinstance(what, tuple):
        base, head = what
        if not _ensure_commit(repo, head):
            raise KascanError(
                f"commit {head[:12]} is not in the clone at {repo}: "
                "use actions/checkout with fetch-depth: 0"
            )
        if _ensure_commit(repo, base):
            n = _count(repo, base, head)
            span = f"commits {base[:12]}..{head[:12]}"
            if n == 0:
                return Plan("empty", (), f"{span}: no new commits", tuple(notes))
            plural = "commit" if n == 1 else "commits"
            return Plan(
                "range",
                ("git", target, "--range", f"{base}..{head}"),
                f"{span} ({n} {plural})",
                tuple(notes),
            )
        notes.append(
            f"commit {base[:12]} (the start of the range) is not in the clone (force-push?): "
            "scanning the whole history instead"
        )
    return Plan("history", ("git", target), "the whole git history", tuple(notes))


def _relative_to(workspace: Path, target: str) -> str:
    p = Path(target)
    if p.is_absolute():
        try:
            return p.resolve().relative_to(workspace.resolve()).as_posix()
        except ValueError:
            return ""
    return p.as_posix()


_MD_SPECIAL = set("\\`*_{}[]<>()#+!|~")


def md_cell(text: str) -> str:
    """Text that stays text in a markdown table cell."""
    out = []
    for ch in text.replace("\r", " ").replace("\n", " "):
        if ch == "&":
            out.append("&amp;")
        elif ch in _MD_SPECIAL:
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def summary_markdown(
    findings: Sequence[Mapping[str, object]], plan: Plan, failed: bool, notes: Sequence[str]
) -> str:
    n = len(findings)
    live = sum(1 for f in findings if _status(f) in LIVE)
    if n == 0:
        head = "## kascan: no leaked Kubeadapt API keys"
    else:
        noun = "key" if n == 1 else "keys"
        head = f"## kascan: {n} leaked Kubeadapt API {noun}" + (f" ({live} live)" if live else "")
    lines = [head, "", f"Scanned {md_cell(plan.describe)}.", ""]
    lines += [f"> [!WARNING]\n> {md_cell(note)}\n" for note in notes]
    if findings:
        lines += ["| File | Line | Commit | Key | Status |", "| --- | --- | --- | --- | --- |"]
        for f in findings[:SUMMARY_ROWS]:
            commit = f.get("commit")
            commit_cell = f"`{str(commit)[:12]}`" if isinstance(commit, str) and commit else ""
            secret = redact(str(f.get("secret") or ""))  # even if --show-secrets was passed
            lines.append(
                f"| {md_cell(str(f.get('path')))} | {f.get('line')} "
                f"| {commit_cell} | `{secret}` | {md_cell(_status(f))} |"
            )
        if n > SUMMARY_ROWS:
            lines.append(f"\n…and {n - SUMMARY_ROWS} more (see the annotations or the SARIF).")
        lines += [
            "",
            "A leaked key is a full credential: revoke it in the Kubeadapt dashboard "
            "(**Settings → API Keys**), mint a new one, update what uses it, and purge the old "
            "one from git history.",
        ]
    if failed:
        lines += ["", "This step fails because of these findings."]
    return "\n".join(lines) + "\n"


def _status(f: Mapping[str, object]) -> str:
    v = f.get("verification")
    status = v.get("status") if isinstance(v, Mapping) else None
    return str(status or "unchecked")


def _fails(findings: Sequence[Mapping[str, object]], fail_on: str) -> bool:
    """The CLI's own exit-status rule (``--fail-on``), so the Action and the CLI agree."""
    if fail_on == "never":
        return False
    from kascan.pipeline import exit_status

    return exit_status([_status(f) for f in findings], fail_on) == 1


def _append(path: str | None, text: str) -> None:
    if not path:
        return
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        raise KascanError(f"cannot write {path}: {exc.strerror or exc}") from None


def _write_outputs(env: Mapping[str, str], values: Mapping[str, str]) -> None:
    lines = []
    for name, value in values.items():
        if "\n" in value or "\r" in value:
            raise KascanError(f"output {name} has a line break")
        lines.append(f"{name}={value}\n")
    _append(env.get("GITHUB_OUTPUT"), "".join(lines))


def _load_payload(env: Mapping[str, str]) -> dict[str, object]:
    path = env.get("GITHUB_EVENT_PATH")
    if not path:
        return {}
    try:
        doc = json.loads(Path(path).read_text("utf-8"))
    except OSError as exc:
        raise KascanError(f"cannot read event payload {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise KascanError(
            f"cannot read event payload {path}: not JSON (line {exc.lineno})"
        ) from None
    if not isinstance(doc, dict):
        raise KascanError(f"cannot read event payload {path}: not a JSON object")
    return doc


def _annotate(kind: str, text: str) -> None:
    from kascan.report.github_report import escape_data

    print(f"::{kind}::{escape_data(text)}", flush=True)


def run(env: Mapping[str, str]) -> int:
    inputs = Inputs.from_env(env)
    workspace = Path(env.get("GITHUB_WORKSPACE") or Path.cwd())
    event = env.get("GITHUB_EVENT_NAME", "")
    plan = plan_scan(inputs, event, _load_payload(env), workspace)
    for note in plan.notes:
        _annotate("warning", f"kascan: {note}")
    from kascan.model import scrub
    from kascan.output import escape

    print(f"kascan: scanning {escape(scrub(plan.describe))}", flush=True)

    findings: list[dict[str, object]] = []
    sarif = inputs.sarif_file
    if plan.kind == "empty":
        if sarif:
            _empty_sarif(workspace / sarif, inputs)
    else:
        findings = _scan(plan, inputs, workspace, env)
    live = sum(1 for f in findings if _status(f) in LIVE)
    failed = _fails(findings, inputs.fail_on)
    _write_outputs(
        env,
        {
            "findings": str(len(findings)),
            "live": str(live),
            "sarif-file": sarif,
            "scanned": plan.describe,
        },
    )
    _append(env.get("GITHUB_STEP_SUMMARY"), summary_markdown(findings, plan, failed, plan.notes))
    return 1 if failed else 0


def _scan(
    plan: Plan, inputs: Inputs, workspace: Path, env: Mapping[str, str]
) -> list[dict[str, object]]:
    tmpdir = env.get("RUNNER_TEMP") or None
    fd, json_path = tempfile.mkstemp(prefix="kascan-", suffix=".json", dir=tmpdir)
    os.close(fd)
    try:
        cmd = [sys.executable, "-m", "kascan", *plan.args]
        cmd += ["-f", "github", "-o", f"json:{json_path}"]
        if inputs.sarif_file:
            sarif = workspace / inputs.sarif_file
            sarif.parent.mkdir(parents=True, exist_ok=True)
            cmd += ["-o", f"sarif:{sarif}"]
            if inputs.sarif_category:
                cmd += ["--sarif-category", inputs.sarif_category]
        cmd += _common(inputs)
        cmd += inputs.args
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("INPUT_")}
        proc = subprocess.run(cmd, cwd=workspace, env=child_env, check=False)
        if proc.returncode not in (0, 1):
            raise KascanError(f"kascan {' '.join(plan.args[:1])} failed (exit {proc.returncode})")
        try:
            doc = json.loads(Path(json_path).read_text("utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise KascanError(f"cannot read kascan's JSON report {json_path}: {exc}") from None
    finally:
        Path(json_path).unlink(missing_ok=True)
    found = doc.get("findings") if isinstance(doc, dict) else None
    if not isinstance(found, list):
        raise KascanError(f"kascan's JSON report {json_path} has no findings list")
    return [f for f in found if isinstance(f, dict)]


def _empty_sarif(path: Path, inputs: Inputs) -> None:
    """A run with no results, so an upload step after an empty push still has a file."""
    from kascan.report import ReportContext
    from kascan.report.sarif_report import render
    from kascan.stats import ScanStats

    ctx = ReportContext(ScanStats(), command="git", sarif_category=inputs.sarif_category or None)
    from kascan.output import write_report

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KascanError(f"cannot write report {path}: {exc.strerror or exc}") from None
    write_report(path, lambda fh: render([], fh, ctx), False)  # a planted FIFO is refused


def main() -> None:
    try:
        code = run(os.environ)
    except KascanError as exc:
        from kascan.model import scrub

        _annotate("error", f"kascan: {scrub(exc.message)}")
        code = 2
    sys.stdout.flush()
    sys.exit(code)


if __name__ == "__main__":
    main()
