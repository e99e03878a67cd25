"""The text of OOXML (docx, xlsx, pptx) and ODF (odt, ods, odp) documents, joined across runs.

A word processor splits a paragraph into runs wherever the formatting, the spell checker or the
revision history changes (``<w:r><w:t>ka_live_Ab</w:t></w:r><w:r><w:t>3d…</w:t></w:r>``), so a
pasted key is often cut by tags. The part's XML is scanned as it is; then each paragraph's text
with the tags taken out is scanned too, as ``doc.docx!word/document.xml`` with
``decoded: "text"`` and the paragraph's number as its line, but only where the joined text holds
a key-shaped string that the XML does not (a key in one run is reported once)."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from kascan.model import Chunk
from kascan.rules import BUILTIN_PREFIX
from kascan.sources.archives import member_chunks

if TYPE_CHECKING:
    from kascan.sources.archives import Budget, Limits, Source

Warn = Callable[[str], None]
PREFIX = BUILTIN_PREFIX.encode()
_PARAGRAPH_END = re.compile(rb"</(?:w:p|a:p|text:p|text:h|si|x:si)>")
_TAG = re.compile(rb"<[^>]{0,4096}>")
_BREAK = re.compile(rb"<(?:w:tab|w:br|a:br|text:tab|text:line-break|text:s)\b[^>]{0,4096}>")
_ENTITY = re.compile(rb"&(#[0-9]{1,7}|#x[0-9a-fA-F]{1,6}|amp|lt|gt|quot|apos);")
_NAMED = {b"amp": b"&", b"lt": b"<", b"gt": b">", b"quot": b'"', b"apos": b"'"}


def _entity(m: re.Match[bytes]) -> bytes:
    ent = m.group(1)
    if ent in _NAMED:
        return _NAMED[ent]
    n = int(ent[2:], 16) if ent[1:2] == b"x" else int(ent[1:])
    return chr(n).encode("utf-8", "replace") if n < 0x110000 else b"?"


def paragraphs(xml: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(the paragraph's XML, its text) for every paragraph of a part."""
    start = 0
    for m in _PARAGRAPH_END.finditer(xml):
        part = xml[start : m.end()]
        start = m.end()
        text = _TAG.sub(b"", _BREAK.sub(b" ", part))
        yield part, _ENTITY.sub(_entity, text)


def document_chunks(
    name: str, member: Source, depth: int, limits: Limits, budget: Budget, warn: Warn
) -> Iterator[Chunk]:
    xml = member.read(limits.max_in_memory + 1)
    yield from member_chunks(name, io.BytesIO(xml), depth, limits, budget, warn)
    for number, (part, text) in enumerate(paragraphs(xml), 1):
        at = text.find(PREFIX)
        while at != -1:
            if text[at : at + len(PREFIX) + 32] not in part:
                yield Chunk(name, text, number, decoded="text")
                break
            at = text.find(PREFIX, at + 1)
