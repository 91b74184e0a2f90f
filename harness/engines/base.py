"""What an engine is: an object with traits (read without importing its framework) that runs one request."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..layers.families import FAMILIES
from .stopwatch import third_party

if TYPE_CHECKING:
    from ..layers.geometry import Geometry


@dataclass
class Inputs:
    """The values every engine consumes: generated once in float64, rounded once to the case dtype."""

    x: np.ndarray                       # in the case dtype and data_format
    weights: dict[str, np.ndarray]      # Keras names and layout, case dtype
    x64: np.ndarray                     # the same values in float64 (exactly)
    weights64: dict[str, np.ndarray]


@dataclass
class Request:
    """One layer to compute: the case's configuration, already normalised, and its inputs."""

    layer: str                          # Keras class name, e.g. "SeparableConv2D"
    config: dict[str, Any]              # the Keras constructor arguments, as the case states them
    geometry: Geometry                # the same, normalised (every argument explicit, sizes as tuples)
    inputs: Inputs
    options: dict[str, Any] = field(default_factory=dict)   # this engine's options from the case (validated)
    # The upstream gradient dL/dy (case dtype, the output's data_format) where the case asks for the backward
    # pass: the engine then also returns EngineOutput.gradients (vector-Jacobian products with it, no loss).
    grad_output: np.ndarray | None = None

    @property
    def dtype(self) -> str:
        return str(self.inputs.x.dtype)


@dataclass
class EngineOutput:
    """One engine's answer for one case (built-in engines and plug-ins alike)."""

    y: np.ndarray                                   # in the case data_format and (expected) dtype
    params: int | None = None                       # parameter count as that framework counts it
    weight_shapes: dict[str, tuple[int, ...]] | None = None   # in that engine's own layout (Engine.weight_layout)
    notes: list[str] = field(default_factory=list)  # e.g. "NCHW run as NHWC: TF CPU kernels refuse NCHW"
    # Added to the gauge G where an engine computes on magnitudes the Keras weights do not show
    # (a torch separable block with a depthwise bias carries |W_p||b_d| and a different pointwise bias).
    gauge_extra: np.ndarray | None = None
    extra_roundings: int = 0                        # roundings beyond the Keras layer's path (added to K)
    # The family's stages (Family.stages, e.g. the depthwise stage of separable), judged when the layer fails.
    intermediate: dict[str, np.ndarray] = field(default_factory=dict)
    # Facts of this run that decide the framework's behaviour, in the condition language's names
    # (harness/known/conditions.py FACTS), e.g. {"onednn": True, "keras_layer_format": "channels_first"}.
    facts: dict[str, Any] = field(default_factory=dict)
    # Where the request carried grad_output: dL/dx ("x", in the input's data_format and dtype) and dL/d each
    # weight by its Keras name, converted back to Keras layout with the converters the forward pass uses; a port
    # variant adds its own tensors (the torch separable block's "depthwise_bias"). harness/judge/gradients.py judges
    # them.
    gradients: dict[str, np.ndarray] | None = None


@dataclass
class Step:
    """One layer of a sequence, as an engine builds it: the configuration (raw and normalised), the shape that
    reaches it and its weights (Keras names and layout, the sequence's dtype)."""

    layer: str
    config: dict[str, Any]
    geometry: Geometry
    input_shape: tuple[int, ...]
    weights: dict[str, np.ndarray]


@dataclass
class SequenceRequest:
    """Layers applied in order to one input (a stack; next, a whole model): an engine computes them in one run, each
    layer on the previous layer's output in its own precision, and hands back every layer's output."""

    steps: list[Step]
    x: np.ndarray                       # channels last, the sequence's dtype
    dtype: str
    x64: np.ndarray | None = None       # the same values in float64 (the reference computes on these)
    weights64: list[dict[str, np.ndarray]] = field(default_factory=list)


@dataclass
class SequenceOutput:
    """One engine's answer for a sequence: every layer's output (channels last, in the dtype it computed), in order."""

    ys: list[np.ndarray]
    params: int | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class EngineOption:
    """An option a case may give an engine (`engine_options: {ENGINE: {OPTION: value}}`)."""

    type: type                          # the type its value must have
    doc: str                            # one line for error messages and the README
    # Only layers whose family has this variant of the torch port take it (Family.port_variants); None: all.
    port_variant: str | None = None


@dataclass(frozen=True)
class Isolation:
    """Where an engine must run apart from the harness's process: its own environment variables (read by its
    framework at import, e.g. KERAS_BACKEND) and, where its pins conflict with ours, its own virtual environment.
    The registry then runs the engine in a worker process (harness/engines/worker.py) that serves many cases."""

    env: tuple[tuple[str, str], ...] = ()   # variables set before the worker imports anything
    venv: str | None = None                 # its own venv, .engines/NAME (made by `make engine-NAME`); None: ours
    timeout_s: float = 300.0                # per request: past it the worker is killed, the item is an error


# The oracle's layout, which cases are written in: a Keras-layout engine reports weight shapes a plain
# `expect.weight_shapes` table describes.
CANONICAL_LAYOUT = "keras"


class Engine:
    """Base of every engine. Class attributes are its traits: the registry reads them without instantiating
    the engine, so without importing its framework; ``__init__`` may import the framework."""

    name: ClassVar[str] = ""
    reference: ClassVar[bool] = False      # the oracle: every other engine is judged against its output
    # The layout of the weight_shapes it reports: "keras" means a plain `expect.weight_shapes` table (written in
    # Keras layout) describes it too; any other layout needs its own entry in the table.
    weight_layout: ClassVar[str] = CANONICAL_LAYOUT
    options: ClassVar[dict[str, EngineOption]] = {}
    framework: ClassVar[str | None] = None  # the module whose threads it sets (None: NumPy only)
    isolation: ClassVar[Isolation | None] = None   # run in a worker process (own env / venv); None: in-process
    # The engine whose known behaviour this one inherits (built from its graph: the ONNX of a buggy Keras layer
    # is buggy too): a case's xfail / rejected_by for that engine apply here, said to be inherited.
    inherits: ClassVar[str | None] = None
    # Limits of the runtime that are not bugs, dtype -> reason (e.g. onnxruntime has no float64 Conv kernel on
    # CPU): those items skip with the reason, before the engine runs.
    dtype_limits: ClassVar[dict[str, str]] = {}
    # Whether run() answers a request with grad_output (the backward check); the others skip its backward items.
    computes_gradients: ClassVar[bool] = False
    # Whether run_sequence() computes layers in sequence in one run, every layer's output captured (a stack); the
    # others compute one layer per request and skip sequences, saying so.
    computes_sequences: ClassVar[bool] = False

    def run(self, request: Request) -> EngineOutput:
        """Compute the layer; raise EngineRejected where the framework refuses it, EngineSkip where it cannot
        run here (with the reason)."""
        raise NotImplementedError

    def run_sequence(self, request: SequenceRequest) -> SequenceOutput:
        """Compute every layer of a sequence in one run (where computes_sequences); the exceptions as run()'s."""
        raise NotImplementedError(f"{self.name} computes one layer per request")

    # ---------------------------------------------------------------- traits as behaviour
    @classmethod
    def option_problems(cls, options: dict[str, Any], layer_kind: Any) -> list[tuple[str, str]]:
        """(option, what is wrong) for each option a case gives this engine that it cannot take."""
        problems = []
        for option, value in options.items():
            spec = cls.options.get(option)
            if spec is None:
                takes = ", ".join(cls.options) or "no options"
                problems.append((option, f"unknown option; {cls.name} takes: {takes}"))
            elif spec.port_variant and spec.port_variant not in layer_kind.family.port_variants:
                takers = [f.name for f in FAMILIES.values() if spec.port_variant in f.port_variants]
                problems.append((option, f"applies to {'/'.join(takers)} layers only, not {layer_kind.name}"))
            elif not isinstance(value, spec.type):
                problems.append((option, f"must be {spec.type.__name__}, got {value!r}"))
        return problems

    @classmethod
    def thread_count(cls) -> Any:
        """The thread setting its framework runs with in this process (None where not loaded)."""
        return None

    @classmethod
    def set_threads(cls, count: Any) -> None:
        """Apply a thread_count answer (or an int) before the framework runs anything."""

    @classmethod
    def environment(cls) -> dict[str, dict[str, Any]]:
        """What the report's environment panel records for this engine: framework name -> facts."""
        return {}


# fn(layer, config, x, weights) -> array | EngineOutput, with an optional grad_output= keyword (FunctionEngine).
PluginFn = Callable[..., Any]


class UnknownWeight(KeyError):
    """A plug-in read a weight the layer does not pass; a KeyError still (``except KeyError`` keeps working),
    whose message says which weights it was given."""

    def __str__(self) -> str:   # KeyError's own shows repr(message), quotes and escapes included
        return str(self.args[0]) if self.args else ""


class PluginWeights(dict):
    """The weights a plug-in receives: a plain dict of Keras names, whose missing key names what was passed."""

    def __init__(self, engine: str, layer: str, weights: dict[str, np.ndarray]):
        super().__init__(weights)
        self.engine, self.layer = engine, layer

    def __missing__(self, key: Any) -> Any:
        raise UnknownWeight(f"plug-in {self.engine} read weight {key!r}, but {self.layer} passes only: "
                            f"{', '.join(self) or 'no weights'}")

    def __reduce__(self) -> Any:   # pickles (and copies) as the plain dict it is
        return dict, (dict(self),)


class FunctionEngine(Engine):
    """A user's plug-in: ``fn(layer, config, x, weights)`` returning an array or an EngineOutput (params, weight
    shapes, notes, facts); raise EngineRejected where the converter refuses the layer, NotImplementedError or
    EngineSkip to skip.

    Gradients (optional): a function with a ``grad_output`` parameter is called with ``grad_output=dy`` for the
    backward check and returns ``EngineOutput(y=..., gradients={"x": dx, KERAS_WEIGHT_NAME: grad, ...})`` in Keras
    layout; one without it skips the backward items, saying so."""

    weight_layout = "plug-in"   # unknown: a plain expect.weight_shapes table (Keras layout) does not describe it
    computes_gradients = True    # decided per function: run() skips where fn has no grad_output parameter
    computes_sequences = True    # decided per function: run_sequence() skips where fn has no `stack` attribute

    def __init__(self, name: str, fn: PluginFn):
        self.name = name   # type: ignore[misc]  # Engine.name is a ClassVar; a plug-in's name is its instance's
        self.fn = fn

    def takes_grad_output(self) -> bool:
        import inspect

        try:
            return "grad_output" in inspect.signature(self.fn).parameters
        except (TypeError, ValueError):
            return False

    def run(self, request: Request) -> EngineOutput:
        # Copies, so a plug-in that writes into its arguments cannot corrupt other engines' inputs.
        weights = PluginWeights(self.name, request.layer, {k: v.copy() for k, v in request.inputs.weights.items()})
        args = (request.layer, dict(request.config), request.inputs.x.copy(), weights)
        if request.grad_output is None:
            with third_party():   # a plug-in's whole call is its framework's (or its author's) work
                out = self.fn(*args)
        elif self.takes_grad_output():
            with third_party():
                out = self.fn(*args, grad_output=request.grad_output.copy())
        else:
            raise NotImplementedError(f"plug-in {self.name} computes no gradients (a function with a grad_output "
                                      "parameter returning EngineOutput(gradients=...) would)")
        return out if isinstance(out, EngineOutput) else EngineOutput(y=np.asarray(out))

    def sequence_function(self) -> SequenceFn | None:
        """The plug-in's sequence function, its callable's ``stack`` attribute (None where it has none)."""
        return getattr(self.fn, "stack", None)

    def run_sequence(self, request: SequenceRequest) -> SequenceOutput:
        """fn.stack([(layer, config, weights), ...], x) -> every layer's output (copies in, as run())."""
        fn = self.sequence_function()
        if fn is None:
            raise NotImplementedError(f"plug-in {self.name} computes one layer per request (its callable has no "
                                      "`stack` attribute, fn.stack(layers, x) -> every layer's output)")
        return run_sequence_function(fn, request)


# A sequence function: [(layer, config, weights), ...] and x (channels last, the sequence's dtype) -> every layer's
# output, in order. A plug-in gives one as its callable's `stack` attribute.
SequenceFn = Callable[[list[tuple[str, dict, dict[str, np.ndarray]]], np.ndarray], Any]


def run_sequence_function(fn: SequenceFn, request: SequenceRequest) -> SequenceOutput:
    """A sequence function's answer, given copies (a function that writes into its arguments corrupts nothing)."""
    layers = [(step.layer, dict(step.config), {k: v.copy() for k, v in step.weights.items()}) for step in request.steps]
    with third_party():
        ys = fn(layers, request.x.copy())
    return SequenceOutput(ys=[np.asarray(y) for y in ys])
