"""A model diff's set-up, shared by `python -m harness diff` and a case file's `models:` entries: the Keras model, the
port, its weights, the input, then the diff."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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


def diff_model(model: str, port: str, *, torch_weights: str | None = None, transfer_weights: bool = False,
               save_weights: str | None = None, overrides: Mapping[str, Sequence[str]] | None = None,
               input_size: int | None = None, seed: int = 0, image: str | None = None, batch: int = 1,
               torch_layout: str = "channels_first") -> Diffed:
    """Load MODEL and PORT as `python -m harness diff` does, carry the weights across where asked, and diff."""
    keras = import_keras()
    pixels = np.load(image, allow_pickle=False) if image else None
    loaded = load_model(keras, model, input_size, seed, pixels)
    x = input_tensor(loaded.keras_model, input_size, seed, pixels, batch)
    if model in APPLICATIONS:
        randomise_statistics(loaded.keras_model, seed, x)
    module = load_port(port, torch_weights)
    torch_first = torch_layout == "channels_first"
    moved = 0
    # The Keras model runs once: the transfer maps on its capture, and the diff judges on the same capture.
    nodes = capture_keras(keras, loaded.keras_model, x)
    if transfer_weights:
        moved = len(transfer(nodes, module, x, torch_first, overrides or {}))
        if save_weights:
            import torch

            torch.save(module.state_dict(), save_weights)
    calls, port_out = capture_torch(module, np.ascontiguousarray(streams.channels_first(x) if torch_first else x))
    result = diff_captured(nodes, calls, port_out, torch_first, overrides)
    return Diffed(result, loaded.name, moved)


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
