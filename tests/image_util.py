"""Real images for the tests: OCI layouts written file by file (tar layers made with tarfile,
gzip-compressed, JSON manifests and configs), a real registry (Debian's docker-registry) with a
token service on loopback, and skopeo to push and convert."""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import io
import json
import shutil
import socket
import subprocess
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_bytes(files: dict[str, bytes], whiteouts: tuple[str, ...] = ()) -> bytes:
    """A layer tar: parent directories, the files, and whiteout entries (``.wh.NAME``)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        dirs: set[str] = set()
        for name in [*files, *whiteouts]:
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    info.mtime = 1700000000
                    tf.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 1700000000
            tf.addfile(info, io.BytesIO(data))
        for name in whiteouts:
            parent, _, base = name.rpartition("/")
            wh = f"{parent}/.wh.{base}" if parent else f".wh.{base}"
            info = tarfile.TarInfo(wh)
            info.size = 0
            info.mtime = 1700000000
            tf.addfile(info, io.BytesIO(b""))
    return buf.getvalue()


def jar_bytes(members: dict[str, bytes], filler: int, seed: bytes = b"jar") -> bytes:
    """A real jar (zip, deflated) with a manifest and ``filler`` bytes of class-like noise."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\nMain-Class: app.Main\n")
        noise = b""
        block = seed
        while len(noise) < filler:
            block = hashlib.sha256(block).digest()
            noise += block
        zf.writestr("app/Main.class", b"\xca\xfe\xba\xbe" + noise[:filler])
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


@dataclass
class Layer:
    files: dict[str, bytes]
    whiteouts: tuple[str, ...] = ()

    def tar(self) -> bytes:
        return tar_bytes(self.files, self.whiteouts)


@dataclass
class Built:
    manifest_digest: str
    diff_ids: list[str]
    layer_digests: list[str]


@dataclass
class Layout:
    """An OCI image layout written by hand: ``oci-layout``, ``index.json``, ``blobs/sha256``."""

    root: Path
    entries: list[dict[str, object]] = field(default_factory=list)

    def __post_init__(self) -> None:
        (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (self.root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
        self.save()

    def blob(self, data: bytes) -> str:
        d = digest_of(data)
        (self.root / "blobs" / "sha256" / d.split(":")[1]).write_bytes(data)
        return d

    def image(
        self,
        layers: list[Layer],
        env: list[str] | None = None,
        labels: dict[str, str] | None = None,
        history: list[dict[str, object]] | None = None,
        arch: str = "amd64",
    ) -> tuple[dict[str, object], Built]:
        """Write the layers, config and manifest; return the manifest's descriptor."""
        diff_ids, descs = [], []
        for layer in layers:
            tar = layer.tar()
            gz = gzip.compress(tar, mtime=0)
            diff_ids.append(digest_of(tar))
            descs.append({"mediaType": OCI_LAYER, "digest": self.blob(gz), "size": len(gz)})
        config = {
            "architecture": arch,
            "os": "linux",
            "config": {"Env": env or ["PATH=/usr/bin:/bin"], "Labels": labels or {}},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": history or [{"created_by": f"layer {i}"} for i in range(len(layers))],
        }
        cfg = json.dumps(config).encode()
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": self.blob(cfg), "size": len(cfg)},
            "layers": descs,
        }
        mdata = json.dumps(manifest).encode()
        md = self.blob(mdata)
        desc: dict[str, object] = {
            "mediaType": OCI_MANIFEST,
            "digest": md,
            "size": len(mdata),
            "platform": {"os": "linux", "architecture": arch},
        }
        return desc, Built(md, diff_ids, [str(d["digest"]) for d in descs])

    def index(self, manifests: list[dict[str, object]]) -> dict[str, object]:
        data = json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
        ).encode()
        return {"mediaType": OCI_INDEX, "digest": self.blob(data), "size": len(data)}

    def tag(self, desc: dict[str, object], name: str) -> None:
        entry = {k: v for k, v in desc.items() if k != "platform"}
        entry["annotations"] = {"org.opencontainers.image.ref.name": name}
        self.entries.append(entry)
        self.save()

    def save(self) -> None:
        doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": self.entries}
        (self.root / "index.json").write_text(json.dumps(doc))


# --- a real registry with token authentication ------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenService:
    """The registry's token service: RS256 JWTs (signed by openssl) naming a self-signed cert.
    Anonymous callers may pull any repository not under ``private/``; USER:PASSWORD may pull and
    push everything."""

    dir: Path
    user: str = "ci-user"
    password: str = "ci-password-123"
    issuer: str = "kascan-test-issuer"
    service: str = "kascan-test-registry"
    requests: list[tuple[str, bool]] = field(default_factory=list)  # (scope, authenticated)

    def __post_init__(self) -> None:
        self.key = self.dir / "token.key"
        self.cert = self.dir / "token.crt"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(self.key),
             "-out", str(self.cert), "-days", "2", "-subj", "/CN=kascan-token"],
            check=True, capture_output=True,
        )  # fmt: skip
        der = subprocess.run(
            ["openssl", "x509", "-in", str(self.cert), "-outform", "DER"],
            check=True, capture_output=True,
        ).stdout  # fmt: skip
        self.x5c = base64.b64encode(der).decode()

    def sign(self, access: list[dict[str, object]], subject: str) -> str:
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + 3600,
            "nbf": now - 60,
            "iat": now,
            "jti": hashlib.sha256(f"{now}{subject}{access}".encode()).hexdigest()[:16],
            "access": access,
        }
        signing_input = (
            _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
        )
        sig = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", str(self.key)],
            input=signing_input.encode(), check=True, capture_output=True,
        ).stdout  # fmt: skip
        return signing_input + "." + _b64url(sig)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        svc = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                q = parse_qs(urlsplit(self.path).query)
                auth = self.headers.get("Authorization", "")
                authed = False
                if auth.startswith("Basic "):
                    pair = base64.b64decode(auth[6:]).decode()
                    if pair != f"{svc.user}:{svc.password}":
                        self.send_response(401)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    authed = True
                access = []
                for scope in q.get("scope", []):
                    svc.requests.append((scope, authed))
                    kind, _, rest = scope.partition(":")
                    name, _, actions = rest.rpartition(":")
                    wanted = actions.split(",")
                    allowed = wanted if authed else [a for a in wanted if a == "pull"]
                    if not authed and name.startswith("private/"):
                        allowed = []
                    access.append({"type": kind, "name": name, "actions": allowed})
                token = svc.sign(access, svc.user if authed else "")
                body = json.dumps({"token": token, "access_token": token, "expires_in": 3600})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

        return Handler


@dataclass
class Registry:
    host: str  # 127.0.0.1:PORT
    tokens: TokenService
    storage: Path

    def push(
        self, source: str, name: str, multi: bool = False, extra: tuple[str, ...] = ()
    ) -> None:
        """``skopeo copy SOURCE docker://HOST/NAME`` (with credentials), as a user would."""
        cmd = ["skopeo", "--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false",
               "--dest-creds", f"{self.tokens.user}:{self.tokens.password}", *extra]  # fmt: skip
        if multi:
            cmd.append("--all")
        subprocess.run([*cmd, source, f"docker://{self.host}/{name}"], check=True,
                       capture_output=True, timeout=120)  # fmt: skip


@contextlib.contextmanager
def run_registry(work: Path) -> Iterator[Registry]:
    """docker-registry on 127.0.0.1:<free port>, token auth from a token service on another."""
    work.mkdir(parents=True, exist_ok=True)
    tokens = TokenService(work)
    server = ThreadingHTTPServer(("127.0.0.1", 0), tokens.handler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = free_port()
    storage = work / "storage"
    storage.mkdir()
    config = work / "config.yml"
    config.write_text(
        f"""version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
auth:
  token:
    realm: http://127.0.0.1:{server.server_address[1]}/token
    service: {tokens.service}
    issuer: {tokens.issuer}
    rootcertbundle: {tokens.cert}
"""
    )
    exe = shutil.which("docker-registry") or "/usr/bin/docker-registry"
    log = (work / "registry.log").open("wb")
    proc = subprocess.Popen([exe, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "docker-registry did not start: " + (work / "registry.log").read_text()
                )
            time.sleep(0.05)
        yield Registry(f"127.0.0.1:{port}", tokens, storage)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        server.shutdown()
        server.server_close()
