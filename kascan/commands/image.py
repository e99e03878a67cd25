"""``kascan image REF...``: container images from registries, OCI layouts and ``docker save``
archives, layer by layer (see :mod:`kascan.sources.image`)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

import click

from kascan.errors import KascanError
from kascan.options import GroupedCommand, RunOptions, run_options

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*$", re.IGNORECASE)


def parse_size(value: str) -> int:
    m = _SIZE.match(value)
    if not m:
        raise KascanError(f"--max-layer-size {value!r}: expected a size such as 512M or 4G")
    scale = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[m.group(2).upper()]
    return int(float(m.group(1)) * scale)


def pick_shard(refs: Sequence[str], index: int, count: int) -> list[str]:
    """Deterministic shards: a hash of the reference, whatever the order of the list."""
    return [
        r for r in refs if int(hashlib.sha256(r.encode()).hexdigest()[:16], 16) % count == index
    ]


@click.command(
    cls=GroupedCommand,
    epilog="""\b
Examples:
  kascan image registry.example.com/app:1.4      every platform of a registry image
  kascan image oci:build/oci:latest              an OCI layout a build just wrote
  kascan image docker-archive:app.tar --platform linux/amd64
""",
)
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
@run_options("image")
def image(
    refs: tuple[str, ...],
    images_from: Path | None,
    shard: str | None,
    platform: str | None,
    registry_auth: str | None,
    max_layer_size: str,
    opts: RunOptions,
) -> int:
    """Scan container images for Kubeadapt API keys: every layer (files removed by a later layer
    included), the config's Env, labels and build history.

    REF is docker://HOST[:PORT]/NAME[:TAG|@sha256:DIGEST] (or HOST/NAME:TAG),
    docker-archive:PATH (docker save), oci-archive:PATH[:TAG] or oci:DIR[:TAG].
    """
    from kascan import pipeline
    from kascan.fleet import read_repos_file
    from kascan.sources.image import ImageSettings, ImageSource, Platform

    wanted = list(refs)
    if images_from is not None:
        wanted += read_repos_file(images_from, "--images-from")
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
        timeout=max(opts.verify.timeout, 60.0),
    )
    source = ImageSource(wanted, settings)
    if shard and not wanted:
        source.notes.append("this shard holds no image.")
    return pipeline.run([source], opts)
