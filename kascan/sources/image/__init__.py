"""Container images: registries, OCI layouts and ``docker save`` archives, scanned layer by layer.

References take the transports people type for skopeo:

* ``docker-archive:PATH`` (``docker save`` / ``podman save``), ``oci-archive:PATH[:TAG]``,
  ``oci:DIR[:TAG]`` (an OCI image layout): :mod:`kascan.sources.image.oci`;
* ``[docker://]HOST[:PORT]/NAME[:TAG|@sha256:DIGEST]``, pulled over the OCI distribution API:
  :mod:`kascan.sources.image.registry`.

Each transport turns a reference into :class:`Image` records (one per platform of an index) that
say where the config and the layers are; :mod:`kascan.sources.image.layers` then yields the
chunks: the config's ``Env``, labels, ``Cmd``/``Entrypoint`` and build history as what they are
(``config: Env NAME``, ``history step 7: RUN``), and every layer streamed once (never written to
disk), its members opened by :func:`kascan.sources.archives.expand` (a jar in a layer is looked
inside). The image goes into the chunk's ``repo`` (``REF@sha256:…``), the layer and the path in
it into ``path``: ``layer 3 sha256:… (step 7: COPY)!app/.env (removed in layer 4)``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from kascan.errors import KascanError
from kascan.sources.base import Run, Source
from kascan.sources.image.types import (
    TRANSPORTS,
    Blob,
    Image,
    ImageSettings,
    Platform,
    Readable,
    Warn,
)

if TYPE_CHECKING:
    from kascan.model import Chunk
    from kascan.sources.archives import Limits
    from kascan.sources.image.layers import RunState
    from kascan.stats import ScanStats


__all__ = [
    "TRANSPORTS",
    "Blob",
    "Image",
    "ImageSettings",
    "ImageSource",
    "Platform",
    "Readable",
    "Warn",
    "iter_image_chunks",
    "resolve",
]


def resolve(ref: str, settings: ImageSettings, warn: Warn) -> Iterator[Image]:
    """The images a reference names (several for a multi-platform index), by transport."""
    from kascan.sources.image import oci, registry

    transport, sep, rest = ref.partition(":")
    if sep and transport == "docker-archive":
        yield from oci.docker_archive(rest, settings, warn)
    elif sep and transport == "oci-archive":
        yield from oci.oci_archive(rest, settings, warn)
    elif sep and transport == "oci":
        yield from oci.oci_layout(rest, settings, warn)
    elif ref.startswith("docker://"):
        yield from registry.pull(ref[len("docker://") :], settings, warn)
    elif registry.looks_like_registry_ref(ref):
        yield from registry.pull(ref, settings, warn)
    elif sep and "/" not in transport:
        raise KascanError(
            f"{ref}: unknown transport {transport!r} (use docker://, docker-archive:, "
            "oci-archive: or oci:)"
        )
    else:
        raise KascanError(
            f"{ref}: not an image reference (a registry image is docker://HOST/NAME:TAG; "
            "local ones are docker-archive:PATH, oci-archive:PATH, oci:DIR[:TAG])"
        )


def iter_image_chunks(
    refs: list[str],
    settings: ImageSettings,
    limits: Limits | None,
    stats: ScanStats,
    warn: Warn,
    state: RunState | None = None,
) -> Iterator[Chunk]:
    """The chunks of every image the references name; each layer digest scanned once per run.

    A reference that cannot be read is a warning and the next one is scanned; when none could
    be, the (only) error is raised, so that nothing scanned means exit 2.
    """
    from kascan.sources.image.layers import RunState, scan_image

    state = state if state is not None else RunState()
    failures: list[str] = []
    for ref in refs:
        before = state.scanned_images
        try:
            for image in resolve(ref, settings, warn):
                yield from scan_image(image, state, stats, limits, settings.max_layer_bytes, warn)
        except KascanError as exc:
            message = exc.format_message()
            if state.scanned_images > before and state.scanned_images:
                warn(message)  # part of this reference was scanned
            else:
                failures.append(message)
                if len(refs) > 1:
                    warn(message)
    stats.extra["images"] = stats.extra.get("images", 0) + state.scanned_images
    stats.extra["layers"] = stats.extra.get("layers", 0) + state.scanned_layers
    if state.shared_layers:
        stats.extra["layers_shared"] = stats.extra.get("layers_shared", 0) + state.shared_layers
    if state.scanned_images == 0 and failures:
        if len(failures) == 1:
            raise KascanError(failures[0])
        raise KascanError(f"no image could be read ({len(failures)} references failed)")


class ImageSource(Source):
    """Images, layer by layer: the pipeline unwraps (decoders), matches and reports."""

    def __init__(self, refs: Sequence[str], settings: ImageSettings) -> None:
        super().__init__()
        self.refs = list(refs)
        self.settings = settings

    def chunks(self, run: Run) -> Iterator[Chunk]:
        from kascan.sources.image.layers import RunState

        state = RunState(verbose=run.verbose)
        yield from iter_image_chunks(
            self.refs, self.settings, run.limits, run.stats, run.warn, state
        )
        shared = (
            f"; {state.shared_layers} layer(s) shared with an image already scanned were read once"
            if state.shared_layers
            else ""
        )
        self.notes.insert(
            0, f"{state.scanned_images} image(s), {state.scanned_layers} layer(s) read{shared}."
        )
