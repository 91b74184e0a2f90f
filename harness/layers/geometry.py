"""A case's configuration normalised into a Geometry (harness.layers.families.base), its output shape and feasibility,
asked of the layer's family."""
from __future__ import annotations

import numbers
from typing import Any

from ..errors import EngineRejected
from .activations import ACTIVATIONS
from .families import COMMON_DEFAULTS, LAYERS, ConfigProblem, LayerKind, get_kind
from .families.base import Arg, Geometry, require_sizes, size_problems

__all__ = ["ACTIVATIONS", "COMMON_DEFAULTS", "ConfigProblem", "LAYERS", "Geometry", "LayerKind", "geometry",
           "get_kind", "impossible", "output_shape", "refuse_impossible", "size_problems", "spatial_shape"]

# What harness.layers.padding computes; each kind takes some (LayerKind.paddings).
PADDINGS = ("valid", "same", "causal")
# Geometry's values of the arguments a family does not take (filters None: a depthwise layer has none).
UNSET = {"filters": None, "depth_multiplier": 1, "groups": 1}
FIELDS = {"kernel_size", "strides", "dilation", *UNSET}   # the arguments Geometry holds as fields


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


def _normalised(arg: Arg, value: Any, rank: int, key: str) -> Any:
    if value is None and arg.optional:
        return None
    return _tuple(value, rank, key) if arg.per_axis else _count(value, key)


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
    # The family's numeric arguments, as its Arg declarations say (per-axis sizes first, as Keras checks them); an
    # argument that is a Geometry field goes there, any other one (a new family's) into Geometry.extra.
    arguments = sorted(kind.arguments.items(), key=lambda item: not item[1].per_axis)
    values = {key: _normalised(arg, cfg.get(key), kind.rank, key) for key, arg in arguments}
    fields = {(arg.field or key): values.pop(key) for key, arg in arguments if (arg.field or key) in FIELDS}
    return Geometry(
        kind=kind,
        padding=cfg["padding"].lower(),
        channels_first=channels_first,
        in_channels=int(input_shape[1] if channels_first else input_shape[-1]),
        use_bias=bool(cfg["use_bias"]),
        activation=cfg["activation"] or "linear",
        **{**UNSET, **fields},
        extra=tuple(values.items()),
    )


def spatial_shape(g: Geometry, input_shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(input_shape[2:] if g.channels_first else input_shape[1:-1])


def output_shape(g: Geometry, input_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Expected Keras output shape (batch first, in the case's data_format); ConfigProblem where the geometry
    cannot be sized (its lengths may still be <= 0 where the kernel does not fit: `impossible` says so)."""
    require_sizes(g)
    spatial = g.output_spatial(spatial_shape(g, input_shape))
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
        return [("input_shape", (f"impossible shape: a {g.kernel_size} kernel with dilation {g.dilation} and "
                                 f"padding {g.padding!r} does not fit input {list(input_shape)} "
                                 f"(output would be {list(out)})"))]
    return []


def refuse_impossible(engine: str, layer: str, g: Geometry, input_shape: tuple[int, ...]) -> None:
    """Raise EngineRejected, as a framework does, for a configuration that cannot run (see ``impossible``)."""
    problems = impossible(g, input_shape)
    if problems:
        raise EngineRejected(f"{engine} refuses {layer}: " + "; ".join(f"{f}: {m}" for f, m in problems))
