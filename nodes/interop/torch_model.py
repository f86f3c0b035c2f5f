"""A TimeDistributed(Conv3DTranspose) chain exported by Conv3DT Studio, in plain PyTorch.

    from model import load_model     # or import this file by its path
    model = load_model()             # weights.safetensors beside this file; eval mode
    y = model(x)                     # x: (batch, time, *sample) float32, the graph's Input layout

Needs torch and safetensors only (not Conv3DT Studio). Keras 3 semantics, as the studio computes
them: each layer folds time into batch, runs ``nn.ConvTranspose3d``'s weights over the full
transposed convolution, crops it the way Keras does (``keras_window``: asymmetric, zero-padded at
the end when the window reaches past the full result), adds the bias, applies the activation with
the studio's constants over the channel axis, and unfolds; channels_last layers permute around
it. Weights: ``layers.<i>.conv.weight`` (in_channels, n_filters, kd, kh, kw) and
``layers.<i>.conv.bias``; :func:`save_weights` writes them with the architecture in the
safetensors header, so ``conv3dt-studio import FILE`` can read them back alone.

This file is written by the export; ARCHITECTURE below is the graph's chain.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ARCHITECTURE: dict = {}  # the graph's chain: written by the export

ARCHITECTURE_KEY = "conv3dt_studio.architecture"
LEAKY_RELU_ALPHA = 0.3  # Keras 2's LeakyReLU default (the studio's choice)
THRESHOLDED_RELU_THETA = 1.0  # x if x > 1 else 0


def activation(name: str, z: torch.Tensor, dim: int) -> torch.Tensor:
    """The studio's activations; ``dim`` is the channel axis (softmax)."""
    if name == "linear":
        return z
    if name == "relu":
        return torch.relu(z)
    if name == "leaky_relu":
        return F.leaky_relu(z, LEAKY_RELU_ALPHA)
    if name == "thresholded_relu":
        return F.threshold(z, THRESHOLDED_RELU_THETA, 0.0)
    if name == "elu":
        return F.elu(z, alpha=1.0)
    if name == "selu":
        return F.selu(z)
    if name == "gelu":
        return F.gelu(z)  # exact, with erf
    if name == "hard_sigmoid":
        return F.hardsigmoid(z)  # relu6(x + 3) / 6, as Keras 3
    if name == "softmax":
        return torch.softmax(z, dim=dim)
    if name == "swish":
        return F.silu(z)
    functions: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "exponential": torch.exp,
        "sigmoid": torch.sigmoid,
        "softplus": F.softplus,
        "softsign": F.softsign,
        "tanh": torch.tanh,
    }
    return functions[name](z)


def keras_window(in_len, size, stride, dilation, same, output_padding):
    """(crop at the start, output length, full length) of one axis, as Keras 3 computes a
    transposed convolution's output: the full result is ``(in - 1) * stride + k_eff`` long."""
    k_eff = dilation * (size - 1) + 1
    full = (in_len - 1) * stride + k_eff
    pad = None
    if output_padding is None and same:
        out, pad = in_len * stride, stride + k_eff - 2
    elif output_padding is None:
        out = (in_len - 1) * stride + max(k_eff, stride)
    elif same:
        pad = k_eff + k_eff % 2 - 2 + output_padding
        out = (in_len - 1) * stride + k_eff % 2 + output_padding
    else:
        out = full + output_padding
    crop = 0 if pad is None else k_eff - 1 - min(pad // 2 + pad % 2, k_eff - 1)
    return crop, out, full


class TimeDistributedConv3DTranspose(nn.Module):
    """TimeDistributed(Conv3DTranspose(...)) of one layer of ARCHITECTURE."""

    def __init__(self, spec: dict) -> None:
        super().__init__()
        self.name = spec["name"]
        self.activation = spec["activation"]
        self.channels_last = spec["data_format"] == "channels_last"
        self.same = bool(spec["padding"])
        self.output_padding = spec["output_padding"] or [None, None, None]
        self.conv = nn.ConvTranspose3d(
            spec["in_channels"],
            spec["n_filters"],
            tuple(spec["size"]),
            stride=tuple(spec["stride"]),
            dilation=tuple(spec["dilation_rate"]),
            bias=bool(spec["use_bias"]),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[0], x.shape[1]
        x = x.reshape(b * t, *x.shape[2:])
        if self.channels_last:
            x = x.permute(0, 4, 1, 2, 3)
        c = self.conv
        z = F.conv_transpose3d(x, c.weight, None, c.stride, 0, 0, 1, c.dilation)
        axes = [
            keras_window(n, k, s, d, self.same, p)
            for n, k, s, d, p in zip(
                x.shape[2:], c.kernel_size, c.stride, c.dilation, self.output_padding
            )
        ]
        (c0, o0, _), (c1, o1, _), (c2, o2, _) = axes
        z = z[:, :, c0 : c0 + o0, c1 : c1 + o1, c2 : c2 + o2]
        extra = [max(0, crop + out - full) for crop, out, full in axes]
        if any(extra):
            z = F.pad(z, (0, extra[2], 0, extra[1], 0, extra[0]))
        if c.bias is not None:
            z = z + c.bias.view(-1, 1, 1, 1)
        z = activation(self.activation, z, 1)
        if self.channels_last:
            z = z.permute(0, 2, 3, 4, 1)
        return z.reshape(b, t, *z.shape[1:])


class Model(nn.Module):
    """Input -> TimeDistributed(Conv3DTranspose)... as ARCHITECTURE describes."""

    def __init__(self, architecture: dict | None = None) -> None:
        super().__init__()
        arch = architecture or ARCHITECTURE
        self.input_shape = tuple(arch["input"]["shape"])
        self.layers = nn.ModuleList(TimeDistributedConv3DTranspose(s) for s in arch["layers"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


def load_state(path: str | os.PathLike) -> dict:
    """A state dict from .safetensors, or from .pt/.pth without unpickling objects."""
    path = Path(path)
    if path.suffix in (".pt", ".pth"):
        state = torch.load(path, map_location="cpu", weights_only=True)
    else:
        from safetensors.torch import load_file

        state = load_file(path)
    # saved from a DistributedDataParallel wrapper: keys start with "module."
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_model(weights_path: str | os.PathLike | None = None) -> nn.Module:
    """The model with its weights (default: weights.safetensors beside this file), eval mode."""
    path = weights_path or Path(__file__).with_name("weights.safetensors")
    model = Model()
    model.load_state_dict(load_state(path))
    return model.eval()


def save_weights(model: nn.Module, path: str | os.PathLike) -> None:
    """Write ``model``'s weights as .safetensors with the architecture in the header (atomic:
    a temporary file beside ``path``, then renamed)."""
    from safetensors.torch import save_file

    model = getattr(model, "module", model)  # a DistributedDataParallel wrapper
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file(state, str(tmp), metadata={ARCHITECTURE_KEY: json.dumps(ARCHITECTURE)})
    os.replace(tmp, path)
