"""GitHub workflow commands: ``::error file=…,line=…,col=…::message``, one per finding.

A workflow step that prints these gets inline annotations on the pull request without any
upload. Values are escaped as the runner expects (``%``, CR, LF in the message; also ``:`` and
``,`` in properties; :func:`kascan.output.workflow_data`), other control characters are made
visible, and each line is one command: a file named ``x\\n::stop-commands::tok`` cannot end it
or start another. Like SARIF, annotations never carry the key body (nor a key, token or URL
password in a name: everything is scrubbed): they are shown to everyone who can read the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

from kascan.model import Finding, scrub
from kascan.output import workflow_data, workflow_property
from kascan.report import ReportContext, clean_context, clean_finding
from kascan.report.where import message, where

COMMANDS = {"inactive": "warning"}  # everything else is an error: a leaked, usable key


def escape_data(value: str) -> str:
    """A workflow command's message: scrubbed and escaped (``%``, CR, LF; controls visible)."""
    return workflow_data(scrub(value))


def escape_property(value: str) -> str:
    """A workflow command's property value: as :func:`escape_data`, and ``:`` and ``,`` too."""
    return workflow_property(scrub(value))


def command(f: Finding, ctx: ReportContext) -> str:
    """One workflow command; every value is scrubbed and escaped (``render`` also passes a
    cleaned ``ctx``)."""
    f = clean_finding(f)
    w = where(f, ctx)
    end = f.end_column if f.end_column > f.column else f.column + len(f.secret.value)
    title = f"Leaked Kubeadapt API key {f.secret.redacted}"
    if f.verification.status != "unchecked":
        title += f" ({f.verification.status})"
    props = [
        ("file", w.file),
        ("line", str(f.line)),
        ("endLine", str(f.line)),
        ("col", str(f.column)),
        ("endColumn", str(end)),
        ("title", title),
    ]
    if w.logical:  # a commit or tag message: no file for the annotation to point at
        props = [("title", title)]
    kind = COMMANDS.get(f.verification.status, "error")
    joined = ",".join(f"{k}={escape_property(v)}" for k, v in props)
    return f"::{kind} {joined}::{escape_data(message(f, w))}"


def render(findings: Sequence[Finding], out: TextIO, ctx: ReportContext) -> None:
    ctx = clean_context(ctx)
    for f in sorted(findings, key=Finding.sort_key):
        out.write(command(f, ctx) + "\n")
