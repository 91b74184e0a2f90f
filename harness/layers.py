"""A case's configuration normalised (Geometry): sizes, shapes and feasibility, asked of the layer's family."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .activations import ACTIVATIONS
from .families import COMMON_DEFAULTS, LAYERS, LayerKind, get_kind

__all__ = ["ACTIVATIONS", "COMMON_DEFAULTS", "LAYERS", "Geometry", "LayerKind", "geometry", "get_kind",
           "impossible", "output_shape", "refuse_impossible", "spatial_shape"]


def _tuple(value: Any, rank: int) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * rank
    return tuple(int(v) for v in value)


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
    channels_first = cfg["data_format"] == "channels_first"
    in_channels = int(input_shape[1] if channels_first else input_shape[-1])
    return Geometry(
        kind=kind,
        kernel_size=_tuple(cfg["kernel_size"], kind.rank),
        strides=_tuple(cfg["strides"], kind.rank),
        dilation=_tuple(cfg["dilation_rate"], kind.rank),
        padding=str(cfg["padding"]).lower(),
        channels_first=channels_first,
        in_channels=in_channels,
        filters=cfg.get("filters"),
        depth_multiplier=int(cfg.get("depth_multiplier", 1)),
        groups=int(cfg.get("groups", 1)),
        use_bias=bool(cfg["use_bias"]),
        activation=cfg["activation"] or "linear",
    )


def spatial_shape(g: Geometry, input_shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(input_shape[2:] if g.channels_first else input_shape[1:-1])


def output_shape(g: Geometry, input_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Expected Keras output shape (batch first, in the case's data_format)."""
    from .padding import output_length

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
    problems: list[tuple[str, str]] = []
    for name, value in (("filters", g.filters), ("depth_multiplier", g.depth_multiplier), ("groups", g.groups)):
        if value is not None and value <= 0:
            problems.append((f"config.{name}", f"must be a positive integer, got {value!r}"))
    for name, values in (("kernel_size", g.kernel_size), ("strides", g.strides), ("dilation_rate", g.dilation)):
        if min(values) <= 0:
            problems.append((f"config.{name}", f"must be a positive integer or a list of {g.kind.rank}, "
                                               f"got {list(values)}"))
    if problems:
        return problems
    family_problems = g.kind.family.impossible(g)
    if family_problems:
        return family_problems
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
