"""Listing the repositories of a GitHub organisation or user through the REST API.

``GET /orgs/{org}/repos`` or ``/users/{user}/repos``, 100 a page, following ``Link: rel="next"``
on the same origin only (the token is never sent elsewhere), waiting out rate limits
(``Retry-After``, or ``X-RateLimit-Reset`` when ``X-RateLimit-Remaining`` is 0) up to a cap.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote, urlsplit

from kascan import __version__
from kascan.errors import KascanError

if TYPE_CHECKING:
    import httpx

MAX_WAIT = 900.0  # seconds: a longer rate-limit wait is an error, not a hang
MAX_RETRIES = 5  # rate-limit waits per page
MAX_PAGES = 1000
_LINK = re.compile(r'<([^>]*)>\s*;\s*rel="?([^";]+)"?')


@dataclass(frozen=True, slots=True)
class GitHubRepo:
    full_name: str
    clone_url: str
    fork: bool
    archived: bool


def check_api_url(url: str, option: str = "--github-api-url") -> str:
    """https anywhere; plain http only to a loopback address (a local test or proxy)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return url.rstrip("/")
    if parts.scheme == "http" and host:
        from kascan.urls import is_loopback

        if is_loopback(host):
            return url.rstrip("/")
    raise KascanError(f"{option} {url!r}: must be an https URL (or http on a loopback address)")


def _origin(url: str) -> tuple[str, str, int | None]:
    p = urlsplit(url)
    return (p.scheme, (p.hostname or "").lower(), p.port)


def _next_link(header: str | None) -> str | None:
    for url, rel in _LINK.findall(header or ""):
        if "next" in rel.split():
            return str(url)
    return None


def _wait_for(resp: httpx.Response, now: float) -> float | None:
    """Seconds to wait before retrying a rate-limited answer, or None if it is not one."""
    if resp.status_code not in (403, 429):
        return None
    retry_after = resp.headers.get("retry-after")
    if retry_after is not None:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            return 60.0
    if resp.headers.get("x-ratelimit-remaining") == "0":
        try:
            reset = float(resp.headers.get("x-ratelimit-reset", ""))
        except ValueError:
            return 60.0
        return max(0.0, reset - now) + 1.0
    if resp.status_code == 429:
        return 60.0
    return None


def _message(resp: httpx.Response) -> str:
    try:
        doc = resp.json()
    except ValueError:
        return ""
    msg = doc.get("message") if isinstance(doc, dict) else None
    return f": {msg}" if isinstance(msg, str) else ""


def list_repos(
    api_url: str,
    kind: Literal["org", "user"],
    name: str,
    *,
    token: str | None = None,
    include_forks: bool = False,
    include_archived: bool = True,
    max_wait: float = MAX_WAIT,
    warn: Callable[[str], None] = lambda _: None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[GitHubRepo]:
    import httpx

    base = check_api_url(api_url)
    if not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?", name):
        raise KascanError(f"--github-{kind} {name!r}: not a GitHub {kind} name")
    what = f"GitHub {'organization' if kind == 'org' else 'user'} {name}"
    path = "orgs" if kind == "org" else "users"
    url: str | None = (
        f"{base}/{path}/{quote(name)}/repos?per_page=100&type={'all' if kind == 'org' else 'owner'}"
    )
    origin = _origin(base)
    headers = {
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
        "User-Agent": f"kascan/{__version__}",
    }
    if token:
        headers["Authorization"] = f"Bearer {token}"
    out: list[GitHubRepo] = []
    pages = 0
    with httpx.Client(headers=headers, timeout=30.0, follow_redirects=False) as client:
        while url is not None:
            pages += 1
            if pages > MAX_PAGES:
                raise KascanError(f"listing {what}: more than {MAX_PAGES} pages; giving up")
            resp = _get(client, url, what, max_wait, warn, sleep)
            ctype = resp.headers.get("content-type", "")
            try:
                if "json" not in ctype:
                    raise ValueError
                items = resp.json()
            except ValueError:
                shown = ctype.split(";")[0] or "no content type"
                raise KascanError(
                    f"listing {what}: {url.split('?')[0]} did not answer JSON ({shown}); "
                    "is --github-api-url the REST API root (e.g. https://HOST/api/v3)?"
                ) from None
            if not isinstance(items, list):
                raise KascanError(f"listing {what}: expected a JSON list of repositories")
            for item in items:
                repo = _repo(item)
                if repo is None:
                    raise KascanError(f"listing {what}: a repository entry has no clone_url")
                if repo.fork and not include_forks:
                    continue
                if repo.archived and not include_archived:
                    continue
                out.append(repo)
            url = _next_link(resp.headers.get("link"))
            if url is not None and _origin(url) != origin:
                raise KascanError(
                    f"listing {what}: the next page is on another host ({_origin(url)[1]}); "
                    "not following it with the token"
                )
    return out


def _repo(item: object) -> GitHubRepo | None:
    if not isinstance(item, dict):
        return None
    clone = item.get("clone_url")
    if not isinstance(clone, str) or not clone:
        return None
    return GitHubRepo(
        full_name=str(item.get("full_name") or clone),
        clone_url=clone,
        fork=bool(item.get("fork")),
        archived=bool(item.get("archived")),
    )


def _get(
    client: httpx.Client,
    url: str,
    what: str,
    max_wait: float,
    warn: Callable[[str], None],
    sleep: Callable[[float], None],
) -> httpx.Response:
    import httpx

    for _ in range(MAX_RETRIES + 1):
        try:
            resp = client.get(url)
        except httpx.HTTPError as exc:
            raise KascanError(f"listing {what}: {type(exc).__name__}: {exc}") from None
        wait = _wait_for(resp, time.time())
        if wait is None:
            break
        if wait > max_wait:
            raise KascanError(
                f"listing {what}: rate limited for {wait:.0f}s more (over the {max_wait:.0f}s "
                "cap); set GITHUB_TOKEN or try again later"
            )
        warn(f"GitHub API rate limit: waiting {wait:.0f}s")
        sleep(wait)
    else:
        raise KascanError(f"listing {what}: still rate limited after {MAX_RETRIES} waits")
    if resp.status_code == 200:
        return resp
    if resp.status_code == 401:
        raise KascanError(f"listing {what}: 401 bad credentials (check GITHUB_TOKEN)")
    if resp.status_code == 404:
        raise KascanError(f"listing {what}: 404 not found{_message(resp)}")
    if 300 <= resp.status_code < 400:
        raise KascanError(
            f"listing {what}: HTTP {resp.status_code} redirect not followed "
            f"(to {resp.headers.get('location', '?')}); check --github-api-url"
        )
    raise KascanError(f"listing {what}: HTTP {resp.status_code}{_message(resp)}")
