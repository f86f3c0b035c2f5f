"""Snippet PNGs: a picture of a graph with the graph's JSON embedded in a PNG text chunk.

Pure Python (no Qt), so the command line can run a snippet. The editor renders the picture with Qt
and embeds the JSON with :func:`embed_graph_text`. Reading accepts the JSON in a ``tEXt``, ``zTXt``
or ``iTXt`` chunk under the keyword :data:`KEYWORD` (Qt's ``QImageWriter.setText`` writes these).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

from .files import FileError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
KEYWORD = "conv3dt-studio/graph"
_MAX_TEXT = 64 * 2**20  # refuse decompressing more than this (zip bombs)


def _chunks(data: bytes, source: str) -> Iterator[tuple[bytes, bytes]]:
    if not data.startswith(PNG_SIGNATURE):
        raise FileError(f"`{source}` is not a PNG file (bad signature)")
    pos = len(PNG_SIGNATURE)
    while pos < len(data):
        if pos + 8 > len(data):
            raise FileError(
                f"`{source}` is a truncated or corrupt PNG (chunk header at byte {pos})"
            )
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 12 + length
        if end > len(data):
            raise FileError(
                f"`{source}` is a truncated or corrupt PNG (chunk {ctype!r} at byte "
                f"{pos} runs past the end)"
            )
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : end])
        if zlib.crc32(ctype + body) & 0xFFFFFFFF != crc:
            raise FileError(f"`{source}` is a corrupt PNG (bad checksum in chunk {ctype!r})")
        yield ctype, body
        if ctype == b"IEND":
            return
        pos = end
    raise FileError(f"`{source}` is a truncated PNG (no IEND chunk)")


def _inflate(blob: bytes, source: str) -> bytes:
    d = zlib.decompressobj()
    try:
        out = d.decompress(blob, _MAX_TEXT)
    except zlib.error as exc:
        raise FileError(f"`{source}`: corrupt compressed text chunk ({exc})") from exc
    if d.unconsumed_tail:
        raise FileError(f"`{source}`: embedded text larger than {_MAX_TEXT} bytes")
    return out


def read_text_chunks(data: bytes, source: str = "PNG") -> dict[str, str]:
    """All text chunks of a PNG as ``{keyword: text}``; a keyword of ours found twice is refused
    (which one is meant cannot be known)."""
    out: dict[str, str] = {}
    for ctype, body in _chunks(data, source):
        if ctype not in (b"tEXt", b"zTXt", b"iTXt"):
            continue
        key, sep, rest = body.partition(b"\0")
        if not sep:
            continue
        keyword = key.decode("latin-1")
        if keyword == KEYWORD and keyword in out:
            raise FileError(
                f"`{source}` holds two embedded graphs (`{KEYWORD}` text chunks); a snippet holds "
                "one"
            )
        if ctype == b"tEXt":
            out[keyword] = rest.decode("latin-1")
        elif ctype == b"zTXt":
            out[keyword] = _inflate(rest[1:], source).decode("latin-1")
        else:
            if len(rest) < 2:
                continue
            compressed = rest[0] == 1
            _lang, _, rest2 = rest[2:].partition(b"\0")
            _tkey, _, text = rest2.partition(b"\0")
            raw = _inflate(text, source) if compressed else text
            out[keyword] = raw.decode("utf-8", errors="replace")
    return out


def read_graph_text(data: bytes, source: str = "PNG") -> str:
    """The embedded graph JSON, or a clear error when the PNG carries none."""
    texts = read_text_chunks(data, source)
    if KEYWORD not in texts:
        raise FileError(
            f"`{source}` is a PNG without an embedded Conv3DT Studio graph (no "
            f"`{KEYWORD}` text chunk); export snippets from the editor"
        )
    return texts[KEYWORD]


def _chunk(ctype: bytes, body: bytes) -> bytes:
    return (
        struct.pack(">I", len(body))
        + ctype
        + body
        + struct.pack(">I", zlib.crc32(ctype + body) & 0xFFFFFFFF)
    )


def embed_graph_text(png: bytes, text: str) -> bytes:
    """Return ``png`` with ``text`` in a compressed ``iTXt`` chunk (replacing an older one)."""
    body = (
        KEYWORD.encode("latin-1")
        + b"\0"
        + b"\x01\x00"
        + b"\0"
        + b"\0"
        + zlib.compress(text.encode("utf-8"), 9)
    )
    out = [PNG_SIGNATURE]
    for ctype, cbody in _chunks(png, "PNG"):
        if ctype in (b"tEXt", b"zTXt", b"iTXt") and cbody.split(b"\0", 1)[0] == KEYWORD.encode():
            continue
        if ctype == b"IEND":
            out.append(_chunk(b"iTXt", body))
        out.append(_chunk(ctype, cbody))
    return b"".join(out)
