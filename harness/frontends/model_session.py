"""A model diff's set-up, shared by `python -m harness diff` and a case file's `models:` entries: the Keras model, the
port, its weights, the input, then the diff."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..engines import resolve
from ..keras_layer import import_keras
from ..models import streams
from ..models.capture import KerasNode, capture_keras, capture_torch
from ..models.checks import split
from ..models.diff import DiffResult, diff_captured, flat_origin
from ..models.mapping import align
from ..models.onnx_convert import CONVERTERS, TO_MODULE, converter_of, keras_onnx, onnx2torch_module
from ..models.onnx_port import capture_onnx, graph_dims, input_layout, prepare, require_onnx
from ..models.weights_check import expected_params
from .extract import (
    APPLICATIONS,
    attach_files,
    config_of,
    family_of,
    input_tensor,
    load_model,
    render_case,
    sanitise,
    stored,
    write_npz,
)


@dataclass
class Diffed:
    result: DiffResult
    model: str            # the model's name (applications name or the .keras file's stem)
    transferred: int      # layers whose weights --transfer-weights copied (0 without it)
    notes: list[str] = field(default_factory=list)   # how an ONNX port was run, one line each


def diff_model(model: str, port: str, *, torch_weights: str | None = None, transfer_weights: bool = False,
               save_weights: str | None = None, overrides: Mapping[str, Sequence[str]] | None = None,
               input_size: int | None = None, seed: int = 0, image: str | None = None, batch: int = 1,
               torch_layout: str | None = None, save_onnx: str | None = None) -> Diffed:
    """Load MODEL and PORT as `python -m harness diff` does, carry the weights across where asked, and diff. PORT is
    a torch port (FILE.py:factory, module:factory), an ONNX file (run by onnxruntime) or converter:NAME (the
    harness exports the Keras model to ONNX itself: onnx_convert.CONVERTERS)."""
    kind = port_kind(port, torch_weights, transfer_weights, save_onnx)
    keras = import_keras()
    pixels = np.load(image, allow_pickle=False) if image else None
    loaded = load_model(keras, model, input_size, seed, pixels)
    x = input_tensor(loaded.keras_model, input_size, seed, pixels, batch)
    if model in APPLICATIONS:
        randomise_statistics(loaded.keras_model, seed, x)
    # The Keras model runs once: the transfer maps on its capture, and the diff judges on the same capture.
    nodes = capture_keras(keras, loaded.keras_model, x)
    if kind != MODULE:
        notes: list[str] = []
        result = diff_onnx(nodes, loaded.keras_model, x, port, kind, overrides, torch_layout, save_onnx, notes)
        return Diffed(result, loaded.name, 0, notes)
    module = load_port(port, torch_weights)
    torch_first = (torch_layout or "channels_first") == "channels_first"
    moved = 0
    if transfer_weights:
        moved = len(transfer(nodes, module, x, torch_first, overrides or {}))
        if save_weights:
            import torch

            torch.save(module.state_dict(), save_weights)
    calls, port_out = capture_torch(module, np.ascontiguousarray(streams.channels_first(x) if torch_first else x))
    result = diff_captured(nodes, calls, port_out, torch_first, overrides)
    return Diffed(result, loaded.name, moved)


# PORT kinds (a converter's kind is its name in onnx_convert.CONVERTERS).
MODULE, ONNX_FILE = "nn.Module", ".onnx file"


def port_kind(port: str, torch_weights: str | None, transfer_weights: bool, save_onnx: str | None) -> str:
    """MODULE (a torch port) | ONNX_FILE | the converter's name (converter:NAME, onnx_convert.CONVERTERS); the ONNX
    kinds' requirements checked before any model loads (a usage error, one line). Not engine names: PORT kinds."""
    converter = converter_of(port)
    kind = converter or (ONNX_FILE if port.lower().endswith(".onnx") else MODULE)
    if kind == MODULE:
        if save_onnx:
            raise ValueError("--save-onnx: only a converter:NAME PORT exports an ONNX file")
        return kind
    if torch_weights or transfer_weights:
        raise ValueError(f"--torch-weights/--transfer-weights: PORT {port} holds its own weights (they are not a "
                         "torch port's state dict)")
    if kind == ONNX_FILE and not Path(port).is_file():
        raise ValueError(f"PORT {port}: no such file")
    if kind == ONNX_FILE and save_onnx:
        raise ValueError("--save-onnx: only a converter:NAME PORT exports an ONNX file")
    require_onnx(port)
    return kind


def diff_onnx(nodes: Sequence[KerasNode], keras_model: Any, x: np.ndarray, port: str, kind: str,
              overrides: Mapping[str, Sequence[str]] | None, torch_layout: str | None,
              save_onnx: str | None, notes: list[str]) -> DiffResult:
    """The diff of an ONNX port: the file (or the harness's own export of the Keras model) run by onnxruntime with
    its nodes presented as modules, or onnx2torch's module of it. The graph's input layout is fed (detected from
    its input's shape); its nodes compute channels first (ONNX's Conv, pools and BatchNormalization are NCHW), so
    tensors are matched channels first where both layouts fit."""
    source: str | bytes = port
    if kind in CONVERTERS:   # the harness exports the Keras model itself
        source = keras_onnx(keras_model, x, port)
        if save_onnx:
            Path(save_onnx).write_bytes(source)
    if kind in TO_MODULE:
        model, pruned = prepare(source, port)
        layout = input_layout(graph_dims(model, port), tuple(x.shape), torch_layout, port)
        notes += [*pruned, f"fed the graph's input {layout}"]
        module = onnx2torch_module(model, port)
        calls, port_out = capture_torch(module, np.ascontiguousarray(
            streams.channels_first(x) if layout == "channels_first" else x))
        return diff_captured(nodes, calls, port_out, True, overrides)
    captured = capture_onnx(source, x, torch_layout, port)
    result = diff_captured(nodes, captured.calls, captured.output, True, overrides, port_engine=None)
    result.torch_unmapped += captured.unlisted
    notes += captured.notes
    return result


def load_port(spec: str, weights: str | None) -> Any:
    """The user's nn.Module from FILE.py:factory or module:factory (called with no arguments), with a state dict
    loaded where given."""
    import torch

    try:
        factory = resolve(spec)
    except (ImportError, AttributeError, FileNotFoundError) as exc:
        raise ValueError(f"PORT {spec!r}: {exc.__class__.__name__}: {exc}") from None
    module = factory() if callable(factory) and not isinstance(factory, torch.nn.Module) else factory
    if not isinstance(module, torch.nn.Module):
        raise ValueError(f"PORT {spec!r} gave {type(module).__name__}, but should give a torch.nn.Module")
    if weights:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        missing, unexpected = module.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(f"--torch-weights {weights}: missing {list(missing)[:5]}, unexpected "
                             f"{list(unexpected)[:5]}")
    return module.eval()


def randomise_statistics(keras_model: Any, seed: int, x: np.ndarray) -> None:
    """Freshly built models hold BatchNorm statistics 0 and 1 and zero biases, under which an eps or a bias bug
    is invisible: draw gammas, betas and biases (seeded), then set every BatchNorm's moving statistics to those of
    its input on a seeded batch like ``x`` (one training-mode pass with momentum 0), as a trained model's are:
    drawn statistics would let the activations grow without bound through a deep model."""
    rng = np.random.default_rng(seed + 1)
    draws = {"gamma": lambda s: rng.uniform(0.5, 2.0, s), "beta": lambda s: rng.normal(0.0, 0.25, s),
             "bias": lambda s: rng.normal(0.0, 0.25, s)}
    norms = []
    for layer in keras_model.layers:
        if hasattr(layer, "moving_mean"):
            norms.append((layer, layer.momentum))
            layer.momentum = 0.0
        for v in layer.weights:
            draw = draws.get(str(getattr(v, "path", v.name)).rsplit("/", 1)[-1])
            if draw is not None:
                v.assign(np.asarray(draw(tuple(v.shape))).astype(np.dtype(v.dtype)))
    if norms:
        batch = rng.standard_normal((8, *x.shape[1:])).astype(x.dtype)
        keras_model(batch, training=True)
        for layer, momentum in norms:
            layer.momentum = momentum


def transfer(nodes: Sequence[KerasNode], module: Any, x: np.ndarray, torch_first: bool,
             overrides: Mapping[str, Sequence[str]]) -> list[str]:
    """Copy the Keras weights into the mapped torch modules (the harness's converters), given the Keras model's
    capture; the pairs it filled."""

    xt = streams.channels_first(x) if torch_first else x
    calls, _ = capture_torch(module, xt)
    mapping = align(nodes, calls, overrides)
    said: list[str] = []
    # A layer after a Flatten learns the port's flatten order from the port's values (every order has one shape),
    # which mean something only once the layers before it carry the Keras weights: those go first, then the port
    # runs again and the rest is read from that run (read from the first, the order was a coin toss per process).
    deferred = []
    for pair in mapping.pairs:
        if flat_origin(pair.unit.head, nodes) is not None:
            deferred.append(pair)
        else:
            said.append(_carry(pair, None))
    if deferred:
        again, _ = capture_torch(module, xt)
        for pair in deferred:
            flat = flat_origin(pair.unit.head, nodes)
            assert flat is not None
            index = split(pair).body[0].index   # the same modules run in the same order
            first = next(c for c in again if c.index == index)
            layout = streams.match(pair.unit.head.inputs[0], first.inputs[0], torch_first, flat)
            named = layout is not None and layout.name.startswith("flattened")
            said.append(_carry(pair, tuple(flat[1:]) if named else None))
    return said


def _carry(pair: Any, flat_spatial: tuple[int, ...] | None) -> str:
    """One pair's Keras weights copied into its torch modules; ValueError naming both where a shape cannot hold."""
    import torch

    span = split(pair)
    for call, want in zip(span.body, expected_params(pair.unit, flat_spatial)):
        for name, value in want.items():
            current = getattr(call.module, name, None)
            if current is None:   # a bias the module lacks: the diff names it (config: missing_bias)
                continue
            if tuple(current.shape) != value.shape and current.numel() == value.size \
                    and all(d == 1 for d in value.shape[2:]):
                value = value.reshape(tuple(current.shape))   # a 1x1 conv's kernel into a Linear
            if tuple(current.shape) != value.shape:
                raise ValueError(f"--transfer-weights: Keras layer {pair.unit.name!r} gives {name} "
                                 f"{list(value.shape)}, torch module {call.path!r} holds {list(current.shape)}")
            with torch.no_grad():
                current.copy_(torch.from_numpy(np.ascontiguousarray(value)).to(current.dtype))
    return f"{pair.unit.name} -> {', '.join(c.path for c in span.body)}"


def write_repros(result: DiffResult, folder: str) -> list[str]:
    """Each failing layer as a standalone repro in ``folder``: LAYER.npz with the Keras layer's input, its Keras
    weights (``keras/NAME``) and the port's module state (``torch/MODULE.NAME``); for a layer of the conv families
    (transposed convs included) also LAYER.yaml, a case with that input and those weights (`python -m harness run
    LAYER.yaml --engine myport=...` runs it in any engine). Returns the files written."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    keras = import_keras()
    written = []
    for d in result.failed:
        if d.unit is None:
            continue
        head = d.unit.head
        name = sanitise(d.name)
        tensors = {"input": stored(head.inputs[0])}
        tensors.update({f"keras/{k}": stored(v) for k, v in head.weights.items()})
        for call in d.calls:
            for pname, value in call.module.state_dict().items():
                tensors[f"torch/{call.path or 'root'}.{pname}"] = value.detach().cpu().numpy()
        npz = out / f"{name}.npz"
        digest = write_npz(npz, tensors)
        written.append(str(npz))
        kind = family_of(keras, head.layer) if head.layer is not None and not head.is_op else None
        config, why = config_of(head.layer, kind) if kind else ({}, "not a layer of the conv families")
        if kind and not why:
            entry: dict[str, Any] = {"id": name, "layer": kind, "input_shape": list(head.inputs[0].shape),
                     "dtype": str(head.output.dtype), "config": config, "input": "input",
                     "weights": {k: f"keras/{k}" for k in head.weights},
                     "expect": {"output_shape": list(head.output.shape)}}
            attach_files(entry, digest)
            for spec in [entry["input"], *entry["weights"].values()]:
                spec["file"] = npz.name
            cause = d.cause.replace("\n", " ")
            text = "\n".join([f"# {d.name}: the port's {', '.join(d.modules)} fails here: {cause}",
                              "cases:", *render_case(entry)]) + "\n"
            (out / f"{name}.yaml").write_text(text)
            written.append(str(out / f"{name}.yaml"))
    return written
