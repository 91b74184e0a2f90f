"""What a layer family is: the one object that knows everything family-specific (in the spirit of OpInfo), the
layer kinds (a family at one rank) and the normalised configuration every family question takes (Geometry)."""
from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..padding import output_length, pad_amounts

# Keras constructor defaults shared by every family; a case states only what differs.
COMMON_DEFAULTS: dict[str, Any] = {
    "strides": 1,
    "padding": "valid",
    "data_format": "channels_last",
    "dilation_rate": 1,
    "activation": None,
    "use_bias": True,
}


@dataclass(frozen=True)
class Arg:
    """How a numeric Keras constructor argument is written and the least value it takes: the schema validates it,
    harness.layers.geometry.geometry normalises it and size_problems checks it from this alone."""

    per_axis: bool = False   # an integer or a list of one per spatial axis (kernel_size), else one integer (filters)
    minimum: int = 1         # the least value (0 for an offset such as a transposed conv's output_padding)
    optional: bool = False   # None stands for "not given" (Keras's output_padding=None)
    field: str = ""          # the Geometry attribute holding it, where its name differs from the Keras key

    def expects(self, rank: int) -> str:
        """What a value must be, for messages ("a positive integer or a list of 2")."""
        least = "positive" if self.minimum == 1 else f">= {self.minimum}"
        return f"a {least} integer" + (f" or a list of {rank}" if self.per_axis else "")


COUNT = Arg()
SIZES = Arg(per_axis=True)
# The numeric arguments every family takes (a family declares its own in Family.arguments).
COMMON_ARGS: dict[str, Arg] = {"strides": SIZES, "dilation_rate": Arg(per_axis=True, field="dilation")}


class ConfigProblem(ValueError):
    """A configuration no family can size (a zero or negative size, groups that do not divide the channels, a value
    of the wrong type): the case field and what is wrong, the case's own error instead of a ZeroDivisionError."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def size_problems(g: Geometry) -> list[tuple[str, str]]:
    """Why the families cannot size ``g``'s tensors, as (case field, what is wrong); empty when they can. Whether
    the kernel fits an input is not asked here (harness.layers.geometry.impossible asks it of each input)."""
    problems: list[tuple[str, str]] = []
    for key, arg in g.kind.arguments.items():   # counts first, then the per-axis sizes (LayerKind.arguments)
        value = g.arg(key)
        if value is None:
            continue
        if min(value if arg.per_axis else (value,)) < arg.minimum:
            problems.append((f"config.{key}", (f"must be {arg.expects(g.kind.rank)}, "
                                               f"got {list(value) if arg.per_axis else value!r}")))
    return problems or g.kind.family.impossible(g)


def require_sizes(g: Geometry) -> None:
    """Raise ConfigProblem (the first of size_problems) where ``g``'s tensors cannot be sized."""
    problems = size_problems(g)
    if problems:
        raise ConfigProblem(*problems[0])


# The questions a family answers about sizes (Geometry first): each checks, before the family's own arithmetic,
# that the geometry can be sized, so that any value a case file can hold gets an answer or a ConfigProblem.
SIZING = ("out_channels", "kernel_shapes", "reduction_length", "backward_reduction_lengths")


def _sized(method: Callable) -> Callable:
    @functools.wraps(method)
    def ask(self: Family, g: Geometry, *args: Any, **kwargs: Any) -> Any:
        require_sizes(g)
        return method(self, g, *args, **kwargs)

    return ask


@dataclass(frozen=True)
class LayerKind:
    """One Keras layer class: a family at one rank."""

    name: str                       # Keras class name, also what cases write under `layer`
    rank: int                       # number of spatial axes
    family: Family                  # owns the semantics, weights, conversions and detection strategies
    paddings: tuple[str, ...] = ("valid", "same")

    @property
    def weight_names(self) -> tuple[str, ...]:
        """Keras weight names in `layer.get_weights()` order (bias last, optional)."""
        return (*self.family.kernel_names, "bias")

    @property
    def extra_keys(self) -> tuple[str, ...]:
        return self.family.extra_keys

    @property
    def requires(self) -> tuple[str, ...]:
        return self.family.requires

    @property
    def defaults(self) -> dict[str, Any]:
        return self.family.defaults

    @property
    def config_keys(self) -> frozenset[str]:
        return frozenset(COMMON_DEFAULTS) | frozenset(self.family.extra_keys)

    @property
    def arguments(self) -> dict[str, Arg]:
        """The numeric arguments (the family's and COMMON_ARGS), counts first, then the per-axis sizes: the order in
        which the schema and size_problems check them, so that the first problem named is always the same."""
        both = {**self.family.arguments, **COMMON_ARGS}
        return {**{k: a for k, a in both.items() if not a.per_axis}, **{k: a for k, a in both.items() if a.per_axis}}


@dataclass(frozen=True)
class Geometry:
    """A case's configuration, normalised (harness.layers.geometry.geometry makes it): every argument explicit, sizes as
    tuples. The arguments of every family so far are fields; one that a new family adds (e.g. a transposed conv's
    output_padding) is kept in ``extra`` and read with ``arg``, so that adding it touches only the family."""

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
    extra: tuple[tuple[str, Any], ...] = ()   # (Keras key, normalised value) of the family's other arguments

    def arg(self, key: str) -> Any:
        """A numeric argument by its Keras name (``dilation_rate`` -> ``dilation``; ``extra`` for the others)."""
        arg = self.kind.arguments.get(key)
        name = (arg.field if arg else "") or key
        if name in GEOMETRY_FIELDS:
            return getattr(self, name)
        return dict(self.extra)[key]

    def replace(self, **changes: Any) -> Geometry:
        """This geometry with some fields changed (the primitives ask for a 'valid' or regrouped one)."""
        return dataclasses.replace(self, **changes)

    @property
    def out_channels(self) -> int:
        return self.kind.family.out_channels(self)

    @property
    def filter_count(self) -> int:
        """``filters``, of a family that requires it (conv, separable); TypeError for one that has none."""
        if self.filters is None:
            raise TypeError(f"{self.kind.name} has no filters")
        return self.filters

    def output_spatial(self, spatial: tuple[int, ...]) -> tuple[int, ...]:
        """The output's spatial lengths for an input of ``spatial`` lengths (its family's answer)."""
        return self.kind.family.output_spatial(self, spatial)

    def pad_widths(self, spatial: tuple[int, ...]) -> list[tuple[int, int]]:
        """(before, after) zeros on each spatial axis of an input of ``spatial`` lengths (its family's answer)."""
        return self.kind.family.pad_widths(self, spatial)

    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shapes of the Keras weights, in Keras layout and order."""
        shapes = self.kind.family.kernel_shapes(self)
        if self.use_bias:
            shapes["bias"] = (self.out_channels,)
        return shapes

    def param_count(self) -> int:
        return sum(math.prod(shape) for shape in self.weight_shapes().values())

    def reduction_length(self) -> int:
        """Roundings on an output element's longest path: products and sums, plus one for the bias."""
        return self.kind.family.reduction_length(self) + (1 if self.use_bias else 0)


GEOMETRY_FIELDS = frozenset(f.name for f in dataclasses.fields(Geometry))


class PortSteps:
    """Base of a family's NumPy-port steps (Family.port_steps): the methods run bound to a
    harness.mutation.port.Port, whose common hooks they call (typed here; the port defines them)."""

    spatial: Callable[[np.ndarray, int], np.ndarray]           # a kernel's spatial axes as the port reads them
    pads: Callable[[np.ndarray, Geometry], list[tuple[int, int]]]   # (before, after) per axis of a (N, C, *S) x


class Family:
    """A family of Keras convolution layers (all ranks). Subclasses fill in the fields and the methods below;
    everything else in the harness asks the family instead of testing its name."""

    # ---------------------------------------------------------------- declared facts
    name: str = ""                             # 'conv' | 'depthwise' | 'separable': for messages and mutants
    # Constructor arguments beyond COMMON_DEFAULTS, each with how it is written (Arg): the schema, the Geometry and
    # size_problems read them from here. Every one is numeric so far; extra_keys is their names.
    arguments: ClassVar[dict[str, Arg]] = {}
    requires: tuple[str, ...] = ()             # arguments without a Keras default
    defaults: ClassVar[dict[str, Any]] = {}    # Keras defaults of extra_keys
    kernel_names: tuple[str, ...] = ()         # Keras weights before the (optional) bias, get_weights() order
    # Intermediate results an engine may expose (EngineOutput.intermediate), judged on their own when the layer
    # fails, so that a failure says which stage went wrong: name -> the step that follows it.
    stages: ClassVar[dict[str, str]] = {}
    # Variants of the hand-written torch port this family has (engine options that apply to it).
    port_variants: tuple[str, ...] = ()
    # The torch port's mixin, "module:attribute" (a class deriving harness.torch_port._FromKeras, or a function
    # returning one): a name, so that importing a family imports no torch. harness.torch_port derives the port of
    # every Keras kind of the family, at any rank, from it.
    torch_port: str = ""
    # What pad_widths says: False, the zeros padded onto each end of the input (a convolution); True, the positions
    # cropped off each end of the output (a transposed conv, whose output is the full scatter of every input pixel).
    pads_crop_output: bool = False
    # The NumPy port's steps for this family (a PortSteps subclass: harness.mutation.port.Port inherits every
    # family's), each one a step a mutant may override by its name. `port_stages` composes them.
    port_steps: type | None = None

    @property
    def extra_keys(self) -> tuple[str, ...]:
        """Constructor arguments beyond COMMON_DEFAULTS."""
        return tuple(self.arguments)

    def __repr__(self) -> str:
        return f"<{self.name} family>"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in SIZING:   # every family, new ones included, answers only for a geometry it can size
            if name in cls.__dict__:
                setattr(cls, name, _sized(cls.__dict__[name]))

    # ---------------------------------------------------------------- shapes and the bound
    def output_spatial(self, g: Geometry, spatial: tuple[int, ...]) -> tuple[int, ...]:
        """The output's spatial lengths for an input of ``spatial`` lengths (<= 0 where the kernel does not fit;
        ValueError for a size that is not positive): the one place the harness asks it (harness.layers.padding's rule
        for a convolution; a transposed family answers its own)."""
        return tuple(output_length(g.padding, n, k, s, d)
                     for n, k, s, d in zip(spatial, g.kernel_size, g.strides, g.dilation))

    def pad_widths(self, g: Geometry, spatial: tuple[int, ...]) -> list[tuple[int, int]]:
        """(before, after) zeros Keras puts on each spatial axis of an input of ``spatial`` lengths: how the
        padding splits (the primitives and the NumPy port ask it)."""
        return [pad_amounts(g.padding, n, k, s, d) for n, k, s, d in zip(spatial, g.kernel_size, g.strides, g.dilation)]

    def out_channels(self, g: Geometry) -> int:
        raise NotImplementedError

    def kernel_shapes(self, g: Geometry) -> dict[str, tuple[int, ...]]:
        """Keras shapes of kernel_names, in order."""
        raise NotImplementedError

    def reduction_length(self, g: Geometry) -> int:
        """Roundings on an output element's longest path, products and sums, before the bias."""
        raise NotImplementedError

    def impossible(self, g: Geometry) -> list[tuple[str, str]]:
        """Family-specific reasons a configuration cannot run, as (case field, what is wrong); asked only of a
        geometry whose sizes are all positive (size_problems)."""
        return []

    # ---------------------------------------------------------------- the float64 reference
    def forward(self, x: np.ndarray, w: Mapping[str, np.ndarray], g: Geometry) -> np.ndarray:
        """The layer before bias and activation: x (N, *S, C) float64 channels last -> (N, *S', out)."""
        raise NotImplementedError

    def forward_pair(self, x: np.ndarray, w: Mapping[str, np.ndarray], g: Geometry, magnitudes: bool
                     ) -> tuple[np.ndarray, np.ndarray | None]:
        """`forward` on x and w, and with ``magnitudes`` on |x| and |w| too (the gauge's layer, before its bias): a
        family whose passes can share work (the depthwise patches) computes both at once; this one runs twice."""
        y = self.forward(x, w, g)
        return y, (self.forward(np.abs(x), {k: np.abs(v) for k, v in w.items()}, g) if magnitudes else None)

    def stage_forward(self, stage: str, x: np.ndarray, w: Mapping[str, np.ndarray], g: Geometry) -> np.ndarray:
        """One of `stages`, channels last, float64 (no bias)."""
        raise KeyError(f"{self.name} layers have no stage {stage!r}")

    def variant_gradients(self, variant: Mapping[str, np.ndarray], weights: Mapping[str, np.ndarray],
                          grads: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The gradients a port variant has (its extra tensors, e.g. a torch separable block's depthwise bias,
        given in ``variant``), from the Keras layer's ``grads`` and ``weights``: a port with other parameters has
        other gradients, even where its outputs agree. The same call on magnitudes gives their gauge."""
        return dict(grads)

    def variant_gradient_lengths(self, variant: Mapping[str, np.ndarray], lengths: Mapping[str, int],
                                 g: Geometry) -> dict[str, int]:
        """The reduction lengths of ``variant_gradients``' tensors."""
        return dict(lengths)

    def forward_rounded(self, x: np.ndarray, w: Mapping[str, np.ndarray], g: Geometry,
                        inner: Callable[[np.ndarray], np.ndarray],
                        outer: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """`forward` with each intermediate stage's output passed through ``inner`` and the last one through
        ``outer``: a runtime that computes ops in a narrower precision (OpenVINO's bfloat16 inference) stores
        intermediates in it, and may or may not round the last op's output (for diagnosis)."""
        return outer(self.forward(x, w, g))

    def stage_reduction_length(self, stage: str, g: Geometry) -> int:
        """Roundings on an element's longest path up to ``stage`` (one of `stages`)."""
        raise KeyError(f"{self.name} layers have no stage {stage!r}")

    # ---------------------------------------------------------------- the float64 backward reference
    def backward(self, x: np.ndarray, w: Mapping[str, np.ndarray], g: Geometry,
                 dz: np.ndarray) -> dict[str, np.ndarray]:
        """The vector-Jacobian product of `forward`: x (N, *S, C) float64 channels last, w the kernels (no bias),
        dz (N, *S', out) the gradient of the output before bias and activation -> {"x": dx, each kernel name:
        its gradient}, in the shapes and Keras layouts of x and w."""
        raise NotImplementedError

    def backward_reduction_lengths(self, g: Geometry, input_shape: tuple[int, ...]) -> dict[str, int]:
        """Roundings on the longest path of one element of each gradient `backward` returns, and of "bias" (products
        and sums, from dz taken as exact: the product dy * f'(pre) that makes dz is the caller's, as the bias is
        for `reduction_length`). ``input_shape`` is x's, batch first, in the case's data_format: a kernel's
        gradient sums over the batch and every output position, which the Geometry alone does not know."""
        raise NotImplementedError

    # ---------------------------------------------------------------- Keras <-> PyTorch weights
    def keras_to_torch(self, kind: LayerKind, weights: Mapping[str, np.ndarray], bias: np.ndarray | None,
                       what: str, **variant: Any) -> dict[str, np.ndarray]:
        """Keras kernels (names checked, bias extracted) -> a torch state dict of the port's attribute names."""
        raise NotImplementedError

    def torch_to_keras(self, kind: LayerKind, state: Mapping[str, np.ndarray], what: str, *,
                       in_channels: int | None, depth_multiplier: int | None) -> dict[str, np.ndarray]:
        raise NotImplementedError

    # The torch port's state-dict name of each Keras weight (kernel_names and "bias"), as keras_to_torch writes them.
    torch_names: ClassVar[dict[str, str]] = {}

    def torch_weight_shapes(self, g: Geometry) -> dict[str, tuple[int, ...]]:
        """Each Keras weight's shape in the torch port's layout (keras_to_torch of zeros in the Keras shapes)."""
        shapes = g.weight_shapes()
        kernels = {n: np.zeros(s) for n, s in shapes.items() if n != "bias"}
        bias = np.zeros(shapes["bias"]) if "bias" in shapes else None
        state = self.keras_to_torch(g.kind, kernels, bias, f"torch_weight_shapes({g.kind.name})")
        return {n: tuple(state[self.torch_names[n]].shape) for n in shapes}

    def weight_from_torch(self, name: str, weight: np.ndarray, g: Geometry) -> np.ndarray:
        """One Keras weight given in the torch port's layout -> Keras layout, float64: torch_to_keras on a state dict
        holding it (the other kernels zeros), so that one weight converts exactly as a whole state dict does."""
        shapes = self.torch_weight_shapes(g)
        state = {self.torch_names[n]: np.zeros(s) for n, s in shapes.items() if n != "bias"}
        state[self.torch_names[name]] = np.asarray(weight, dtype=np.float64)
        return self.torch_to_keras(g.kind, state, f"weight_from_torch({g.kind.name}, {name})",
                                   in_channels=g.in_channels, depth_multiplier=None)[name]

    def in_channels_from(self, weights: Mapping[str, np.ndarray], config: Mapping[str, Any]) -> int:
        """The input channels a set of Keras weights implies (for building a torch module without an input)."""
        key = self.kernel_names[0]
        if key not in weights:
            raise ValueError(f"weights lack {key!r}; give in_channels or the Keras weights")
        return int(np.shape(weights[key])[-2])

    # ---------------------------------------------------------------- detection
    def port_stages(self, port: Any, x: np.ndarray, weights: Mapping[str, np.ndarray], g: Geometry,
                    dtype: str) -> tuple[np.ndarray, np.ndarray | None]:
        """The NumPy port (harness.mutation.port.Port) composing its steps for this family: (output before
        bias, the depthwise stage or None), channels first."""
        raise NotImplementedError

    def fuzz_config(self, draw: Callable[[Any], Any], st: Any, channels: int, max_channels: int) -> dict[str, Any]:
        """The family's own arguments drawn by the fuzzer (hypothesis ``draw`` and ``strategies``)."""
        raise NotImplementedError

    def weak_spots(self, g: Geometry) -> list[str]:
        """Why a case of this family cannot see some common port mistakes (for `harness lint`)."""
        return []


def taps(g: Geometry) -> int:
    """Kernel taps per channel."""
    return math.prod(g.kernel_size)


def batch_positions(g: Geometry, input_shape: tuple[int, ...]) -> int:
    """Batch x output positions of an input of ``input_shape`` (batch first, in its data_format): the terms of a
    kernel's or the bias's gradient, which sums over every image and every output position."""
    spatial = tuple(input_shape[2:] if g.channels_first else input_shape[1:-1])
    return int(input_shape[0]) * math.prod(g.output_spatial(spatial))
