"""The documented recipe (docs/interop.md): the exported folder's train_ddp.py under torchrun, two
processes on the gloo backend over the loopback interface, then the trained weights imported
back into a graph document."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import safetensors.numpy
from interop_helpers import chain_doc

from conv3dt_studio.nodes import run_document
from conv3dt_studio.nodes.interop import export_document, import_model
from conv3dt_studio.nodes.weights import decode_weights

DOC = Path(__file__).resolve().parents[2] / "docs" / "interop.md"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keras_layout(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """model.py's state dict -> our weight names (layer conv_0 is layers.0)."""
    out = {"conv_0/kernel": arrays["layers.0.conv.weight"].transpose(2, 3, 4, 1, 0)}
    out["conv_0/bias"] = arrays["layers.0.conv.bias"]
    return out


def test_two_gloo_processes_train_and_the_weights_come_back(tmp_path):
    doc = chain_doc((2, 2, 3, 3, 3), [{"n_filters": 2, "stride": 2, "activation": "tanh"}])
    folder = export_document(doc, "pytorch", tmp_path / "model").path
    run = run_document(doc, backend="numpy")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, *run.input.shape[1:]), dtype=np.float32)
    y = rng.standard_normal((8, *run.prediction.shape[1:]), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    port = _free_port()
    env = {
        **os.environ,
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "GLOO_SOCKET_IFNAME": "lo",  # loopback only
        "OMP_NUM_THREADS": "1",
    }
    out = tmp_path / "trained.safetensors"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=1",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={port}",
        str(folder / "train_ddp.py"),
        *("--x", str(tmp_path / "x.npy"), "--y", str(tmp_path / "y.npy")),
        *("--batch-size", "2", "--max-steps", "2", "--lr", "0.01", "--out", str(out)),
    ]
    done = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert "step 2 loss" in done.stdout
    trained = _keras_layout(safetensors.numpy.load_file(out))
    back = decode_weights(import_model(out).extras["weights"])
    assert sorted(back) == sorted(trained)
    assert all(np.array_equal(back[k], trained[k]) for k in trained)
    initial = decode_weights(import_model(folder).extras["weights"])
    assert not np.array_equal(back["conv_0/kernel"], initial["conv_0/kernel"])


def test_the_doc_shows_the_script_the_export_writes(tmp_path):
    doc = chain_doc((1, 1, 2, 2, 2), [{}])
    written = (export_document(doc, "pytorch", tmp_path / "m").path / "train_ddp.py").read_text()
    text = DOC.read_text(encoding="utf-8")
    start = text.index("```python\n", text.index("`train_ddp.py`, as the export writes it:"))
    block = text[start + len("```python\n") : text.index("```\n", start + 10)]
    assert block == written
