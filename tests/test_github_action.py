"""GitHub: workflow-command annotations, action.yml against GitHub's schema, and the action's scan
step run locally with the GITHUB_* environment of pull_request and push events on real repos."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from kascan.model import Commit, Finding, Secret, Verification
from kascan.report import ReportContext
from kascan.report.github_report import escape_data, escape_property
from kascan.report.github_report import render as render_github
from kascan.stats import ScanStats
from tests.conftest import ROOT, GitRepo, Result, findings_of, write_files
from tests.sarif_util import (
    action_schemas,
    assert_valid_sarif,
    location,
    results,
    unescape_command,
    validate,
    workflow_schema,
)

RunCli = Callable[..., Result]
ZERO = "0" * 40


# --- --format github ---------------------------------------------------------------------------


def test_escaping_rules() -> None:
    assert escape_data("50% done\r\nnext") == "50%25 done%0D%0Anext"
    assert escape_property("a:b,c%d\ne") == "a%3Ab%2Cc%25d%0Ae"
    assert escape_data("a:b,c") == "a:b,c"  # data keeps : and ,


def test_github_format_end_to_end(run_cli: RunCli, tmp_path: Path, key: str) -> None:
    odd = "we,ird:na%me\nx.txt"
    write_files(tmp_path, {odd: f"x\n   T={key}\n", "plain/a.cfg": f"{key}\n"})
    res = run_cli("scan", ".", "-f", "github", "--show-secrets", cwd=tmp_path)
    assert res.returncode == 1, res.stderr
    res.assert_no_leak(key)  # even with --show-secrets: annotations are public in the run log
    lines = res.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("::error ") for line in lines)
    js = {f["path"]: f for f in findings_of(run_cli("scan", ".", "-f", "json", cwd=tmp_path))}
    for line in lines:
        kind, props, data = unescape_command(line)
        assert kind == "error"
        f = js[props["file"]]  # the escaped path round-trips exactly
        assert props["line"] == str(f["line"]) and props["col"] == str(f["column"])
        assert props["endColumn"] == str(f["end_column"]) and props["endLine"] == props["line"]
        assert props["title"].startswith("Leaked Kubeadapt API key ka_live_")
        assert key[:12] in data and "Settings → API Keys" in data
    assert "file=we%2Cird%3Ana%25me%0Ax.txt,line=2,endLine=2,col=6," in res.stdout


def test_github_messages_with_newlines_and_levels(key: str) -> None:
    commit = Commit("b" * 40, "Eve", "eve@example.com", "2024-02-03T00:00:00+00:00")
    findings = [
        Finding(
            "kubeadapt-api-key", "pkg.zip!dir/two\nlines.txt", 1, 1, Secret(key), commit=commit
        ),
        Finding(
            "kubeadapt-api-key",
            "z.txt",
            7,
            3,
            Secret(key),
            verification=Verification("inactive"),
            end_column=43,
        ),
    ]
    out = io.StringIO()
    render_github(findings, out, ReportContext(ScanStats(), show_secrets=True))
    lines = out.getvalue().splitlines()
    assert len(lines) == 2  # the newline inside the member name did not split a command
    kind, props, data = unescape_command(lines[0])
    assert (kind, props["file"]) == ("error", "pkg.zip")
    assert "archive member dir/two\nlines.txt" in data and "commit bbbbbbbbbbbb by Eve" in data
    assert "%0A" in lines[0].partition("::")[2].partition("::")[2]
    kind, props, data = unescape_command(lines[1])
    assert kind == "warning" and props["endColumn"] == "43" and "(inactive)" in props["title"]
    assert key[8:] not in out.getvalue()


def test_github_stdout_with_sarif_and_json_files(run_cli: RunCli, tmp_path: Path, key: str) -> None:
    write_files(tmp_path, {"src/app.py": f"K = '{key}'\n"})
    res = run_cli(
        "scan", "src", "-f", "github", "-o", "sarif:k.sarif", "-o", "json:k.json", cwd=tmp_path
    )
    assert res.returncode == 1, res.stderr
    assert res.stdout.splitlines() == [res.stdout.splitlines()[0]]
    assert res.stdout.startswith("::error file=src/app.py,line=1,endLine=1,col=6,endColumn=46,")
    assert "1 reported" in res.stderr  # the summary goes to stderr, not into the commands
    doc = json.loads((tmp_path / "k.sarif").read_text())
    assert_valid_sarif(doc)
    assert json.loads((tmp_path / "k.json").read_text())["findings"][0]["line"] == 1


# --- action.yml --------------------------------------------------------------------------------


def _action() -> dict[str, object]:
    doc = yaml.safe_load((ROOT / "action.yml").read_text())
    assert isinstance(doc, dict)
    return doc


def test_action_yml_is_valid_action_metadata() -> None:
    doc = _action()
    for name, schema in action_schemas():
        assert validate(doc, schema) == [], name
        # and the schema does reject a composite step without a shell
        broken = json.loads(json.dumps(doc))
        del broken["runs"]["steps"][1]["shell"]
        broken2 = {k: v for k, v in doc.items() if k != "runs"}
        assert validate(broken2, schema), name
        if name == "check-jsonschema":
            assert validate(broken, schema), name


def test_action_wiring() -> None:
    doc = _action()
    runs = doc["runs"]
    assert isinstance(runs, dict) and runs["using"] == "composite"
    install, scan = runs["steps"]
    assert "pip install" in install["run"] and "$GITHUB_ACTION_PATH" in install["run"]
    assert scan["id"] == "scan" and "-m kascan.action" in scan["run"]
    inputs = doc["inputs"]
    assert isinstance(inputs, dict)
    for name in ("mode", "path", "verify", "api-url", "fail-on", "sarif-file", "baseline", "args"):
        assert name in inputs
    assert inputs["verify"]["default"] == "false"
    # every input reaches the script as INPUT_<NAME>, and only through env (no ${{ }} in run:)
    env_names = {f"INPUT_{n.upper().replace('-', '_')}" for n in inputs}
    assert set(scan["env"]) == {*env_names, "KASCAN_PYTHON"}
    assert scan["env"]["KASCAN_PYTHON"] == "${{ steps.install.outputs.python }}"
    assert install["id"] == "install" and "$GITHUB_OUTPUT" in install["run"]
    assert "${{" not in scan["run"] and "${{" not in install["run"]
    outputs = doc["outputs"]
    assert isinstance(outputs, dict)
    for name in ("findings", "live", "sarif-file", "scanned"):
        assert outputs[name]["value"] == "${{ steps.scan.outputs." + name + " }}"


def _readme_workflow() -> dict[str, object]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    flows = [yaml.safe_load(b) for b in blocks if "upload-sarif" in b]
    assert flows, "README has a workflow example using upload-sarif"
    flow = flows[0]
    assert isinstance(flow, dict)
    if True in flow:  # YAML 1.1 reads the key `on` as a boolean
        flow["on"] = flow.pop(True)
    return flow


def test_readme_workflow_example() -> None:
    flow = _readme_workflow()
    schema = workflow_schema()
    if schema is not None:
        assert validate(flow, schema) == []
    jobs = flow["jobs"]
    assert isinstance(jobs, dict)
    (job,) = jobs.values()
    assert job["permissions"]["security-events"] == "write"
    steps = job["steps"]
    checkout = next(s for s in steps if str(s.get("uses", "")).startswith("actions/checkout"))
    assert checkout["with"]["fetch-depth"] == 0
    upload = next(s for s in steps if "upload-sarif" in str(s.get("uses", "")))
    kascan = next(s for s in steps if "kascan" in str(s.get("uses", "")))
    assert kascan["id"] in upload["with"]["sarif_file"]
    assert "always()" in str(upload.get("if", "")) or "cancelled()" in str(upload.get("if", ""))


# --- the action's scan step, run locally -------------------------------------------------------


@dataclass
class ActionRun:
    result: Result
    outputs: dict[str, str]
    summary: str
    workspace: Path

    def sarif(self, name: str = "kascan.sarif") -> dict[str, object]:
        doc = json.loads((self.workspace / name).read_text())
        assert_valid_sarif(doc)
        assert isinstance(doc, dict)
        return doc

    def annotations(self) -> list[tuple[str, dict[str, str], str]]:
        return [unescape_command(x) for x in self.result.stdout.splitlines() if x.startswith("::")]


@pytest.fixture
def run_action(env: dict[str, str], tmp_path: Path) -> Callable[..., ActionRun]:
    def run(
        workspace: Path,
        event: str,
        payload: dict[str, object] | None = None,
        **inputs: str,
    ) -> ActionRun:
        runner = tmp_path / "runner"
        runner.mkdir(exist_ok=True)
        event_path = runner / "event.json"
        event_path.write_text(json.dumps(payload or {}))
        out, summary = runner / "output.txt", runner / "summary.md"
        for p in (out, summary):
            p.write_text("")
        e = dict(env)
        e.update(
            GITHUB_ACTIONS="true",
            GITHUB_EVENT_NAME=event,
            GITHUB_EVENT_PATH=str(event_path),
            GITHUB_WORKSPACE=str(workspace),
            GITHUB_OUTPUT=str(out),
            GITHUB_STEP_SUMMARY=str(summary),
            RUNNER_TEMP=str(runner),
            PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        )
        for k, v in inputs.items():
            e[f"INPUT_{k.upper()}"] = v
        proc = subprocess.run(
            [sys.executable, "-m", "kascan.action"],
            cwd=workspace,
            env=e,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        outputs = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
        return ActionRun(
            Result(proc.returncode, proc.stdout, proc.stderr),
            outputs,
            summary.read_text(),
            workspace,
        )

    return run


@pytest.fixture
def history(
    git_repo: GitRepo, keys: Callable[[int], list[str]]
) -> tuple[GitRepo, list[str], list[str]]:
    """main: c1 adds k1; c2 adds k2; c3 adds k3 in another file; c4 touches nothing secret."""
    ks = keys(3)
    shas = [
        git_repo.commit("c1", {"base.env": f"K1={ks[0]}\n"}),
        git_repo.commit("c2", {"app/config.py": f"# c2\nKEY = '{ks[1]}'\n"}),
        git_repo.commit("c3", {"deploy/values.yaml": f"api:\n  key: {ks[2]}\n"}),
        git_repo.commit("c4", {"README": "docs\n"}),
    ]
    return git_repo, shas, ks


def pr_payload(base: str, head: str) -> dict[str, object]:
    return {
        "action": "synchronize",
        "number": 7,
        "pull_request": {"number": 7, "base": {"sha": base, "ref": "main"}, "head": {"sha": head}},
    }


def push_payload(before: str, after: str, created: bool = False) -> dict[str, object]:
    return {"ref": "refs/heads/main", "before": before, "after": after, "created": created}


def test_plan_for_pull_request_and_push(history: tuple[GitRepo, list[str], list[str]]) -> None:
    """The range decision itself, on a real repository (no `kascan git` needed)."""
    from kascan.action import Inputs, plan_scan

    repo, (c1, c2, c3, c4), _ = history
    ws = repo.path
    pr = plan_scan(Inputs(), "pull_request", pr_payload(c1, c3), ws)
    assert pr.kind == "range" and pr.args == ("git", ".", "--range", f"{c1}..{c3}")
    assert pr.describe == f"commits {c1[:12]}..{c3[:12]} (2 commits)"
    push = plan_scan(Inputs(), "push", push_payload(c3, c4), ws)
    assert push.args[-1] == f"{c3}..{c4}" and "(1 commit)" in push.describe
    assert plan_scan(Inputs(), "push", push_payload(ZERO, c4), ws).args == ("git", ".")
    assert plan_scan(Inputs(), "push", push_payload(c2, c4, created=True), ws).kind == "history"
    assert plan_scan(Inputs(), "push", push_payload(c4, c4), ws).kind == "empty"
    assert plan_scan(Inputs(), "push", push_payload(c4, c2), ws).kind == "empty"  # rewind
    assert plan_scan(Inputs(), "push", push_payload(c4, ZERO), ws).kind == "empty"  # delete
    assert plan_scan(Inputs(), "schedule", {}, ws).kind == "history"
    assert plan_scan(Inputs(mode="history"), "pull_request", pr_payload(c1, c3), ws).kind == (
        "history"
    )
    mg = {"merge_group": {"base_sha": c2, "head_sha": c4}}
    assert plan_scan(Inputs(), "merge_group", mg, ws).args[-1] == f"{c2}..{c4}"
    gone = plan_scan(Inputs(), "push", push_payload("f" * 40, c4), ws)  # force-push: before gone
    assert gone.kind == "history" and "force-push" in gone.notes[0]


def test_empty_push_is_a_clean_pass(
    run_action: Callable[..., ActionRun], history: tuple[GitRepo, list[str], list[str]]
) -> None:
    repo, shas, ks = history
    run = run_action(repo.path, "push", push_payload(shas[-1], shas[-1]))
    assert run.result.returncode == 0, run.result.output
    run.result.assert_no_leak(*ks)
    assert run.outputs == {
        "findings": "0",
        "live": "0",
        "sarif-file": "kascan.sarif",
        "scanned": f"commits {shas[-1][:12]}..{shas[-1][:12]}: no new commits",
    }
    assert "no leaked Kubeadapt API keys" in run.summary and "no new commits" in run.summary
    assert results(run.sarif()) == []  # an upload step after it still finds a valid file
    deleted = run_action(repo.path, "push", {"before": shas[-1], "after": ZERO, "deleted": True})
    assert deleted.result.returncode == 0 and deleted.outputs["findings"] == "0"


def test_pull_request_scans_only_the_prs_commits(
    run_action: Callable[..., ActionRun], history: tuple[GitRepo, list[str], list[str]]
) -> None:
    repo, (c1, c2, c3, c4), (k1, k2, k3) = history
    run = run_action(repo.path, "pull_request", pr_payload(c1, c4), **{"sarif_category": "pr"})
    assert run.result.returncode == 1, run.result.output
    run.result.assert_no_leak(k1, k2, k3)
    assert f"scanning commits {c1[:12]}..{c4[:12]} (3 commits)" in run.result.stdout
    assert run.outputs["findings"] == "2" and run.outputs["live"] == "0"
    assert run.outputs["sarif-file"] == "kascan.sarif"
    # the summary table: one row per finding, with file, line, commit, redacted key, status
    rows = [r for r in run.summary.splitlines() if r.startswith("| ") and "---" not in r]
    assert rows[0] == "| File | Line | Commit | Key | Status |"
    body = rows[1:]
    assert len(body) == 2
    assert any(f"| app/config.py | 2 | `{c2[:12]}` | `{k2[:12]}…` | unchecked |" == r for r in body)
    assert any(r.startswith("| deploy/values.yaml | 2 | `" + c3[:12]) for r in body)
    assert not any(c1[:12] in r for r in body) and "base.env" not in run.summary
    for text in (run.summary, (repo.path / "kascan.sarif").read_text()):
        assert k2[8:] not in text
    notes = run.annotations()
    assert sorted(p["file"] for _, p, _ in notes) == ["app/config.py", "deploy/values.yaml"]
    doc = run.sarif()
    assert doc["runs"][0]["automationDetails"]["id"] == "pr/"  # type: ignore[index]
    assert {location(r)[0] for r in results(doc)} == {"app/config.py", "deploy/values.yaml"}
    # fail-on never: same findings, the step passes
    never = run_action(repo.path, "pull_request", pr_payload(c1, c4), fail_on="never")
    assert never.result.returncode == 0 and never.outputs["findings"] == "2"


def test_push_scans_the_pushed_range_and_new_branches_fully(
    run_action: Callable[..., ActionRun], history: tuple[GitRepo, list[str], list[str]]
) -> None:
    repo, (_, c2, _, c4), (k1, k2, k3) = history
    run = run_action(repo.path, "push", push_payload(c2, c4), sarif_file="out/k.sarif")
    assert run.result.returncode == 1, run.result.output
    assert "(2 commits)" in run.result.stdout
    assert run.outputs["findings"] == "1" and run.outputs["sarif-file"] == "out/k.sarif"
    assert "deploy/values.yaml" in run.summary and "app/config.py" not in run.summary
    assert len(results(run.sarif("out/k.sarif"))) == 1
    new = run_action(repo.path, "push", push_payload(ZERO, c4, created=True))
    assert new.result.returncode == 1
    assert "the whole git history" in new.result.stdout and new.outputs["findings"] == "3"
    new.result.assert_no_leak(k1, k2, k3)


def test_missing_head_commit_is_a_clear_error(
    run_action: Callable[..., ActionRun], history: tuple[GitRepo, list[str], list[str]]
) -> None:
    repo, (c1, *_), _ = history
    run = run_action(repo.path, "pull_request", pr_payload(c1, "e" * 40))
    assert run.result.returncode == 2
    assert "::error::kascan: commit eeeeeeeeeeee is not in the clone" in run.result.stdout
    assert "fetch-depth: 0" in run.result.stdout and "Traceback" not in run.result.stderr


def test_bad_inputs_are_errors(
    run_action: Callable[..., ActionRun], history: tuple[GitRepo, list[str], list[str]]
) -> None:
    repo, shas, _ = history
    run = run_action(repo.path, "push", push_payload(shas[0], shas[1]), fail_on="live")
    assert run.result.returncode == 2 and "fail-on: live needs verify: true" in run.result.stdout
    bad = run_action(repo.path, "push", push_payload(shas[0], shas[1]), mode="everything")
    assert bad.result.returncode == 2 and "input mode" in bad.result.stdout
    assert bad.outputs == {}


def test_path_mode_reports_repository_relative_paths(
    run_action: Callable[..., ActionRun], tmp_path: Path, key: str
) -> None:
    ws = tmp_path / "ws"
    write_files(ws, {"services/api/.env": f"X=1\nKUBEADAPT={key}\n", "other.txt": f"{key}\n"})
    run = run_action(ws, "workflow_dispatch", {}, mode="path", path="services", fail_on="never")
    assert run.result.returncode == 0, run.result.output
    run.result.assert_no_leak(key)
    assert run.outputs["findings"] == "1"
    (note,) = run.annotations()
    assert note[1]["file"] == "services/api/.env" and note[1]["line"] == "2"
    assert "| services/api/.env | 2 |  | `" in run.summary
    (r,) = results(run.sarif())
    assert location(r)[0] == "services/api/.env"
    # an absolute path inside the workspace names the same repository files
    again = run_action(ws, "workflow_dispatch", {}, mode="path", path=str(ws / "services"))
    (note,) = again.annotations()
    assert note[1]["file"] == "services/api/.env"
    (r,) = results(again.sarif())
    assert location(r)[0] == "services/api/.env"


# --- action.yml itself, run step by step the way a runner runs a composite action --------------

_EXPR = re.compile(r"\$\{\{\s*([^}]+?)\s*\}\}")


def _run_composite(
    workspace: Path,
    runner: Path,
    env: dict[str, str],
    event: str,
    payload: dict[str, object],
    inputs: dict[str, str],
) -> tuple[dict[str, str], list[subprocess.CompletedProcess[str]]]:
    """Evaluate ``${{ inputs.* / steps.*.outputs.* / github.workspace }}``, run each step's
    ``run`` with bash (``-e``, like ``shell: bash``), collect step outputs, then the action's."""
    doc = _action()
    values = {n: str(spec.get("default", "")) for n, spec in doc["inputs"].items()}  # type: ignore[union-attr]
    values.update(inputs)
    step_outputs: dict[str, dict[str, str]] = {}
    event_path = runner / "event.json"
    event_path.write_text(json.dumps(payload))
    summary = runner / "summary.md"
    summary.touch()

    def ev(text: str) -> str:
        def one(m: re.Match[str]) -> str:
            expr = m.group(1)
            if expr.startswith("inputs."):
                return values[expr[len("inputs.") :]]
            if expr == "github.workspace":
                return str(workspace)
            _, sid, _, name = expr.split(".", 3)
            return step_outputs.get(sid, {}).get(name, "")

        return _EXPR.sub(one, text)

    procs = []
    for i, step in enumerate(doc["runs"]["steps"]):  # type: ignore[index]
        out = runner / f"output-{i}.txt"
        out.write_text("")
        e = dict(env)
        e.update(
            GITHUB_ACTIONS="true",
            GITHUB_ACTION_PATH=str(ROOT),
            GITHUB_EVENT_NAME=event,
            GITHUB_EVENT_PATH=str(event_path),
            GITHUB_WORKSPACE=str(workspace),
            GITHUB_OUTPUT=str(out),
            GITHUB_STEP_SUMMARY=str(summary),
            RUNNER_TEMP=str(runner),
        )
        e.pop("PYTHONPATH", None)  # the installed copy must do it on its own
        e.update({k: ev(v) for k, v in step.get("env", {}).items()})
        cwd = ev(step.get("working-directory", str(workspace)))
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            cwd=cwd,
            env=e,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        procs.append(proc)
        step_outputs[step.get("id", str(i))] = dict(
            line.split("=", 1) for line in out.read_text().splitlines() if "=" in line
        )
        if proc.returncode != 0:
            break
    outputs = {n: ev(spec["value"]) for n, spec in doc["outputs"].items()}  # type: ignore[union-attr]
    return outputs, procs


@pytest.mark.slow
def test_action_yml_installs_from_its_checkout_and_scans(
    env: dict[str, str], tmp_path: Path, key: str
) -> None:
    ws, runner = tmp_path / "ws", tmp_path / "runner"
    runner.mkdir()
    write_files(ws, {"src/app/settings.py": f"X = 1\nKEY = '{key}'\n", "ok.txt": "fine\n"})
    outputs, procs = _run_composite(
        ws,
        runner,
        env,
        "workflow_dispatch",
        {},
        {"mode": "path", "path": "src", "sarif-category": "kascan-src"},
    )
    install, scan = procs
    assert install.returncode == 0, install.stderr[-2000:]
    assert scan.returncode == 1, scan.stdout + scan.stderr  # findings fail the step by default
    assert outputs == {
        "findings": "1",
        "live": "0",
        "sarif-file": "kascan.sarif",
        "scanned": "files under src",
    }
    assert "::error file=src/app/settings.py,line=2," in scan.stdout
    for text in (scan.stdout, scan.stderr, (ws / "kascan.sarif").read_text()):
        assert key[8:] not in text
    doc = json.loads((ws / "kascan.sarif").read_text())
    assert_valid_sarif(doc)
    assert doc["runs"][0]["automationDetails"]["id"] == "kascan-src/"
    assert "| src/app/settings.py | 2 |" in (runner / "summary.md").read_text()
    assert (runner / "kascan-venv").is_dir()  # installed into its own venv, not the system
