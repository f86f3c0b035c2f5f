"""Snippet PNGs: a picture of a graph with the graph's JSON embedded in a PNG text chunk.

Pure Python (no Qt), so the command line can run a snippet. The editor renders the picture with Qt
and embeds the JSON with :func:`embed_graph_text`. Reading accepts the JSON in a ``tEXt``, ``zTXt``
or ``iTXt`` chunk under the keyword :data:`KEYWORD` (Qt's ``QImageWriter.setText`` writes these).
Text under other keywords is never inflated, and the text read from one file is at most
:data:`MAX_TEXT_BYTES` in all (a decompression bomb is refused before it is inflated further).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Collection, Iterator

from .files import FileError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
KEYWORD = "conv3dt-studio/graph"
MAX_TEXT_BYTES = 64 * 2**20  # the text read from one PNG, all its chunks together (zip bombs)


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


def _inflate(blob: bytes, source: str, budget: int) -> bytes:
    """``blob`` inflated, refused as soon as it passes ``budget`` bytes (what is left of
    :data:`MAX_TEXT_BYTES` for this file): no more than ``budget + 1`` bytes are ever made."""
    d = zlib.decompressobj()
    try:
        out = d.decompress(blob, budget + 1)
    except zlib.error as exc:
        raise FileError(f"`{source}`: corrupt compressed text chunk ({exc})") from exc
    if len(out) > budget:
        raise _too_much_text(source)
    return out


def _too_much_text(source: str) -> FileError:
    return FileError(
        f"`{source}`: its embedded text is larger than {MAX_TEXT_BYTES // 2**20} MiB once "
        "inflated (the limit for a snippet PNG); refused"
    )


def read_text_chunks(
    data: bytes, source: str = "PNG", keywords: Collection[str] = (KEYWORD,)
) -> dict[str, str]:
    """The text chunks of a PNG under ``keywords`` (by default ours) as ``{keyword: text}``.
    Chunks under other keywords are skipped unread (never inflated); the texts read take at
    most :data:`MAX_TEXT_BYTES` in all. A keyword found twice is refused (which text is meant
    cannot be known)."""
    out: dict[str, str] = {}
    budget = MAX_TEXT_BYTES
    for ctype, body in _chunks(data, source):
        if ctype not in (b"tEXt", b"zTXt", b"iTXt"):
            continue
        key, sep, rest = body.partition(b"\0")
        keyword = key.decode("latin-1")
        if not sep or keyword not in keywords:
            continue
        if keyword in out:
            raise FileError(
                f"`{source}` holds two embedded graphs (`{keyword}` text chunks); a snippet holds "
                "one"
                if keyword == KEYWORD
                else f"`{source}` holds two `{keyword}` text chunks; which one is meant is unknown"
            )
        if ctype == b"tEXt":
            raw = rest
        elif ctype == b"zTXt":
            raw = _inflate(rest[1:], source, budget)
        else:
            if len(rest) < 2:
                continue
            compressed = rest[0] == 1
            _lang, _, rest2 = rest[2:].partition(b"\0")
            _tkey, _, text = rest2.partition(b"\0")
            raw = _inflate(text, source, budget) if compressed else text
        if len(raw) > budget:
            raise _too_much_text(source)
        budget -= len(raw)
        out[keyword] = (
            raw.decode("utf-8", errors="replace") if ctype == b"iTXt" else raw.decode("latin-1")
        )
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
    """Return ``png`` with ``text`` in a compressed ``iTXt`` chunk (replacing an older one). A
    text that a reader would refuse (above :data:`MAX_TEXT_BYTES`) is refused here instead."""
    raw = text.encode("utf-8")
    if len(raw) > MAX_TEXT_BYTES:
        raise FileError(
            f"The graph's text is {len(raw) / 2**20:.1f} MiB, above the "
            f"{MAX_TEXT_BYTES // 2**20} MiB a snippet PNG holds (embedded weights?); save it as "
            "a graph .json"
        )
    body = KEYWORD.encode("latin-1") + b"\0" + b"\x01\x00" + b"\0" + b"\0" + zlib.compress(raw, 9)
    out = [PNG_SIGNATURE]
    for ctype, cbody in _chunks(png, "PNG"):
        if ctype in (b"tEXt", b"zTXt", b"iTXt") and cbody.split(b"\0", 1)[0] == KEYWORD.encode():
            continue
        if ctype == b"IEND":
            out.append(_chunk(b"iTXt", body))
        out.append(_chunk(ctype, cbody))
    return b"".join(out)
