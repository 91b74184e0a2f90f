"""A case's configuration normalised (Geometry): sizes, shapes and feasibility, asked of the layer's family."""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

from .activations import ACTIVATIONS
from .families import COMMON_DEFAULTS, LAYERS, ConfigProblem, LayerKind, get_kind
from .families.base import require_sizes, size_problems

__all__ = ["ACTIVATIONS", "COMMON_DEFAULTS", "ConfigProblem", "LAYERS", "Geometry", "LayerKind", "geometry",
           "get_kind", "impossible", "output_shape", "refuse_impossible", "size_problems", "spatial_shape"]

PADDINGS = ("valid", "same", "causal")   # what harness.padding computes; each kind takes some (LayerKind.paddings)


def _integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _tuple(value: Any, rank: int, key: str) -> tuple[int, ...]:
    """An integer or a list of ``rank`` integers (any sign: whether they are usable is `impossible`'s question)."""
    if _integer(value):
        return (int(value),) * rank
    if isinstance(value, (list, tuple)) and len(value) == rank and all(_integer(v) for v in value):
        return tuple(int(v) for v in value)
    raise ConfigProblem(f"config.{key}", f"must be an integer or a list of {rank} integers, got {value!r}")


def _count(value: Any, key: str) -> int:
    if not _integer(value):
        raise ConfigProblem(f"config.{key}", f"must be an integer, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class Geometry:
    """A case's configuration, normalised: every argument explicit, sizes as tuples."""

    kind: LayerKind
    kernel_size: tuple[int, ...]
    strides: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: str
    channels_first: bool
    in_channels: int
    filters: int | None
    depth_multiplier: int
    groups: int
    use_bias: bool
    activation: str

    @property
    def out_channels(self) -> int:
        return self.kind.family.out_channels(self)

    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shapes of the Keras weights, in Keras layout and order."""
        shapes = self.kind.family.kernel_shapes(self)
        if self.use_bias:
            shapes["bias"] = (self.out_channels,)
        return shapes

    def param_count(self) -> int:
        total = 0
        for shape in self.weight_shapes().values():
            n = 1
            for d in shape:
                n *= d
            total += n
        return total

    def reduction_length(self) -> int:
        """Roundings on an output element's longest path: products and sums, plus one for the bias."""
        return self.kind.family.reduction_length(self) + (1 if self.use_bias else 0)


def geometry(layer: str, config: dict[str, Any], input_shape: tuple[int, ...]) -> Geometry:
    """Normalise a Keras config for an input of ``input_shape`` (batch first, in its data_format)."""
    kind = get_kind(layer)
    cfg = {**COMMON_DEFAULTS, **kind.defaults, **config}
    # Any value a case file can hold arrives here (the API, stacks, plug-ins): a value of the wrong type is the
    # case's own error (ConfigProblem, naming the field), never a TypeError deep in a family's arithmetic.
    for key in kind.requires:
        if cfg.get(key) is None:
            raise ConfigProblem(f"config.{key}", f"required by {kind.name}, got {cfg.get(key)!r}")
    if cfg["data_format"] not in ("channels_last", "channels_first"):
        raise ConfigProblem("config.data_format", f"must be channels_last or channels_first, got "
                                                  f"{cfg['data_format']!r}")
    if not (isinstance(cfg["padding"], str) and cfg["padding"].lower() in PADDINGS):
        raise ConfigProblem("config.padding", f"must be one of {' | '.join(PADDINGS)}, got {cfg['padding']!r}")
    if cfg["use_bias"] not in (True, False):
        raise ConfigProblem("config.use_bias", f"must be true or false, got {cfg['use_bias']!r}")
    if cfg["activation"] is not None and not isinstance(cfg["activation"], str):
        raise ConfigProblem("config.activation", f"must be an activation's name or null, got {cfg['activation']!r}")
    if not (isinstance(input_shape, (list, tuple)) and len(input_shape) == kind.rank + 2
            and all(_integer(d) and d > 0 for d in input_shape)):
        raise ConfigProblem("input_shape", f"{kind.name} takes a list of {kind.rank + 2} positive integers, got "
                                           f"{input_shape!r}")
    channels_first = cfg["data_format"] == "channels_first"
    in_channels = int(input_shape[1] if channels_first else input_shape[-1])
    filters = cfg.get("filters")
    return Geometry(
        kind=kind,
        kernel_size=_tuple(cfg["kernel_size"], kind.rank, "kernel_size"),
        strides=_tuple(cfg["strides"], kind.rank, "strides"),
        dilation=_tuple(cfg["dilation_rate"], kind.rank, "dilation_rate"),
        padding=cfg["padding"].lower(),
        channels_first=channels_first,
        in_channels=in_channels,
        filters=None if filters is None else _count(filters, "filters"),
        depth_multiplier=_count(cfg.get("depth_multiplier", 1), "depth_multiplier"),
        groups=_count(cfg.get("groups", 1), "groups"),
        use_bias=bool(cfg["use_bias"]),
        activation=cfg["activation"] or "linear",
    )


def spatial_shape(g: Geometry, input_shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(input_shape[2:] if g.channels_first else input_shape[1:-1])


def output_shape(g: Geometry, input_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Expected Keras output shape (batch first, in the case's data_format); ConfigProblem where the geometry
    cannot be sized (its lengths may still be <= 0 where the kernel does not fit: `impossible` says so)."""
    from .padding import output_length

    require_sizes(g)
    spatial = tuple(
        output_length(g.padding, n, k, s, d)
        for n, k, s, d in zip(spatial_shape(g, input_shape), g.kernel_size, g.strides, g.dilation)
    )
    if g.channels_first:
        return (input_shape[0], g.out_channels, *spatial)
    return (input_shape[0], *spatial, g.out_channels)


def impossible(g: Geometry, input_shape: tuple[int, ...]) -> list[tuple[str, str]]:
    """What makes a configuration impossible to run, as (case field, what is wrong); empty when it can run.

    The schema refuses such a case unless it pins the refusals (expect.rejected_by); the oracle and the torch
    port then refuse it with these words, as frameworks do with theirs.
    """
    problems = size_problems(g)   # sizes first: nothing below may divide by a zero
    if problems:
        return problems
    out = output_shape(g, input_shape)
    if min(out) <= 0:
        return [("input_shape", f"impossible shape: a {g.kernel_size} kernel with dilation {g.dilation} and "
                                f"padding {g.padding!r} does not fit input {list(input_shape)} "
                                f"(output would be {list(out)})")]
    return []


def refuse_impossible(engine: str, layer: str, g: Geometry, input_shape: tuple[int, ...]) -> None:
    """Raise EngineRejected, as a framework does, for a configuration that cannot run (see ``impossible``)."""
    problems = impossible(g, input_shape)
    if problems:
        from .errors import EngineRejected

        raise EngineRejected(f"{engine} refuses {layer}: " + "; ".join(f"{f}: {m}" for f, m in problems))
