"""SARIF 2.1.0 for GitHub code scanning: one run, one rule per rule id used, one result per key
and repository, no key body ever.

- ``artifactLocation.uri`` is relative to the repository root (``uriBaseId`` ``%SRCROOT%``); an
  archive member is reported at the archive, the member named in the message and properties.
  A path outside the working directory (absolute, ``../``) is an absolute ``file://`` URI
  without ``uriBaseId`` (code scanning makes one under the checkout relative again).
- One result per key (and rule) in each repository: its location is the key's first file in
  report order; every other file it is in is a ``relatedLocation`` (up to 99: code scanning keeps
  100 locations of a result), linked from the message, which says how many places there are.
- A key in a commit's or a tag's message or identity (no file) has a ``logicalLocation`` whose
  ``fullyQualifiedName`` is ``commit 1a2b3c4d5e6f message``, the line and column in its message
  and in the properties ``gitObjectLine``/``gitObjectColumn``; that is the result's location only
  when the key is in no file, else the place is named in the message and in
  ``gitObjectLocations`` (a related location needs a file).
- ``partialFingerprints.primaryLocationLineHash`` is derived from the rule id and the key's
  fingerprint, not from the line: the same key stays one alert when it moves, when the file is
  renamed or deleted, and when it is found again in history.
- Over several repositories (a sweep, ``kascan git A B``, ``merge`` of sweep reports) it is still
  one run (code scanning rejects a file of more than 20 runs, and ignores ``uriBaseId``): each
  repository's files are under its canonical name (``github.com/acme/billing/cm.yaml``),
  ``versionControlProvenance`` maps each repository to that directory, and the repository is
  part of the fingerprint, so the same key in two repositories is two alerts.
- The key body is never written, even with ``--show-secrets``: a SARIF file is made to be
  uploaded, and an upload must not spread the secret further. Names, rule ids and descriptions,
  notes and the category are scrubbed too (a key in a file name is redacted); in a message with
  links, ``[``, ``]`` and ``\\`` of names are escaped, so a name cannot forge a link.
- A name that is not UTF-8 is percent-encoded byte by byte in the URI (``caf%FF.txt``) and shown
  with ``\\xNN`` in texts and properties: the log is valid UTF-8 whatever the names are.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from typing import TextIO, cast
from urllib.parse import quote

from kascan import __version__
from kascan.model import Finding, Status
from kascan.output import raw_bytes
from kascan.report import ReportContext, clean_context, clean_finding, clean_json
from kascan.report.where import (
    Where,
    advice,
    details,
    headline,
    outside,
    repo_dir,
    where,
)
from kascan.urls import repository_uri

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/kascan/kascan"
SRCROOT = "%SRCROOT%"
RULE_SEVERITY = "9.1"  # a leaked credential: "critical" in code scanning (> 9.0)
# code scanning keeps 100 locations of a result and rejects more than 1000: the primary and 99
MAX_RELATED = 99
MAX_LINKS = 10  # related locations linked from the message; the rest are counted
_DRIVE = re.compile(r"[A-Za-z]:/")

LEVELS: dict[Status, str] = {
    "live": "error",
    "live-limited": "error",
    "unknown": "error",
    "unchecked": "error",  # not checked is not harmless: a leaked key until shown otherwise
    "inactive": "warning",  # revoked already; still worth removing
}
SEVERITIES: dict[Status, str] = {
    "live": "9.1",
    "live-limited": "8.5",
    "unknown": "8.0",
    "unchecked": "8.0",
    "inactive": "3.0",
}

HELP_TEXT = """\
A Kubeadapt API key (ka_live_ followed by 32 letters and digits) was found. A key is a full \
credential for its organization: anyone who can read this file or its history can use it.

To fix it:
1. Revoke the key: Kubeadapt dashboard -> Settings -> API Keys -> revoke the key that starts \
with the characters shown in the alert.
2. Mint a new key there and store it in a secret store (for GitHub Actions: a repository or \
environment secret), never in the code.
3. Update every consumer of the old key (deployments, CI secrets, local configs) to the new one.
4. Remove the key from the code, and purge it from git history (git filter-repo or BFG), then \
force-push and ask collaborators to re-clone. Revoking comes first: a purge does not reach \
clones, forks or caches that already have it.
Verify with `kascan scan --verify` that the old key is inactive.
"""

HELP_MARKDOWN = """\
A **Kubeadapt API key** (`ka_live_` followed by 32 letters and digits) was found. A key is a \
full credential for its organization: anyone who can read this file or its history can use it.

**To fix it**

1. **Revoke** the key: Kubeadapt dashboard → **Settings → API Keys** → revoke the key that \
starts with the characters shown in the alert.
2. **Mint a new key** there and keep it in a secret store (for GitHub Actions: a repository \
or environment secret), never in the code.
3. **Update every consumer** of the old key (deployments, CI secrets, local configs).
4. **Remove it from the code and purge it from git history** (`git filter-repo` or BFG), then \
force-push and ask collaborators to re-clone. Revoke first: a purge does not reach clones, \
forks or caches that already have the key.

Check with `kascan scan --verify` that the old key is now *inactive*.
"""

BASE_TAGS = ("security", "secret", "credential", "external/cwe/cwe-798", "kubeadapt")


def uri_of(path: str) -> str:
    """A relative URI reference: percent-encoded, ``:`` too (so no segment looks like a scheme);
    a name that is not UTF-8 by its exact bytes (``%FF``)."""
    return quote(raw_bytes(path), safe="/-._~!$&'()*+,;=@")


def file_uri(path: str) -> str:
    """An absolute ``file://`` URI for a path outside the working directory (``/x``, ``C:/x``,
    ``../x``, resolved against the current directory), percent-encoded like :func:`uri_of`."""
    p = path.replace("\\", "/")
    if not (p.startswith("/") or _DRIVE.match(p)):
        p = os.path.normpath(os.path.join(os.getcwd(), p)).replace("\\", "/")
    if _DRIVE.match(p):  # file:///C:/x (the drive's colon kept)
        return "file:///" + p[:2] + uri_of(p[2:])
    if p.startswith("//"):  # a UNC path: file://host/share/x
        return "file:" + uri_of(p)
    return "file://" + uri_of(p)


def line_hash(f: Finding, repo: str | None = None) -> str:
    """From the rule id and the key's fingerprint (and, in a report over several repositories,
    the repository's directory): not from the line, so an alert survives moves and renames."""
    extra = f":{repo}" if repo else ""
    digest = hashlib.sha256(f"kascan:{f.rule_id}:{f.fingerprint}{extra}".encode()).hexdigest()
    return f"{digest[:16]}:1"


def _rule(rule_id: str, ctx: ReportContext) -> dict[str, object]:
    known = {r.id: r for r in ctx.rules}
    rule = known.get(rule_id)
    description = (rule.description if rule and rule.description else "") or "Kubeadapt API key"
    tags = list(BASE_TAGS)
    for tag in rule.tags if rule else ():
        if tag not in tags:
            tags.append(tag)
    return {
        "id": rule_id,
        "name": "".join(w.capitalize() for w in rule_id.replace("_", "-").split("-")) or rule_id,
        "shortDescription": {"text": f"Leaked {description}"},
        "fullDescription": {
            "text": f"A {description} is committed or stored in plain text. It is a credential: "
            "revoke it and rotate it, then remove it from the code and history."
        },
        "help": {"text": HELP_TEXT, "markdown": HELP_MARKDOWN},
        "helpUri": INFORMATION_URI,
        "defaultConfiguration": {"level": "error"},
        "properties": {
            "security-severity": RULE_SEVERITY,
            "precision": "very-high",
            "problem.severity": "error",
            "tags": tags,
        },
    }


def _properties(f: Finding, w: Where) -> dict[str, object]:
    v = f.verification
    props: dict[str, object] = {
        "secret": f.secret.redacted,
        "fingerprint": f.fingerprint,
        "verification": v.status,
        "security-severity": SEVERITIES.get(v.status, RULE_SEVERITY),
    }
    if v.organization:
        props["organization"] = v.organization
    if v.organization_id:
        props["organizationId"] = v.organization_id
    if v.detail:
        props["verificationDetail"] = v.detail
    if w.member is not None:
        props["archiveMember"] = w.member
    if w.logical:
        props.update(gitObject=w.file, gitObjectLine=f.line, gitObjectColumn=f.column)
    if f.decoded:
        props["decoded"] = f.decoded
    if f.repo:
        props["repo"] = f.repo
    if f.commit is not None:
        props.update(
            commit=f.commit.sha,
            author=f.commit.author,
            email=f.commit.email,
            date=f.commit.date,
        )
    return props


def escape_text(text: str) -> str:
    """Plain text for a message with embedded links: ``\\``, ``[`` and ``]`` escaped (SARIF
    3.11.6), so a name cannot forge a link."""
    return text.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")


def _region(f: Finding) -> dict[str, object]:
    end = f.end_column if f.end_column > f.column else f.column + len(f.secret.value)
    return {"startLine": f.line, "startColumn": f.column, "endLine": f.line, "endColumn": end}


def _physical(f: Finding, w: Where, base: str) -> dict[str, object]:
    """A file: relative to ``%SRCROOT%`` (under ``base``, the repository's directory, in a report
    over several repositories), or an absolute ``file://`` URI for a path outside it."""
    if outside(w.file):
        art: dict[str, object] = {"uri": file_uri(w.file)}
    else:
        art = {"uri": uri_of(base + w.file), "uriBaseId": SRCROOT}
    return {"artifactLocation": art, "region": _region(f)}


def _location(f: Finding, w: Where, base: str) -> dict[str, object]:
    if w.logical:  # a commit's or a tag's message or identity: no file to point at
        return {
            "logicalLocations": [
                {"name": w.file.rsplit(" ", 1)[-1], "fullyQualifiedName": w.file, "kind": "object"}
            ],
            "message": {"text": f"{w.file}, line {f.line}, column {f.column}"},
        }
    return {"physicalLocation": _physical(f, w, base)}


def _place(f: Finding, w: Where) -> str:
    """A location in a sentence: ``deploy/values.yaml:2``, ``app.apk!assets/x.json:3``,
    ``commit 1a2b3c4d5e6f message, line 1``."""
    if w.logical:
        return f"{w.file}, line {f.line}"
    member = f"!{w.member}" if w.member is not None else ""
    return f"{w.file}{member}:{f.line}"


def _related_message(f: Finding, w: Where) -> str:
    return " ".join([f"The same key ({f.secret.redacted})", *details(f, w)]) + "."


def _related(i: int, f: Finding, w: Where, base: str) -> dict[str, object]:
    props: dict[str, object] = {}
    if w.member is not None:
        props["archiveMember"] = w.member
    if f.decoded:
        props["decoded"] = f.decoded
    if f.commit is not None:
        props["commit"] = f.commit.sha
    loc: dict[str, object] = {
        "id": i,
        "physicalLocation": _physical(f, w, base),
        "message": {"text": _related_message(f, w)},
    }
    if props:
        loc["properties"] = props
    return loc


def _join(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _result(
    group: Sequence[Finding], rule_index: int, ctx: ReportContext, base: str, repo_key: str | None
) -> dict[str, object]:
    """One key (one rule) in one repository: the first file location in report order is the
    primary location (a git object's only when the key is in no file), every other file location
    a related location, linked from the message; git object locations are named in the message
    and the properties (a related location needs a file)."""
    placed = [(f, where(f, ctx)) for f in group]
    first = next((i for i, (_, w) in enumerate(placed) if not w.logical), 0)
    f, w = placed[first]
    others = placed[:first] + placed[first + 1 :]
    files = [(g, v) for g, v in others if not v.logical]
    objects = [(g, v) for g, v in others if v.logical]
    related = files[:MAX_RELATED]
    esc = escape_text if related else str
    text = esc(headline(f, w))
    if len(placed) > 1:
        items = ["here"]
        items += [
            f"[{escape_text(_place(g, v))}]({i})"
            + (f" (commit {g.commit.sha[:12]})" if g.commit is not None else "")
            for i, (g, v) in enumerate(related[:MAX_LINKS], 1)
        ]
        items += [esc(_place(g, v)) for g, v in objects[: max(0, MAX_LINKS - len(related))]]
        more = len(placed) - len(items)
        if more:
            items.append(f"{more} more (the JSON report lists every location)")
        where_ = " in this repository" if f.repo else ""
        text += f" The same key is in {len(placed)} places{where_}: {_join(items)}."
    text += esc(advice(f))
    props = _properties(f, w)
    props["locations"] = len(placed)
    if objects:
        props["gitObjectLocations"] = [
            f"{v.file}, line {g.line}, column {g.column}" for g, v in objects
        ]
    if len(files) > len(related):
        props["locationsNotListed"] = len(files) - len(related)
    result: dict[str, object] = {
        "ruleId": f.rule_id,
        "ruleIndex": rule_index,
        "level": LEVELS.get(f.verification.status, "error"),
        "message": {"text": text},
        "locations": [_location(f, w, base)],
    }
    if related:
        result["relatedLocations"] = [
            _related(i, g, v, base) for i, (g, v) in enumerate(related, 1)
        ]
    result["partialFingerprints"] = {"primaryLocationLineHash": line_hash(f, repo_key)}
    result["properties"] = props
    return result


def _groups(ordered: Sequence[Finding]) -> list[list[Finding]]:
    """The findings of one key and rule in one repository, in report order; groups in the order
    of their first finding."""
    by: dict[tuple[str, str, str], list[Finding]] = {}
    for f in ordered:
        by.setdefault((f.repo or "", f.rule_id, f.fingerprint), []).append(f)
    return list(by.values())


def _repositories(ordered: Sequence[Finding], ctx: ReportContext) -> list[str] | None:
    """The repositories of a report over several (a sweep, ``kascan git A B``, ``merge`` of
    sweep reports): every one scanned, and every one a finding names; None for a report over
    one repository (or none), which keeps the plain layout."""
    labels = list(dict.fromkeys(f.repo for f in ordered if f.repo))
    if not ctx.repos and len(labels) < 2:
        return None
    scanned = [r.repo for r in ctx.repos if r.status != "failed"]
    return list(dict.fromkeys([*scanned, *labels]))


def _fleet(
    repos: Sequence[str], dirs: dict[str, str], ctx: ReportContext
) -> tuple[list[dict[str, object]], dict[str, object]]:
    """``versionControlProvenance`` (each repository, mapped to its directory under
    ``%SRCROOT%``) and a per-repository summary for the run's properties."""
    provenance: list[dict[str, object]] = []
    for label in repos:
        uri = repository_uri(label)
        if uri is None and ctx.command == "git":  # swept here: relative to this directory
            uri = repository_uri(os.path.abspath(label))
        if uri is None:  # a relative path in a merged report: relative to where it was swept
            continue
        provenance.append(
            {
                "repositoryUri": uri,
                "mappedTo": {"uri": uri_of(dirs[label]) + "/", "uriBaseId": SRCROOT},
                "properties": {"repo": label},
            }
        )
    summaries = {r.repo: r for r in ctx.repos}
    listed: list[dict[str, object]] = []
    for label in list(dict.fromkeys([*repos, *summaries])):
        entry: dict[str, object] = {"repo": label}
        if label in dirs:
            entry["directory"] = dirs[label]
        s = summaries.get(label)
        if s is not None:
            entry.update(
                status=s.status, commits=s.commits, blobs=s.blobs, findings=s.findings, live=s.live
            )
            if s.error:
                entry["error"] = s.error
        listed.append(entry)
    return provenance, {"repositories": listed}


def sarif_log(findings: Sequence[Finding], ctx: ReportContext) -> dict[str, object]:
    ctx = clean_context(ctx)
    ordered = sorted((clean_finding(f) for f in findings), key=Finding.sort_key)
    rule_ids: list[str] = []
    for f in ordered:
        if f.rule_id not in rule_ids:
            rule_ids.append(f.rule_id)
    index = {rid: i for i, rid in enumerate(rule_ids)}
    repos = _repositories(ordered, ctx)
    dirs = {label: repo_dir(label) for label in repos or ()}
    results = []
    for group in _groups(ordered):
        f = group[0]
        d = dirs.get(f.repo) if f.repo else None
        results.append(_result(group, index[f.rule_id], ctx, d + "/" if d else "", d))
    root = "The root of the scanned repository."
    if repos is not None:
        root = (
            "The root of a report over several repositories: each repository's files are under "
            "a directory named after it (host/owner/repository, or its local path); "
            "versionControlProvenance maps each repository to its directory."
        )
    run: dict[str, object] = {
        "tool": {
            "driver": {
                "name": "kascan",
                "version": __version__,
                "semanticVersion": __version__,
                "informationUri": INFORMATION_URI,
                "rules": [_rule(rid, ctx) for rid in rule_ids],
            }
        },
        "originalUriBaseIds": {SRCROOT: {"description": {"text": root}}},
        "columnKind": "unicodeCodePoints",
        "results": results,
        "invocations": [
            {
                "executionSuccessful": True,
                "toolExecutionNotifications": [
                    {"level": "warning", "message": {"text": note}} for note in ctx.notes
                ],
            }
        ],
        "properties": {"command": ctx.command, "summary": ctx.stats.as_dict()},
    }
    if repos is not None:
        provenance, props = _fleet(repos, dirs, ctx)
        if provenance:
            run["versionControlProvenance"] = provenance
        cast("dict[str, object]", run["properties"]).update(props)
    if ctx.sarif_category:
        category = ctx.sarif_category
        run["automationDetails"] = {"id": category if category.endswith("/") else category + "/"}
    return cast(
        "dict[str, object]", clean_json({"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]})
    )


def render(findings: Sequence[Finding], out: TextIO, ctx: ReportContext) -> None:
    json.dump(sarif_log(findings, ctx), out, indent=2, ensure_ascii=False)
    out.write("\n")
