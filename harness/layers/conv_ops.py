"""Float64 NumPy convolution primitives with Keras semantics, channels last: the oracle's building blocks."""
from __future__ import annotations

import ctypes
import glob
import itertools
import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, Protocol

import numpy as np


class Window(Protocol):
    """What the primitives read of a layer's configuration: harness.layers.families.base.Geometry is one. A protocol, so
    that the primitives import nothing above them; the output lengths and the padding split are the family's."""

    @property
    def kernel_size(self) -> tuple[int, ...]: ...
    @property
    def strides(self) -> tuple[int, ...]: ...
    @property
    def dilation(self) -> tuple[int, ...]: ...
    @property
    def groups(self) -> int: ...

    def output_spatial(self, spatial: tuple[int, ...]) -> tuple[int, ...]: ...

    def pad_widths(self, spatial: tuple[int, ...]) -> list[tuple[int, int]]: ...

    def replace(self, **changes: Any) -> Window: ...




# False: not looked up yet; None: not available.
_set_blas_threads: Callable[[int], int] | Literal[False] | None = False


def _blas_thread_setter() -> Callable[[int], int] | None:
    """OpenBLAS's openblas_set_num_threads_local of the library NumPy's wheel bundles (it sets the calling thread's
    count and returns the previous one), or None where NumPy uses another BLAS or an OpenBLAS without it."""
    global _set_blas_threads
    if _set_blas_threads is False:
        _set_blas_threads = None
        pattern = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs", "libscipy_openblas*.so*")
        for path in sorted(glob.glob(pattern)):
            try:
                fn: Any = ctypes.CDLL(path).openblas_set_num_threads_local
            except (OSError, AttributeError):
                continue
            fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
            _set_blas_threads = fn
            break
    return _set_blas_threads or None


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """The oracle's BLAS products on one thread (this thread only), the previous count restored after.

    Its products are small (one per channel and image: positions x taps by taps x M), and OpenBLAS splits those
    above 4 * 65536 multiply-adds over its threads, which then wait for each other: the large worked example's
    reference took 14.5 s of CPU on 2 threads and 2.4 s on one (a 2-core machine other jobs shared). The thread
    count does not change a product's values: OpenBLAS splits C's rows and columns between threads, not the sums
    (tests/reference/test_chunked_oracle.py compares). Cutting a product's rows instead would: its edge kernels sum some
    elements in another order (measured: the worked example's output changed). Nothing where NumPy's BLAS is not
    its bundled OpenBLAS.
    """
    setter = _blas_thread_setter()
    previous = setter(1) if setter else None
    try:
        yield
    finally:
        if setter and previous is not None and previous != 1:
            setter(previous)


def to_channels_last(x: np.ndarray, channels_first: bool) -> np.ndarray:
    return np.moveaxis(x, 1, -1) if channels_first else x


def from_channels_last(y: np.ndarray, channels_first: bool) -> np.ndarray:
    return np.moveaxis(y, -1, 1) if channels_first else y


def _padded(x: np.ndarray, g: Window) -> np.ndarray:
    """Zero-pad the spatial axes of a channels-last array the way Keras does."""
    return np.pad(x, [(0, 0), *g.pad_widths(tuple(x.shape[1:-1])), (0, 0)])


def _taps(xp: np.ndarray, g: Window, out_spatial: tuple[int, ...]):
    """Yield (tap index, strided view of the input that this kernel tap multiplies)."""
    for tap in itertools.product(*(range(k) for k in g.kernel_size)):
        index = [slice(None)]
        for t, d, s, o in zip(tap, g.dilation, g.strides, out_spatial):
            start = t * d
            index.append(slice(start, start + (o - 1) * s + 1, s))
        index.append(slice(None))
        yield tap, xp[tuple(index)]


def conv(x: np.ndarray, kernel: np.ndarray, g: Window) -> np.ndarray:
    """Grouped cross-correlation. x (N, *S, C), kernel (*K, C/groups, F) -> (N, *S', F); no bias.

    One image at a time, a block of groups at a time: per group one BLAS product of the image's patch matrix
    (positions x taps * C/groups, columns in (tap, channel) order, taps in _taps order) with that group's
    (taps * C/groups x F/groups) kernel. Groups are contiguous blocks of input and output channels (as in TF and
    torch). Those products, one per group and image, are the same calls whatever the batch and the block (each
    output's sum is BLAS's over the taps and channels of its group), so an output does not depend on how the batch
    is cut into chunks.
    """
    n_images, c = x.shape[0], x.shape[-1]
    groups, cg, f = g.groups, kernel.shape[-2], kernel.shape[-1]
    fg = f // groups
    spatial = tuple(x.shape[1:-1])
    widths = g.pad_widths(spatial)
    padded = tuple(n + before + after for n, (before, after) in zip(spatial, widths))
    out = g.output_spatial(spatial)
    taps, positions = math.prod(g.kernel_size), math.prod(out)
    depth = taps * cg                                                       # an output's reduction length K
    # (groups, taps * C/groups, F/groups): row tap * C/groups + c, as the patch matrix's columns.
    k = np.ascontiguousarray(kernel.reshape(depth, groups, fg).transpose(1, 0, 2))
    y = np.empty((n_images, positions, groups, fg))
    if y.size == 0:
        return y.reshape(n_images, *out, f)
    block = max(1, min(groups, PATCH_BLOCK_ELEMENTS // max(1, positions * depth)))
    interior = (*(slice(before, before + n) for (before, _), n in zip(widths, spatial)), slice(None))

    def images(indices: range) -> None:
        """The images ``indices``, with this thread's own buffers: one padded image and one block's patches."""
        image = np.zeros((*padded, c))                            # one image, channels last, zero-padded
        patches = np.empty((block, *out, *g.kernel_size, cg))     # (groups, positions, taps, C/groups) of a block
        products = np.empty((block, positions, fg))
        with one_blas_thread():
            for i in indices:
                image[interior] = x[i]
                for g0 in range(0, groups, block):
                    g1 = min(groups, g0 + block)
                    src = image[..., g0 * cg:g1 * cg]
                    # Every kernel tap of every output position, a strided view of the padded image: the patches.
                    windows = np.lib.stride_tricks.as_strided(
                        src, shape=(g1 - g0, *out, *g.kernel_size, cg),
                        strides=(cg * src.strides[-1], *(t * s for t, s in zip(src.strides[:-1], g.strides)),
                                 *(t * d for t, d in zip(src.strides[:-1], g.dilation)), src.strides[-1]),
                        writeable=False)
                    np.copyto(patches[:g1 - g0], windows)
                    np.matmul(patches[:g1 - g0].reshape(g1 - g0, positions, depth), k[g0:g1],
                              out=products[:g1 - g0])
                    y[i, :, g0:g1, :] = products[:g1 - g0].transpose(1, 0, 2)

    over_parts(images, n_images, y.size)
    return y.reshape(n_images, *out, f)


# Elements of a patch matrix built at once: a block of channels (depthwise) or groups (conv) of one image, 8 MB,
# or one channel's or group's where that is more. With one image padded, the working memory of the two primitives
# does not grow with the batch, nor (beyond one group) with the channel count.
PATCH_BLOCK_ELEMENTS = 1 << 20


# Outputs below which a primitive stays on the calling thread: starting threads costs more than it saves.
THREADED_ELEMENTS = 1 << 20


def oracle_threads() -> int:
    """Threads the oracle's image loops may use: HARNESS_ORACLE_THREADS, else OMP_NUM_THREADS (which the pytest
    plugin sets to each xdist worker's share of the cores), else the cores this process may run on."""
    for name in ("HARNESS_ORACLE_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # not on Linux
        return os.cpu_count() or 1


def over_parts(work: Callable[[range], None], n: int, outputs: int) -> None:
    """``work(range)`` over ``range(n)`` (images, or channels), split between oracle_threads() threads for a big
    output.

    Each image and each channel is computed by the same operations whatever thread computes it (every thread has
    its own buffers and its own one-thread BLAS; no sum mixes two parts), so the values do not depend on the threads
    (tests/reference/test_chunked_oracle.py compares them bit for bit): the threads only use the cores that one-thread
    BLAS leaves idle (NumPy releases the GIL in its copies and products)."""
    threads = min(oracle_threads(), n)
    if threads <= 1 or outputs < THREADED_ELEMENTS:
        work(range(n))
        return
    from concurrent.futures import ThreadPoolExecutor

    step = -(-n // threads)
    with ThreadPoolExecutor(threads) as pool:
        for done in [pool.submit(work, range(i, min(n, i + step))) for i in range(0, n, step)]:
            done.result()


def depthwise(x: np.ndarray, kernel: np.ndarray, g: Window) -> np.ndarray:
    """x (N, *S, C), kernel (*K, C, M) -> (N, *S', C*M), output channel c*M + m; no bias (depthwise_pair's value)."""
    return depthwise_pair(x, kernel, g)[0]


def depthwise_pair(x: np.ndarray, kernel: np.ndarray, g: Window, magnitudes: bool = False
                   ) -> tuple[np.ndarray, np.ndarray | None]:
    """x (N, *S, C), kernel (*K, C, M) -> (N, *S', C*M), output channel c*M + m, no bias; with ``magnitudes``
    also the same on |x| and |kernel|, from the same patch matrices (|patch of x| is the patch of |x|, exactly).

    Per image and channel one BLAS product, (M x taps) by (taps x positions): the patch matrix's rows are whole
    output rows of the padded image (the last spatial axis innermost), so building it copies runs of that axis's
    length, where a (positions x taps) layout copies runs of one kernel row (5 elements of a 5x5 kernel: on the
    big worked example that copy was most of the time). An output is one BLAS dot product over the taps of one
    channel, in BLAS's order, the same call whatever the chunk, the block of channels or the thread that computes
    it, so it does not depend on them (tests/reference/test_paired_oracle.py, test_chunked_oracle.py).
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
    block = max(1, min(c, PATCH_BLOCK_ELEMENTS // max(1, positions * taps)))
    interior = (slice(None), *(slice(before, before + n) for (before, _), n in zip(widths, spatial)))

    def channels(part: range) -> None:
        """Channels ``part`` of every image, with this thread's own buffers: those channels of one padded image,
        one block's patches and products."""
        c_lo, c_hi = part.start, part.stop
        image = np.zeros((c_hi - c_lo, *padded))                  # one image's channels, channels first, padded
        patches = np.empty((block, *g.kernel_size, *out))         # (channels, taps, positions) of one block
        products = np.empty((block, m, positions))
        with one_blas_thread():
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
    over_parts(channels, c, y.size)
    return y.reshape(final), None if gauge is None else gauge.reshape(final)


def pointwise(z: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """1x1 conv: z (N, *S, C*M), kernel (1.., C*M, F): one BLAS product, on BLAS's own threads where it is big
    (they split the rows and columns of the result, not its sums: the values do not depend on them)."""
    p: np.ndarray = kernel.reshape(kernel.shape[-2:])   # (C*M, F)
    if z.size // max(1, p.shape[0]) * p.shape[1] >= THREADED_ELEMENTS:
        return z @ p
    with one_blas_thread():
        return z @ p


# ---------------------------------------------------------------- what F.pad + F.convNd compute (the NumPy port)

Pads = list[tuple[int, int]]


def pad_or_crop(x: np.ndarray, pads: Pads) -> np.ndarray:
    """Zero-pad the spatial axes of a channels-first array; a negative amount crops (as F.pad does)."""
    widths = [(0, 0), (0, 0)] + [(max(b, 0), max(a, 0)) for b, a in pads]
    x = np.pad(x, widths) if any(w != (0, 0) for w in widths) else x
    index = [slice(None), slice(None)]
    for b, a in pads:
        index.append(slice(-min(b, 0), x.shape[len(index)] + min(a, 0)))
    return x[tuple(index)]


def torch_conv(x: np.ndarray, weight: np.ndarray, g: Window, *, strides: tuple[int, ...],
               dilation: tuple[int, ...], groups: int, pads: Pads) -> np.ndarray:
    """What F.pad + F.convNd compute: x (N, C, *S), weight (O, C/groups, *K) -> (N, O, *S'), float64.

    Runs on the oracle's grouped cross-correlation (channels last, Keras kernel layout), so the NumPy port
    (harness.mutation.port) differs from the oracle only where a mutant makes it differ. An output too small to
    exist comes back with a 0-length axis (a wrong-shape verdict) instead of crashing.
    """
    rank = weight.ndim - 2
    xp = pad_or_crop(x, pads)
    valid = g.replace(kernel_size=tuple(weight.shape[2:]), strides=tuple(strides), dilation=tuple(dilation),
                      padding="valid", groups=groups)
    out = valid.output_spatial(tuple(xp.shape[2:]))
    if min(out) <= 0:
        return np.zeros((x.shape[0], weight.shape[0], *(max(o, 0) for o in out)))
    kernel = weight.transpose(*range(2, rank + 2), 1, 0)   # (O, C/g, *K) -> (*K, C/g, O)
    y = conv(np.moveaxis(xp, 1, -1), kernel, valid)
    return np.moveaxis(y, -1, 1)
