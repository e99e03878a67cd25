"""``kascan image`` against a real registry (Debian's docker-registry, token auth), OCI layouts and
docker-archive files, with images built here and pushed and converted by skopeo."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import PREFIX, Result, findings_of, make_key
from tests.image_util import Built, Layer, Layout, Registry, jar_bytes, run_registry

Run = Callable[..., Result]


@dataclass
class World:
    layout: Path
    registry: Registry
    keys: dict[str, str]
    app: Built
    other: Built
    multi: dict[str, Built]
    multi_index: str
    private: Built
    docker_archive: Path
    oci_archive: Path


def _fp(key: str) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    rng = random.Random("test_image")
    names = ["env", "shared", "removed", "jar", "other", "amd64", "arm64", "private"]
    keys = {n: make_key(rng) for n in names}
    root = tmp_path_factory.mktemp("images")
    layout = Layout(root / "layout")

    base = Layer(
        {
            "etc/os-release": b'NAME="Test Linux"\nID=test\n',
            "etc/base.conf": f"# base settings\nendpoint=https://api.example.com\ntoken={keys['shared']}\n".encode(),
        }
    )
    jar = jar_bytes(
        {
            "BOOT-INF/classes/application.properties": f"server.port=8080\nkubeadapt.api-key={keys['jar']}\n".encode()
        },
        filler=200 * 1024,
    )
    assert len(jar) > 64 * 1024
    app_layer = Layer(
        {
            "app/.env": f"DEBUG=0\nKUBEADAPT_API_KEY={keys['removed']}\n".encode(),
            "app/lib/app.jar": jar,
            "app/README": b"nothing here\n",
        }
    )
    cleanup = Layer({"app/cleaned": b"ok\n"}, whiteouts=("app/.env",))
    history: list[dict[str, object]] = [
        {"created_by": "ADD rootfs.tar / # buildkit"},
        {"created_by": f"ENV KUBEADAPT_API_KEY={keys['env']}", "empty_layer": True},
        {"created_by": "COPY app /app # buildkit"},
        {"created_by": "RUN /bin/sh -c rm /app/.env # buildkit"},
        {"created_by": 'CMD ["/app/run"]', "empty_layer": True},
    ]
    app_desc, app = layout.image(
        [base, app_layer, cleanup],
        env=["PATH=/usr/bin:/bin", f"KUBEADAPT_API_KEY={keys['env']}"],
        labels={"org.opencontainers.image.title": "app"},
        history=history,
    )
    layout.tag(app_desc, "app-1.0")
    other_desc, other = layout.image(
        [base, Layer({"srv/config.yaml": f"kubeadapt:\n  apiKey: {keys['other']}\n".encode()})]
    )
    layout.tag(other_desc, "other-1.0")
    multi: dict[str, Built] = {}
    descs = []
    for arch in ("amd64", "arm64"):
        d, b = layout.image(
            [Layer({f"opt/{arch}.txt": f"key for {arch}: {keys[arch]}\n".encode()})], arch=arch
        )
        multi[arch] = b
        descs.append(d)
    index = layout.index(descs)
    layout.tag(index, "multi-1.0")
    private_desc, private = layout.image([Layer({"secret.txt": f"K={keys['private']}\n".encode()})])
    layout.tag(private_desc, "private-1.0")

    with run_registry(root / "registry") as reg:
        oci = f"oci:{layout.root}"
        reg.push(f"{oci}:app-1.0", "team/app:1.0")
        reg.push(f"{oci}:other-1.0", "team/other:1.0")
        reg.push(f"{oci}:multi-1.0", "team/multi:1.0", multi=True)
        reg.push(f"{oci}:private-1.0", "private/app:1.0")
        dockar = root / "app-docker.tar"
        ociar = root / "app-oci.tar"
        for dest in (f"docker-archive:{dockar}:team/app:1.0", f"oci-archive:{ociar}:app-1.0"):
            subprocess.run(
                ["skopeo", "--insecure-policy", "copy", "--quiet", f"{oci}:app-1.0", dest],
                check=True,
                capture_output=True,
            )
        yield World(
            layout.root, reg, keys, app, other, multi, str(index["digest"]), private, dockar, ociar
        )


def scan(run_cli: Run, *args: object, extra_env: dict[str, str] | None = None) -> Result:
    return run_cli("image", "-f", "json", *args, extra_env=extra_env)


def by_key(result: Result, keys: dict[str, str]) -> dict[str, list[dict[str, object]]]:
    names = {_fp(v): k for k, v in keys.items()}
    out: dict[str, list[dict[str, object]]] = {}
    for f in findings_of(result):
        out.setdefault(names[str(f["fingerprint"])], []).append(f)
    return out


def one_error(r: Result, message: str) -> None:
    """Exit 2, one ``Error:`` line saying ``message``, no warning and no traceback."""
    assert r.returncode == 2, (r.stdout, r.stderr)
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0], r.stderr
    assert "warning:" not in r.stderr and "Traceback" not in r.stderr, r.stderr


def where(f: dict[str, object]) -> tuple[object, ...]:
    return (f["path"], f["line"], f["column"])


def app_expected(w: World) -> set[tuple[object, ...]]:
    d = w.app.diff_ids
    return {
        ("env", "config: Env KUBEADAPT_API_KEY", 1, 19),
        ("env", "history step 2: ENV", 1, 23),
        ("shared", f"layer 1 {d[0]} (step 1: ADD)!etc/base.conf", 3, 7),
        ("removed", f"layer 2 {d[1]} (step 3: COPY)!app/.env (removed in layer 3)", 2, 19),
        (
            "jar",
            f"layer 2 {d[1]} (step 3: COPY)!app/lib/app.jar!BOOT-INF/classes/application.properties",
            2,
            19,
        ),
    }


def summary(result: Result, keys: dict[str, str]) -> set[tuple[object, ...]]:
    return {(name, *where(f)) for name, fs in by_key(result, keys).items() for f in fs}


def test_registry_image_every_place_a_key_hides(world: World, run_cli: Run) -> None:
    ref = f"{world.registry.host}/team/app:1.0"
    r = scan(run_cli, f"docker://{ref}")
    assert r.returncode == 1, r.stderr
    r.assert_no_leak(*world.keys.values())
    assert summary(r, world.keys) == app_expected(world)
    repos = {f["repo"] for f in findings_of(r)}
    assert repos == {f"{ref}@{world.app.manifest_digest}"}
    assert "warning" not in r.stderr, r.stderr
    # the text report names the image, the layer and the whiteout too, with the key redacted
    t = run_cli("image", ref)
    assert t.returncode == 1
    t.assert_no_leak(*world.keys.values())
    assert f"{ref}@{world.app.manifest_digest}:layer 2 " in t.stdout
    assert "!app/.env (removed in layer 3):2:19" in t.stdout


def test_same_findings_from_registry_oci_layout_and_archives(world: World, run_cli: Run) -> None:
    refs = [
        f"{world.registry.host}/team/app:1.0",
        f"oci:{world.layout}:app-1.0",
        f"docker-archive:{world.docker_archive}",
        f"oci-archive:{world.oci_archive}",
    ]
    results = [scan(run_cli, ref) for ref in refs]
    for ref, r in zip(refs, results):
        assert r.returncode == 1, (ref, r.stderr)
        r.assert_no_leak(*world.keys.values())
        assert summary(r, world.keys) == app_expected(world), ref
    assert findings_of(results[1])[0]["repo"] == (
        f"oci:{world.layout}:app-1.0@{world.app.manifest_digest}"
    )
    assert str(findings_of(results[2])[0]["repo"]).startswith(
        f"docker-archive:{world.docker_archive}:docker.io/team/app:1.0@sha256:"
    )


ZSTD = ("--dest-compress-format", "zstd", "--dest-compress")  # skopeo recompresses every layer


def test_zstd_layers_from_a_layout_and_a_registry(
    world: World, run_cli: Run, tmp_path: Path
) -> None:
    """Layers compressed with zstd (``application/vnd.oci.image.layer.v1.tar+zstd``, what
    ``skopeo``/``buildah``/``docker buildx --compression zstd`` make) read like gzip ones."""
    src = f"oci:{world.layout}:app-1.0"
    lay = tmp_path / "zstd-layout"
    subprocess.run(
        ["skopeo", "--insecure-policy", "copy", "--quiet", *ZSTD, src, f"oci:{lay}:app-1.0"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    media = {
        layer["mediaType"]
        for blob in (lay / "blobs" / "sha256").iterdir()
        if blob.stat().st_size < 1 << 16 and blob.read_bytes().startswith(b"{")
        for layer in json.loads(blob.read_bytes()).get("layers", [])
    }
    assert media == {"application/vnd.oci.image.layer.v1.tar+zstd"}
    world.registry.push(src, "team/app-zstd:1.0", extra=ZSTD)
    for ref in (f"oci:{lay}:app-1.0", f"{world.registry.host}/team/app-zstd:1.0"):
        r = scan(run_cli, ref)
        assert r.returncode == 1, (ref, r.stderr)
        r.assert_no_leak(*world.keys.values())
        assert summary(r, world.keys) == app_expected(world), ref
        assert "warning" not in r.stderr, r.stderr


def test_shared_layer_scanned_once_per_run(world: World, run_cli: Run) -> None:
    host = world.registry.host
    r = scan(run_cli, f"{host}/team/app:1.0", f"{host}/team/other:1.0")
    assert r.returncode == 1, r.stderr
    found = by_key(r, world.keys)
    assert len(found["shared"]) == 1
    assert found["shared"][0]["repo"] == f"{host}/team/app:1.0@{world.app.manifest_digest}"
    assert [where(f) for f in found["other"]] == [
        (f"layer 2 {world.other.diff_ids[1]} (step 2: RUN)!srv/config.yaml", 2, 11)
    ]
    doc = r.json()
    assert doc["summary"]["layers"] == 4  # 3 of app, 1 of other: the base is read once
    assert doc["summary"]["layers_shared"] == 1


def test_multi_platform_index_every_platform_or_one(world: World, run_cli: Run) -> None:
    ref = f"{world.registry.host}/team/multi:1.0"
    r = scan(run_cli, ref)
    assert r.returncode == 1, r.stderr
    found = by_key(r, world.keys)
    assert set(found) == {"amd64", "arm64"}
    assert found["arm64"][0]["repo"] == f"{ref}@{world.multi['arm64'].manifest_digest} linux/arm64"
    assert (
        found["arm64"][0]["path"]
        == f"layer 1 {world.multi['arm64'].diff_ids[0]} (step 1: RUN)!opt/arm64.txt"
    )
    one = scan(run_cli, "--platform", "linux/arm64", ref)
    assert one.returncode == 1, one.stderr
    assert set(by_key(one, world.keys)) == {"arm64"}
    none = scan(run_cli, "--platform", "linux/s390x", ref)
    one_error(none, "no manifest for platform linux/s390x")
    # the same index from the OCI layout
    lay = scan(run_cli, f"oci:{world.layout}:multi-1.0")
    assert {(k, *where(f)) for k, fs in by_key(lay, world.keys).items() for f in fs} == {
        (k, *where(f)) for k, fs in found.items() for f in fs
    }


def test_private_repository_needs_a_token(world: World, run_cli: Run, tmp_path: Path) -> None:
    ref = f"{world.registry.host}/private/app:1.0"
    r = scan(run_cli, ref)
    one_error(r, "401 unauthorized")
    assert "no credentials (give --registry-auth FILE" in r.stderr
    tok = world.registry.tokens
    auth = tmp_path / "config.json"
    import base64

    pair = base64.b64encode(f"{tok.user}:{tok.password}".encode()).decode()
    auth.write_text(json.dumps({"auths": {world.registry.host: {"auth": pair}}}))
    ok = scan(run_cli, "--registry-auth", auth, ref)
    assert ok.returncode == 1, ok.stderr
    assert [where(f) for f in findings_of(ok)] == [
        (f"layer 1 {world.private.diff_ids[0]} (step 1: RUN)!secret.txt", 1, 3)
    ]
    ok.assert_no_leak(*world.keys.values(), tok.password)
    via_env = scan(run_cli, ref, extra_env={"REGISTRY_AUTH_FILE": str(auth)})
    assert via_env.returncode == 1, via_env.stderr
    assert ("private/app:pull", True) in [
        (s.removeprefix("repository:"), a) for s, a in world.registry.tokens.requests
    ]
    wrong = tmp_path / "wrong.json"
    bad = base64.b64encode(f"{tok.user}:nope".encode()).decode()
    wrong.write_text(json.dumps({"auths": {world.registry.host: {"auth": bad}}}))
    refused = scan(run_cli, "--registry-auth", wrong, ref)
    one_error(refused, "credentials refused")


def test_bad_references_are_one_line_errors(world: World, run_cli: Run) -> None:
    host = world.registry.host
    cases = {
        "docker-daemon:app:1.0": "unknown transport 'docker-daemon'",
        f"{host}/team/app:nope": "not found (404",
        f"oci:{world.layout}:nope": "no image tagged 'nope'",
        "oci:/nonexistent/dir": "not a directory",
        f"docker-archive:{world.layout}/oci-layout": "not a tar archive",
    }
    for ref, message in cases.items():
        one_error(scan(run_cli, ref), message)
    # one bad reference among good ones: a warning, the rest scanned, exit by findings
    r = scan(run_cli, f"{host}/team/app:nope", f"{host}/team/other:1.0")
    assert r.returncode == 1, r.stderr
    assert "warning:" in r.stderr and "not found (404" in r.stderr
    assert set(by_key(r, world.keys)) == {"shared", "other"}


def _copy_layout(world: World, tmp_path: Path) -> Path:
    dest = tmp_path / "layout"
    shutil.copytree(world.layout, dest)
    return dest


def test_manifest_not_json(world: World, run_cli: Run, tmp_path: Path) -> None:
    from tests.image_util import digest_of

    lay = _copy_layout(world, tmp_path)
    junk = b"<html>not a manifest</html>"
    d = digest_of(junk)
    (lay / "blobs" / "sha256" / d.split(":")[1]).write_bytes(junk)
    index = json.loads((lay / "index.json").read_text())
    index["manifests"].append(
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": d,
            "size": len(junk),
            "annotations": {"org.opencontainers.image.ref.name": "junk"},
        }
    )
    (lay / "index.json").write_text(json.dumps(index))
    one_error(scan(run_cli, f"oci:{lay}:junk"), "manifest: not JSON")


def test_truncated_layer_keeps_what_was_found(world: World, run_cli: Run, tmp_path: Path) -> None:
    lay = _copy_layout(world, tmp_path)
    blob = lay / "blobs" / "sha256" / world.app.layer_digests[1].split(":")[1]
    data = blob.read_bytes()
    blob.write_bytes(data[: len(data) // 2])
    r = scan(run_cli, f"oci:{lay}:app-1.0")
    assert r.returncode == 1, r.stderr
    r.assert_no_leak(*world.keys.values())
    warnings = [ln for ln in r.stderr.splitlines() if "warning:" in ln]
    layer = [
        w
        for w in warnings
        if w.endswith(
            "(step 3: COPY): cannot read (Compressed file ended "
            "before the end-of-stream marker was reached); the rest of it is not scanned"
        )
    ]
    assert len(layer) == 1 and f"layer 2 {world.app.diff_ids[1]}" in layer[0], r.stderr
    assert len(warnings) <= 2, r.stderr  # and, maybe, the jar the cut went through
    found = by_key(r, world.keys)
    # the .env comes first in the layer (read before the cut); the jar is past it
    assert set(found) == {"env", "shared", "removed"}


def test_layer_over_the_size_limit(world: World, run_cli: Run) -> None:
    r = scan(run_cli, "--max-layer-size", "16K", f"oci:{world.layout}:app-1.0")
    assert r.returncode == 1, r.stderr  # the config was still scanned
    warnings = [ln for ln in r.stderr.splitlines() if "warning:" in ln]
    assert any("over the layer size limit" in w and "layer 2 " in w for w in warnings), r.stderr
    assert set(by_key(r, world.keys)) == {"env", "shared"}  # base layer and cleanup are small


def test_images_from_file_and_shards(world: World, run_cli: Run, tmp_path: Path) -> None:
    host = world.registry.host
    listing = tmp_path / "images.txt"
    refs = [f"{host}/team/app:1.0", f"{host}/team/other:1.0", f"{host}/team/multi:1.0"]
    listing.write_text("# images to scan\n" + "\n".join(refs) + "\n\n")
    everything = scan(run_cli, "--images-from", listing)
    assert everything.returncode == 1, everything.stderr
    total = {(f["repo"], *where(f)) for f in findings_of(everything)}
    parts: set[tuple[object, ...]] = set()
    for i in range(2):
        r = scan(run_cli, "--images-from", listing, "--shard", f"{i}/2")
        assert r.returncode in (0, 1), r.stderr
        parts |= {(f["repo"], *where(f)) for f in findings_of(r)}
    # a shard scans its base layer itself, so the union holds every finding of the full run
    assert total <= parts


def test_no_archives_and_baseline(world: World, run_cli: Run, tmp_path: Path) -> None:
    ref = f"oci:{world.layout}:app-1.0"
    r = scan(run_cli, "--no-archives", ref)
    assert r.returncode == 1
    assert "jar" not in by_key(r, world.keys)
    base = tmp_path / "baseline.json"
    first = run_cli("image", "-o", base, "-q", ref)
    assert first.returncode == 1
    again = scan(run_cli, "--baseline", base, ref)
    assert again.returncode == 0, again.stderr
    assert findings_of(again) == []
    assert PREFIX not in again.stdout


# --- credentials never follow a redirect to another host ---------------------------------------


@dataclass
class _Seen:
    registry: list[tuple[str, str | None]]
    storage: list[tuple[str, str | None]]


def _serve(handler: type) -> tuple[object, int]:
    import threading
    from http.server import ThreadingHTTPServer

    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, int(server.server_address[1])


def test_redirected_blob_gets_no_credentials(world: World, run_cli: Run, tmp_path: Path) -> None:
    """A registry (basic auth) that sends blob downloads to a storage host: the storage host
    (another origin: ``localhost`` vs ``127.0.0.1``) never sees the Authorization header, and a
    redirect to plain http off loopback is refused."""
    import base64
    from http.server import BaseHTTPRequestHandler

    blobs = world.layout / "blobs" / "sha256"
    index = json.loads((world.layout / "index.json").read_text())
    entry = next(
        e
        for e in index["manifests"]
        if e["annotations"]["org.opencontainers.image.ref.name"] == "app-1.0"
    )
    manifest = (blobs / entry["digest"].split(":")[1]).read_bytes()
    seen = _Seen([], [])
    good = "Basic " + base64.b64encode(b"u:p").decode()
    target: dict[str, str] = {}

    class Storage(BaseHTTPRequestHandler):
        def log_message(self, *a: object) -> None:
            pass

        def do_GET(self) -> None:
            seen.storage.append((self.path, self.headers.get("Authorization")))
            data = (blobs / self.path.rsplit(":", 1)[1]).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    class Reg(BaseHTTPRequestHandler):
        def log_message(self, *a: object) -> None:
            pass

        def do_GET(self) -> None:
            auth = self.headers.get("Authorization")
            seen.registry.append((self.path, auth))
            if auth != good:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="test"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if self.path == "/v2/":
                body = b"{}"
            elif "/manifests/" in self.path:
                body = manifest
            else:
                digest = self.path.rsplit("/", 1)[1]
                self.send_response(307)
                self.send_header("Location", target["base"] + "/store/" + digest)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", entry["mediaType"])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    storage, sport = _serve(Storage)
    reg, rport = _serve(Reg)
    auth = tmp_path / "auth.json"
    auth.write_text(
        json.dumps({"auths": {f"127.0.0.1:{rport}": {"username": "u", "password": "p"}}})
    )
    try:
        target["base"] = f"http://localhost:{sport}"
        r = scan(run_cli, "--registry-auth", auth, f"127.0.0.1:{rport}/team/app:1.0")
        assert r.returncode == 1, r.stderr
        assert summary(r, world.keys) == app_expected(world)
        assert seen.storage and all(a is None for _, a in seen.storage)
        assert any(a == good for p, a in seen.registry if "/manifests/" in p)
        seen.storage.clear()
        target["base"] = "http://storage.example.com"
        r = scan(run_cli, "--registry-auth", auth, f"127.0.0.1:{rport}/team/app:1.0")
        one_error(r, "refused (https only, plain http only to loopback)")  # the config's blob
        assert "redirect to http://storage.example.com/store/sha256:" in r.stderr
        assert seen.storage == []
    finally:
        for s in (storage, reg):
            s.shutdown()  # type: ignore[attr-defined]
            s.server_close()  # type: ignore[attr-defined]


def test_github_workflow_example_scans_the_built_image() -> None:
    from importlib.resources import files

    import jsonschema
    import yaml

    from tests.conftest import ROOT

    doc = yaml.safe_load((ROOT / "examples" / "github-actions" / "kascan-image.yml").read_text())
    doc["on"] = doc.pop(True)  # YAML 1.1 reads the key `on` as a boolean
    schema_file = files("check_jsonschema.builtin_schemas.vendor") / "github-workflows.json"
    jsonschema.validate(doc, json.loads(schema_file.read_text("utf-8")))
    steps = doc["jobs"]["image"]["steps"]
    runs = "\n".join(s.get("run", "") for s in steps)
    assert "type=oci,dest=image.tar" in runs
    assert 'kascan image "oci-archive:image.tar" -o kascan.sarif' in runs
    assert any(s.get("uses", "").startswith("github/codeql-action/upload-sarif@") for s in steps)
