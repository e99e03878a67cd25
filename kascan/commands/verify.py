"""``kascan verify [KEY]``: is one key still live?"""

from __future__ import annotations

import sys

import click

from kascan.errors import KascanError
from kascan.options import api_url_option, verify_timeout_option


@click.command("verify")
@click.argument("key", required=False, metavar="[KEY]")
@api_url_option
@verify_timeout_option
def verify(key: str | None, api_url: str | None, verify_timeout: float) -> int:
    """Check whether one key still works. Reads it from stdin when KEY is not given (so it
    stays out of shell history).

    Exit codes: 1 live or live-limited (revoke it now), 0 inactive, 2 unknown (could not tell)
    or an error.
    """
    from kascan.verify import MEANING, Verifier, VerifySettings, is_key, resolve_api_url

    url = resolve_api_url(api_url)
    if key is None:
        if sys.stdin.isatty():
            key = click.prompt("Kubeadapt API key", hide_input=True, err=True)
        else:
            key = sys.stdin.buffer.read(4097).decode("utf-8", "replace")
    value = (key or "").strip()
    if not is_key(value):
        raise KascanError(
            "not a Kubeadapt API key: expected ka_" + "live_ and 32 letters or digits "
            f"(got {len(value)} characters)"
        )
    from kascan.model import Secret

    verifier = Verifier(VerifySettings(url, timeout=verify_timeout, concurrency=1))
    try:
        v = verifier.check(Secret(value))
    finally:
        verifier.close()
    click.echo(f"{v.status}: {MEANING[v.status]}")
    if v.organization or v.organization_id:
        org = v.organization or ""
        if v.organization_id:
            org = f"{org} (id {v.organization_id})".strip()
        click.echo(f"organization: {org}")
    if v.detail:
        click.echo(f"detail: {v.detail}")
    if v.status in ("live", "live-limited"):
        return 1
    return 0 if v.status == "inactive" else 2
