"""Where a finding is, as code scanning and workflow annotations need it: a repository file.

An archive member (``app.apk!assets/config.json``) is reported at the archive, since that is the
file in the repository; the member goes into the message. ``--path-prefix`` makes the paths of a
scanned subdirectory relative to the repository root; a path outside the working directory
(absolute, or ``../…``) is not repository-relative and is kept as it is.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from kascan.model import Finding
from kascan.report import ReportContext
from kascan.urls import canonical_repo

LIVE = frozenset({"live", "live-limited"})


@dataclass(frozen=True, slots=True)
class Where:
    file: str  # repository-relative, "/" separators (the archive, for a member)
    member: str | None  # the path inside the archive, ``!``-joined when nested
    logical: bool = False  # in a git object, not a file: ``file`` is e.g. ``commit 1a2b… message``


# where history finds a key outside any file: ``[submodule/]commit <12 hex> <part>``,
# ``[submodule/]tag <name> <part>`` (kascan.sources.git.blobstream.object_chunks) or a note,
# ``note <12 hex of the annotated object> message`` (kascan.sources.git.history)
_IN_COMMIT = re.compile(r"(?:^|/)commit ([0-9a-f]{12}) (?:message|author|committer|object)\Z")
_IN_TAG = re.compile(
    r"(?:^|/)(?:tag [^/].* (?:message|tagger|object)|note [0-9a-f]{12} message)\Z", re.S
)


def in_git_object(f: Finding) -> bool:
    """Whether the finding is in a commit's or a tag's own text (a message, an identity), not in
    a file. A commit location names the finding's own commit, which no file path of that commit
    can (its id depends on the tree that would hold the name)."""
    m = _IN_COMMIT.search(f.path)
    if m is not None:
        return f.commit is not None and f.commit.sha.startswith(m.group(1))
    return _IN_TAG.search(f.path) is not None and "!" not in f.path


def split_archive(path: str) -> tuple[str, str | None]:
    """``a.zip!b.jar!c.txt`` -> (``a.zip``, ``b.jar!c.txt``); a plain ``!`` in a name is kept.

    The part before the first ``!`` must look like a file with an extension, so a file named
    ``hello!world.txt`` stays one path.
    """
    outer, sep, member = path.partition("!")
    if sep and member and outer and "." in outer.rsplit("/", 1)[-1]:
        return outer, member
    return path, None


_DRIVE = re.compile(r"[A-Za-z]:[/\\]")


def outside(path: str) -> bool:
    """Whether ``path`` names a file outside the working directory: absolute (``/x``, ``C:/x``,
    ``//host/x``) or climbing out of it (``..``, ``../x``). Such a path cannot be made
    repository-relative by a prefix."""
    p = path.replace("\\", "/")
    return p.startswith("/") or p == ".." or p.startswith("../") or bool(_DRIVE.match(p))


def where(f: Finding, ctx: ReportContext) -> Where:
    if in_git_object(f):
        return Where(f.path, None, logical=True)
    outer, member = split_archive(f.path)
    if outer.startswith("./"):
        outer = outer[2:]
    if outside(outer):
        return Where(outer, member)
    prefix = ctx.path_prefix.replace("\\", "/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    if prefix.startswith("./"):
        prefix = prefix[2:]
    return Where(prefix + outer, member)


def commit_text(f: Finding) -> str:
    c = f.commit
    if c is None:
        return ""
    who = f"{c.author} <{c.email}>" if c.email else c.author
    return f"commit {c.sha[:12]} by {who} on {c.date}"


def status_text(f: Finding) -> str:
    """The verification status as a sentence, or '' when it was not checked."""
    v = f.verification
    if v.status == "unchecked":
        return ""
    words = {
        "live": "LIVE: the Kubeadapt API accepts it",
        "live-limited": "LIVE (limited scope): the Kubeadapt API accepts it",
        "inactive": "inactive: the Kubeadapt API no longer accepts it",
        "unknown": "unknown: it could not be checked; treat it as live",
    }
    text = words.get(v.status, v.status)
    if v.organization:
        text += f" (organization {v.organization})"
    return text


def repo_dir(label: str) -> str:
    """The directory a repository's files are under in a report over many repositories: its
    canonical name (``github.com/acme/billing``; a local path normalised, without a leading
    ``/`` or ``../``), so that the same repository has the same directory however it was named
    and in whichever shard it was swept."""
    name = canonical_repo(label)
    if name.startswith("file:"):
        name = name[5:].replace("\\", "/")
        while name.startswith(("/", "../")):
            name = name[3:] if name.startswith("../") else name[1:]
        if name in ("", ".", ".."):
            name = os.path.basename(os.path.abspath(label)) or "repository"
    return name


def details(f: Finding, w: Where) -> list[str]:
    """What a location adds to a sentence about it: the archive member, the decoding, the commit."""
    parts = []
    if w.member is not None:
        parts.append(f"in archive member {w.member}")
    if f.decoded:
        parts.append(f"(decoded from {f.decoded})")
    if f.commit is not None:
        parts.append(f"in {commit_text(f)}")
    return parts


def headline(f: Finding, w: Where) -> str:
    """The first sentence: the redacted key, where inside an archive or git object, the
    decoding, the commit and the repository."""
    parts = [f"Kubeadapt API key {f.secret.redacted} leaked"]
    if w.logical:
        parts.append(f"in {w.file}, line {f.line}, column {f.column}")
    parts += details(f, w)
    if f.repo:
        parts.append(f"in repository {f.repo}")
    return " ".join(parts) + "."


def advice(f: Finding) -> str:
    """What follows the headline: the verification status and what to do."""
    text = ""
    status = status_text(f)
    if status:
        text += f" Verification: {status}."
    if f.verification.status == "inactive":
        text += " Remove it from the code and history anyway."
    else:
        text += (
            " Revoke it in the Kubeadapt dashboard (Settings → API Keys), mint a new key, "
            "update what uses it, and remove it from history."
        )
    return text


def message(f: Finding, w: Where) -> str:
    """One paragraph naming the redacted key, where inside an archive, the commit and the status."""
    return headline(f, w) + advice(f)
