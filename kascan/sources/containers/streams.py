"""zstd and lz4 frames as readable streams (PyPI ``zstandard`` and ``lz4``, installed with kascan).

Memory is bounded by the decoder: a zstd frame that asks for a window over
:data:`MAX_WINDOW` is refused (an error: a warning); an lz4 frame's blocks are at most 4 MiB.
What a stream decompresses to is capped per member like every other member."""

from __future__ import annotations

from typing import IO, cast

MAX_WINDOW = 1 << 27  # 128 MiB: zstd's default limit for a decoder (zstd -d refuses more too)


def open_stream(kind: str, raw: IO[bytes]) -> IO[bytes]:
    """A file object that reads the decompressed bytes of ``raw`` (``kind``: zstd or lz4)."""
    if kind == "zstd":
        import zstandard

        dctx = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW)
        return cast("IO[bytes]", dctx.stream_reader(raw, read_across_frames=True, closefd=False))
    import lz4.frame

    return cast("IO[bytes]", lz4.frame.LZ4FrameFile(raw, mode="rb"))
