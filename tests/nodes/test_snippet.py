"""Snippet PNGs: the graph JSON embedded in a PNG text chunk, read back without Qt."""

from __future__ import annotations

import struct
import zlib

import pytest

from conv3dt_studio import nodes
from conv3dt_studio.nodes.snippet import KEYWORD, PNG_SIGNATURE, embed_graph_text, read_graph_text


def _chunk(ctype: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(ctype + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", crc)


def tiny_png(*extra: bytes) -> bytes:
    """A valid 1x1 grey PNG, with ``extra`` chunks before IEND."""
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00\x80")
    return (
        PNG_SIGNATURE
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", idat)
        + b"".join(extra)
        + _chunk(b"IEND", b"")
    )


def test_embed_and_read_back(doc, tmp_path):
    png = embed_graph_text(tiny_png(), doc.dumps())
    assert read_graph_text(png) == doc.dumps()
    path = tmp_path / "snippet.png"
    path.write_bytes(png)
    assert nodes.load(path).to_json() == doc.to_json()


def test_embedding_again_replaces_the_old_graph(doc):
    png = embed_graph_text(tiny_png(), "old")
    png = embed_graph_text(png, doc.dumps())
    assert png.count(KEYWORD.encode()) == 1
    assert read_graph_text(png) == doc.dumps()


@pytest.mark.parametrize("ctype", ["tEXt", "zTXt", "iTXt"])
def test_graph_in_any_text_chunk_kind(doc, tmp_path, ctype):
    key = KEYWORD.encode() + b"\0"
    text = doc.dumps().encode()
    body = {
        "tEXt": key + text,
        "zTXt": key + b"\0" + zlib.compress(text),
        "iTXt": key + b"\0\0" + b"\0" + b"\0" + text,
    }[ctype]
    path = tmp_path / "s.png"
    path.write_bytes(tiny_png(_chunk(ctype.encode(), body)))
    assert nodes.load(path).to_json() == doc.to_json()


def test_png_without_a_graph(tmp_path):
    path = tmp_path / "plain.png"
    path.write_bytes(tiny_png(_chunk(b"tEXt", b"Software\0paint")))
    with pytest.raises(nodes.FileError, match="plain.png` is a PNG without an embedded"):
        nodes.load(path)


@pytest.mark.parametrize(
    ("mangle", "needle"),
    [
        (lambda b: b[:40], "truncated or corrupt PNG"),
        (lambda b: b[:-12], "truncated PNG \\(no IEND chunk\\)"),
        (lambda b: b[:20] + bytes([b[20] ^ 0xFF]) + b[21:], "bad checksum"),
        (lambda b: b"GIF89a" + b[6:], "not a PNG file"),
    ],
)
def test_corrupt_png(doc, tmp_path, mangle, needle):
    path = tmp_path / "bad.png"
    path.write_bytes(mangle(embed_graph_text(tiny_png(), doc.dumps())))
    with pytest.raises(nodes.FileError, match=needle):
        nodes.load(path)


def test_corrupt_compressed_text(tmp_path):
    body = KEYWORD.encode() + b"\0\x01\x00\0\0" + b"not zlib"
    path = tmp_path / "bad.png"
    path.write_bytes(tiny_png(_chunk(b"iTXt", body)))
    with pytest.raises(nodes.FileError, match="corrupt compressed text chunk"):
        nodes.load(path)


def test_embedded_text_that_is_not_a_graph(tmp_path):
    path = tmp_path / "s.png"
    path.write_bytes(embed_graph_text(tiny_png(), "{not json"))
    with pytest.raises(nodes.DocumentError, match="s.png: not valid JSON"):
        nodes.load(path)
