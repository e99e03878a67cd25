"""Ask the Kubeadapt API whether each found key still works: the only module that talks HTTP.

Contract (vendor docs): ``GET {api-url}/v1/organization`` with ``Authorization: Bearer <key>``.

=========================================  ================
reply                                      status
=========================================  ================
200                                        ``live`` (+ organization name/id when the body has them)
403 with the API's JSON error body         ``live-limited`` (works, lacks organization:read)
403 that is not JSON (a proxy or WAF)      ``unknown``
401                                        ``inactive``
429, 5xx, timeout, connection error        ``unknown`` after bounded retries
TLS error, 3xx (never followed), other     ``unknown`` at once
=========================================  ================

Each distinct key (API URL + fingerprint) is sent once per run, from a few worker threads that
share one ``httpx.Client`` (one connection pool). Every wait is bounded: a per-request timeout,
at most ``tries`` attempts, ``Retry-After`` honoured up to ``max_wait`` seconds, and an overall
``budget`` after which keys not yet checked are reported ``unknown``. The key travels only in the
Authorization header; nothing key-bearing is put in a detail, an exception or a log line.

``httpx`` is imported inside functions so that ``import kascan.cli`` stays lean.
"""

from __future__ import annotations

import json
import queue
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from kascan import __version__
from kascan.errors import KascanError
from kascan.model import Finding, Secret, Verification, scrub
from kascan.urls import is_loopback

if TYPE_CHECKING:
    import httpx

DEFAULT_API_URL = "https://public-api.kubeadapt.io"
ENV_API_URL = "KASCAN_API_URL"
ENDPOINT = "/v1/organization"

# I/O-bound work against one host: 8 requests in flight turn ~100 ms of network latency into
# ~80 keys/s (1,000 keys in ~13 s) while staying far from anything that looks like a flood to
# the vendor's rate limiter. More threads buy little (measured: see README) and risk 429s.
DEFAULT_CONCURRENCY = 8
MAX_CONCURRENCY = 32
DEFAULT_TIMEOUT = 10.0  # seconds, per request
DEFAULT_BUDGET = 120.0  # seconds for the whole run's verification
DEFAULT_TRIES = 3
DEFAULT_MAX_WAIT = 10.0  # cap on one Retry-After / backoff sleep
BACKOFF_BASE = 0.25  # seconds; doubled per retry, with jitter
MAX_BODY = 64 * 1024  # bytes of a reply read at most
_WINDOW_PER_WORKER = 16  # findings held back waiting for their key's result, per worker

KEY_SHAPE = re.compile(r"ka_live_[A-Za-z0-9]{32}")

MEANING: dict[str, str] = {
    "live": "the key works: revoke it now in the Kubeadapt dashboard (Settings → API Keys), "
    "then rotate it",
    "live-limited": "the key works (without the organization:read scope): revoke it now in "
    "Settings → API Keys, then rotate it",
    "inactive": "the API no longer accepts the key (already revoked); remove it anyway",
    "unknown": "could not tell whether the key works; treat it as live until proven otherwise",
    "unchecked": "not checked",
}

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def is_key(value: str) -> bool:
    """True when ``value`` is exactly a Kubeadapt key: only those are ever sent to the API."""
    return KEY_SHAPE.fullmatch(value) is not None


def check_api_url(url: str) -> str:
    """The API URL without a trailing slash, or a KascanError saying why it is refused.

    Only ``https://``, or ``http://`` to a loopback host (127.0.0.0/8, localhost, [::1]): a key
    is never sent in clear text over a network.
    """
    shown = scrub(url)[:100]
    if not url or any(c.isspace() or ord(c) < 0x20 or c == "\x7f" for c in url):
        raise KascanError(f"bad API URL {shown!r}: empty or contains whitespace")
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise KascanError(f"bad API URL {shown!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or not host:
        raise KascanError(f"bad API URL {shown!r}: must be https://HOST[:PORT][/PATH]")
    if parts.username is not None or parts.password is not None:
        raise KascanError("bad API URL: must not contain a user name or password")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise KascanError(f"bad API URL {shown!r}: must not have a query or fragment")
    if scheme == "http" and not is_loopback(host):
        raise KascanError(
            f"refusing API URL {shown!r}: http:// is only allowed to a loopback address "
            "(127.0.0.0/8, localhost, [::1]); use https://"
        )
    return url.rstrip("/")


def resolve_api_url(option: str | None, environ: dict[str, str] | None = None) -> str:
    """``--api-url``, else ``KASCAN_API_URL``, else the default; checked. Never from a file."""
    import os

    env = os.environ if environ is None else environ
    return check_api_url(option or env.get(ENV_API_URL) or DEFAULT_API_URL)


@dataclass(frozen=True, slots=True)
class VerifySettings:
    api_url: str = DEFAULT_API_URL
    timeout: float = DEFAULT_TIMEOUT
    concurrency: int = DEFAULT_CONCURRENCY
    budget: float = DEFAULT_BUDGET
    tries: int = DEFAULT_TRIES
    max_wait: float = DEFAULT_MAX_WAIT
    backoff: float = BACKOFF_BASE


def _clean(value: object, limit: int = 120) -> str | None:
    """An organization name/id as safe one-line text (no terminal escapes), or None."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    text = scrub(_CONTROL.sub("", str(value))).strip()
    if not text:
        return None
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _organization(body: bytes) -> tuple[str | None, str | None]:
    try:
        doc = json.loads(body)
    except ValueError:
        return None, None
    for candidate in (
        doc,
        doc.get("organization") if isinstance(doc, dict) else None,
        doc.get("data") if isinstance(doc, dict) else None,
    ):
        if isinstance(candidate, dict) and ("name" in candidate or "id" in candidate):
            return _clean(candidate.get("name")), _clean(candidate.get("id"))
    return None, None


def _is_json_object(content_type: str, body: bytes) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    if not (media == "application/json" or media.endswith("+json")):
        return False
    try:
        return isinstance(json.loads(body), dict)
    except ValueError:
        return False


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        from email.utils import parsedate_to_datetime

        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _tls_error(exc: BaseException) -> bool:
    import ssl

    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _short(exc: BaseException) -> str:
    text = scrub(" ".join(str(exc).split()))
    return text[:100] if text else type(exc).__name__


class Verifier:
    """Checks keys on worker threads over one shared client; one check per distinct key."""

    def __init__(self, settings: VerifySettings) -> None:
        self.settings = settings
        self.url = check_api_url(settings.api_url) + ENDPOINT
        self.concurrency = max(1, min(MAX_CONCURRENCY, settings.concurrency))
        self.started = time.monotonic()
        self.deadline = self.started + settings.budget
        self.requests = 0
        self._cache: dict[tuple[str, str], Future[Verification]] = {}
        self._jobs: queue.SimpleQueue[tuple[Secret, Future[Verification]] | None] = (
            queue.SimpleQueue()
        )
        self._threads: list[threading.Thread] = []
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()
        self._queued = 0

    # -- the client, made on first use -------------------------------------------------------
    def _make_client(self) -> httpx.Client:
        import http.cookiejar

        import httpx

        host = urlsplit(self.url).hostname or ""
        return httpx.Client(
            follow_redirects=False,
            verify=True,
            # a proxy from the environment is honoured for the real API (https is tunnelled),
            # never for a loopback test server
            trust_env=not is_loopback(host),
            headers={"User-Agent": f"kascan/{__version__}", "Accept": "application/json"},
            limits=httpx.Limits(
                max_connections=self.concurrency, max_keepalive_connections=self.concurrency
            ),
            timeout=httpx.Timeout(self.settings.timeout),
            # no cookie from one key's reply is ever sent with another key
            cookies=http.cookiejar.CookieJar(
                http.cookiejar.DefaultCookiePolicy(allowed_domains=[])
            ),
        )

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    # -- public ------------------------------------------------------------------------------
    def submit(self, secret: Secret) -> Future[Verification]:
        """A future for the key's verification; the same future for a key seen before."""
        cache_key = (self.url, secret.fingerprint)
        fut = self._cache.get(cache_key)
        if fut is not None:
            return fut
        fut = Future()
        self._cache[cache_key] = fut
        if not is_key(secret.value):
            fut.set_result(
                Verification("unchecked", detail="not a Kubeadapt key shape; not sent to the API")
            )
            return fut
        if self._client is None:
            self._client = self._make_client()
        self._jobs.put((secret, fut))
        self._queued += 1
        if len(self._threads) < min(self.concurrency, self._queued):
            t = threading.Thread(target=self._work, name="kascan-verify", daemon=True)
            self._threads.append(t)
            t.start()
        return fut

    def result(self, fut: Future[Verification]) -> Verification:
        """Wait for a result, never past the budget (plus one request's timeout)."""
        try:
            return fut.result(timeout=max(0.0, self.remaining()) + self.settings.timeout + 1)
        except FutureTimeout:
            return Verification("unknown", detail="verification time limit reached")

    def check(self, secret: Secret) -> Verification:
        return self.result(self.submit(secret))

    def close(self) -> None:
        # queued checks are dropped; in-flight ones end within their timeout on daemon threads
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job[1].cancel()
        for _ in self._threads:
            self._jobs.put(None)
        end = time.monotonic() + 1.0
        for t in self._threads:
            t.join(max(0.0, end - time.monotonic()))
        if self._client is not None and not any(t.is_alive() for t in self._threads):
            self._client.close()

    # -- workers -----------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            secret, fut = job
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                result = self._check(secret)
            except Exception as exc:  # a worker never dies with a key-bearing traceback
                result = Verification("unknown", detail=f"internal error: {type(exc).__name__}")
            fut.set_result(result)

    def _request(self, secret: Secret, timeout: float) -> tuple[int, str, str | None, bytes]:
        import httpx

        assert self._client is not None
        with self._lock:
            self.requests += 1
        started = time.monotonic()
        with self._client.stream(
            "GET",
            self.url,
            headers={"Authorization": f"Bearer {secret.value}"},
            timeout=httpx.Timeout(timeout),
        ) as resp:
            body = bytearray()
            for part in resp.iter_bytes():
                body += part
                if len(body) >= MAX_BODY:
                    break
                if time.monotonic() - started > timeout:
                    raise httpx.ReadTimeout("reply too slow")
            return (
                resp.status_code,
                resp.headers.get("content-type", ""),
                resp.headers.get("retry-after"),
                bytes(body[:MAX_BODY]),
            )

    def _check(self, secret: Secret) -> Verification:
        import httpx

        s = self.settings
        last = "not tried"
        tries = 0
        for attempt in range(max(1, s.tries)):
            left = self.remaining()
            if left <= 0:
                break
            tries += 1
            wait: float | None = None
            try:
                code, ctype, retry_after, body = self._request(secret, min(s.timeout, left))
            except httpx.TimeoutException:
                last = "timed out"
            except httpx.ConnectError as exc:
                if _tls_error(exc):
                    return Verification("unknown", detail=f"TLS error: {_short(exc)}")
                last = f"connection failed ({_short(exc)})"
            except httpx.TransportError as exc:
                last = f"network error ({type(exc).__name__})"
            else:
                if code == 200:
                    name, org_id = _organization(body)
                    return Verification("live", "HTTP 200", name, org_id)
                if code == 401:
                    return Verification("inactive", "HTTP 401: key not accepted")
                if code == 403:
                    if _is_json_object(ctype, body):
                        return Verification(
                            "live-limited", "HTTP 403: key works but lacks organization:read"
                        )
                    return Verification(
                        "unknown", "HTTP 403 without the API's JSON body (a proxy or firewall?)"
                    )
                if 300 <= code < 400:
                    return Verification("unknown", f"HTTP {code} redirect not followed")
                if code == 429 or code >= 500:
                    last = f"HTTP {code}"
                    wait = _retry_after(retry_after)
                else:
                    return Verification("unknown", f"unexpected HTTP {code}")
            if attempt + 1 >= s.tries:
                break
            if wait is None:
                wait = s.backoff * (2**attempt) * random.uniform(0.75, 1.25)
            wait = min(wait, s.max_wait)
            if wait >= self.remaining():
                break
            time.sleep(wait)
        if tries == 0:
            return Verification("unknown", "verification time limit reached")
        plural = "try" if tries == 1 else "tries"
        suffix = "" if tries == s.tries else "; verification time limit reached"
        return Verification("unknown", f"{last} after {tries} {plural}{suffix}")


def verify_findings(
    findings: Iterable[Finding],
    api_url: str = DEFAULT_API_URL,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    concurrency: int = DEFAULT_CONCURRENCY,
    budget: float = DEFAULT_BUDGET,
    tries: int = DEFAULT_TRIES,
    max_wait: float = DEFAULT_MAX_WAIT,
    backoff: float = BACKOFF_BASE,
    on_verifier: Callable[[Verifier], None] | None = None,
) -> Iterator[Finding]:
    """The findings, in order, each with ``verification`` filled in.

    Keys are checked concurrently while findings keep arriving; a finding is yielded as soon
    as its key's result (and every earlier finding's) is in.
    """
    settings = VerifySettings(api_url, timeout, concurrency, budget, tries, max_wait, backoff)
    verifier = Verifier(settings)
    if on_verifier is not None:
        on_verifier(verifier)
    window = verifier.concurrency * _WINDOW_PER_WORKER
    pending: deque[tuple[Finding, Future[Verification]]] = deque()

    def ready() -> bool:
        return bool(pending) and (pending[0][1].done() or len(pending) > window)

    def take() -> Finding:
        finding, fut = pending.popleft()
        if not finding.secret.known and finding.verification.status != "unchecked":
            return finding  # read back from a report: keep the status recorded there
        return replace(finding, verification=verifier.result(fut))

    try:
        for finding in findings:
            pending.append((finding, verifier.submit(finding.secret)))
            while ready():
                yield take()
        while pending:
            yield take()
    finally:
        verifier.close()
