"""``kascan image REF...``: container images from registries, OCI layouts and ``docker save``
archives, layer by layer (see :mod:`kascan.sources.image`)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import click

from kascan.cli import (
    Reporter,
    _options,
    common_options,
    decoder_options,
    decoders_from,
    load_baselines,
    run_pipeline,
)
from kascan.errors import KascanError
from kascan.model import Chunk
from kascan.stats import ScanStats

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*$", re.IGNORECASE)


def parse_size(value: str) -> int:
    m = _SIZE.match(value)
    if not m:
        raise KascanError(f"--max-layer-size {value!r}: expected a size such as 512M or 4G")
    scale = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[m.group(2).upper()]
    return int(float(m.group(1)) * scale)


def read_images_file(path: Path) -> list[str]:
    """One image reference a line; blank lines and ``#`` comments are skipped."""
    try:
        text = click.open_file(str(path), encoding="utf-8").read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise KascanError(f"cannot read --images-from {path}: {reason}") from None
    return [s for line in text.splitlines() if (s := line.strip()) and not s.startswith("#")]


def pick_shard(refs: Sequence[str], index: int, count: int) -> list[str]:
    """Deterministic shards: a hash of the reference, whatever the order of the list."""
    return [
        r for r in refs if int(hashlib.sha256(r.encode()).hexdigest()[:16], 16) % count == index
    ]


@click.command()
@click.argument("refs", nargs=-1, metavar="[REF]...")
@click.option(
    "--images-from",
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
    help="Read image references from FILE, one a line ('#' comments).",
)
@click.option(
    "--shard",
    metavar="I/N",
    help="Scan only part I of N of the images (0-based; '/N' takes I from JOB_COMPLETION_INDEX).",
)
@click.option(
    "--platform",
    metavar="OS/ARCH[/VARIANT]",
    help="Of a multi-platform image, scan only this platform (default: every platform).",
)
@click.option(
    "--registry-auth",
    metavar="FILE",
    envvar="REGISTRY_AUTH_FILE",
    show_envvar=True,
    help="Registry credentials: a docker config.json / containers auth.json with 'auths' "
    "(default ~/.docker/config.json). A token in KASCAN_REGISTRY_TOKEN is sent as a bearer.",
)
@click.option(
    "--max-layer-size",
    default="8G",
    show_default=True,
    metavar="SIZE",
    help="Skip a layer bigger than this (compressed), stop one that decompresses past it.",
)
@decoder_options
@common_options
def image(
    refs: tuple[str, ...],
    images_from: Path | None,
    shard: str | None,
    platform: str | None,
    registry_auth: str | None,
    max_layer_size: str,
    **kw: object,
) -> int:
    """Scan container images for Kubeadapt API keys: every layer (files removed by a later layer
    included), the config's Env, labels and build history.

    REF is docker://HOST[:PORT]/NAME[:TAG|@sha256:DIGEST] (or HOST/NAME:TAG),
    docker-archive:PATH (docker save), oci-archive:PATH[:TAG] or oci:DIR[:TAG].
    """
    from kascan.sources.archives import DEFAULT_LIMITS
    from kascan.sources.decode import decode_chunks
    from kascan.sources.image import ImageSettings, Platform, iter_image_chunks
    from kascan.sources.image.layers import RunState

    decoders = decoders_from(kw)
    limits = DEFAULT_LIMITS if decoders.archives else None
    opts = _options("image", **kw)
    wanted = list(refs)
    if images_from is not None:
        wanted += read_images_file(images_from)
    if shard:
        from kascan.fleet import parse_shard

        wanted = pick_shard(wanted, *parse_shard(shard))
    elif not wanted:
        raise click.UsageError("give at least one image reference (or --images-from FILE)")
    wanted = list(dict.fromkeys(wanted))
    settings = ImageSettings(
        platform=Platform.parse(platform) if platform else None,
        auth_file=registry_auth or None,
        max_layer_bytes=parse_size(max_layer_size),
        timeout=max(opts.verify_timeout, 60.0),
    )
    stats = ScanStats()
    state = RunState()
    baseline = load_baselines(opts.baselines)

    def chunks(rep: Reporter) -> Iterator[Chunk]:
        raw = iter_image_chunks(wanted, settings, limits, stats, rep.warn, state)
        yield from decode_chunks(raw, decoders)

    def notes() -> list[str]:
        out = [
            f"{state.scanned_images} image(s), {state.scanned_layers} layer(s) read"
            + (
                f"; {state.shared_layers} layer(s) shared with an image already scanned "
                "were read once"
                if state.shared_layers
                else ""
            )
            + "."
        ]
        if shard and not wanted:
            out.append("this shard holds no image.")
        return out

    return run_pipeline(opts, stats, chunks, baseline, notes)
