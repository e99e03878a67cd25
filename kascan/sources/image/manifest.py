"""Image indexes and manifests (OCI and Docker v2), parsed as the hostile JSON they may be."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import cast

from kascan.errors import KascanError
from kascan.model import scrub
from kascan.sources.image.types import Blob, Image, ImageSettings, Readable, Warn

INDEX_TYPES = frozenset(
    {
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    }
)
MANIFEST_TYPES = frozenset(
    {
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    }
)
ACCEPT = ", ".join(sorted(INDEX_TYPES | MANIFEST_TYPES))
MAX_MANIFEST = 4 << 20  # bytes of a manifest or index read at most
MAX_CONFIG = 16 << 20  # bytes of an image config read at most
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$|^sha512:[0-9a-f]{128}$")

FetchManifest = Callable[[str], bytes]  # digest -> bytes (verified)
ReadBlob = Callable[[Blob, int], bytes]  # a small blob (config), at most n bytes, verified


def clean(text: str, limit: int = 200) -> str:
    """Attacker-written text as a label: printable, nothing key-shaped, bounded."""
    out = "".join(c if c.isprintable() else "?" for c in text)
    if len(out) > limit:
        out = out[:limit] + "…"
    return scrub(out)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_digest(data: bytes, digest: str, what: str) -> None:
    alg, _, hexd = digest.partition(":")
    if alg not in ("sha256", "sha512"):
        raise KascanError(f"{what}: digest algorithm {clean(alg, 20)!r} not supported")
    if hashlib.new(alg, data).hexdigest() != hexd:
        raise KascanError(f"{what}: content does not match its digest {digest}")


def valid_digest(value: object) -> str | None:
    return value if isinstance(value, str) and DIGEST.match(value) else None


def load_json(data: bytes, what: str) -> dict[str, object]:
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        raise KascanError(f"{what}: not JSON ({reason})") from None
    if not isinstance(doc, dict):
        raise KascanError(f"{what}: not a JSON object")
    return cast("dict[str, object]", doc)


def _annotations(doc: dict[str, object]) -> tuple[tuple[str, str], ...]:
    ann = doc.get("annotations")
    if not isinstance(ann, dict):
        return ()
    return tuple((str(k), v) for k, v in ann.items() if isinstance(v, str))


def _platform(entry: dict[str, object]) -> tuple[str, str, str]:
    p = entry.get("platform")
    if not isinstance(p, dict):
        return ("", "", "")
    return tuple(str(p.get(k) or "") for k in ("os", "architecture", "variant"))  # type: ignore[return-value]


def _descriptor(entry: object, what: str) -> Blob:
    if not isinstance(entry, dict):
        raise KascanError(f"{what}: a descriptor is not a JSON object")
    digest = valid_digest(entry.get("digest"))
    if digest is None:
        raise KascanError(f"{what}: a descriptor has no valid digest")
    size = entry.get("size")
    media = entry.get("mediaType")
    return Blob(
        digest,
        size if isinstance(size, int) and size >= 0 else -1,
        media if isinstance(media, str) else "",
    )


def images(
    ref: str,
    data: bytes,
    digest: str,
    fetch_manifest: FetchManifest,
    read_blob: ReadBlob,
    open_blob: Callable[[Blob], AbstractContextManager[Readable]],
    settings: ImageSettings,
    warn: Warn,
    platform: str = "",
    depth: int = 0,
) -> Iterator[Image]:
    """The images of a manifest or index (``data``, whose digest is ``digest``): every platform
    of an index, or only ``settings.platform``'s."""
    what = f"{ref}@{digest}"
    doc = load_json(data, f"{what}: manifest")
    if doc.get("schemaVersion") == 1:
        raise KascanError(f"{what}: Docker schema 1 manifests are not supported")
    media = doc.get("mediaType")
    if media in INDEX_TYPES or (media is None and "manifests" in doc and "layers" not in doc):
        if depth >= 2:
            raise KascanError(f"{what}: indexes nested more than 2 deep")
        entries = doc.get("manifests")
        if not isinstance(entries, list):
            raise KascanError(f"{what}: index has no manifest list")
        picked = 0
        yielded = 0
        failed: list[str] = []
        for entry in entries:
            desc = _descriptor(entry, f"{what}: index")
            assert isinstance(entry, dict)
            os_, arch, variant = _platform(entry)
            want = settings.platform
            if want is not None and not want.matches(os_, arch, variant):
                continue
            picked += 1
            plat = "/".join(x for x in (os_, arch, variant) if x)
            try:
                child = fetch_manifest(desc.digest)
                for image in images(
                    ref,
                    child,
                    desc.digest,
                    fetch_manifest,
                    read_blob,
                    open_blob,
                    settings,
                    warn,
                    clean(plat, 60),
                    depth + 1,
                ):
                    yielded += 1
                    yield image
            except KascanError as exc:
                failed.append(exc.format_message())
        if yielded == 0 and len(failed) == 1:
            raise KascanError(failed[0])
        for message in failed:
            warn(message)
        if yielded == 0 and failed:
            raise KascanError(f"{what}: none of its {len(failed)} platform manifests could be read")
        if picked == 0:
            want_text = settings.platform and "/".join(
                x
                for x in (settings.platform.os, settings.platform.arch, settings.platform.variant)
                if x
            )
            raise KascanError(f"{what}: no manifest for platform {want_text or 'any'}")
        return
    if media is not None and media not in MANIFEST_TYPES and "layers" not in doc:
        raise KascanError(f"{what}: unsupported manifest type {clean(str(media), 80)!r}")
    layers_doc = doc.get("layers")
    if not isinstance(layers_doc, list):
        raise KascanError(f"{what}: manifest has no layer list")
    config_desc = _descriptor(doc.get("config"), f"{what}: config")
    layers = tuple(_descriptor(e, f"{what}: layer") for e in layers_doc)
    config = read_blob(config_desc, MAX_CONFIG)
    label = f"{ref}@{digest}" + (f" {platform}" if platform else "")
    yield Image(label, digest, config, layers, open_blob, _annotations(doc))
