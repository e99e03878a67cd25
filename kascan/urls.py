"""Names of places: the one loopback check (plain http, for the API URL, a registry or a GitHub
API, is allowed only to a loopback address) and the one canonical name of a repository (shards,
sweep state and fleet reports agree on it)."""

from __future__ import annotations

import os
import re


def is_loopback(host: str) -> bool:
    """``localhost``, ``127.0.0.0/8`` or ``::1`` (brackets allowed)."""
    h = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if h.lower() in ("localhost", "localhost."):
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


_SCP = re.compile(r"^(?:[^@/:]+@)?(?P<host>[^/:]+):(?P<path>(?!//).+)$")
_URL = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*)://(?P<rest>.*)$")


def canonical_repo(ref: str) -> str:
    """One name per repository, whatever form it was written in: ``host/owner/repo``
    for https/ssh/git/scp-like URLs (user, port, trailing ``/`` and ``.git`` dropped, host
    lowercased), ``file:<path>`` for ``file://`` URLs and local paths (normalised, not resolved,
    so that every worker of a sharded sweep computes the same name)."""
    ref = ref.strip()
    m = _URL.match(ref)
    if m:
        scheme = m.group("scheme").lower()
        rest = m.group("rest")
        if scheme == "file":
            return "file:" + _strip_repo(os.path.normpath(rest or "/"))
        netloc, _, path = rest.partition("/")
        host = netloc.rpartition("@")[2]
        host = host[: host.find("]") + 1] if host.startswith("[") else host.partition(":")[0]
        return host.lower() + "/" + _strip_repo(path.lstrip("/"))
    if not os.path.isabs(ref) and not ref.startswith("."):
        m = _SCP.match(ref)
        if m and "/" not in m.group("host"):
            return m.group("host").lower() + "/" + _strip_repo(m.group("path").lstrip("/"))
    return "file:" + _strip_repo(os.path.normpath(ref))


def _strip_repo(path: str) -> str:
    path = path.rstrip("/")
    if path.endswith(".git"):
        path = path[:-4].rstrip("/")
    return path


def repository_uri(ref: str) -> str | None:
    """An absolute URI for a repository reference (SARIF ``repositoryUri``), without any user or
    password: a URL as given (``https://host/o/r.git``), an scp-like ``git@host:o/r`` as
    ``ssh://host/o/r``, an absolute path as a ``file://`` URI. None for a relative path (what it
    is relative to is not known where a report is merged)."""
    from urllib.parse import quote

    def enc(text: str, safe: str = "/-._~!$&'()*+,;=@:%") -> str:
        try:
            raw = text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            raw = text.encode("utf-8", "surrogatepass")
        return quote(raw, safe=safe)

    ref = ref.strip()
    m = _URL.match(ref)
    if m:
        scheme, rest = m.group("scheme").lower(), m.group("rest")
        netloc, slash, path = rest.partition("/")
        host = netloc.rpartition("@")[2]
        return f"{scheme}://{enc(host, '[]:')}{slash}{enc(path)}"
    if not os.path.isabs(ref) and not ref.startswith("."):
        m = _SCP.match(ref)
        if m and "/" not in m.group("host"):
            return f"ssh://{enc(m.group('host'), '[]')}/{enc(m.group('path').lstrip('/'))}"
    if os.path.isabs(ref):
        path = ref.replace("\\", "/")
        return "file://" + enc(path if path.startswith("/") else "/" + path)  # C:/x: file:///C:/x
    return None
