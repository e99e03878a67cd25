"""The one loopback check: plain http (the API URL, a registry, a GitHub API) is allowed only to a
loopback address."""

from __future__ import annotations


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
