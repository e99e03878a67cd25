"""SARIF 2.1.0 for GitHub code scanning: one run, one rule per rule id used, no key body ever.

- ``artifactLocation.uri`` is relative to the repository root (``uriBaseId`` ``%SRCROOT%``); an
  archive member is reported at the archive, the member named in the message and properties.
  A key in a commit's or a tag's message or identity (no file) has a ``logicalLocation`` whose
  ``fullyQualifiedName`` is ``commit 1a2b3c4d5e6f message``, the line and column in its message
  and in the properties ``gitObjectLine``/``gitObjectColumn``.
- ``partialFingerprints.primaryLocationLineHash`` is derived from the rule id and the key's
  fingerprint, not from the line: the same key stays one alert when it moves, when the file is
  renamed or deleted, and when it is found again in history.
- The key body is never written, even with ``--show-secrets``: a SARIF file is made to be
  uploaded, and an upload must not spread the secret further. Names, rule ids and descriptions,
  notes and the category are scrubbed too (a key in a file name is redacted).
- A name that is not UTF-8 is percent-encoded byte by byte in the URI (``caf%FF.txt``) and shown
  with ``\\xNN`` in texts and properties: the log is valid UTF-8 whatever the names are.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import TextIO, cast
from urllib.parse import quote

from kascan import __version__
from kascan.model import Finding, Status
from kascan.output import raw_bytes
from kascan.report import ReportContext, clean_context, clean_finding, clean_json
from kascan.report.where import Where, message, where

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/kascan/kascan"
SRCROOT = "%SRCROOT%"
RULE_SEVERITY = "9.1"  # a leaked credential: "critical" in code scanning (> 9.0)

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


def line_hash(f: Finding) -> str:
    digest = hashlib.sha256(f"kascan:{f.rule_id}:{f.fingerprint}".encode()).hexdigest()
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


def _result(f: Finding, rule_index: int, ctx: ReportContext) -> dict[str, object]:
    w = where(f, ctx)
    region: dict[str, object] = {"startLine": f.line, "startColumn": f.column, "endLine": f.line}
    end = f.end_column if f.end_column > f.column else f.column + len(f.secret.value)
    region["endColumn"] = end
    location: dict[str, object] = {
        "physicalLocation": {
            "artifactLocation": {"uri": uri_of(w.file), "uriBaseId": SRCROOT},
            "region": region,
        }
    }
    if w.logical:  # a commit's or a tag's message or identity: no file to point at
        location = {
            "logicalLocations": [
                {"name": w.file.rsplit(" ", 1)[-1], "fullyQualifiedName": w.file, "kind": "object"}
            ],
            "message": {"text": f"{w.file}, line {f.line}, column {f.column}"},
        }
    return {
        "ruleId": f.rule_id,
        "ruleIndex": rule_index,
        "level": LEVELS.get(f.verification.status, "error"),
        "message": {"text": message(f, w)},
        "locations": [location],
        "partialFingerprints": {"primaryLocationLineHash": line_hash(f)},
        "properties": _properties(f, w),
    }


def sarif_log(findings: Sequence[Finding], ctx: ReportContext) -> dict[str, object]:
    ctx = clean_context(ctx)
    ordered = sorted((clean_finding(f) for f in findings), key=Finding.sort_key)
    rule_ids: list[str] = []
    for f in ordered:
        if f.rule_id not in rule_ids:
            rule_ids.append(f.rule_id)
    index = {rid: i for i, rid in enumerate(rule_ids)}
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
        "originalUriBaseIds": {
            SRCROOT: {"description": {"text": "The root of the scanned repository."}}
        },
        "columnKind": "unicodeCodePoints",
        "results": [_result(f, index[f.rule_id], ctx) for f in ordered],
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
    if ctx.sarif_category:
        category = ctx.sarif_category
        run["automationDetails"] = {"id": category if category.endswith("/") else category + "/"}
    return cast(
        "dict[str, object]", clean_json({"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]})
    )


def render(findings: Sequence[Finding], out: TextIO, ctx: ReportContext) -> None:
    json.dump(sarif_log(findings, ctx), out, indent=2, ensure_ascii=False)
    out.write("\n")
