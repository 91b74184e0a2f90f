"""A PyTorch port of the Keras convolution layers: real nn.Conv modules with Keras padding and activations."""
from __future__ import annotations

import importlib
import re
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .convert import keras_to_torch
from .layers.activations import ACTIVATION_TABLE, get_activation
from .layers.families import FAMILIES, Family
from .layers.geometry import LAYERS, geometry, get_kind
from .layers.padding import pad_amounts

__all__ = ["Conv1d", "Conv2d", "DepthwiseConv1d", "DepthwiseConv2d", "SeparableConv1d", "SeparableConv2d",
           "from_keras", "port_class", "CLASSES"]   # + the ports derived for the other Keras kinds (e.g. Conv3d)

IntOrTuple = int | Sequence[int]

# name -> torch function, from the one activation table.
_ACTIVATIONS = {name: a.torch_function() for name, a in ACTIVATION_TABLE.items()}
# Keras constructor arguments that do not change the forward computation of already-set weights.
_IGNORED = re.compile(r"name|trainable|dtype|data_format|.*_(initializer|regularizer|constraint)|lora_.*")


# Set while from_keras builds a module whose every parameter it loads right after (load_state_dict, strict): the
# ports then skip torch's default initialisation (kaiming-uniform draws, overwritten at once). A port constructed
# directly is initialised as torch initialises its nn.ConvNd.
_LOADING: ContextVar[bool] = ContextVar("harness_torch_port_loading", default=False)
# torch dtypes whose values a NumPy array of this dtype holds exactly: such weights are loaded as they are.
_SAME_NUMPY = {torch.float16: np.dtype(np.float16), torch.float32: np.dtype(np.float32),
               torch.float64: np.dtype(np.float64)}


def _as_tensor(value: Any, dtype: torch.dtype) -> torch.Tensor:
    """A weight as a tensor of ``dtype``, rounded once: as it is where it already has that dtype, else via
    float64 (exact for every float input, bfloat16 included), then one rounding straight to ``dtype``."""
    a = np.asarray(value)
    if _SAME_NUMPY.get(dtype) == a.dtype:
        return torch.from_numpy(np.ascontiguousarray(a))
    return torch.from_numpy(np.asarray(a, dtype=np.float64)).to(dtype)


def _tuple(value: IntOrTuple, rank: int, what: str) -> tuple[int, ...]:
    t = (int(value),) * rank if isinstance(value, (int, np.integer)) else tuple(int(v) for v in value)
    if len(t) != rank or any(v < 1 for v in t):
        raise ValueError(f"{what} should be a positive int or {rank} positive ints, got {value!r}")
    return t


def _activation(name: str | None) -> str:
    return get_activation(name).name


def _padding(padding: str, rank: int) -> str:
    padding = str(padding).lower()
    allowed = ("valid", "same", "causal") if rank == 1 else ("valid", "same")
    if padding not in allowed:
        raise ValueError(f"padding {padding!r} is not supported by a {rank}D layer; use one of {allowed}")
    return padding


if TYPE_CHECKING:   # the mixins typed as what port_class and the explicit classes mix them into
    _Module = nn.Module
    _Conv = nn.modules.conv._ConvNd
else:
    _Module = _Conv = object


def _activate(module: Any, y: torch.Tensor) -> torch.Tensor:
    """The port's activation function of ``y``; a variant's module (nn.ReLU6) where one was set on the port
    (harness.engines.port_variants: the port as other porters write it)."""
    styled = module._modules.get("activation_module")
    return _ACTIVATIONS[module.activation](y) if styled is None else styled(y)


class _KerasPadded(_Conv):
    """Mixin for an nn.ConvNd built with padding=0: pads like Keras at forward time, then activates.

    The padding amounts depend on the input length (TensorFlow's 'same' gives ceil(n/s) outputs and puts the
    odd pixel at the end), so they are computed per call; nn.ConvNd(padding='same') cannot do stride > 1.
    """

    keras_padding: str
    activation: str

    def _keras_pad(self, x: torch.Tensor) -> torch.Tensor:
        rank = len(self.kernel_size)
        pads: list[int] = []
        # F.pad lists (before, after) from the last axis backwards.
        for axis in reversed(range(rank)):
            pads += pad_amounts(self.keras_padding, x.shape[x.dim() - rank + axis], self.kernel_size[axis],
                                self.stride[axis], self.dilation[axis])
        return F.pad(x, pads) if any(pads) else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        zero_pad = self._modules.get("zero_pad")   # a variant's nn.ZeroPadNd (harness.engines.port_variants)
        y = super().forward(self._keras_pad(x) if zero_pad is None else zero_pad(x))
        return _activate(self, y)

    def reset_parameters(self) -> None:
        if not _LOADING.get():   # from_keras loads every parameter next: nothing to draw
            super().reset_parameters()

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, keras_padding={self.keras_padding!r}, activation={self.activation!r}"


class _FromKeras(_Module):
    """Mixin: build a module from a Keras config and Keras-layout weights (via harness.convert)."""

    keras_name: str
    port_family: Family    # the family it ports (set from the family's torch_port declaration: _MIXINS)
    port_stem: str         # the torch-style class name before the rank ("Conv" -> Conv3d), for port_class
    spatial_rank: int      # its spatial axes (Conv2d: 2): the family's constructor builds at that rank
    torch_base = "Conv"    # the torch module a derived port subclasses, at its rank (nn.Conv3d; "ConvTranspose")

    @classmethod
    def _from_geometry(cls, g: Any, in_channels: int, depthwise_bias: bool, common: dict[str, Any]) -> nn.Module:
        """The module for a normalised configuration: each family's base class below says how."""
        raise NotImplementedError

    @classmethod
    def from_keras(cls, config: Mapping[str, Any], weights: Mapping[str, np.ndarray], *,
                   in_channels: int | None = None, depthwise_bias: np.ndarray | None = None,
                   dtype: torch.dtype = torch.float32) -> nn.Module:
        """``config`` takes the Keras constructor's arguments; ``data_format`` is ignored (the module is
        channels-first, like every torch module: move the channel axis of channels-last inputs yourself).
        ``in_channels`` defaults to what the kernel shape says. ``depthwise_bias`` (separable only) builds the
        hand-written-port variant with a bias on both convs, computing the same function as Keras.
        """
        kind = get_kind(cls.keras_name)
        unknown = sorted(k for k in config if k not in kind.config_keys and not _IGNORED.fullmatch(k))
        if unknown:
            raise ValueError(f"{kind.name}: unsupported Keras arguments {unknown}")
        missing = [k for k in kind.requires if k not in config]
        if missing:
            raise ValueError(f"{kind.name}: missing Keras arguments {missing}")
        if depthwise_bias is not None and "depthwise_bias" not in kind.family.port_variants:
            raise ValueError(f"{kind.name}: depthwise_bias applies to separable layers only")
        if in_channels is None:
            in_channels = kind.family.in_channels_from(weights, config)
        # Geometry normalises the config; a dummy channels-last input carries in_channels.
        cfg = {**config, "data_format": "channels_last"}
        g = geometry(kind.name, cfg, (1, *(1,) * kind.rank, in_channels))
        expected = g.weight_shapes()
        got = {k: tuple(np.shape(v)) for k, v in weights.items()}
        if got != expected:
            raise ValueError(f"{kind.name}: weights should have Keras shapes {expected}, got {got}")
        common = dict(strides=g.strides, padding=g.padding, dilation_rate=g.dilation, use_bias=g.use_bias,
                      activation=g.activation, dtype=dtype)
        state = keras_to_torch(kind.name, weights, depthwise_bias=depthwise_bias)
        token = _LOADING.set(True)
        try:
            module = cls._from_geometry(g, in_channels, depthwise_bias is not None, common)
        finally:
            _LOADING.reset(token)
        with torch.no_grad():
            # strict: every parameter is loaded (none is left as constructed), one rounding each (_as_tensor).
            module.load_state_dict({k: _as_tensor(v, dtype) for k, v in state.items()})
        return module


# ---------------------------------------------------------------- conv

class _ConvNd(_FromKeras, _KerasPadded):
    port_stem = "Conv"

    def __init__(self, in_channels: int, filters: int, kernel_size: IntOrTuple, strides: IntOrTuple = 1,
                 padding: str = "valid", dilation_rate: IntOrTuple = 1, groups: int = 1, use_bias: bool = True,
                 activation: str | None = None, *, device: Any = None, dtype: torch.dtype | None = None) -> None:
        """Keras Conv1D's arguments (as a torch module's), at the class's spatial_rank."""
        rank = self.spatial_rank
        self._init(_torch_conv(rank), rank, in_channels, filters, kernel_size, strides, padding, dilation_rate,
                   groups, use_bias, activation, device, dtype)

    @classmethod
    def _from_geometry(cls, g: Any, in_channels: int, depthwise_bias: bool, common: dict[str, Any]) -> nn.Module:
        return cls(in_channels, g.filters, g.kernel_size, groups=g.groups, **common)

    def _init(self, base: type[nn.Module], rank: int, in_channels: int, filters: int, kernel_size: IntOrTuple,
              strides: IntOrTuple, padding: str, dilation_rate: IntOrTuple, groups: int, use_bias: bool,
              activation: str | None, device: Any, dtype: torch.dtype | None) -> None:
        if groups < 1 or in_channels % groups or filters % groups:
            raise ValueError(f"groups={groups} must divide in_channels={in_channels} and filters={filters}")
        base.__init__(self, in_channels, filters, _tuple(kernel_size, rank, "kernel_size"),
                      stride=_tuple(strides, rank, "strides"), padding=0,
                      dilation=_tuple(dilation_rate, rank, "dilation_rate"), groups=groups, bias=use_bias,
                      device=device, dtype=dtype)
        self.keras_padding, self.activation = _padding(padding, rank), _activation(activation)


class Conv1d(_ConvNd, nn.Conv1d):
    """Keras Conv1D as an nn.Conv1d on (N, C, L): weight (F, C/groups, k), bias (F,)."""

    keras_name = "Conv1D"
    spatial_rank = 1


class Conv2d(_ConvNd, nn.Conv2d):
    """Keras Conv2D as an nn.Conv2d on (N, C, H, W): weight (F, C/groups, kh, kw), bias (F,)."""

    keras_name = "Conv2D"
    spatial_rank = 2


# ---------------------------------------------------------------- depthwise

class _DepthwiseNd(_FromKeras, _KerasPadded):
    port_stem = "DepthwiseConv"

    def __init__(self, in_channels: int, kernel_size: IntOrTuple, strides: IntOrTuple = 1, padding: str = "valid",
                 depth_multiplier: int = 1, dilation_rate: IntOrTuple = 1, use_bias: bool = True,
                 activation: str | None = None, *, device: Any = None, dtype: torch.dtype | None = None) -> None:
        """Keras DepthwiseConv1D's arguments (as a torch module's), at the class's spatial_rank."""
        rank = self.spatial_rank
        self._init(_torch_conv(rank), rank, in_channels, kernel_size, strides, padding, depth_multiplier,
                   dilation_rate, use_bias, activation, device, dtype)

    @classmethod
    def _from_geometry(cls, g: Any, in_channels: int, depthwise_bias: bool, common: dict[str, Any]) -> nn.Module:
        return cls(in_channels, g.kernel_size, depth_multiplier=g.depth_multiplier, **common)

    def _init(self, base: type[nn.Module], rank: int, in_channels: int, kernel_size: IntOrTuple, strides: IntOrTuple,
              padding: str, depth_multiplier: int, dilation_rate: IntOrTuple, use_bias: bool,
              activation: str | None, device: Any, dtype: torch.dtype | None) -> None:
        if depth_multiplier < 1:
            raise ValueError(f"depth_multiplier should be >= 1, got {depth_multiplier}")
        # groups=C with C*M outputs: output channel c*M + m filters input channel c, as in Keras.
        base.__init__(self, in_channels, in_channels * depth_multiplier, _tuple(kernel_size, rank, "kernel_size"),
                      stride=_tuple(strides, rank, "strides"), padding=0,
                      dilation=_tuple(dilation_rate, rank, "dilation_rate"), groups=in_channels, bias=use_bias,
                      device=device, dtype=dtype)
        self.depth_multiplier = depth_multiplier
        self.keras_padding, self.activation = _padding(padding, rank), _activation(activation)


class DepthwiseConv1d(_DepthwiseNd, nn.Conv1d):
    """Keras DepthwiseConv1D as a grouped nn.Conv1d (groups=C): weight (C*M, 1, k), bias (C*M,)."""

    keras_name = "DepthwiseConv1D"
    spatial_rank = 1


class DepthwiseConv2d(_DepthwiseNd, nn.Conv2d):
    """Keras DepthwiseConv2D as a grouped nn.Conv2d (groups=C): weight (C*M, 1, kh, kw), bias (C*M,)."""

    keras_name = "DepthwiseConv2D"
    spatial_rank = 2


# ---------------------------------------------------------------- separable

class _SeparableNd(_FromKeras, nn.Module):
    port_stem = "SeparableConv"
    depthwise: nn.Module
    pointwise: nn.Module

    def __init__(self, in_channels: int, filters: int, kernel_size: IntOrTuple, strides: IntOrTuple = 1,
                 padding: str = "valid", depth_multiplier: int = 1, dilation_rate: IntOrTuple = 1,
                 use_bias: bool = True, activation: str | None = None, depthwise_bias: bool = False, *,
                 device: Any = None, dtype: torch.dtype | None = None) -> None:
        """Keras SeparableConv1D's arguments (as a torch module's), at the class's spatial_rank."""
        self._init(self.spatial_rank, in_channels, filters, kernel_size, strides, padding, depth_multiplier,
                   dilation_rate, use_bias, activation, depthwise_bias, device, dtype)

    @classmethod
    def _from_geometry(cls, g: Any, in_channels: int, depthwise_bias: bool, common: dict[str, Any]) -> nn.Module:
        return cls(in_channels, g.filters, g.kernel_size, depth_multiplier=g.depth_multiplier,
                   depthwise_bias=depthwise_bias, **common)

    def _init(self, rank: int, in_channels: int, filters: int, kernel_size: IntOrTuple, strides: IntOrTuple,
              padding: str, depth_multiplier: int, dilation_rate: IntOrTuple, use_bias: bool,
              activation: str | None, depthwise_bias: bool, device: Any, dtype: torch.dtype | None) -> None:
        nn.Module.__init__(self)
        depthwise_cls, conv_cls = port_class(_DepthwiseNd, rank), _torch_conv(rank)
        # Keras: strides, dilation and padding belong to the depthwise step; the 1x1 step is stride 1.
        self.depthwise = depthwise_cls(in_channels, kernel_size, strides, padding, depth_multiplier, dilation_rate,
                                       use_bias=depthwise_bias, device=device, dtype=dtype)
        # Keras has one bias, after the pointwise step; the depthwise-bias variant always needs a pointwise bias
        # to stay equal to Keras (it cancels W_p^T b_d when Keras has none).
        self.pointwise = conv_cls(in_channels * depth_multiplier, filters, 1, bias=use_bias or depthwise_bias,
                                  device=device, dtype=dtype)
        self.activation = _activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _activate(self, self.pointwise(self.depthwise(x)))

    def extra_repr(self) -> str:
        return f"activation={self.activation!r}"


class SeparableConv1d(_SeparableNd):
    """Keras SeparableConv1D on (N, C, L): ``depthwise`` (DepthwiseConv1d, no bias unless depthwise_bias) then
    ``pointwise`` (nn.Conv1d, kernel 1, the Keras bias)."""

    keras_name = "SeparableConv1D"
    spatial_rank = 1


class SeparableConv2d(_SeparableNd):
    """Keras SeparableConv2D on (N, C, H, W): ``depthwise`` (DepthwiseConv2d, no bias unless depthwise_bias)
    then ``pointwise`` (nn.Conv2d, kernel 1x1, the Keras bias). 3 -> 4 channels, 3x3: 43 parameters, or 46
    with depthwise_bias=True."""

    keras_name = "SeparableConv2D"
    spatial_rank = 2


def _declared_mixin(family: Family) -> type[_FromKeras] | None:
    """The mixin a family's torch_port names ("module:attribute": a class, or a function returning one)."""
    if not family.torch_port:
        return None
    module, _, attribute = family.torch_port.partition(":")
    found = getattr(importlib.import_module(module), attribute)
    mixin: type[_FromKeras] = found if isinstance(found, type) else found()
    mixin.port_family = family
    return mixin


_MIXINS: dict[Family, type[_FromKeras]] = {f: m for f in FAMILIES.values() if (m := _declared_mixin(f)) is not None}
# The hand-written classes (Conv2d, ...): each mixin's subclasses that name their Keras kind.
_EXPLICIT: tuple[type[nn.Module], ...] = tuple(cls for mixin in _MIXINS.values() for cls in mixin.__subclasses__()
                                                if "keras_name" in vars(cls) and issubclass(cls, nn.Module))
CLASSES: dict[str, type[nn.Module]] = {vars(cls)["keras_name"]: cls for cls in _EXPLICIT}


# ---------------------------------------------------------------- any other rank: ports derived from the mixins

_DERIVED: dict[tuple[type, int], type[nn.Module]] = {}


def _torch_module(stem: str, rank: int) -> type[nn.Module]:
    """torch's nn.{stem}{rank}d (nn.Conv2d, nn.ConvTranspose3d)."""
    module = getattr(nn, f"{stem}{rank}d", None)
    if module is None:
        raise ValueError(f"torch has no nn.{stem}{rank}d: no port for {rank} spatial axes")
    return module


def _torch_conv(rank: int) -> type[nn.Module]:
    """torch's nn.Conv{rank}d."""
    return _torch_module("Conv", rank)


def port_class(mixin: type[_FromKeras], rank: int) -> type[nn.Module]:
    """The port of a family (its mixin: _ConvNd, _DepthwiseNd, _SeparableNd) at ``rank`` spatial axes: the
    explicit class where there is one (Conv2d, ...), else a class derived from the mixin (and, for the single-conv
    families, torch's nn.Conv{rank}d), named like the explicit ones (Conv3d) and made once. A rank that no Keras
    layer of the family has still gets one (the depthwise step of a separable port needs it)."""
    for cls in _EXPLICIT:
        if issubclass(cls, mixin) and get_kind(vars(cls)["keras_name"]).rank == rank:
            return cls
    if (mixin, rank) not in _DERIVED:
        name = f"{mixin.port_stem}{rank}d"
        kind = next((k for k in LAYERS.values() if k.family is mixin.port_family and k.rank == rank), None)
        # A mixin that is no nn.Module is completed by torch's module of its torch_base (nn.Conv3d by default).
        bases = (mixin,) if issubclass(mixin, nn.Module) else (mixin, _torch_module(mixin.torch_base, rank))
        attrs: dict[str, Any] = {
            "__module__": __name__, "__qualname__": name, "spatial_rank": rank,
            "__doc__": f"{'Keras ' + kind.name if kind else f'A {rank}D {mixin.port_family.name} layer'} as "
                       f"{' + '.join(b.__name__ for b in bases)} (derived by harness.torch_port.port_class).",
        }
        if kind is not None:
            attrs["keras_name"] = kind.name
        # A module attribute, so that pickle finds it (as it finds the explicit classes).
        _DERIVED[(mixin, rank)] = globals()[name] = type(name, bases, attrs)
    return _DERIVED[(mixin, rank)]


# Every Keras kind of a family that has a mixin gets its port (`from harness.torch_port import Conv3d`).
for _kind in LAYERS.values():
    if _kind.name not in CLASSES and _kind.family in _MIXINS:
        CLASSES[_kind.name] = port_class(_MIXINS[_kind.family], _kind.rank)
        __all__.append(CLASSES[_kind.name].__name__)


def from_keras(layer_name: str, config: Mapping[str, Any], weights: Mapping[str, np.ndarray],
               **kw: Any) -> nn.Module:
    """The torch port of the Keras layer class ``layer_name`` (e.g. 'SeparableConv2D'): see _FromKeras."""
    try:
        cls = CLASSES[layer_name]
    except KeyError:
        raise ValueError(f"no torch port for {layer_name!r}; known: {', '.join(CLASSES)}") from None
    return cls.from_keras(config, weights, **kw)  # type: ignore[attr-defined]  # each port of CLASSES is a _FromKeras
