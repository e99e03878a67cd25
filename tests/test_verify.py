"""Verification against a real HTTP server on 127.0.0.1 that emulates the Kubeadapt API by key.

No mocking of the HTTP client: every test sends real requests to a ``ThreadingHTTPServer``
running in a thread, which records what it received.
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kascan import __version__
from kascan.errors import KascanError
from kascan.model import Finding, Secret
from kascan.verify import check_api_url, verify_findings
from tests.conftest import PREFIX, Result, findings_of, write_files

ENDPOINT = "/v1/organization"
ORG = {"id": "org_42", "name": "Acme Corp"}


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    key: str


@dataclass
class Api:
    """A fake Kubeadapt API; ``behaviours`` maps a key to how the server answers it."""

    behaviours: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    redirect_to: str = ""
    requests: list[Seen] = field(default_factory=list)
    inflight: int = 0
    max_inflight: int = 0
    url: str = ""
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, key: str) -> int:
        with self.lock:
            return sum(1 for r in self.requests if r.key == key)

    def seen_keys(self) -> set[str]:
        with self.lock:
            return {r.key for r in self.requests}


def _handler(api: Api) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else delayed ACKs add ~40 ms per reply

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _reply(
            self, code: int, body: bytes, ctype: str, extra: dict[str, str] | None = None
        ) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, code: int, doc: object, extra: dict[str, str] | None = None) -> None:
            self._reply(code, json.dumps(doc).encode(), "application/json", extra)

        def do_GET(self) -> None:
            auth = self.headers.get("Authorization", "")
            key = auth.removeprefix("Bearer ")
            with api.lock:
                api.requests.append(
                    Seen(self.path, {k.lower(): v for k, v in self.headers.items()}, key)
                )
                nth = sum(1 for r in api.requests if r.key == key)
                api.inflight += 1
                api.max_inflight = max(api.max_inflight, api.inflight)
            try:
                if api.delay:
                    time.sleep(api.delay)
                self._answer(api.behaviours.get(key, "inactive"), nth)
            finally:
                with api.lock:
                    api.inflight -= 1

        do_POST = do_PUT = do_DELETE = do_HEAD = do_GET

        def _answer(self, how: str, nth: int) -> None:
            if how == "live":
                self._json(200, ORG)
            elif how == "live-nested":
                self._json(200, {"organization": {"name": "Nested Inc", "id": 7}})
            elif how == "live-escape":
                self._json(200, {"name": "Evil\x1b[2J\x07 Org", "id": "o\n1"})
            elif how == "limited":
                self._json(403, {"error": "forbidden", "message": "missing organization:read"})
            elif how == "waf":
                self._reply(403, b"<html><body>Request blocked</body></html>", "text/html")
            elif how == "inactive":
                self._json(401, {"error": "unauthorized"})
            elif how == "ratelimited":
                if nth == 1:
                    self._json(429, {"error": "slow down"}, {"Retry-After": "1"})
                else:
                    self._json(200, ORG)
            elif how == "ratelimited-forever":
                self._json(429, {"error": "slow down"}, {"Retry-After": "3600"})
            elif how == "error":
                self._json(500, {"error": "boom"})
            elif how == "teapot":
                self._json(418, {"error": "teapot"})
            elif how == "stall":
                api.stop.wait(5)
                self._json(200, ORG)  # too late: the client gave up
            elif how == "redirect":
                self._reply(302, b"", "text/plain", {"Location": api.redirect_to + ENDPOINT})
            else:
                raise AssertionError(how)

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that timed out closes the socket under a stalled handler


@pytest.fixture
def make_api() -> Iterator[Callable[..., Api]]:
    servers: list[tuple[_Server, Api]] = []

    def make(
        behaviours: dict[str, str] | None = None,
        delay: float = 0.0,
        tls: ssl.SSLContext | None = None,
    ) -> Api:
        api = Api(dict(behaviours or {}), delay)
        server = _Server(("127.0.0.1", 0), _handler(api))
        if tls is not None:
            server.socket = tls.wrap_socket(server.socket, server_side=True)
        scheme = "https" if tls else "http"
        api.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append((server, api))
        return api

    yield make
    for server, api in servers:
        api.stop.set()
        server.shutdown()
        server.server_close()


def _tree(root: Path, keys: list[str]) -> Path:
    write_files(root, {f"f{i}.env": f"API_KEY={k}\n" for i, k in enumerate(keys)})
    return root


def _by_key(result: Result, keys: list[str]) -> dict[str, dict[str, object]]:
    """JSON findings by key, matched via the fingerprint (the report has only redacted keys)."""
    fps = {Secret(k).fingerprint: k for k in keys}
    out: dict[str, dict[str, object]] = {}
    for f in findings_of(result):
        out[fps[str(f["fingerprint"])]] = f
    return out


# -- the contract, end to end through the CLI ------------------------------------------------


def test_every_reply_maps_to_its_status(
    tmp_path: Path,
    run_cli: Callable[..., Result],
    make_api: Callable[..., Api],
    keys: Callable[[int], list[str]],
) -> None:
    hows = [
        "live", "live-nested", "live-escape", "limited", "waf", "inactive",
        "ratelimited", "error", "stall", "redirect", "teapot",
    ]  # fmt: skip
    ks = keys(len(hows))
    by_how = dict(zip(hows, ks))
    api = make_api({k: h for h, k in by_how.items()})
    elsewhere = make_api()  # the redirect target: must receive nothing
    api.redirect_to = elsewhere.url
    tree = _tree(tmp_path / "tree", ks)
    started = time.monotonic()
    r = run_cli(
        "scan", tree, "--verify", "--api-url", api.url, "--verify-timeout", "0.5", "-f", "json"
    )
    elapsed = time.monotonic() - started
    assert r.returncode == 1, r.stderr
    r.assert_no_leak(*ks)
    got = {h: _by_key(r, ks)[k]["verification"] for h, k in by_how.items()}
    assert got["live"] == {
        "status": "live",
        "detail": "HTTP 200",
        "organization": "Acme Corp",
        "organization_id": "org_42",
    }
    assert got["live-nested"]["organization"] == "Nested Inc"
    assert got["live-nested"]["organization_id"] == "7"
    assert got["live-escape"]["organization"] == "Evil[2J Org"  # no terminal escapes
    assert got["live-escape"]["organization_id"] == "o1"
    assert got["limited"]["status"] == "live-limited"
    assert got["waf"]["status"] == "unknown"
    assert "403" in str(got["waf"]["detail"])
    assert got["inactive"] == {"status": "inactive", "detail": "HTTP 401: key not accepted"}
    assert got["ratelimited"]["status"] == "live"  # 429 + Retry-After: 1, then 200
    assert got["error"] == {"status": "unknown", "detail": "HTTP 500 after 3 tries"}
    assert got["stall"] == {"status": "unknown", "detail": "timed out after 3 tries"}
    assert got["redirect"] == {"status": "unknown", "detail": "HTTP 302 redirect not followed"}
    assert got["teapot"] == {"status": "unknown", "detail": "unexpected HTTP 418"}

    # one request per distinct key, except the bounded retries of 429/500/timeouts
    expected = {h: 1 for h in hows} | {"ratelimited": 2, "error": 3, "stall": 3}
    assert {h: api.count(k) for h, k in by_how.items()} == expected
    assert elsewhere.requests == []  # the redirect was not followed
    for seen in api.requests:
        assert seen.path == ENDPOINT
        assert seen.headers["authorization"] == f"Bearer {seen.key}"
        assert seen.headers["user-agent"] == f"kascan/{__version__}"
        assert "cookie" not in seen.headers
    assert api.seen_keys() == set(ks)
    assert elapsed < 15


def test_same_key_in_three_files_is_sent_once(
    tmp_path: Path,
    run_cli: Callable[..., Result],
    make_api: Callable[..., Api],
    keys: Callable[[int], list[str]],
) -> None:
    dup, other = keys(2)
    api = make_api({dup: "live", other: "inactive"})
    write_files(
        tmp_path,
        {
            "a.env": f"K={dup}\n",
            "b/c.yaml": f"key: {dup}\nother: {other}\n",
            "d.txt": f"{dup} and again {dup}\n",
        },
    )
    r = run_cli("scan", tmp_path, "--verify", "--api-url", api.url, "-f", "json")
    assert r.returncode == 1
    r.assert_no_leak(dup, other)
    statuses = [(f["path"], f["verification"]["status"]) for f in findings_of(r)]  # type: ignore[index]
    assert sorted(statuses) == [
        ("a.env", "live"),
        ("b/c.yaml", "inactive"),
        ("b/c.yaml", "live"),
        ("d.txt", "live"),
        ("d.txt", "live"),
    ]
    assert api.count(dup) == 1
    assert api.count(other) == 1
    assert len(api.requests) == 2


def test_text_report_says_what_to_do(
    tmp_path: Path,
    run_cli: Callable[..., Result],
    make_api: Callable[..., Api],
    keys: Callable[[int], list[str]],
) -> None:
    live, limited, inactive, broken = keys(4)
    api = make_api({live: "live", limited: "limited", inactive: "inactive", broken: "error"})
    write_files(
        tmp_path, {"live.env": live, "lim.env": limited, "old.env": inactive, "x.env": broken}
    )
    out_file = tmp_path.parent / "report.txt"
    json_file = tmp_path.parent / "report.json"
    r = run_cli(
        "scan",
        tmp_path,
        "--verify",
        "--api-url",
        api.url,
        "-o",
        "-",
        "-o",
        out_file,
        "-o",
        json_file,
    )
    assert r.returncode == 1
    r.assert_no_leak(live, limited, inactive, broken)
    lines = {line.split(":", 1)[0]: line for line in r.stdout.splitlines() if ".env:" in line}
    assert "LIVE: revoke it now" in lines["live.env"]
    assert "[organization: Acme Corp id org_42]" in lines["live.env"]
    assert "LIVE (limited scope): revoke it now" in lines["lim.env"]
    assert "inactive: the API no longer accepts it" in lines["old.env"]
    assert "unknown (HTTP 500 after 3 tries)" in lines["x.env"]
    assert "treat as live" in lines["x.env"]
    assert (
        f"kascan: verified 4 distinct keys against {api.url}: "
        "1 live, 1 live-limited, 1 inactive, 1 unknown." in r.stdout
    )
    for written in (out_file, json_file):
        text = written.read_text()
        for k in (live, limited, inactive, broken):
            assert k[len(PREFIX) :] not in text
    assert "LIVE: revoke it now" in out_file.read_text()
    assert len(api.requests) == 4 + 2  # the 500 was retried twice


def test_api_path_prefix_is_kept(
    tmp_path: Path, run_cli: Callable[..., Result], make_api: Callable[..., Api], key: str
) -> None:
    api = make_api({key: "live"})
    write_files(tmp_path, {"a.env": key})
    r = run_cli(
        "scan", tmp_path, "--verify", "--api-url", api.url + "/proxy/kubeadapt/", "-f", "json"
    )
    assert r.returncode == 1
    assert [s.path for s in api.requests] == ["/proxy/kubeadapt" + ENDPOINT]


# -- no request unless asked; the URL only from the command line or the environment ----------


def test_no_request_without_verify(
    tmp_path: Path,
    run_cli: Callable[..., Result],
    make_api: Callable[..., Api],
    key: str,
    env: dict[str, str],
) -> None:
    api = make_api({key: "live"})
    write_files(tmp_path, {"a.env": key, ".kascan.toml": "verify = true\n"})
    r = run_cli("scan", tmp_path, "-f", "json", extra_env={"KASCAN_API_URL": api.url})
    assert r.returncode == 1
    assert findings_of(r)[0]["verification"] == {"status": "unchecked"}
    assert "'verify' ignored" in r.stderr
    assert api.requests == []
    # and the HTTP client is not even imported
    code = (
        "import sys\nfrom kascan.cli import main\n"
        f"try:\n    main(['scan', '-q', '-f', 'json', {str(tmp_path)!r}])\n"
        "except SystemExit as e:\n    print('EXIT', e.code)\n"
        "print('HTTPX', 'httpx' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**env, "KASCAN_API_URL": api.url},
        check=False,
    )
    assert proc.stdout.splitlines()[-2:] == ["EXIT 1", "HTTPX False"], proc.stderr
    assert api.requests == []


@pytest.mark.parametrize(
    ("name", "content"),
    [
        (".kascan.toml", 'api-url = "{trap}"\nverify = true\n'),
        ("pyproject.toml", '[tool.kascan]\napi_url = "{trap}"\n'),
    ],
)
def test_config_in_scanned_tree_cannot_choose_the_api(
    tmp_path: Path,
    run_cli: Callable[..., Result],
    make_api: Callable[..., Api],
    key: str,
    name: str,
    content: str,
) -> None:
    good = make_api({key: "live"})
    trap = make_api({key: "live"})
    write_files(tmp_path, {"a.env": key, name: content.format(trap=trap.url)})
    r = run_cli("scan", tmp_path, "--verify", "-f", "json", extra_env={"KASCAN_API_URL": good.url})
    assert r.returncode == 1, r.stderr
    assert "ignored: the API URL and verification are only set on the command line" in r.stderr
    assert findings_of(r)[0]["verification"]["status"] == "live"  # type: ignore[index]
    assert good.count(key) == 1
    assert trap.requests == []


def test_api_url_option_beats_environment(
    tmp_path: Path, run_cli: Callable[..., Result], make_api: Callable[..., Api], key: str
) -> None:
    good = make_api({key: "inactive"})
    env_api = make_api({key: "live"})
    write_files(tmp_path, {"a.env": key})
    r = run_cli(
        "scan", tmp_path, "--verify", "--api-url", good.url, "-f", "json",
        extra_env={"KASCAN_API_URL": env_api.url},
    )  # fmt: skip
    assert findings_of(r)[0]["verification"]["status"] == "inactive"  # type: ignore[index]
    assert good.count(key) == 1
    assert env_api.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com",
        "http://10.0.0.1:8080",
        "http://127.0.0.1.example.com",
        "http://[::2]/",
        "ftp://127.0.0.1/",
        "https://user:pw@public-api.kubeadapt.io",
        "https://public-api.kubeadapt.io/?next=x",
        "public-api.kubeadapt.io",
        "https://",
    ],
)
def test_unsafe_api_url_is_refused_before_any_request(
    tmp_path: Path, run_cli: Callable[..., Result], make_api: Callable[..., Api], key: str, url: str
) -> None:
    # a proxy that would see the request if kascan went ahead with a plain-http URL
    proxy = make_api({key: "live"})
    write_files(tmp_path, {"a.env": key})
    env = {"HTTP_PROXY": proxy.url, "HTTPS_PROXY": proxy.url, "ALL_PROXY": proxy.url}
    for via in (["--api-url", url], []):
        r = run_cli("scan", tmp_path, "--verify", *via, extra_env={**env, "KASCAN_API_URL": url})
        assert r.returncode == 2, r.output
        assert "API URL" in r.stderr
        assert r.stdout == ""  # refused before the scan started
        r.assert_no_leak(key)
    r = run_cli("verify", "--api-url", url, input=key, extra_env=env)
    assert r.returncode == 2
    r.assert_no_leak(key)
    assert proxy.requests == []


def test_check_api_url_accepts_https_and_loopback_http() -> None:
    ok = {
        "https://public-api.kubeadapt.io": "https://public-api.kubeadapt.io",
        "https://public-api.kubeadapt.io/": "https://public-api.kubeadapt.io",
        "https://proxy.internal:8443/kubeadapt/": "https://proxy.internal:8443/kubeadapt",
        "http://127.0.0.1:8080": "http://127.0.0.1:8080",
        "http://127.9.8.7": "http://127.9.8.7",
        "http://localhost:1234/": "http://localhost:1234",
        "http://[::1]:99": "http://[::1]:99",
        "HTTPS://Example.com": "HTTPS://Example.com",
    }
    for url, want in ok.items():
        assert check_api_url(url) == want
    for bad in ("http://128.0.0.1", "http://0.0.0.0", "https://a b", "http://localhost:99999"):
        with pytest.raises(KascanError):
            check_api_url(bad)


# -- --fail-on --------------------------------------------------------------------------------


def test_fail_on_exit_codes(
    tmp_path: Path,
    run_cli: Callable[..., Result],
    make_api: Callable[..., Api],
    keys: Callable[[int], list[str]],
) -> None:
    live, inactive, broken = keys(3)
    api = make_api({live: "live", inactive: "inactive", broken: "error"})
    only_inactive = _tree(tmp_path / "inactive", [inactive])
    with_live = _tree(tmp_path / "live", [inactive, live])
    only_unknown = _tree(tmp_path / "unknown", [broken])

    def code(tree: Path, *args: str) -> int:
        r = run_cli("scan", tree, "--verify", "--api-url", api.url, "-q", *args)
        r.assert_no_leak(live, inactive, broken)
        return r.returncode

    assert code(only_inactive) == 1  # default: any finding fails
    assert code(only_inactive, "--fail-on", "any") == 1
    assert code(only_inactive, "--fail-on", "live") == 0
    assert code(only_inactive, "--fail-on", "live-or-unknown") == 0
    assert code(with_live, "--fail-on", "live") == 1
    assert code(only_unknown, "--fail-on", "live") == 0
    assert code(only_unknown, "--fail-on", "live-or-unknown") == 1
    before = len(api.requests)
    r = run_cli("scan", only_inactive, "--fail-on", "live", extra_env={"KASCAN_API_URL": api.url})
    assert r.returncode == 2
    assert "--fail-on live needs --verify" in r.stderr
    assert len(api.requests) == before


# -- kascan verify KEY -------------------------------------------------------------------------


def test_verify_command(
    run_cli: Callable[..., Result], make_api: Callable[..., Api], keys: Callable[[int], list[str]]
) -> None:
    live, limited, inactive, broken = keys(4)
    api = make_api({live: "live", limited: "limited", inactive: "inactive", broken: "error"})
    url = ["--api-url", api.url]

    r = run_cli("verify", *url, input=live + "\n")  # from stdin: stays out of shell history
    assert r.returncode == 1
    assert r.stdout.splitlines()[0].startswith("live: the key works: revoke it now")
    assert "organization: Acme Corp (id org_42)" in r.stdout
    r.assert_no_leak(live)

    r = run_cli("verify", *url, limited)
    assert (r.returncode, r.stdout.split(":")[0]) == (1, "live-limited")
    r = run_cli("verify", inactive, extra_env={"KASCAN_API_URL": api.url})
    assert (r.returncode, r.stdout.split(":")[0]) == (0, "inactive")
    r.assert_no_leak(inactive)
    r = run_cli("verify", *url, "--verify-timeout", "0.5", input=broken)
    assert (r.returncode, r.stdout.split(":")[0]) == (2, "unknown")
    assert "detail: HTTP 500 after 3 tries" in r.stdout
    r.assert_no_leak(broken)
    assert [api.count(k) for k in (live, limited, inactive, broken)] == [1, 1, 1, 3]


def test_verify_command_rejects_what_is_not_a_key(
    run_cli: Callable[..., Result], make_api: Callable[..., Api], key: str
) -> None:
    api = make_api({key: "live"})
    for bad in (key[:-1], key + "X", "  " + key.replace(PREFIX, "ka_test_"), "", "x" * 10000):
        r = run_cli("verify", "--api-url", api.url, input=bad)
        assert r.returncode == 2, bad
        assert "not a Kubeadapt API key" in r.stderr
        body = bad.strip()[len(PREFIX) :]
        if body:
            assert body[:20] not in r.output
    r = run_cli("verify", "--api-url", api.url, key[:-1] + "!")
    assert r.returncode == 2
    assert key[len(PREFIX) : -1] not in r.output
    assert api.requests == []


# -- bounds, in process (still a real server and the real client) -----------------------------


def _findings(ks: list[str]) -> list[Finding]:
    return [Finding("kubeadapt-api-key", f"f{i}", 1, 1, Secret(k)) for i, k in enumerate(ks)]


def test_concurrency_is_bounded_and_used(
    make_api: Callable[..., Api], keys: Callable[[int], list[str]]
) -> None:
    ks = keys(24)
    api = make_api({k: "live" for k in ks}, delay=0.1)
    started = time.monotonic()
    out = list(verify_findings(_findings(ks), api.url, concurrency=4))
    elapsed = time.monotonic() - started
    assert [f.secret.value for f in out] == ks  # order kept
    assert all(f.verification.status == "live" for f in out)
    assert api.max_inflight == 4
    # concurrent, not one by one: one by one can never take less than 24 delays (the bound is
    # the serial floor, not a speed target, so a loaded machine does not fail it)
    assert elapsed < 24 * 0.1


def test_retry_after_is_capped(make_api: Callable[..., Api], key: str) -> None:
    api = make_api({key: "ratelimited-forever"})
    started = time.monotonic()
    [f] = verify_findings(_findings([key]), api.url, tries=2, max_wait=0.2)
    assert time.monotonic() - started < 2
    assert f.verification.status == "unknown"
    assert f.verification.detail == "HTTP 429 after 2 tries"
    assert api.count(key) == 2


def test_overall_time_bound(make_api: Callable[..., Api], keys: Callable[[int], list[str]]) -> None:
    ks = keys(12)
    api = make_api({k: "stall" for k in ks})
    started = time.monotonic()
    out = list(
        verify_findings(_findings(ks), api.url, timeout=0.3, concurrency=2, budget=1.0, tries=3)
    )
    elapsed = time.monotonic() - started
    assert elapsed < 3
    assert {f.verification.status for f in out} == {"unknown"}
    assert any("time limit" in (f.verification.detail or "") for f in out)
    assert len(api.requests) < 3 * len(ks)


def test_not_a_kubeadapt_key_is_never_sent(make_api: Callable[..., Api], key: str) -> None:
    api = make_api()
    other = Finding("custom-rule", "x", 1, 1, Secret("ghp_" + key[len(PREFIX) :]))
    [f] = verify_findings([other], api.url)
    assert f.verification.status == "unchecked"
    assert api.requests == []


def test_connection_refused_is_unknown(tmp_path: Path, key: str) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    [f] = verify_findings(_findings([key]), f"http://127.0.0.1:{port}", tries=2, backoff=0.01)
    assert f.verification.status == "unknown"
    assert (f.verification.detail or "").startswith("connection failed")
    assert (f.verification.detail or "").endswith("after 2 tries")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")
def test_tls_is_verified(tmp_path: Path, make_api: Callable[..., Api], key: str) -> None:
    cert, pkey = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(pkey), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, pkey)
    api = make_api({key: "live"}, tls=ctx)
    [f] = verify_findings(_findings([key]), api.url)
    assert f.verification.status == "unknown"
    assert (f.verification.detail or "").startswith("TLS error")
    assert api.requests == []  # the handshake failed: the key was never sent


def test_one_request_each_for_many_distinct_keys(
    make_api: Callable[..., Api], keys: Callable[[int], list[str]]
) -> None:
    ks = keys(200)
    api = make_api({k: ("live" if i % 3 else "inactive") for i, k in enumerate(ks)})
    out = list(verify_findings(_findings(ks + ks[:50]), api.url))
    assert len(out) == 250
    assert len(api.requests) == 200
    assert api.seen_keys() == set(ks)
    assert [f.verification.status for f in out[:3]] == ["inactive", "live", "live"]
