"""Files from strangers that the hostile review found accepted, lost or read whole (FINDINGS #3, #8,
#9, #13): a snippet PNG whose other text chunks inflate to gigabytes, damaged optimizer state in a
weights file, bfloat16 and float16 .safetensors, graph files of any size."""

from __future__ import annotations

import json
import math
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
from small_graphs import teacher_doc

from conv3dt_studio import nodes
from conv3dt_studio.nodes import graph_document, snippet
from conv3dt_studio.nodes.files import FileError, read_safetensors
from conv3dt_studio.nodes.snippet import KEYWORD, PNG_SIGNATURE, embed_graph_text, read_graph_text
from conv3dt_studio.nodes.training import train_document
from conv3dt_studio.nodes.weights import weights_dict


def _chunk(ctype: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(ctype + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", crc)


def _png(*extra: bytes) -> bytes:
    """A valid 1x1 grey PNG, with ``extra`` chunks before IEND."""
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(b"\x00\x80"))
        + b"".join(extra)
        + _chunk(b"IEND", b"")
    )


def _ztxt(keyword: str, compressed: bytes) -> bytes:
    return _chunk(b"zTXt", keyword.encode("latin-1") + b"\0\0" + compressed)


# ---------------------------------------------------------------------- (3) decompression bombs
def test_text_under_other_keywords_is_never_inflated(doc):
    """A corrupt zTXt chunk under another keyword: inflating it would fail."""
    png = embed_graph_text(_png(_ztxt("Comment", b"not zlib at all")), doc.dumps())
    assert read_graph_text(png) == doc.dumps()


def test_chunks_under_other_keywords_that_inflate_to_gigabytes_take_no_memory(doc):
    bomb = zlib.compress(b"A" * (snippet.MAX_TEXT_BYTES - 1), 9)  # 64 MiB in 64 KiB
    png = embed_graph_text(_png(*(_ztxt(f"Comment{i}", bomb) for i in range(40))), doc.dumps())
    tracemalloc.start()
    try:
        assert read_graph_text(png, "bomb.png") == doc.dumps()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20  # 2.5 GiB before the fix


def test_our_text_inflating_beyond_the_limit_is_refused():
    bomb = zlib.compress(b" " * (snippet.MAX_TEXT_BYTES + 1), 9)
    with pytest.raises(FileError, match=r"`bomb\.png`: its embedded text is larger than 64 MiB"):
        read_graph_text(_png(_ztxt(KEYWORD, bomb)), "bomb.png")


def test_the_limit_holds_for_the_texts_of_one_file_together(monkeypatch):
    monkeypatch.setattr(snippet, "MAX_TEXT_BYTES", 1000)
    png = _png(_ztxt("a", zlib.compress(b"x" * 600)), _ztxt("b", zlib.compress(b"y" * 600)))
    assert snippet.read_text_chunks(png, "two.png", keywords=("a",)) == {"a": "x" * 600}
    with pytest.raises(FileError, match="larger than"):
        snippet.read_text_chunks(png, "two.png", keywords=("a", "b"))


def test_a_graph_too_large_for_a_snippet_is_refused_when_written(monkeypatch):
    monkeypatch.setattr(snippet, "MAX_TEXT_BYTES", 1000)
    with pytest.raises(FileError, match="above the 0 MiB a snippet PNG holds.*graph .json"):
        embed_graph_text(_png(), "x" * 1001)


# ---------------------------------------------------------------------- (13) graph file size
def test_a_graph_file_above_the_limit_is_refused_unread(tmp_path):
    big = tmp_path / "big.json"
    with open(big, "wb") as fh:  # sparse: no disk space, no time
        fh.truncate(graph_document.MAX_GRAPH_FILE_BYTES + 1)
    with pytest.raises(
        FileError, match=r"`.*big\.json` is too large: 512\.0 MiB, above the 512 MiB"
    ):
        nodes.load(big)


def test_the_limit_is_checked_before_reading(tmp_path, monkeypatch, doc):
    path = tmp_path / "g.json"
    doc.save(path)
    monkeypatch.setattr(graph_document, "MAX_GRAPH_FILE_BYTES", path.stat().st_size - 1)
    with pytest.raises(FileError, match="refused unread"):
        nodes.load(path)
    monkeypatch.setattr(graph_document, "MAX_GRAPH_FILE_BYTES", path.stat().st_size)
    assert nodes.load(path).to_json() == doc.to_json()


def test_a_graph_file_that_parsing_would_not_fit_in_memory_is_refused(tmp_path, monkeypatch, doc):
    path = tmp_path / "g.json"
    path.write_text(doc.dumps() + " " * 2**20)  # 1 MiB of whitespace: still a graph
    limit = graph_document.PARSE_FACTOR * path.stat().st_size  # available memory / 2
    monkeypatch.setattr("conv3dt_studio.nodes.memory.available_memory", lambda: 2 * limit)
    assert nodes.load(path).to_json() == doc.to_json()
    monkeypatch.setattr("conv3dt_studio.nodes.memory.available_memory", lambda: 2 * limit - 2)
    with pytest.raises(FileError, match="once loaded, above the memory limit"):
        nodes.load(path)


# ---------------------------------------------------------------------- (8) optimizer state
@pytest.fixture(scope="module")
def trained_arrays():
    """Weights with Adam's state after one epoch of the teacher-student example."""
    result = train_document(teacher_doc(1), backend="numpy")
    return weights_dict(result.graph.layers)


def _train_from(arrays, tmp_path, name="w.npz"):
    path = tmp_path / name
    np.savez(path, **arrays)
    return train_document(teacher_doc(1), backend="numpy", weights_in=str(path))


OPT = "conv3d_transpose/optimizer/"


def _damaged(arrays, key, value):
    out = dict(arrays)
    if value is None:
        del out[OPT + key]
    else:
        out[OPT + key] = value(out[OPT + key]) if callable(value) else np.asarray(value)
    return out


def _with_first(value):
    def change(array):
        array = np.array(array)
        array.flat[0] = value
        return array

    return change


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("0/v", _with_first(np.nan), rf"slot `{OPT}0/v` holds NaN or infinite values"),
        ("0/m", _with_first(np.inf), rf"slot `{OPT}0/m` holds NaN or infinite values"),
        ("1/v", _with_first(-1.0), rf"slot `{OPT}1/v` holds negative values; adam's `v`"),
        ("iterations", 2.5, rf"`{OPT}iterations` must be a whole number >= 0.*Received: 2\.5"),
        ("iterations", -3, r"must be a whole number >= 0.*Received: -3"),
        ("iterations", None, rf"the optimizer state has no `{OPT}iterations`"),
        ("1/v", None, rf"the optimizer state has no `{OPT}1/v` \(adam keeps m, v"),
        ("u_product", 2.0, rf"`{OPT}u_product` must be a number from 0 to 1"),
        ("0/m", lambda a: np.zeros(3, np.float32), rf"slot `{OPT}0/m` has shape \(3,\); expected"),
        ("0/m", lambda a: np.full(a.shape, "x"), rf"`{OPT}0/m` holds <U1 values"),
    ],
)
def test_damaged_optimizer_state_is_refused_naming_the_entry(
    trained_arrays, tmp_path, key, value, message
):
    with pytest.raises(FileError, match=message) as caught:
        _train_from(_damaged(trained_arrays, key, value), tmp_path)
    text = str(caught.value)
    assert "w.npz" in text and "layer `conv3d_transpose`" in text
    assert "learning rate" not in text and "\n" not in text


def test_intact_optimizer_state_is_used(trained_arrays, tmp_path):
    with_state = _train_from(trained_arrays, tmp_path).history["loss"]
    weights_only = {k: v for k, v in trained_arrays.items() if "/optimizer/" not in k}
    without = _train_from(weights_only, tmp_path, "w2.npz").history["loss"]
    assert with_state != without  # the Adam moments made a difference


def test_another_algorithms_state_still_starts_the_optimizer_afresh(trained_arrays, tmp_path):
    """As Keras does when the optimizer differs (the saved state names its algorithm)."""
    other = {**trained_arrays, OPT + "algorithm": np.asarray("rmsprop")}
    weights_only = {k: v for k, v in trained_arrays.items() if "/optimizer/" not in k}
    assert (
        _train_from(other, tmp_path).history["loss"]
        == _train_from(weights_only, tmp_path, "w2.npz").history["loss"]
    )


# ---------------------------------------------------------------------- (9) .safetensors
def _safetensors(header: dict, data: bytes = b"") -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32", "float64", "int64"])
def test_safetensors_of_pytorch_dtypes_read_without_torch(tmp_path, dtype):
    import safetensors.torch as st  # the test extra installs both: no skip hides their absence
    import torch

    gen = torch.Generator().manual_seed(0)
    tensors = {
        "layers.0.conv.weight": (torch.randn(3, 2, 2, 3, 3, generator=gen) * 10).to(
            getattr(torch, dtype)
        ),
        "layers.0.conv.bias": torch.randn(2, generator=gen).to(getattr(torch, dtype)),
        "empty": torch.zeros(0, 4).to(getattr(torch, dtype)),
    }
    path = tmp_path / "w.safetensors"
    st.save_file(tensors, str(path), metadata={"conv3dt-studio": "{}"})
    arrays, metadata = read_safetensors(path)
    assert metadata == {"conv3dt-studio": "{}"}
    for name, tensor in tensors.items():
        # NumPy has no bfloat16: 16-bit floats widen to float32, other dtypes stay
        expected = tensor.float().numpy() if tensor.element_size() == 2 else tensor.numpy()
        assert arrays[name].dtype == expected.dtype and arrays[name].shape == expected.shape
        np.testing.assert_array_equal(arrays[name], expected)


def test_bfloat16_bits_widen_to_the_float32_they_stand_for(tmp_path):
    bits = np.array([0x3F80, 0xC000, 0x7F80, 0x0000, 0x3EAA], "<u2")  # 1, -2, inf, 0, 0.33203125
    path = tmp_path / "b.safetensors"
    header = {"x": {"dtype": "BF16", "shape": [5], "data_offsets": [0, 10]}}
    path.write_bytes(_safetensors(header, bits.tobytes()))
    arrays, metadata = read_safetensors(path)
    assert metadata is None
    np.testing.assert_array_equal(arrays["x"], [1.0, -2.0, math.inf, 0.0, 0.33203125])


def _entry(dtype="F32", shape=(2,), offsets=(0, 8)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\x01\x02", "shorter than its 8-byte header length"),
        (struct.pack("<Q", 10**12) + b"{}", "a header of 1000000000000 bytes"),
        (struct.pack("<Q", 4) + b"{{{{", "its header is not JSON"),
        (struct.pack("<Q", 2) + b"[]", "its header is not a JSON object"),
        (_safetensors({"x": _entry("F8_E4M3", (8,))}, bytes(8)), "data type 'F8_E4M3'"),
        (_safetensors({"x": _entry(shape=(-1,))}, bytes(8)), "a shape that is not"),
        (_safetensors({"x": _entry(offsets=(0, 16))}, bytes(8)), "byte offsets outside"),
        (_safetensors({"x": _entry(shape=(3,))}, bytes(8)), "takes 8 bytes; its shape (3,)"),
        (_safetensors({"x": "no"}), "tensor `x` is not described by an object"),
        (_safetensors({"__metadata__": {"a": 1}}), "`__metadata__` must map names to strings"),
    ],
)
def test_a_damaged_safetensors_file_is_refused_in_one_line(tmp_path, content, reason):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(FileError) as caught:
        read_safetensors(path)
    text = str(caught.value)
    assert "bad.safetensors` is not a readable .safetensors file" in text
    assert reason in text and "\n" not in text


def test_duplicate_tensor_names_are_refused(tmp_path):
    text = b'{"x": ' + json.dumps(_entry()).encode() + b', "x": ' + json.dumps(_entry()).encode()
    path = tmp_path / "dup.safetensors"
    path.write_bytes(struct.pack("<Q", len(text) + 1) + text + b"}" + bytes(8))
    with pytest.raises(FileError, match="duplicate key 'x'"):
        read_safetensors(path)


def test_safetensors_tensors_are_sized_before_they_are_read(tmp_path):
    path = tmp_path / "big.safetensors"
    path.write_bytes(_safetensors({"x": _entry("BF16", (4,))}, bytes(8)))
    with pytest.raises(FileError, match="would take about .* above the memory limit"):
        read_safetensors(path, limit=15)  # 4 bfloat16 values are 16 bytes as float32
    assert read_safetensors(path, limit=16)[0]["x"].shape == (4,)
