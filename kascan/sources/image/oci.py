"""Local images: an OCI image layout (``oci:DIR[:TAG]``), the same as a tar (``oci-archive:``),
and ``docker save`` / ``podman save`` archives (``docker-archive:PATH``).

An archive is read in place (random access to its members, nothing extracted); a compressed one
is refused with a hint, since layers are read in an order the stream does not have. Blob paths
come from hostile JSON: only ``blobs/ALG/HEX`` for a valid digest is ever opened, and symbolic
links are not followed.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import IO, TYPE_CHECKING

from kascan.errors import KascanError
from kascan.sources.image.manifest import (
    MAX_CONFIG,
    MAX_MANIFEST,
    check_digest,
    clean,
    images,
    load_json,
    sha256_digest,
    valid_digest,
)
from kascan.sources.image.types import Blob, Image, ImageSettings, Readable, Warn

if TYPE_CHECKING:
    import tarfile

REF_NAME = "org.opencontainers.image.ref.name"
_HEX_TAR = re.compile(r"(?:^|/)([0-9a-f]{64})(?:\.tar)?$")
_MAX_TAR_MEMBERS = 1_000_000


class _Store:
    """Files of a layout or archive by their path inside it."""

    def __init__(self, display: str) -> None:
        self.display = display

    def open(self, path: str) -> AbstractContextManager[Readable]:  # pragma: no cover
        raise NotImplementedError

    def size(self, path: str) -> int:  # pragma: no cover
        raise NotImplementedError

    def exists(self, path: str) -> bool:
        try:
            self.size(path)
        except KascanError:
            return False
        return True

    def read(self, path: str, limit: int) -> bytes:
        if self.size(path) > limit:
            raise KascanError(f"{self.display}: {clean(path)} is over {limit} bytes")
        with self.open(path) as fh:
            return fh.read(limit + 1)[:limit]


class _DirStore(_Store):
    def __init__(self, root: str, display: str) -> None:
        super().__init__(display)
        self.root = root

    def _path(self, path: str) -> str:
        return os.path.join(self.root, *path.split("/"))

    def size(self, path: str) -> int:
        try:
            st = os.lstat(self._path(path))
        except OSError as exc:
            raise KascanError(
                f"{self.display}: cannot read {clean(path)}: {exc.strerror or exc}"
            ) from None
        import stat

        if not stat.S_ISREG(st.st_mode):
            raise KascanError(f"{self.display}: {clean(path)} is not a regular file")
        return st.st_size

    @contextlib.contextmanager
    def open(self, path: str) -> Iterator[Readable]:
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(self._path(path), flags)
        except OSError as exc:
            raise KascanError(
                f"{self.display}: cannot read {clean(path)}: {exc.strerror or exc}"
            ) from None
        with open(fd, "rb") as fh:
            yield fh


class _TarStore(_Store):
    def __init__(self, path: str, display: str) -> None:
        import tarfile

        super().__init__(display)
        try:
            with open(path, "rb") as fh:
                head = fh.read(6)
        except OSError as exc:
            raise KascanError(f"{display}: cannot open: {exc.strerror or exc}") from None
        if head.startswith((b"\x1f\x8b", b"\xfd7zXZ", b"BZh", b"\x28\xb5\x2f\xfd")):
            raise KascanError(
                f"{display}: a compressed archive: decompress it first (e.g. gunzip), "
                "its layers are read in random order"
            )
        try:
            self.tf = tarfile.open(path, "r:")  # noqa: SIM115 - closed by close()
        except (OSError, tarfile.TarError) as exc:
            raise KascanError(f"{display}: not a tar archive ({exc})") from None
        self.members: dict[str, tarfile.TarInfo] = {}
        try:
            for n, m in enumerate(self.tf):
                if n >= _MAX_TAR_MEMBERS:
                    raise KascanError(f"{display}: over {_MAX_TAR_MEMBERS} members")
                name = m.name
                while name.startswith("./"):
                    name = name[2:]
                self.members[name.strip("/")] = m
        except tarfile.TarError as exc:
            self.tf.close()
            raise KascanError(f"{display}: cannot read the archive ({exc})") from None

    def _member(self, path: str) -> tarfile.TarInfo:
        m = self.members.get(path)
        if m is None:
            raise KascanError(f"{self.display}: no {clean(path)} in the archive")
        if not m.isreg():
            raise KascanError(f"{self.display}: {clean(path)} is not a regular file")
        return m

    def size(self, path: str) -> int:
        return self._member(path).size

    @contextlib.contextmanager
    def open(self, path: str) -> Iterator[Readable]:
        fh: IO[bytes] | None = self.tf.extractfile(self._member(path))
        if fh is None:  # pragma: no cover - regular members always open
            raise KascanError(f"{self.display}: cannot read {clean(path)}")
        with fh:
            yield fh

    def close(self) -> None:
        self.tf.close()


def _split_tag(rest: str) -> tuple[str, str | None]:
    """``PATH[:TAG]``: the whole string when it names an existing file, else split at the last
    colon."""
    if not rest:
        raise KascanError("missing path after the transport (oci:DIR, docker-archive:PATH)")
    if os.path.exists(rest) or ":" not in rest:
        return rest, None
    path, _, tag = rest.rpartition(":")
    return path, tag or None


def _blob_path(digest: str) -> str:
    alg, _, hexd = digest.partition(":")
    return f"blobs/{alg}/{hexd}"


def _layout_images(
    store: _Store, transport: str, path: str, tag: str | None, settings: ImageSettings, warn: Warn
) -> Iterator[Image]:
    display = store.display
    if not store.exists("oci-layout"):
        raise KascanError(f"{display}: not an OCI image layout (no oci-layout file)")
    index = load_json(store.read("index.json", MAX_MANIFEST), f"{display}: index.json")
    entries = index.get("manifests")
    if not isinstance(entries, list):
        raise KascanError(f"{display}: index.json has no manifest list")
    picked: list[tuple[str, dict[str, object]]] = []
    tags: list[str] = []
    for e in entries:
        if not isinstance(e, dict):
            continue
        ann = e.get("annotations")
        name = ann.get(REF_NAME) if isinstance(ann, dict) else None
        name = name if isinstance(name, str) else None
        if name:
            tags.append(name)
        if tag is None or name == tag:
            picked.append((name or "", e))
    if not picked:
        if tag is not None:
            known = ", ".join(clean(t, 60) for t in tags[:10]) or "none"
            raise KascanError(f"{display}: no image tagged {clean(tag, 80)!r} (tags: {known})")
        raise KascanError(f"{display}: index.json lists no image")

    def fetch(digest: str) -> bytes:
        return _verified(store, digest, MAX_MANIFEST)

    def read_blob(blob: Blob, limit: int) -> bytes:
        return _verified(store, blob.digest, limit)

    def open_blob(blob: Blob) -> AbstractContextManager[Readable]:
        return store.open(_blob_path(blob.digest))

    for name, e in picked:
        digest = valid_digest(e.get("digest"))
        if digest is None:
            raise KascanError(f"{display}: index.json entry without a valid digest")
        ref = f"{transport}:{path}" + (f":{clean(name, 128)}" if name else "")
        yield from images(ref, fetch(digest), digest, fetch, read_blob, open_blob, settings, warn)


def _verified(store: _Store, digest: str, limit: int) -> bytes:
    if valid_digest(digest) is None:
        raise KascanError(f"{store.display}: invalid digest {clean(digest, 80)!r}")
    data = store.read(_blob_path(digest), limit)
    check_digest(data, digest, f"{store.display}: blob {digest}")
    return data


def oci_layout(rest: str, settings: ImageSettings, warn: Warn) -> Iterator[Image]:
    path, tag = _split_tag(rest)
    if not os.path.isdir(path):
        raise KascanError(f"oci:{path}: not a directory")
    yield from _layout_images(_DirStore(path, f"oci:{path}"), "oci", path, tag, settings, warn)


def oci_archive(rest: str, settings: ImageSettings, warn: Warn) -> Iterator[Image]:
    path, tag = _split_tag(rest)
    store = _TarStore(path, f"oci-archive:{path}")
    try:
        yield from _layout_images(store, "oci-archive", path, tag, settings, warn)
    finally:
        store.close()


def docker_archive(rest: str, settings: ImageSettings, warn: Warn) -> Iterator[Image]:
    """``docker save`` archives: ``manifest.json`` lists each image's config and layer files.
    ``PATH:NAME:TAG`` picks the image tagged so; without it, every image is scanned."""
    path, tag = _split_tag(rest)
    display = f"docker-archive:{path}"
    store = _TarStore(path, display)
    try:
        doc = store.read("manifest.json", MAX_MANIFEST)
        import json

        try:
            entries = json.loads(doc)
        except ValueError:
            raise KascanError(f"{display}: manifest.json: not JSON") from None
        if not isinstance(entries, list) or not entries:
            raise KascanError(f"{display}: manifest.json lists no image")
        found = False
        for e in entries:
            if not isinstance(e, dict):
                continue
            repo_tags = [t for t in (e.get("RepoTags") or []) if isinstance(t, str)]
            if tag is not None and not any(t == tag or t.endswith(":" + tag) for t in repo_tags):
                continue
            found = True
            yield _docker_image(store, display, e, repo_tags, tag)
        if not found:
            raise KascanError(f"{display}: no image tagged {clean(tag or '', 80)!r}")
    finally:
        store.close()


def _docker_image(
    store: _TarStore, display: str, e: dict[str, object], tags: list[str], tag: str | None
) -> Image:
    cfg_path = e.get("Config")
    layer_paths = e.get("Layers")
    if not isinstance(cfg_path, str) or not isinstance(layer_paths, list):
        raise KascanError(f"{display}: manifest.json entry without Config and Layers")
    config = store.read(cfg_path.lstrip("./"), MAX_CONFIG)
    image_id = sha256_digest(config)
    layers: list[Blob] = []
    for lp in layer_paths:
        if not isinstance(lp, str):
            raise KascanError(f"{display}: manifest.json: a layer path is not a string")
        name = lp
        while name.startswith("./"):
            name = name[2:]
        m = _HEX_TAR.search(name)
        digest = f"sha256:{m.group(1)}" if m else ""
        layers.append(Blob(digest, store.size(name), "", location=name))

    def open_blob(blob: Blob) -> AbstractContextManager[Readable]:
        return store.open(blob.location)

    shown = tag or (tags[0] if tags else "")
    label = f"docker-archive:{store.display.partition(':')[2]}"
    if shown:
        label += f":{clean(shown, 128)}"
    return Image(f"{label}@{image_id}", image_id, config, tuple(layers), open_blob)
