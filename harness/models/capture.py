"""Capture: one run of each model on the same input, every Keras node's and every torch leaf call's tensors kept."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class KerasNode:
    """One call of a Keras layer or op in the model's graph, with the values that went in and came out."""

    index: int                      # position in the graph's topological order (InputLayer excluded)
    name: str                       # the layer's name: how every message names it
    kind: str                       # the class name (Conv2D, Add, ...)
    is_op: bool                     # a keras.ops node (x + 3.0) rather than a Layer
    config: dict[str, Any]
    weights: dict[str, np.ndarray]  # short names (kernel, bias, gamma, ...), Keras layout, as stored
    sources: list[int | None]       # per operand: the producing node's index, -1 the model input, None a constant
    operands: list[np.ndarray]      # per operand: its captured value (channels last), constants as 0-d float64
    output: np.ndarray
    layer: Any = field(default=None, repr=False)

    @property
    def inputs(self) -> list[np.ndarray]:
        """The tensor operands (constants left out)."""
        return [v for v, s in zip(self.operands, self.sources) if s is not None]


@dataclass
class TorchCall:
    """One call of a torch leaf module during the port's forward, in call order."""

    index: int
    path: str                       # the module's name in named_modules() ('' for the root)
    kind: str                       # the torch.nn class it is (Conv2d for timm's Conv2dSame, BatchNorm2d, ...)
    module: Any = field(repr=False)
    inputs: list[np.ndarray] = field(default_factory=list)   # the tensor arguments, copied before the call
    output: np.ndarray | None = None
    nested: bool = False            # other hooked modules ran inside it (timm's BatchNormAct2d runs its act)
    cls: str = ""                   # its own class name, for messages


IDENTITIES_KERAS = frozenset({"Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
                              "GaussianNoise", "GaussianDropout", "AlphaDropout", "Identity",
                              "ActivityRegularization"})
IDENTITIES_TORCH = frozenset({"Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "Identity"})


def short_name(variable: Any) -> str:
    """A Keras variable's short name (the last component of its path: kernel, bias, moving_mean, ...)."""
    return str(getattr(variable, "path", variable.name)).rsplit("/", 1)[-1]


def graph_of(keras: Any, model: Any) -> Any:
    """The functional graph a model runs (a Sequential's inner Functional); ValueError for a subclassed model."""
    graph = getattr(model, "_functional", None) if isinstance(model, keras.Sequential) else model
    if graph is None or not hasattr(graph, "_nodes"):
        raise ValueError(f"{type(model).__name__} is not a Functional or built Sequential model: its layers' "
                         "inputs cannot be captured")
    return graph


def call_sites(layer: Any, graph: Any) -> list[Any]:
    """The calls of ``layer`` that are part of ``graph`` (a layer keeps the nodes of every graph it was ever
    called in: a Sequential rebuilds its graph as layers are added)."""
    from keras.src.ops.function import make_node_key

    return [node for i, node in enumerate(layer._inbound_nodes) if make_node_key(layer, i) in graph._nodes]


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return [item for v in value for item in _flatten(v)]
    return [value]


def capture_keras(keras: Any, model: Any, x: np.ndarray) -> list[KerasNode]:
    """Every node of ``model``'s graph in topological order with its operands and output on input ``x``
    (one predict of a model whose outputs are every node's output)."""
    graph = graph_of(keras, model)
    if len(graph.inputs) != 1:
        raise ValueError(f"a model with one input is needed, this one has {len(graph.inputs)}")
    produced: dict[int, int] = {id(graph.inputs[0]): -1}
    plan: list[tuple[Any, Any]] = []
    for op in graph.operations:
        if type(op).__name__ == "InputLayer":
            continue
        if isinstance(op, keras.Model):
            raise ValueError(f"layer {op.name!r} is a nested model: flatten the model (its layers' tensors live "
                             "in the nested model's graph)")
        sites = call_sites(op, graph)
        if len(sites) != 1:
            raise ValueError(f"layer {op.name!r} is called {len(sites)} times in the graph: shared layers are "
                             "not supported")
        plan.append((op, sites[0]))
        for t in sites[0].output_tensors:
            produced[id(t)] = len(plan) - 1
    outputs = [t for _, node in plan for t in node.output_tensors[:1]]
    values = keras.Model(graph.inputs, outputs)([x], training=False)
    values = [np.asarray(v) for v in (values if isinstance(values, (list, tuple)) else [values])]
    nodes: list[KerasNode] = []
    for i, (op, node) in enumerate(plan):
        sources: list[int | None] = []
        operands: list[np.ndarray] = []
        for arg in _flatten(list(node.arguments.args)):
            if id(arg) in produced:
                j = produced[id(arg)]
                sources.append(j)
                operands.append(np.asarray(x) if j == -1 else values[j])
            elif isinstance(arg, (int, float, np.number)) and not isinstance(arg, bool):
                sources.append(None)
                operands.append(np.asarray(float(arg), dtype=np.float64))
            elif arg is not None and hasattr(arg, "shape"):
                raise ValueError(f"node {op.name!r}: an operand that is not a tensor of the graph")
        is_op = not isinstance(op, keras.layers.Layer)
        config = {} if is_op else dict(op.get_config())
        weights = {} if is_op else {short_name(v): np.asarray(v.numpy()) for v in op.weights}
        nodes.append(KerasNode(index=i, name=op.name, kind=type(op).__name__, is_op=is_op, config=config,
                               weights=weights, sources=sources, operands=operands, output=values[i], layer=op))
    return nodes


def nn_kind(module: Any) -> str:
    """The torch.nn class a module is (its own class where it derives from none but Module): a subclass is
    judged as what it extends (timm's Conv2dSame as Conv2d, BatchNormAct2d as BatchNorm2d)."""
    for cls in type(module).__mro__:
        if cls.__module__.startswith("torch.nn.modules.") and cls.__name__ not in ("Module", "_ConvNd",
                                                                                  "_BatchNorm", "_NormBase"):
            return cls.__name__
    return type(module).__name__


def _hooked(module: Any) -> bool:
    """Leaf modules, and modules with parameters of their own that extend a torch.nn layer (a BatchNorm2d that
    also holds its activation as a child)."""
    if next(module.children(), None) is None:
        return True
    own = next(module.parameters(recurse=False), None) is not None
    return own and nn_kind(module) != type(module).__name__


def _numpy(t: Any) -> np.ndarray:
    return t.detach().to("cpu").numpy().copy()


def capture_torch(module: Any, x: np.ndarray) -> tuple[list[TorchCall], np.ndarray]:
    """Every leaf module's call during ``module(x)`` (eval, no grad), in call order, with its tensor inputs (copied
    before the call: an inplace ReLU overwrites them) and output; and the model's output."""
    import torch

    calls: list[TorchCall] = []
    handles = []

    def before(path: str) -> Any:
        def hook(mod: Any, args: Sequence[Any]) -> None:
            tensors = [_numpy(a) for a in _flatten(list(args)) if isinstance(a, torch.Tensor)]
            for open_call in calls:
                if open_call.output is None:
                    open_call.nested = True
            calls.append(TorchCall(index=len(calls), path=path, kind=nn_kind(mod), module=mod, inputs=tensors,
                                   cls=type(mod).__name__))
        return hook

    def after(mod: Any, args: Sequence[Any], out: Any) -> None:
        # The last open call of this module: leaf calls do not nest.
        call = next(c for c in reversed(calls) if c.module is mod and c.output is None)
        first = next((o for o in _flatten([out]) if isinstance(o, torch.Tensor)), None)
        call.output = None if first is None else _numpy(first)

    for path, mod in module.named_modules():
        if _hooked(mod):
            handles.append(mod.register_forward_pre_hook(before(path)))
            handles.append(mod.register_forward_hook(after))
    try:
        module.eval()
        with torch.no_grad():
            try:
                out = module(torch.from_numpy(np.ascontiguousarray(x)))
            except TypeError as exc:   # a forward that wants other arguments: the port, not the harness, says so
                raise ValueError(f"the port cannot be called on one input tensor {list(x.shape)}: {exc}") from None
    finally:
        for h in handles:
            h.remove()
    first = next((o for o in _flatten([out]) if isinstance(o, torch.Tensor)), None)
    if first is None:
        raise ValueError("the port's forward returned no tensor")
    return [c for c in calls if c.output is not None], _numpy(first)
