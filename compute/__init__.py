"""Conv3DT Studio compute core: Keras-3-exact TimeDistributed(Conv3DTranspose) on NumPy or CuPy.

Qt-free; CuPy is imported lazily, only by :mod:`conv3dt_studio.compute.backend`.
"""

from .activations import ACTIVATION_NAMES
from .backend import Backend, cupy_status, get_backend
from .conv3d_transpose import CONV3D_TRANSPOSE_SCHEMA, Conv3DTranspose
from .errors import BackendError, Conv3DTStudioError, ParameterError, ShapeError, StateError
from .graph import Graph, PredictionInfo
from .initializers import INITIALIZER_NAMES
from .layers import Input, Layer, TimeDistributed
from .losses import LOSS_NAMES
from .optimizers import ALGORITHMS, OPTIMIZER_SCHEMA
from .params import Param, Schema

__all__ = [
    "ACTIVATION_NAMES",
    "ALGORITHMS",
    "CONV3D_TRANSPOSE_SCHEMA",
    "INITIALIZER_NAMES",
    "LOSS_NAMES",
    "OPTIMIZER_SCHEMA",
    "Backend",
    "BackendError",
    "Conv3DTStudioError",
    "Conv3DTranspose",
    "Graph",
    "Input",
    "Layer",
    "Param",
    "ParameterError",
    "PredictionInfo",
    "Schema",
    "ShapeError",
    "StateError",
    "TimeDistributed",
    "cupy_status",
    "get_backend",
]
