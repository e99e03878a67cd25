"""The records the image transports and the layer reader share (no imports of the package)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol

from kascan.errors import KascanError


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Blob:
    """A config or layer as a manifest names it. ``digest`` is what its bytes must hash to
    (checked as they are read; ``""`` when nothing names it), ``size`` -1 when unknown."""

    digest: str
    size: int = -1
    media_type: str = ""
    diff_id: str = ""  # digest of the uncompressed layer, from the config (a label only)
    location: str = ""  # where a local store keeps it (docker-archive member path)


@dataclass(frozen=True, slots=True)
class Image:
    """One image (one platform): its identity, config bytes and layers, base first."""

    label: str  # "REF@sha256:…" plus " linux/arm64" when it comes from an index
    digest: str  # manifest digest (the image ID for docker-archive, which keeps no manifest)
    config: bytes
    layers: tuple[Blob, ...]
    open_blob: Callable[[Blob], AbstractContextManager[Readable]] = field(repr=False)
    annotations: tuple[tuple[str, str], ...] = ()


Warn = Callable[[str], None]

TRANSPORTS = ("docker://", "docker-archive:", "oci-archive:", "oci:")


@dataclass(frozen=True, slots=True)
class Platform:
    os: str
    arch: str
    variant: str = ""

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = text.strip().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise KascanError(f"--platform {text!r}: expected OS/ARCH[/VARIANT] (linux/amd64)")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else "")

    def matches(self, os_: str, arch: str, variant: str) -> bool:
        return (
            self.os == os_ and self.arch == arch and (not self.variant or self.variant == variant)
        )


@dataclass(frozen=True, slots=True)
class ImageSettings:
    platform: Platform | None = None
    auth_file: str | None = None  # docker config.json with "auths"
    max_layer_bytes: int = 8 << 30  # compressed size and decompressed bytes of one layer
    timeout: float = 60.0
