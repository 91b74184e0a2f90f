"""Hypothesis strategies: valid layer configurations of bounded size, drawn as YAML case entries."""
from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from hypothesis import strategies as st

from ..layers.geometry import ACTIVATIONS, LAYERS

# Shrinking goes to the first value of each list: the plainest configuration comes first.
DTYPES = ("float32", "float64", "float16", "bfloat16")
DATA_FORMATS = ("channels_last", "channels_first")
MAX_KERNEL, MAX_STRIDE, MAX_DILATION, MAX_CHANNELS, MAX_BATCH, MAX_EXTRA = 4, 3, 3, 5, 3, 7


@st.composite
def entries(draw: st.DrawFn, layers: Iterable[str] = tuple(LAYERS), dtypes: Iterable[str] = DTYPES
            ) -> dict[str, Any]:
    """A YAML case entry (without id) for a valid configuration of bounded size."""
    layer = draw(st.sampled_from(tuple(layers)))
    kind = LAYERS[layer]
    rank = kind.rank

    def per_axis(high: int) -> int | list[int]:
        values = st.integers(1, high)
        return draw(values if rank == 1 else st.one_of(values, st.lists(values, min_size=rank, max_size=rank)))

    kernel, strides, dilation = per_axis(MAX_KERNEL), per_axis(MAX_STRIDE), per_axis(MAX_DILATION)
    padding = draw(st.sampled_from(kind.paddings))
    channels = draw(st.integers(1, MAX_CHANNELS))
    config: dict[str, Any] = {
        "kernel_size": kernel, "strides": strides, "dilation_rate": dilation, "padding": padding,
        "data_format": draw(st.sampled_from(DATA_FORMATS)),
        "activation": draw(st.sampled_from((None, *ACTIVATIONS))),
        "use_bias": draw(st.booleans()),
    }
    config.update(kind.family.fuzz_config(draw, st, channels, MAX_CHANNELS))   # groups, filters, multiplier
    spatial = []
    for axis in range(rank):
        k = kernel if isinstance(kernel, int) else kernel[axis]
        d = dilation if isinstance(dilation, int) else dilation[axis]
        low = (k - 1) * d + 1 if padding == "valid" else 1   # 'valid' needs the dilated kernel to fit
        spatial.append(draw(st.integers(low, low + MAX_EXTRA)))
    batch = draw(st.integers(1, MAX_BATCH))
    first = config["data_format"] == "channels_first"
    shape = [batch, channels, *spatial] if first else [batch, *spatial, channels]
    std = draw(st.sampled_from((1.0, 4.0)))   # 4: pre-activations past relu6's clip and sigmoid's flat parts
    # The backward check too, in half the configurations (forward alone shrinks first: a backward alarm keeps it).
    check = draw(st.sampled_from((["forward"], ["forward", "backward"])))
    return {"layer": layer, "input_shape": shape, "config": config, "dtype": draw(st.sampled_from(tuple(dtypes))),
            "seed": draw(st.integers(0, 2**16)), "input": {"init": "normal", "std": std}, "check": check}


def choose(option: str, what: str, names: Iterable[str] | None, known: Iterable[str]) -> tuple[str, ...]:
    """The values a repeatable filter (``--layer``, ``--dtype``) keeps, in ``known``'s order (shrinking goes to
    the first); all of ``known`` where none is given. An unknown value is a ValueError that lists the known
    ones: a typo must not fuzz nothing, nor everything."""
    known, names = tuple(known), list(names or [])
    unknown = [n for n in names if n not in known]
    if unknown:
        close = difflib.get_close_matches(unknown[0], known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ValueError(f"{option} {unknown[0]}: no such {what}{hint}; known: {', '.join(known)}")
    return tuple(k for k in known if k in names) or known


def filters(layers: Iterable[str] | None = None, dtypes: Iterable[str] | None = None
            ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``--layer`` and ``--dtype`` values -> the layer kinds and dtypes entries() draws from (see choose)."""
    return choose("--layer", "layer kind", layers, LAYERS), choose("--dtype", "dtype", dtypes, DTYPES)
