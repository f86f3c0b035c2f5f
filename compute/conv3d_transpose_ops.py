"""Transposed 3-D convolution maths, backend-generic (NumPy or CuPy array module ``xp``).

Layout inside this module: data channels-first ``(N, C, D, H, W)``; kernel in Keras layout
``(kd, kh, kw, n_filters, in_channels)``.

Semantics (Keras 3): the *full* transposed convolution scatters ``x[i] * w[j]`` to output position
``i*stride + j*dilation`` (length ``L = (in-1)*stride + k_eff`` per axis, ``k_eff = dilation*(size-1)+1``);
the layer's output is a window of it that starts at ``crop_start`` and is ``out`` long, zero beyond ``L``.

Method ("flat offset"): each sample's input is placed on the output grid (flattened), so every kernel
tap is one constant flat offset; a tap contributes ``W_tap @ x_grid`` added at that offset. Work is
chunked over samples so memory stays bounded by about one output's size (never the whole batch times
the kernel volume, as im2col would need).
"""

from __future__ import annotations

from dataclasses import dataclass

# Upper bound, in bytes, of one chunk's temporaries; chunks are at least one sample.
CHUNK_BYTES = 32 * 2**20


@dataclass(frozen=True)
class AxisGeometry:
    """Geometry of one spatial axis."""

    in_len: int
    size: int
    stride: int
    dilation: int
    k_eff: int
    full_len: int  # (in-1)*stride + k_eff
    crop_start: int
    out_len: int
    grid_len: int  # max(full_len, crop_start + out_len): the full result plus zero padding


def axis_geometry(
    in_len: int, size: int, stride: int, dilation: int, same: bool, output_padding: int | None
) -> AxisGeometry:
    """Keras 3 output length and crop of one axis (see the module docstring)."""
    k_eff = dilation * (size - 1) + 1
    full_len = (in_len - 1) * stride + k_eff
    if output_padding is None:
        if same:
            out_len = in_len * stride
            pad_len = stride + k_eff - 2
        else:
            out_len = (in_len - 1) * stride + max(k_eff, stride)
            pad_len = None
    else:
        if same:
            pad_len = k_eff + k_eff % 2 - 2 + output_padding
            out_len = (in_len - 1) * stride + k_eff % 2 + output_padding
        else:
            pad_len = None
            out_len = full_len + output_padding
    if pad_len is None:
        crop_start = 0
    else:
        left = min(pad_len // 2 + pad_len % 2, k_eff - 1)
        crop_start = k_eff - 1 - left
    grid_len = max(full_len, crop_start + out_len)
    return AxisGeometry(
        in_len, size, stride, dilation, k_eff, full_len, crop_start, out_len, grid_len
    )


@dataclass(frozen=True)
class Geometry:
    """The three spatial axes, plus flat-grid helpers."""

    axes: tuple[AxisGeometry, AxisGeometry, AxisGeometry]

    @classmethod
    def of(cls, spatial_in, size, stride, dilation, same, output_padding=None) -> Geometry:
        op = output_padding if output_padding is not None else (None, None, None)
        return cls(
            tuple(
                axis_geometry(int(n), k, s, d, same, p)
                for n, k, s, d, p in zip(spatial_in, size, stride, dilation, op)
            )
        )

    @property
    def out_shape(self) -> tuple[int, int, int]:
        return tuple(a.out_len for a in self.axes)

    @property
    def grid_shape(self) -> tuple[int, int, int]:
        return tuple(a.grid_len for a in self.axes)

    @property
    def grid_size(self) -> int:
        g = self.grid_shape
        return g[0] * g[1] * g[2]

    def grid_strides(self) -> tuple[int, int, int]:
        g = self.grid_shape
        return (g[1] * g[2], g[2], 1)

    def span(self) -> int:
        """Flat length from the first to the last input position on the grid, inclusive."""
        st = self.grid_strides()
        return 1 + sum((a.in_len - 1) * a.stride * s for a, s in zip(self.axes, st))

    def taps(self):
        """(kd, kh, kw) index and flat offset of every kernel tap."""
        st = self.grid_strides()
        a0, a1, a2 = self.axes
        for i in range(a0.size):
            for j in range(a1.size):
                for k in range(a2.size):
                    off = (
                        i * a0.dilation * st[0] + j * a1.dilation * st[1] + k * a2.dilation * st[2]
                    )
                    yield (i, j, k), off

    def input_slices(self):
        """Where the input samples sit on the grid."""
        return tuple(slice(0, (a.in_len - 1) * a.stride + 1, a.stride) for a in self.axes)

    def output_slices(self):
        """Where the layer's output window sits on the grid."""
        return tuple(slice(a.crop_start, a.crop_start + a.out_len) for a in self.axes)


def _chunk(n: int, per_sample_bytes: int) -> int:
    return max(1, min(n, CHUNK_BYTES // max(per_sample_bytes, 1)))


def _embed(xp, x, geom: Geometry, where):
    """Place ``x`` (n, c, *spatial) on zero grids (n, c, *grid) at ``where`` slices; flat view."""
    n, c = x.shape[:2]
    grid = xp.zeros((n, c) + geom.grid_shape, dtype=x.dtype)
    grid[(slice(None), slice(None)) + where] = x
    return grid.reshape(n, c, geom.grid_size)


def forward(xp, x, kernel, geom: Geometry):
    """Transposed convolution without bias: ``x`` (N, C, D, H, W) -> (N, F, *geom.out_shape)."""
    n = x.shape[0]
    f = kernel.shape[3]
    y = xp.empty((n, f) + geom.out_shape, dtype=x.dtype)
    span = geom.span()
    taps = list(geom.taps())
    step = _chunk(n, 4 * geom.grid_size * (x.shape[1] + 2 * f))
    for s0 in range(0, n, step):
        xs = _embed(xp, x[s0 : s0 + step], geom, geom.input_slices())[:, :, :span]
        yf = xp.zeros((xs.shape[0], f, geom.grid_size), dtype=x.dtype)
        for (i, j, k), off in taps:
            yf[:, :, off : off + span] += xp.matmul(kernel[i, j, k], xs)
        yf = yf.reshape((xs.shape[0], f) + geom.grid_shape)
        y[s0 : s0 + step] = yf[(slice(None), slice(None)) + geom.output_slices()]
    return y


def backward_input(xp, dy, kernel, geom: Geometry):
    """Gradient w.r.t. the input: ``dy`` (N, F, *out) -> (N, C, *in)."""
    n = dy.shape[0]
    c = kernel.shape[4]
    in_shape = tuple(a.in_len for a in geom.axes)
    dx = xp.empty((n, c) + in_shape, dtype=dy.dtype)
    span = geom.span()
    taps = list(geom.taps())
    step = _chunk(n, 4 * geom.grid_size * (dy.shape[1] + 2 * c))
    for s0 in range(0, n, step):
        g = _embed(xp, dy[s0 : s0 + step], geom, geom.output_slices())
        acc = xp.zeros((g.shape[0], c, geom.grid_size), dtype=dy.dtype)
        for (i, j, k), off in taps:
            acc[:, :, :span] += xp.matmul(kernel[i, j, k].T, g[:, :, off : off + span])
        acc = acc.reshape((g.shape[0], c) + geom.grid_shape)
        dx[s0 : s0 + step] = acc[(slice(None), slice(None)) + geom.input_slices()]
    return dx


def backward_kernel(xp, x, dy, geom: Geometry, kernel_shape):
    """Gradient w.r.t. the kernel (Keras layout), summed over the batch."""
    n = x.shape[0]
    dk = xp.zeros(kernel_shape, dtype=x.dtype)
    span = geom.span()
    taps = list(geom.taps())
    step = _chunk(n, 4 * geom.grid_size * (x.shape[1] + dy.shape[1]))
    for s0 in range(0, n, step):
        xs = _embed(xp, x[s0 : s0 + step], geom, geom.input_slices())[:, :, :span]
        g = _embed(xp, dy[s0 : s0 + step], geom, geom.output_slices())
        for (i, j, k), off in taps:
            seg = g[:, :, off : off + span]
            dk[i, j, k] += xp.tensordot(seg, xs, axes=([0, 2], [0, 2]))
    return dk


def output_shape(spatial_in, size, stride, dilation, same, output_padding=None):
    """Pure output-shape function of the spatial axes (no arrays touched)."""
    return Geometry.of(spatial_in, size, stride, dilation, same, output_padding).out_shape


__all__ = [
    "AxisGeometry",
    "Geometry",
    "axis_geometry",
    "backward_input",
    "backward_kernel",
    "forward",
    "output_shape",
]
