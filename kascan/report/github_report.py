"""GitHub workflow commands: ``::error file=…,line=…,col=…::message``, one per finding.

A workflow step that prints these gets inline annotations on the pull request without any
upload. Values are escaped as the runner expects (``%``, CR, LF in the message; also ``:`` and
``,`` in properties). Like SARIF, annotations never carry the key body: they are shown to
everyone who can read the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

from kascan.model import Finding
from kascan.report import ReportContext
from kascan.report.where import message, where

COMMANDS = {"inactive": "warning"}  # everything else is an error: a leaked, usable key


def escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def command(f: Finding, ctx: ReportContext) -> str:
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
    for f in sorted(findings, key=Finding.sort_key):
        out.write(command(f, ctx) + "\n")
