"""Conv1DTranspose / Conv2DTranspose / Conv3DTranspose: the scatter of each input pixel times the kernel, cropped
as Keras crops it; kernel (*k, filters, in); torch nn.ConvTransposeNd weight (in, filters, *k)."""
from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np

from ..conv_ops import one_blas_thread, pad_or_crop
from ..layouts import as_array, conv_k2t
from ..padding import effective_kernel
from .base import COUNT, SIZES, Arg, Family, Geometry, LayerKind, PortSteps, batch_positions, taps
from .conv import single_weight_keras, single_weight_state

# A transposed conv scatters input pixel i, times kernel tap t, to position i*s + t*d of a "full" output of length
# (n - 1)*s + ek (ek the dilated kernel); Keras (TensorFlow's conv_transpose, the gradient of the conv that maps
# the output back to the input) then keeps L positions of it starting at `before`. Its output length L is Keras's
# deconv_output_length; `before` is the padding TensorFlow's 'SAME' gives that conv, max(full - L, 0) // 2, and
# 'valid' crops nothing. Where L > full (output_padding, or a kernel shorter than the stride) the output ends in
# positions no pixel reaches: zeros before the bias. Both amounts depend only on the configuration, never on n
# (tests/layers/test_transpose.py checks them against TensorFlow at many lengths).


def output_length(n: int, k: int, s: int, d: int, padding: str, output_padding: int | None) -> int:
    """Keras's deconv_output_length: the output length of a transposed conv on ``n`` input positions."""
    ek = effective_kernel(k, d)
    if output_padding is None:
        return n * s + max(ek - s, 0) if padding == "valid" else n * s
    return (n - 1) * s + ek - 2 * (ek // 2 if padding == "same" else 0) + output_padding


def crops(g: Geometry) -> list[tuple[int, int]]:
    """(before, after) positions cropped off the full scatter on each axis; a negative `after` appends zeros."""
    out = []
    paddings = g.arg("output_padding") or (None,) * g.kind.rank
    for k, s, d, op in zip(g.kernel_size, g.strides, g.dilation, paddings):
        ek = effective_kernel(k, d)
        full_minus_l = ek - output_length(1, k, s, d, g.padding, op)   # full - L: (n - 1)*s cancels, take n = 1
        before = max(full_minus_l, 0) // 2 if g.padding == "same" else 0
        out.append((before, full_minus_l - before))
    return out


def scatter(x: np.ndarray, kernel: np.ndarray, strides: tuple[int, ...], dilation: tuple[int, ...],
            cut: list[tuple[int, int]]) -> np.ndarray:
    """The transposed conv, float64, channels last: x (N, *S, C), kernel (*K, F, C) -> (N, *S', F), the full
    scatter cropped by ``cut`` ((before, after) per axis; negative: zeros appended). One BLAS product per tap: that
    tap's (F x C) matrix times every input pixel, added into the strided positions it reaches."""
    n, spatial, rank = x.shape[0], x.shape[1:-1], x.ndim - 2
    ksize = kernel.shape[:rank]
    full = [(m - 1) * s + (k - 1) * d + 1 for m, k, s, d in zip(spatial, ksize, strides, dilation)]
    y = np.zeros((n, *full, kernel.shape[-2]))
    with one_blas_thread():
        for tap in itertools.product(*(range(k) for k in ksize)):
            index = (slice(None), *(slice(t * d, t * d + (m - 1) * s + 1, s)
                                    for t, d, s, m in zip(tap, dilation, strides, spatial)), slice(None))
            y[index] += x @ kernel[tap].T
    return np.moveaxis(pad_or_crop(np.moveaxis(y, -1, 1), [(-b, -a) for b, a in cut]), 1, -1)


def gather(dy: np.ndarray, kernel: np.ndarray, x_spatial: tuple[int, ...], strides: tuple[int, ...],
           dilation: tuple[int, ...], cut: list[tuple[int, int]]) -> np.ndarray:
    """`scatter`'s transpose with respect to x: dy (N, *S', F) -> dx (N, *S, C), each input pixel gathering the
    output positions it was scattered to (those cropped off gave nothing)."""
    rank = dy.ndim - 2
    full = np.moveaxis(pad_or_crop(np.moveaxis(dy, -1, 1), list(cut)), 1, -1)   # uncrop: the full scatter's dy
    dx = np.zeros((dy.shape[0], *x_spatial, kernel.shape[-1]))
    with one_blas_thread():
        for tap in itertools.product(*(range(k) for k in kernel.shape[:rank])):
            index = (slice(None), *(slice(t * d, t * d + (m - 1) * s + 1, s)
                                    for t, d, s, m in zip(tap, dilation, strides, x_spatial)), slice(None))
            dx += full[index] @ kernel[tap]
    return dx


def kernel_gradient(x: np.ndarray, dy: np.ndarray, kernel_shape: tuple[int, ...], strides: tuple[int, ...],
                    dilation: tuple[int, ...], cut: list[tuple[int, int]]) -> np.ndarray:
    """`scatter`'s transpose with respect to the kernel: sum over the batch and input pixels of dy's (F) at the
    position each tap sent the pixel to, times the pixel's (C): (*K, F, C)."""
    rank = x.ndim - 2
    full = np.moveaxis(pad_or_crop(np.moveaxis(dy, -1, 1), list(cut)), 1, -1)
    rows = x.shape[0] * math.prod(x.shape[1:-1])
    xs = x.reshape(rows, x.shape[-1])
    out = np.empty(kernel_shape)
    with one_blas_thread():
        for tap in itertools.product(*(range(k) for k in kernel_shape[:rank])):
            index = (slice(None), *(slice(t * d, t * d + (m - 1) * s + 1, s)
                                    for t, d, s, m in zip(tap, dilation, strides, x.shape[1:-1])), slice(None))
            out[tap] = full[index].reshape(rows, -1).T @ xs
    return out


class ConvTransposeSteps(PortSteps):
    """The NumPy port's transposed-conv steps: the weight to torch's (in, filters, *k), the output crop, then
    what nn.ConvTransposeNd(padding=0) + F.pad(-crop) compute."""

    def transpose_weight(self, kernel: np.ndarray, g: Geometry) -> np.ndarray:
        r = g.kind.rank
        return self.spatial(kernel, r).transpose(r + 1, r, *range(r))        # (*K, F, C) -> (C, F, *K)

    def transpose_crops(self, x: np.ndarray, g: Geometry) -> list[tuple[int, int]]:
        return crops(g)

    def transpose_stage(self, x: np.ndarray, w: np.ndarray, g: Geometry) -> np.ndarray:
        r = g.kind.rank
        kernel = w.transpose(*range(2, r + 2), 1, 0)                          # (C, F, *K) -> (*K, F, C)
        y = scatter(np.moveaxis(x, 1, -1), kernel, g.strides, g.dilation, self.transpose_crops(x, g))
        return np.moveaxis(y, -1, 1)


def _reach(k: int, s: int, d: int) -> int:
    """The most taps of one axis that reach the same output position: taps t and t' land together when
    (t - t')*d is a multiple of s, so every s / gcd(s, d)-th tap does."""
    return -(-k // (s // math.gcd(s, d)))


class ConvTransposeFamily(Family):
    name = "conv_transpose"
    arguments: ClassVar[dict[str, Arg]] = {"filters": COUNT, "kernel_size": SIZES,
                                           "output_padding": Arg(per_axis=True, minimum=0, optional=True)}
    torch_port = "harness.layers.families.transpose:torch_mixin"
    port_steps = ConvTransposeSteps
    pads_crop_output = True
    requires = ("filters", "kernel_size")
    defaults: ClassVar[dict[str, Any]] = {"output_padding": None}
    kernel_names = ("kernel",)
    torch_names: ClassVar[dict[str, str]] = {"kernel": "weight", "bias": "bias"}

    def output_spatial(self, g: Geometry, spatial: tuple[int, ...]) -> tuple[int, ...]:
        if min(spatial) < 1:
            raise ValueError(f"input lengths must be positive, got {spatial}")
        paddings = g.arg("output_padding") or (None,) * g.kind.rank
        return tuple(output_length(n, k, s, d, g.padding, op)
                     for n, k, s, d, op in zip(spatial, g.kernel_size, g.strides, g.dilation, paddings))

    def pad_widths(self, g: Geometry, spatial: tuple[int, ...]) -> list[tuple[int, int]]:
        """For a transposed conv, what Keras crops off each end of the full scatter (`crops`): it pads nothing."""
        return crops(g)

    def out_channels(self, g: Geometry) -> int:
        return g.filter_count

    def kernel_shapes(self, g: Geometry) -> dict[str, tuple[int, ...]]:
        return {"kernel": (*g.kernel_size, g.filter_count, g.in_channels)}

    def reduction_length(self, g: Geometry) -> int:
        # The number of terms varies with the output position (edges and stride phases get fewer taps); the bound
        # takes the most any position gets, per axis _reach, times the input channels. The gauge G (the same layer
        # on magnitudes) is computed per position, so a position with fewer terms has its own, smaller G.
        return math.prod(_reach(k, s, d) for k, s, d in zip(g.kernel_size, g.strides, g.dilation)) * g.in_channels

    def impossible(self, g: Geometry) -> list[tuple[str, str]]:
        paddings = g.arg("output_padding")
        if paddings is not None and any(op >= s for op, s in zip(paddings, g.strides)):
            # Keras's constructor refuses it ("Strides must be greater than output padding"), torch's too.
            return [("config.output_padding", (f"must be less than strides {list(g.strides)} on every axis, "
                                               f"got {list(paddings)}"))]
        return []

    def forward(self, x: np.ndarray, w: Mapping[str, np.ndarray], g: Geometry) -> np.ndarray:
        return scatter(x, w["kernel"], g.strides, g.dilation, crops(g))

    def backward(self, x: np.ndarray, w: Mapping[str, np.ndarray], g: Geometry,
                 dz: np.ndarray) -> dict[str, np.ndarray]:
        cut = crops(g)
        dx = gather(dz, w["kernel"], tuple(x.shape[1:-1]), g.strides, g.dilation, cut)
        return {"x": dx, "kernel": kernel_gradient(x, dz, w["kernel"].shape, g.strides, g.dilation, cut)}

    def backward_reduction_lengths(self, g: Geometry, input_shape: tuple[int, ...]) -> dict[str, int]:
        spatial = tuple(input_shape[2:] if g.channels_first else input_shape[1:-1])
        # dx: a dot product over the taps and the filters (every tap of an input pixel lands somewhere); dkernel:
        # over the batch and the input pixels; dbias: a plain sum of dz over the batch and the output positions.
        return {"x": taps(g) * g.filter_count, "kernel": int(input_shape[0]) * math.prod(spatial),
                "bias": batch_positions(g, input_shape) - 1}

    def keras_to_torch(self, kind: LayerKind, weights: Mapping[str, np.ndarray], bias: np.ndarray | None,
                       what: str, **variant: Any) -> dict[str, np.ndarray]:
        kernel = as_array("kernel", weights["kernel"], kind.rank + 2, what)
        # (*k, F, C) -> (C, F, *k): the conv's permutation, since torch's ConvTranspose weight is (in, out, *k).
        return single_weight_state(kernel.transpose(conv_k2t(kind.rank)), bias, kernel.shape[-2], what)

    def torch_to_keras(self, kind: LayerKind, state: Mapping[str, np.ndarray], what: str, *,
                       in_channels: int | None, depth_multiplier: int | None) -> dict[str, np.ndarray]:
        return single_weight_keras(kind, state, what, out_axis=1)   # torch's (in, out, *k): out is axis 1

    def in_channels_from(self, weights: Mapping[str, np.ndarray], config: Mapping[str, Any]) -> int:
        if "kernel" not in weights:
            raise ValueError("weights lack 'kernel'; give in_channels or the Keras weights")
        return int(np.shape(weights["kernel"])[-1])

    def port_stages(self, port: Any, x: np.ndarray, weights: Mapping[str, np.ndarray], g: Geometry,
                    dtype: str) -> tuple[np.ndarray, np.ndarray | None]:
        return port.transpose_stage(x, port.transpose_weight(weights["kernel"], g), g), None

    def fuzz_config(self, draw: Callable[[Any], Any], st: Any, channels: int, max_channels: int) -> dict[str, Any]:
        # output_padding stays Keras's default: it must be below the strides, drawn apart from the family, and 0
        # empties a one-pixel 'same' output of an even kernel (the cases pin output_padding instead).
        return {"filters": draw(st.integers(1, 3))}

    def weak_spots(self, g: Geometry) -> list[str]:
        spots = []
        if g.in_channels == g.filters == 1:
            spots.append("one input and one output channel: in/out kernel layouts cannot be told apart")
        if all(k == 1 for k in g.kernel_size):
            spots.append("a 1-tap kernel: neither a flip nor the crop's side can show")
        return spots


def torch_mixin() -> type:
    """The torch port's mixin: nn.ConvTransposeNd with torch's own padding/output_padding where they express
    Keras's crop (before = padding, before - after = output_padding in [0, max(stride, dilation))), else padding=0
    and the crop done with F.pad, as the conv ports pad TensorFlow's 'same' explicitly. Imported by
    harness.torch_port (which this imports), never at this module's import: no torch here."""
    import torch
    import torch.nn.functional as F

    from ... import torch_port as tp  # local: torch_port imports this module, and importing it loads torch

    class _ConvTransposeNd(tp._FromKeras, tp._Conv):
        port_stem = "ConvTranspose"
        torch_base = "ConvTranspose"
        keras_crop: tuple[tuple[int, int], ...]
        activation: str

        def __init__(self, in_channels: int, filters: int, kernel_size: tp.IntOrTuple, strides: tp.IntOrTuple = 1,
                     padding: str = "valid", output_padding: tp.IntOrTuple | None = None,
                     dilation_rate: tp.IntOrTuple = 1, use_bias: bool = True, activation: str | None = None, *,
                     device: Any = None, dtype: torch.dtype | None = None) -> None:
            """Keras Conv2DTranspose's arguments (as a torch module's), at the class's spatial_rank."""
            rank = self.spatial_rank
            kind = next(k for k in KINDS if k.rank == rank)
            g = Geometry(kind=kind, kernel_size=tp._tuple(kernel_size, rank, "kernel_size"),
                         strides=tp._tuple(strides, rank, "strides"),
                         dilation=tp._tuple(dilation_rate, rank, "dilation_rate"),
                         padding=tp._padding(padding, rank), channels_first=True, in_channels=in_channels,
                         filters=filters, depth_multiplier=1, groups=1, use_bias=use_bias, activation="linear",
                         extra=(("output_padding", None if output_padding is None
                                 else tuple(int(v) for v in np.broadcast_to(output_padding, (rank,)))),))
            problems = ConvTransposeFamily.impossible(CONV_TRANSPOSE, g)
            if problems:
                raise ValueError(f"{kind.name}: {problems[0][0]}: {problems[0][1]}")
            cut = crops(g)
            native = all(0 <= b - a < max(s, d) for (b, a), s, d in zip(cut, g.strides, g.dilation))
            base = tp._torch_module(self.torch_base, rank)
            base.__init__(self, in_channels, filters, g.kernel_size, stride=g.strides,
                          padding=tuple(b for b, _ in cut) if native else 0,
                          output_padding=tuple(b - a for b, a in cut) if native else 0,
                          dilation=g.dilation, bias=use_bias, device=device, dtype=dtype)
            self.keras_crop = () if native else tuple(cut)
            self.keras_padding, self.activation = g.padding, tp._activation(activation)

        @classmethod
        def _from_geometry(cls, g: Any, in_channels: int, depthwise_bias: bool,
                           common: dict[str, Any]) -> torch.nn.Module:
            return cls(in_channels, g.filters, g.kernel_size, output_padding=g.arg("output_padding"), **common)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if not self.keras_crop:
                return tp._ACTIVATIONS[self.activation](super().forward(x))
            # The crop by hand: the scatter without bias, F.pad (which lists (before, after) from the last axis
            # backwards; negative crops, positive appends zeros), then the bias, which Keras adds to appended
            # positions too.
            conv = getattr(F, f"conv_transpose{self.spatial_rank}d")
            y = conv(x, self.weight, None, self.stride, 0, 0, 1, self.dilation)
            y = F.pad(y, [-v for b, a in reversed(self.keras_crop) for v in (b, a)])
            if self.bias is not None:
                y = y + self.bias.reshape(-1, *(1,) * self.spatial_rank)
            return tp._ACTIVATIONS[self.activation](y)

        def reset_parameters(self) -> None:
            if not tp._LOADING.get():
                super().reset_parameters()

        def extra_repr(self) -> str:
            return (f"{super().extra_repr()}, keras_padding={self.keras_padding!r}, keras_crop={self.keras_crop}, "
                    f"activation={self.activation!r}")

    return _ConvTransposeNd


CONV_TRANSPOSE = ConvTransposeFamily()
KINDS = (
    LayerKind("Conv1DTranspose", 1, CONV_TRANSPOSE),
    LayerKind("Conv2DTranspose", 2, CONV_TRANSPOSE),
    LayerKind("Conv3DTranspose", 3, CONV_TRANSPOSE),
)
