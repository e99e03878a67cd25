"""Images pulled from a registry over the OCI distribution API (``/v2/``).

* https with certificate verification; plain http only to a loopback registry (127.0.0.0/8,
  ``::1``, ``localhost``: tried over https first, as docker does), the same rule as the API URL.
* Authentication as registries ask for it (``WWW-Authenticate``): anonymous, a bearer token from
  the registry's token service (credentials from ``--registry-auth`` / ``REGISTRY_AUTH_FILE`` /
  ``~/.docker/config.json`` ``auths`` entries), HTTP basic, or a token from the environment
  (``KASCAN_REGISTRY_TOKEN``, sent to the registry named in the reference only).
* Redirects (blob downloads often go to a storage host) are followed by hand, at most 5, never to
  plain http outside loopback, and the Authorization header is dropped as soon as the target is
  not the registry itself.
* Manifests are verified against their digest; layers by :mod:`~kascan.sources.image.layers` as
  they stream (nothing is written to disk).

``httpx`` is imported when a registry is used, never at start-up.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urljoin, urlsplit

from kascan import __version__
from kascan.errors import KascanError
from kascan.sources.image.manifest import (
    ACCEPT,
    MAX_MANIFEST,
    check_digest,
    clean,
    images,
    sha256_digest,
    valid_digest,
)
from kascan.sources.image.types import Blob, Image, ImageSettings, Readable, Warn
from kascan.urls import is_loopback

if TYPE_CHECKING:
    import httpx

ENV_TOKEN = "KASCAN_REGISTRY_TOKEN"  # noqa: S105 - the variable's name
_NAME = re.compile(
    r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_HOST = re.compile(
    r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::\d{1,5})?$"
)
_MAX_REDIRECTS = 5
_MAX_TOKEN_BODY = 1 << 20
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True, slots=True)
class Reference:
    host: str  # as written (host[:port]); docker.io for Docker Hub
    name: str
    tag: str | None
    digest: str | None

    @property
    def api_host(self) -> str:
        return "registry-1.docker.io" if self.host == "docker.io" else self.host

    def __str__(self) -> str:
        out = f"{self.host}/{self.name}"
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def looks_like_registry_ref(ref: str) -> bool:
    first, sep, _ = ref.partition("/")
    return bool(sep) and ("." in first or ":" in first or first == "localhost")


def parse_reference(text: str) -> Reference:
    """``HOST[:PORT]/NAME[:TAG][@sha256:DIGEST]``; a name with no host is on Docker Hub."""
    shown = clean(text, 200)
    if not text or any(c.isspace() for c in text):
        raise KascanError(f"{shown!r}: not an image reference")
    rest, _, digest = text.partition("@")
    if digest and valid_digest(digest) is None:
        raise KascanError(f"{shown}: invalid digest (expected sha256:<64 hex digits>)")
    first, sep, tail = rest.partition("/")
    if sep and looks_like_registry_ref(rest):
        host, path = first, tail
    else:
        host, path = "docker.io", rest
    if not _HOST.match(host):
        raise KascanError(f"{shown}: invalid registry host")
    name, tag = path, None
    slash = path.rfind("/")
    colon = path.rfind(":")
    if colon > slash:
        name, tag = path[:colon], path[colon + 1 :]
        if not _TAG.match(tag):
            raise KascanError(f"{shown}: invalid tag")
    if host == "docker.io" and "/" not in name:
        name = "library/" + name
    if not _NAME.match(name):
        raise KascanError(f"{shown}: invalid repository name (lowercase letters, digits, . _ -)")
    if tag is None and not digest:
        tag = "latest"
    return Reference(host.lower(), name, tag, digest or None)


def _hostname(hostport: str) -> str:
    if hostport.startswith("["):
        return hostport[: hostport.find("]") + 1]
    return hostport.rsplit(":", 1)[0] if hostport.count(":") == 1 else hostport


def _safe_url(url: str) -> bool:
    """https anywhere, http only to loopback."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return bool(parts.hostname)
    return parts.scheme == "http" and is_loopback(_hostname(parts.netloc.rpartition("@")[2]))


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc.lower()


# --- credentials ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    password: str = ""


def auth_file_path(given: str | None) -> Path | None:
    if given:
        return Path(given)
    env = os.environ.get("REGISTRY_AUTH_FILE")
    if env:
        return Path(env)
    docker = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"
    return docker if docker.is_file() else None


def load_credentials(path: Path | None, host: str, warn: Warn) -> Credentials | None:
    """The ``auths`` entry for ``host`` of a docker ``config.json`` / containers ``auth.json``."""
    if path is None:
        return None
    try:
        doc = json.loads(path.read_bytes())
    except OSError as exc:
        raise KascanError(f"cannot read registry auth file {path}: {exc.strerror or exc}") from None
    except ValueError:
        raise KascanError(f"cannot read registry auth file {path}: not JSON") from None
    auths = doc.get("auths") if isinstance(doc, dict) else None
    if not isinstance(auths, dict):
        auths = {}
    names = {host}
    if host == "docker.io":
        names |= {"https://index.docker.io/v1/", "index.docker.io", "registry-1.docker.io"}
    for key, entry in auths.items():
        if not isinstance(key, str) or not isinstance(entry, dict):
            continue
        k = key
        if "://" in k:
            k = urlsplit(k).netloc or k
        if key not in names and k.rstrip("/") not in names:
            continue
        user, password = entry.get("username"), entry.get("password")
        if isinstance(user, str) and isinstance(password, str):
            return Credentials(user, password)
        auth = entry.get("auth")
        if isinstance(auth, str) and auth:
            try:
                u, sep, p = base64.b64decode(auth, validate=True).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                raise KascanError(f"registry auth file {path}: bad 'auth' for {host}") from None
            if sep:
                return Credentials(u, p)
        if entry.get("identitytoken"):
            warn(f"registry auth file {path}: identity tokens are not supported ({host})")
    if isinstance(doc, dict) and (doc.get("credsStore") or doc.get("credHelpers")):
        helpers = doc.get("credHelpers")
        if doc.get("credsStore") or (isinstance(helpers, dict) and host in helpers):
            warn(
                f"registry auth file {path}: credential helpers are not run; "
                f"no 'auths' entry for {host}"
            )
    return None


# --- the client ----------------------------------------------------------------------------------


class _Body:
    """A streamed response body as ``read(n)``; transport errors become ``OSError``."""

    def __init__(self, response: httpx.Response) -> None:
        self._it = response.iter_raw(1 << 16)
        self._buf = b""

    def read(self, n: int = -1, /) -> bytes:
        import httpx

        try:
            while n < 0 or len(self._buf) < n:
                more = next(self._it, b"")
                if not more:
                    break
                self._buf += more
        except httpx.HTTPError as exc:
            raise OSError(f"download failed: {type(exc).__name__}") from None
        if n < 0:
            out, self._buf = self._buf, b""
        else:
            out, self._buf = self._buf[:n], self._buf[n:]
        return out


class Client:
    """One registry, one repository: ping, authenticate, then GET manifests and blobs."""

    def __init__(self, ref: Reference, settings: ImageSettings, warn: Warn) -> None:
        import httpx

        self.ref = ref
        self.warn = warn
        self.host = ref.api_host
        self.creds = load_credentials(auth_file_path(settings.auth_file), ref.host, warn)
        env_token = os.environ.get(ENV_TOKEN)
        self.authorization: str | None = f"Bearer {env_token}" if env_token else None
        self.http = httpx.Client(
            timeout=httpx.Timeout(settings.timeout, connect=min(settings.timeout, 15.0)),
            follow_redirects=False,
            headers={"User-Agent": f"kascan/{__version__}"},
        )
        self.base = f"https://{self.host}"
        self._ping()

    def close(self) -> None:
        self.http.close()

    def _fail(self, what: str, response: httpx.Response) -> KascanError:
        code = ""
        with contextlib.suppress(Exception):
            body = json.loads(response.read()[:65536])
            err = body["errors"][0]
            code = f" {clean(str(err.get('code', '')), 40)}"
        status = response.status_code
        if status == 401:
            why = (
                "credentials refused"
                if self.creds or os.environ.get(ENV_TOKEN)
                else "no credentials (give --registry-auth FILE, a docker config.json)"
            )
            return KascanError(f"{self.ref}: {what}: 401 unauthorized{code}: {why}")
        if status == 404:
            return KascanError(f"{self.ref}: {what}: not found (404{code})")
        return KascanError(f"{self.ref}: {what}: HTTP {status}{code}")

    def _ping(self) -> None:
        import httpx

        try:
            r = self.http.get(self.base + "/v2/")
        except httpx.ConnectError as exc:
            if not is_loopback(_hostname(self.host)):
                raise KascanError(f"{self.ref}: cannot connect to {self.host}: {exc}") from None
            self.base = f"http://{self.host}"  # a loopback registry without TLS
            try:
                r = self.http.get(self.base + "/v2/")
            except httpx.HTTPError as exc2:
                raise KascanError(
                    f"{self.ref}: cannot connect to {self.host}: {type(exc2).__name__}"
                ) from None
        except httpx.HTTPError as exc:
            raise KascanError(
                f"{self.ref}: cannot connect to {self.host}: {type(exc).__name__}: {exc}"
            ) from None
        if r.status_code == 401 and self.authorization is None:
            self._authenticate(r.headers.get("www-authenticate", ""))
        elif r.status_code not in (200, 401):
            raise KascanError(
                f"{self.ref}: {self.host} is not a registry (/v2/: HTTP {r.status_code})"
            )

    def _authenticate(self, challenge: str) -> None:
        scheme, _, params_text = challenge.strip().partition(" ")
        params = dict(_CHALLENGE_PARAM.findall(params_text))
        if scheme.lower() == "basic":
            if self.creds is not None:
                pair = f"{self.creds.username}:{self.creds.password}".encode()
                self.authorization = "Basic " + base64.b64encode(pair).decode()
            return
        if scheme.lower() != "bearer" or "realm" not in params:
            raise KascanError(f"{self.ref}: unsupported authentication {clean(scheme, 20)!r}")
        self.authorization = "Bearer " + self._token(params)

    def _token(self, params: dict[str, str]) -> str:
        import httpx

        realm = params["realm"]
        if not _safe_url(realm):
            raise KascanError(
                f"{self.ref}: token service {clean(realm, 120)} is not https "
                "(plain http only to loopback): not contacted"
            )
        query = {"scope": f"repository:{self.ref.name}:pull"}
        if params.get("service"):
            query["service"] = params["service"]
        auth = (self.creds.username, self.creds.password) if self.creds else None
        url = realm + ("&" if "?" in realm else "?") + urlencode(query)
        try:
            r = self.http.get(url, auth=auth)
        except httpx.HTTPError as exc:
            raise KascanError(f"{self.ref}: token service: {type(exc).__name__}") from None
        if r.status_code in (401, 403):
            why = "credentials refused" if self.creds else "no credentials (--registry-auth FILE)"
            raise KascanError(f"{self.ref}: token service: {r.status_code} unauthorized: {why}")
        if r.status_code != 200:
            raise KascanError(f"{self.ref}: token service: HTTP {r.status_code}")
        try:
            doc = json.loads(r.content[:_MAX_TOKEN_BODY])
            token = doc.get("token") or doc.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token or any(c.isspace() for c in token):
            raise KascanError(f"{self.ref}: token service: no token in its reply")
        return token

    def get(self, path: str, accept: str | None = None) -> httpx.Response:
        """A streamed GET of ``/v2/NAME/PATH``; redirects followed by hand. The caller closes."""
        import httpx

        url = f"{self.base}/v2/{self.ref.name}/{path}"
        registry = _origin(url)
        for _ in range(_MAX_REDIRECTS + 1):
            headers = {"Accept": accept} if accept else {}
            if self.authorization and _origin(url) == registry:
                headers["Authorization"] = self.authorization
            try:
                req = self.http.build_request("GET", url, headers=headers)
                r = self.http.send(req, stream=True)
            except httpx.HTTPError as exc:
                raise KascanError(f"{self.ref}: GET {path}: {type(exc).__name__}") from None
            if r.status_code in (301, 302, 303, 307, 308):
                location = r.headers.get("location", "")
                r.close()
                target = urljoin(url, location)
                if not location or not _safe_url(target):
                    raise KascanError(
                        f"{self.ref}: GET {path}: redirect to {clean(target, 120)} refused "
                        "(https only, plain http only to loopback)"
                    )
                url = target
                continue
            return r
        raise KascanError(f"{self.ref}: GET {path}: more than {_MAX_REDIRECTS} redirects")

    def manifest(self, reference: str) -> tuple[bytes, str]:
        r = self.get(f"manifests/{reference}", ACCEPT)
        try:
            if r.status_code != 200:
                raise self._fail(f"manifest {clean(reference, 80)}", r)
            data = _read_limited(r, MAX_MANIFEST, f"{self.ref}: manifest")
        finally:
            r.close()
        digest = sha256_digest(data)
        if valid_digest(reference):
            check_digest(data, reference, f"{self.ref}: manifest")
            digest = reference
        return data, digest

    def blob_bytes(self, blob: Blob, limit: int) -> bytes:
        r = self.get(f"blobs/{blob.digest}")
        try:
            if r.status_code != 200:
                raise self._fail(f"blob {blob.digest}", r)
            data = _read_limited(r, limit, f"{self.ref}: blob {blob.digest}")
        finally:
            r.close()
        check_digest(data, blob.digest, f"{self.ref}: blob")
        return data

    @contextlib.contextmanager
    def blob_stream(self, blob: Blob) -> Iterator[Readable]:
        r = self.get(f"blobs/{blob.digest}")
        try:
            if r.status_code != 200:
                raise self._fail(f"layer {blob.digest}", r)
            yield _Body(r)
        finally:
            r.close()


def _read_limited(r: httpx.Response, limit: int, what: str) -> bytes:
    import httpx

    parts: list[bytes] = []
    total = 0
    try:
        for block in r.iter_raw(1 << 16):
            total += len(block)
            if total > limit:
                raise KascanError(f"{what}: over {limit} bytes")
            parts.append(block)
    except httpx.HTTPError as exc:
        raise KascanError(f"{what}: download failed ({type(exc).__name__})") from None
    return b"".join(parts)


def pull(text: str, settings: ImageSettings, warn: Warn) -> Iterator[Image]:
    ref = parse_reference(text)
    client = Client(ref, settings, warn)
    try:
        data, digest = client.manifest(ref.digest or ref.tag or "latest")

        def fetch(d: str) -> bytes:
            return client.manifest(d)[0]

        def open_blob(blob: Blob) -> AbstractContextManager[Readable]:
            return client.blob_stream(blob)

        label = str(Reference(ref.host, ref.name, ref.tag, None))
        yield from images(label, data, digest, fetch, client.blob_bytes, open_blob, settings, warn)
    finally:
        client.close()
