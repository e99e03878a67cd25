"""An image's chunks: its config as what it is, then its layers, top layer first.

Layers are read from the top down so that, when a layer is scanned, every later layer's whiteouts
(``dir/.wh.name``, ``dir/.wh..wh..opq``) and replacements are already known: a file that a later
layer removes is still reported (it can be pulled), its path marked ``(removed in layer N)``.
Layers are numbered from 1 (the base) and each is streamed once: its bytes hashed as they arrive
(a layer that does not match its digest is not remembered as scanned), decompressed, and read as
a tar stream; regular members go through :func:`kascan.sources.archives.expand`, so archives and
jars inside a layer are opened with the usual limits. A layer already scanned in this run (same
digest: shared by two images or platforms) is not read again; its whiteouts are remembered.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field, replace
from typing import IO, TYPE_CHECKING, cast

from kascan.errors import KascanError
from kascan.model import Chunk
from kascan.sources.archives import Limits, expand
from kascan.sources.image.manifest import clean, load_json, valid_digest
from kascan.sources.image.types import Blob, Image, Readable, Warn
from kascan.sources.stream import iter_stream
from kascan.stats import ScanStats, Skipped, human_bytes, skipped

if TYPE_CHECKING:
    import tarfile

_NONTAR_HINTS = ("json", "text", "yaml", "helm", "in-toto")
_INSTRUCTIONS = frozenset(
    {
        *("ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "HEALTHCHECK", "LABEL"),
        *("MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"),
    }
)


@dataclass(slots=True)
class LayerIndex:
    """What one layer does to the layers below it."""

    removed: list[str] = field(default_factory=list)  # paths whited out
    opaque: list[str] = field(default_factory=list)  # directories made opaque
    entries: list[str] = field(default_factory=list)  # non-directory paths it holds


@dataclass
class RunState:
    """What one run has scanned already: layers and images by digest."""

    layers: dict[str, LayerIndex] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)  # digest -> label first scanned as
    scanned_images: int = 0
    scanned_layers: int = 0
    shared_layers: int = 0
    verbose: bool = False  # -v: each layer and member not scanned is a Skipped line too


class _Upper:
    """The whiteouts and entries of the layers above the one being scanned (nearest wins)."""

    def __init__(self) -> None:
        self.removed: dict[str, int] = {}
        self.opaque: dict[str, int] = {}
        self.present: dict[str, int] = {}

    def add(self, index: LayerIndex, number: int) -> None:
        for p in index.removed:
            self.removed[p] = number
        for d in index.opaque:
            self.opaque[d] = number
        for p in index.entries:
            self.present[p] = number

    def note(self, path: str) -> str:
        if not (self.removed or self.opaque or self.present):
            return ""
        best: tuple[int, str] | None = None

        def consider(number: int | None, what: str) -> None:
            nonlocal best
            if number is not None and (best is None or number < best[0]):
                best = (number, what)

        consider(self.present.get(path), "replaced")
        consider(self.removed.get(path), "removed")
        parent = path
        while "/" in parent:
            parent = parent.rsplit("/", 1)[0]
            consider(self.removed.get(parent), "removed")
            consider(self.opaque.get(parent), "removed")
        consider(self.opaque.get(""), "removed")
        if best is None:
            return ""
        return f" ({best[1]} in layer {best[0]})"


def _norm(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name.strip("/")


def _instruction(created_by: str) -> str:
    """``RUN``, ``COPY``…: the Dockerfile instruction of a history step (a label only)."""
    text = created_by.strip()
    for shell in ("/bin/sh -c ", "|"):
        if text.startswith(shell):
            text = text[len(shell) :].lstrip()
            if shell == "|":
                text = text.split(" ", 1)[-1]
    if text.startswith("#(nop)"):
        text = text[len("#(nop)") :].strip()
        word = text.split(" ", 1)[0].upper() if text else ""
        return word if word in _INSTRUCTIONS else "RUN"
    word = text.split(" ", 1)[0] if text else ""
    return word if word in _INSTRUCTIONS else "RUN"


def _text_chunks(path: str, text: str) -> Iterator[Chunk]:
    yield from iter_stream(io.BytesIO(text.encode("utf-8", "replace")).read, path)


def config_chunks(image: Image, config: dict[str, object]) -> Iterator[Chunk]:
    """``Env`` entries, labels, ``Cmd``/``Entrypoint``, each history step, the manifest's
    annotations, and what else the config holds, each under its own name."""
    repo = image.label
    inner = config.get("config")
    handled = {"Env", "Labels", "Cmd", "Entrypoint"}
    rest_inner: dict[str, object] = {}
    if isinstance(inner, dict):
        env = inner.get("Env")
        if isinstance(env, list):
            for entry in env:
                if isinstance(entry, str):
                    name = clean(entry.partition("=")[0], 80)
                    yield from _with_repo(_text_chunks(f"config: Env {name}", entry), repo)
        labels = inner.get("Labels")
        if isinstance(labels, dict):
            for k, v in labels.items():
                if isinstance(v, str):
                    text = f"{k}={v}"
                    yield from _with_repo(_text_chunks(f"config: Label {clean(k, 80)}", text), repo)
        for name in ("Entrypoint", "Cmd"):
            value = inner.get(name)
            if isinstance(value, list) and all(isinstance(x, str) for x in value):
                yield from _with_repo(_text_chunks(f"config: {name}", " ".join(value)), repo)
            elif isinstance(value, str):
                yield from _with_repo(_text_chunks(f"config: {name}", value), repo)
        rest_inner = {k: v for k, v in inner.items() if k not in handled}
    history = config.get("history")
    if isinstance(history, list):
        for n, step in enumerate(history, 1):
            if not isinstance(step, dict):
                continue
            created = step.get("created_by")
            if isinstance(created, str) and created:
                path = f"history step {n}: {_instruction(created)}"
                yield from _with_repo(_text_chunks(path, created), repo)
            comment = step.get("comment")
            if isinstance(comment, str) and comment:
                yield from _with_repo(_text_chunks(f"history step {n}: comment", comment), repo)
    for k, v in image.annotations:
        yield from _with_repo(_text_chunks(f"manifest: annotation {clean(k, 80)}", v), repo)
    rest = {k: v for k, v in config.items() if k not in ("config", "history", "rootfs")}
    if rest_inner:
        rest["config"] = rest_inner
    if rest:
        text = json.dumps(rest, indent=1, ensure_ascii=False, sort_keys=True)
        yield from _with_repo(_text_chunks("config", text), repo)


def _with_repo(chunks: Iterator[Chunk], repo: str) -> Iterator[Chunk]:
    for c in chunks:
        yield replace(c, repo=repo)


def _steps(config: dict[str, object], layers: int) -> list[tuple[int, str] | None]:
    """For each layer, the history step that made it (when the history agrees with the layers)."""
    history = config.get("history")
    out: list[tuple[int, str] | None] = []
    if isinstance(history, list):
        for n, step in enumerate(history, 1):
            if isinstance(step, dict) and not step.get("empty_layer"):
                created = step.get("created_by")
                out.append((n, _instruction(created) if isinstance(created, str) else "RUN"))
    return out if len(out) == layers else [None] * layers


def _diff_ids(config: dict[str, object], layers: int) -> list[str]:
    rootfs = config.get("rootfs")
    ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if isinstance(ids, list) and len(ids) == layers and all(valid_digest(x) for x in ids):
        return [str(x) for x in ids]
    return [""] * layers


class _Raw:
    """The layer's bytes as they arrive: counted, hashed, capped."""

    def __init__(self, src: Readable, digest: str, cap: int) -> None:
        self._src = src
        alg = digest.partition(":")[0]
        self._hash = hashlib.new(alg) if alg in ("sha256", "sha512") else None
        self._cap = cap
        self.count = 0
        self.over = False

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = 1 << 20
        if self.count >= self._cap:
            self.over = self.over or bool(self._src.read(1))
            return b""
        block = self._src.read(min(n, self._cap - self.count))
        self.count += len(block)
        if self._hash is not None:
            self._hash.update(block)
        return block

    read1 = read

    def hexdigest(self) -> str:
        return self._hash.hexdigest() if self._hash is not None else ""


class _Capped:
    """A decompressed stream that ends (``over`` set) after ``cap`` bytes."""

    def __init__(self, src: Readable, cap: int) -> None:
        self._src = src
        self._cap = cap
        self.count = 0
        self.over = False

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = 1 << 20
        left = self._cap - self.count
        if left <= 0:
            if self._src.read(1):
                self.over = True
            return b""
        block = self._src.read(min(n, left))
        self.count += len(block)
        return block


class _Member(_Capped):
    """A tar member, capped per member like an archive member; never seekable."""

    @property
    def truncated(self) -> bool:
        return self.over

    def seekable(self) -> bool:
        return False

    def read1(self, n: int = -1) -> bytes:
        return self.read(n)

    def close(self) -> None:
        pass


def _errors() -> tuple[type[BaseException], ...]:
    import lzma
    import tarfile
    import zlib

    return (OSError, EOFError, ValueError, tarfile.TarError, zlib.error, lzma.LZMAError)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return clean(text.splitlines()[0], 160)


def scan_image(
    image: Image,
    state: RunState,
    stats: ScanStats,
    limits: Limits | None,
    max_layer_bytes: int,
    warn: Warn,
) -> Iterator[Chunk]:
    """The chunks of one image: its config, then its layers from the top down."""
    note = warn if state.verbose else None
    first = state.images.get(image.digest)
    if first is not None:
        warn(f"{image.label}: the same image as {first}: not scanned again")
        if note is not None:
            note(skipped(image.label, f"the same image as {first} (scanned once)"))
        return
    state.images[image.digest] = image.label
    state.scanned_images += 1
    try:
        config = load_json(image.config, f"{image.label}: config")
    except KascanError as exc:
        warn(exc.format_message() + "; its layers are scanned without it")
        config = {}
    yield from config_chunks(image, config)
    n = len(image.layers)
    steps = _steps(config, n)
    diff_ids = _diff_ids(config, n)
    upper = _Upper()
    for i in range(n - 1, -1, -1):
        blob = replace(image.layers[i], diff_id=diff_ids[i])
        number = i + 1
        step = steps[i]
        label = f"layer {number} {blob.diff_id or blob.digest}"
        if step is not None:
            label += f" (step {step[0]}: {step[1]})"
        known = state.layers.get(blob.digest) if blob.digest else None
        if known is not None:
            state.shared_layers += 1
            upper.add(known, number)
            if note is not None:
                note(skipped(f"{image.label}: {label}", "a layer already scanned in this run"))
            continue
        if blob.size > max_layer_bytes:
            warn(
                f"{image.label}: {label}: {human_bytes(blob.size)}, over the layer size limit "
                f"({human_bytes(max_layer_bytes)}): not scanned"
            )
            if note is not None:
                cap = human_bytes(max_layer_bytes)
                why = f"{human_bytes(blob.size)}, over the layer size limit ({cap})"
                note(skipped(f"{image.label}: {label}", why))
            continue
        index = LayerIndex()
        ok = yield from _scan_layer(
            image, blob, label, upper, index, stats, limits, max_layer_bytes, warn, note
        )
        state.scanned_layers += 1
        if ok and blob.digest:
            state.layers[blob.digest] = index
        upper.add(index, number)


def _not_regular(m: tarfile.TarInfo) -> str:
    if m.issym():
        return "a symbolic link in the layer (never followed)"
    if m.islnk():
        return "a hard link in the layer (its target is scanned)"
    return "not a regular file (a device or a FIFO in the layer)"


def _is_tar(blob: Blob) -> bool:
    media = blob.media_type.lower()
    if not media or "tar" in media:
        return True
    return not any(h in media for h in _NONTAR_HINTS)


def _scan_layer(
    image: Image,
    blob: Blob,
    label: str,
    upper: _Upper,
    index: LayerIndex,
    stats: ScanStats,
    limits: Limits | None,
    max_layer_bytes: int,
    warn: Warn,
    note: Warn | None = None,
) -> Generator[Chunk, None, bool]:
    """One layer's chunks; returns whether it was read whole and matched its digest."""
    where = f"{image.label}: {label}"
    errors = _errors()
    try:
        with image.open_blob(blob) as src:
            raw = _Raw(src, blob.digest, max_layer_bytes)
            if _is_tar(blob):
                yield from _tar_layer(
                    raw,
                    label,
                    image.label,
                    upper,
                    index,
                    stats,
                    limits,
                    max_layer_bytes,
                    warn,
                    note,
                )
            else:  # an artifact or attestation (JSON, in-toto): its bytes, archives opened
                stats.files += 1
                for chunk in _content(label, raw, limits, warn):
                    stats.bytes += len(chunk.data) - chunk.fresh
                    yield replace(chunk, repo=image.label)
            while raw.read(1 << 20):
                pass
    except KascanError as exc:
        warn(f"{where}: {exc.format_message()}; the rest of it is not scanned")
        if note is not None:
            note(Skipped(f"skipped the rest of {where}: {exc.format_message()}"))
        return False
    except errors as exc:
        warn(f"{where}: cannot read ({_reason(exc)}); the rest of it is not scanned")
        if note is not None:
            note(Skipped(f"skipped the rest of {where}: cannot read it ({_reason(exc)})"))
        return False
    if raw.over:
        warn(
            f"{where}: over the layer size limit ({human_bytes(max_layer_bytes)}); "
            "the rest of it is not scanned"
        )
        if note is not None:
            why = f"over the layer size limit ({human_bytes(max_layer_bytes)})"
            note(Skipped(f"skipped the rest of {where}: {why}"))
        return False
    if blob.size >= 0 and raw.count != blob.size:
        warn(f"{where}: {raw.count} bytes read, the manifest says {blob.size} (truncated?)")
        return False
    got = raw.hexdigest()
    if got and got != blob.digest.partition(":")[2]:
        warn(
            f"{where}: content does not match its digest (corrupt or tampered); not remembered "
            "as scanned"
        )
        return False
    return True


def _content(path: str, src: Readable, limits: Limits | None, warn: Warn) -> Iterator[Chunk]:
    if limits is None:
        return iter_stream(src.read, path)
    return expand(path, cast("IO[bytes]", src), limits, warn)


def _decompressed(raw: _Raw) -> Readable:
    head = raw.read(6)
    src = _Replay(raw, head)
    if head.startswith(b"\x1f\x8b"):
        import gzip

        return gzip.GzipFile(fileobj=cast("IO[bytes]", src), mode="rb")
    if head.startswith(b"\x28\xb5\x2f\xfd"):  # tar+zstd (skopeo, buildah, docker --compression)
        from kascan.sources.containers.streams import open_stream

        return open_stream("zstd", cast("IO[bytes]", src))
    if head.startswith(b"\xfd7zXZ\x00"):
        import lzma

        return lzma.LZMAFile(cast("IO[bytes]", src))
    return src


class _Replay:
    def __init__(self, src: Readable, head: bytes) -> None:
        self._src = src
        self._head = head

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n is None or n < 0 or n >= len(self._head):
                block, self._head = self._head, b""
                if n is not None and n > len(block):
                    block += self._src.read(n - len(block))
                return block
            block, self._head = self._head[:n], self._head[n:]
            return block
        return self._src.read(n)

    read1 = read


def _tar_layer(
    raw: _Raw,
    label: str,
    repo: str,
    upper: _Upper,
    index: LayerIndex,
    stats: ScanStats,
    limits: Limits | None,
    max_layer_bytes: int,
    warn: Warn,
    skips: Warn | None = None,
) -> Iterator[Chunk]:
    import tarfile

    member_cap = limits.max_member_bytes if limits is not None else max_layer_bytes
    stream = _Capped(_decompressed(raw), max_layer_bytes)
    members = 0
    with tarfile.open(fileobj=cast("IO[bytes]", stream), mode="r|") as tf:
        for m in tf:
            name = _norm(m.name)
            parent, _, base = name.rpartition("/")
            if base.startswith(".wh."):
                if base == ".wh..wh..opq":
                    index.opaque.append(parent)
                else:
                    index.removed.append(f"{parent}/{base[4:]}" if parent else base[4:])
                continue
            if not m.isdir():
                index.entries.append(name)
            if not m.isreg():  # symlinks, hard links, devices: never followed
                if skips is not None and not m.isdir():
                    skips(skipped(f"{repo}: {label}!{clean(name, 4096)}", _not_regular(m)))
                continue
            members += 1
            if limits is not None and members > limits.max_members:
                warn(
                    f"{repo}: {label}: over {limits.max_members} members (limit); "
                    "the rest is not scanned"
                )
                if skips is not None:
                    why = f"over {limits.max_members} members (archive-members limit)"
                    skips(Skipped(f"skipped the rest of {repo}: {label}: {why}"))
                break
            f = tf.extractfile(m)
            if f is None:
                continue
            note = upper.note(name)
            path = f"{label}!{clean(name, 4096)}"
            member = _Member(f, member_cap)
            stats.files += 1
            for chunk in _content(path, member, limits, warn):
                yield (
                    replace(chunk, repo=repo, path=chunk.path + note)
                    if note
                    else replace(chunk, repo=repo)
                )
            stats.bytes += member.count
            if member.truncated:
                warn(
                    f"{repo}: {path}: member stopped after {human_bytes(member_cap)} "
                    "(limit); the rest is not scanned"
                )
                if skips is not None:
                    why = f"over {human_bytes(member_cap)} (member-bytes limit)"
                    skips(Skipped(f"skipped the rest of {repo}: {path}: {why}"))
    if stream.over:
        raise KascanError(f"over {human_bytes(max_layer_bytes)} decompressed (layer size limit)")
