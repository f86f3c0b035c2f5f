"""Property-based fuzzing of the loaders of files from strangers - graph JSON, snippet PNG, .npy and
.npz arrays: no input crashes them with anything but their one-line errors (DocumentError,
FileError), and validation of whatever loads reports problems instead of raising. The main
property of each loader runs 1000 examples (THOROUGH)."""

from __future__ import annotations

import contextlib
import io
import json
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conv3dt_studio import nodes
from conv3dt_studio.nodes.examples import toolkit_example
from conv3dt_studio.nodes.snippet import KEYWORD, PNG_SIGNATURE, read_graph_text

SMALL = toolkit_example(
    data={"batch_size": 2, "sample_shape": [2, 2, 8, 8, 3]}, input_shape=(2, 2, 8, 8, 3)
).to_json()

scalars = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
THOROUGH = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _load_or_document_error(payload):
    try:
        doc = nodes.loads(payload, source="fuzz")
    except nodes.DocumentError:
        return None
    assert isinstance(doc, nodes.GraphDocument)
    return doc


@FUZZ
@given(st.text(max_size=200))
def test_any_text(text):
    _load_or_document_error(text)


@FUZZ
@given(st.binary(max_size=200))
def test_any_bytes(data):
    _load_or_document_error(data)


@FUZZ
@given(json_values)
def test_any_json_value(value):
    _load_or_document_error(json.dumps(value))


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


PATHS = [p for p in _paths(SMALL) if p]


@THOROUGH
@given(st.lists(st.tuples(st.sampled_from(PATHS), json_values), min_size=1, max_size=3))
def test_mutated_documents_load_or_fail_cleanly_and_validate_without_raising(mutations):
    data = json.loads(json.dumps(SMALL))
    for path, value in mutations:
        target = data
        try:
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed this place
    doc = _load_or_document_error(json.dumps(data))
    if doc is not None:
        report = nodes.validate(doc)
        assert isinstance(report.problems, list)


@FUZZ
@given(st.text(max_size=30), st.text(max_size=30))
def test_truncations_of_a_valid_document(a, b):
    text = json.dumps(SMALL)
    cut = (len(a) * 97 + len(b)) % len(text)
    _load_or_document_error(text[:cut] + a)


@pytest.mark.parametrize("depth", [100, 600, 990, 5000])
@pytest.mark.parametrize("where", ["training", "params"])
def test_deep_nesting_is_a_document_error(depth, where):
    nested = "[" * depth + "]" * depth
    data = json.loads(json.dumps(SMALL))
    if where == "training":
        text = json.dumps(data)[:-1] + f', "training": {{"a": {nested}}}}}'
    else:
        data["nodes"][2]["params"]["size"] = "@"
        text = json.dumps(data).replace('"@"', nested)
    with pytest.raises(nodes.DocumentError, match="nested too deeply"):
        nodes.loads(text)


def _read_png(data: bytes) -> None:
    try:
        nodes.loads(read_graph_text(data, "s.png"), source="s.png")
    except (nodes.FileError, nodes.DocumentError):
        return


def _chunk(ctype: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(ctype + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", crc)


@FUZZ
@given(st.binary(max_size=300))
def test_any_png_bytes(data):
    _read_png(PNG_SIGNATURE + data)


TEXT_BODY = st.tuples(
    st.sampled_from([KEYWORD.encode(), b"Software", b""]),
    st.binary(max_size=4),
    st.sampled_from([b"", zlib.compress(json.dumps(SMALL).encode())]) | st.binary(max_size=40),
).map(lambda t: t[0] + b"\0" + t[1] + b"\0" + t[2])


@THOROUGH
@given(
    st.lists(
        st.tuples(st.sampled_from([b"tEXt", b"zTXt", b"iTXt", b"IDAT"]), TEXT_BODY), max_size=4
    ),
    st.booleans(),
)
def test_png_with_any_well_formed_chunks(chunks, end):
    body = b"".join(_chunk(ctype, data) for ctype, data in chunks)
    _read_png(PNG_SIGNATURE + body + (_chunk(b"IEND", b"") if end else b""))


# ---------------------------------------------------------------------- .npy / .npz
def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _npz_bytes(arrays: dict[str, np.ndarray], compressed: bool) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


VALID_ARRAYS = [
    _npy_bytes(np.arange(24, dtype=np.float32).reshape(2, 3, 4)),
    _npy_bytes(np.ones((1, 2, 2, 4, 4, 3), np.int16)),
    _npz_bytes({"x": np.zeros((2, 2), np.float32), "y": np.ones(3)}, compressed=False),
    _npz_bytes({"x": np.zeros((4, 4), np.float64)}, compressed=True),
]


@st.composite
def damaged_array_files(draw):
    """A valid .npy/.npz with bytes replaced, cut or inserted (headers included)."""
    data = bytearray(draw(st.sampled_from(VALID_ARRAYS)))
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["replace", "cut", "insert"]))
        chunk = draw(st.binary(min_size=1, max_size=8))
        if action == "replace":
            data[where : where + len(chunk)] = chunk
        elif action == "cut":
            del data[where:]
        else:
            data[where:where] = chunk
    return bytes(data)


@THOROUGH
@given(damaged_array_files(), st.sampled_from(["", "x", "y"]))
def test_damaged_array_files_load_or_fail_with_a_file_error(tmp_path_factory, data, name):
    from conv3dt_studio.nodes.data_sources import load_file, peek_shape
    from conv3dt_studio.nodes.files import load_arrays

    path = tmp_path_factory.mktemp("fuzz") / "a.npz"
    path.write_bytes(data)
    for read in (
        lambda: load_arrays(path),
        lambda: peek_shape(str(path), name),
        lambda: load_file(str(path), name),
    ):
        with contextlib.suppress(nodes.FileError):
            read()
