"""The oracle's value pass and gauge pass in one: a depthwise stage builds each patch matrix once for x and |x|."""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np

from ..layers import conv_ops
from ..layers.geometry import Geometry

# A layer before its bias and activation: (on x and w, on |x| and |w| or None where not asked for).
Pair = tuple[np.ndarray, "np.ndarray | None"]


def depthwise(x: np.ndarray, kernel: np.ndarray, g: conv_ops.Window, magnitudes: bool = False) -> Pair:
    """x (N, *S, C), kernel (*K, C, M) -> (N, *S', C*M), output channel c*M + m, no bias; with ``magnitudes``
    also the same on |x| and |kernel|, from the same patch matrices (|patch of x| is the patch of |x|, exactly).

    conv_ops.depthwise's products with the patch matrix transposed: per image and channel, (M x taps) by
    (taps x positions). Its rows are whole output rows of the padded image (the last spatial axis innermost), so
    building it copies runs of that axis's length where conv_ops.depthwise's (positions x taps) copies runs of
    one kernel row (5 elements of a 5x5 kernel): on the big worked example the copy was most of the time. An
    output is still one BLAS dot product over the taps of one channel, in BLAS's order: it differs from
    conv_ops.depthwise's by float64 rounding only (tests/reference/test_paired_oracle.py bounds it), and does not
    depend on the chunk, the block of channels or the thread that computes it (the same call on the same matrices).
    """
    n_images, c = x.shape[0], x.shape[-1]
    m = kernel.shape[-1]
    spatial = tuple(x.shape[1:-1])
    widths = g.pad_widths(spatial)
    padded = tuple(n + before + after for n, (before, after) in zip(spatial, widths))
    out = g.output_spatial(spatial)
    taps, positions = math.prod(g.kernel_size), math.prod(out)
    kt = np.ascontiguousarray(kernel.reshape(-1, c, m).transpose(1, 2, 0))   # (C, M, taps), taps in C order
    k_abs = np.abs(kt) if magnitudes else kt
    y = np.empty((n_images, positions, c, m))
    gauge = np.empty_like(y) if magnitudes else None
    final = (n_images, *out, c * m)
    if y.size == 0:
        return y.reshape(final), None if gauge is None else gauge.reshape(final)
    # Read at call time: tests shrink it (a block of one channel must give the same values).
    block = max(1, min(c, conv_ops.PATCH_BLOCK_ELEMENTS // max(1, positions * taps)))
    interior = (slice(None), *(slice(before, before + n) for (before, _), n in zip(widths, spatial)))

    def channels(part: range) -> None:
        """Channels ``part`` of every image, with this thread's own buffers: those channels of one padded image,
        one block's patches and products."""
        c_lo, c_hi = part.start, part.stop
        image = np.zeros((c_hi - c_lo, *padded))                  # one image's channels, channels first, padded
        patches = np.empty((block, *g.kernel_size, *out))         # (channels, taps, positions) of one block
        products = np.empty((block, m, positions))
        with conv_ops.one_blas_thread():
            for i in range(n_images):
                image[interior] = np.moveaxis(x[i, ..., c_lo:c_hi], -1, 0)
                for c0 in range(c_lo, c_hi, block):
                    c1 = min(c_hi, c0 + block)
                    src = image[c0 - c_lo:c1 - c_lo]
                    # Every kernel tap's view of the padded image at every output position (taps outermost).
                    windows = np.lib.stride_tricks.as_strided(
                        src, shape=(c1 - c0, *g.kernel_size, *out),
                        strides=(src.strides[0], *(t * d for t, d in zip(src.strides[1:], g.dilation)),
                                 *(t * s for t, s in zip(src.strides[1:], g.strides))), writeable=False)
                    p = patches[:c1 - c0].reshape(c1 - c0, taps, positions)
                    np.copyto(patches[:c1 - c0], windows)
                    np.matmul(kt[c0:c1], p, out=products[:c1 - c0])
                    y[i, :, c0:c1, :] = products[:c1 - c0].transpose(2, 0, 1)
                    if gauge is not None:
                        np.abs(p, out=p)   # the patches of |x|: no second copy of the image's windows
                        np.matmul(k_abs[c0:c1], p, out=products[:c1 - c0])
                        gauge[i, :, c0:c1, :] = products[:c1 - c0].transpose(2, 0, 1)

    # Threads share the channels (a chunk of the oracle may be one image: the worked example's is).
    conv_ops.over_parts(channels, c, y.size)
    return y.reshape(final), None if gauge is None else gauge.reshape(final)


def _depthwise_layer(x: np.ndarray, w: Mapping[str, np.ndarray], g: Geometry, magnitudes: bool) -> Pair:
    return depthwise(x, w["kernel"], g, magnitudes)


def _separable_layer(x: np.ndarray, w: Mapping[str, np.ndarray], g: Geometry, magnitudes: bool) -> Pair:
    # Keras SeparableConv: depthwise (no bias) then pointwise (the family's forward); both stages' magnitudes from
    # the one depthwise pass.
    z, z_abs = depthwise(x, w["depthwise_kernel"], g, magnitudes)
    y = conv_ops.pointwise(z, w["pointwise_kernel"])
    del z
    if z_abs is None:
        return y, None
    return y, conv_ops.pointwise(z_abs, np.abs(w["pointwise_kernel"]))


# The families whose forward is computed here, by Family.name: their forward is exactly these stages
# (tests/reference/test_paired_oracle.py holds each kind to its family's forward). Others run forward twice.
PAIRED: dict[str, Callable[[np.ndarray, Mapping[str, np.ndarray], Geometry, bool], Pair]] = {
    "depthwise": _depthwise_layer,
    "separable": _separable_layer,
}


def layer(x: np.ndarray, w: Mapping[str, np.ndarray], g: Geometry, value: bool, magnitudes: bool
          ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The layer before its activation, its bias added, on channels-last x and w (``value``) and on |x|, |w| and
    |b| (``magnitudes``: the gauge G); what was not asked for is None. ``w`` holds the signed float64 weights."""
    assert value or magnitudes, "nothing asked for"
    paired = PAIRED.get(g.kind.family.name)
    abs_w = {k: np.abs(v) for k, v in w.items()} if magnitudes else w
    if paired is not None:
        y, gauge = paired(x, w, g, magnitudes) if value else (None, paired(np.abs(x), abs_w, g, False)[0])
        if g.use_bias:   # in place: the arrays are this pass's own (the same sums as y + b)
            for a, weights in ((y, w), (gauge, abs_w)):
                if a is not None:
                    a += weights["bias"]
        return y, gauge
    forward = g.kind.family.forward
    y = forward(x, w, g) if value else None
    gauge = forward(np.abs(x), abs_w, g) if magnitudes else None
    if g.use_bias:   # out of place: a family's forward may return a view
        y = None if y is None else y + w["bias"]
        gauge = None if gauge is None else gauge + abs_w["bias"]
    return y, gauge
