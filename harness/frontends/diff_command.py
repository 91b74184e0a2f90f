"""python -m harness diff MODEL PORT: a Keras model against its PyTorch port, every layer judged, the culprit named."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..engines import resolve
from ..keras_layer import import_keras
from ..models import streams
from ..models.capture import capture_keras, capture_torch
from ..models.checks import expected_params, split
from ..models.diff import DiffResult, diff, flat_origin
from ..models.mapping import align
from ..models.render import render_html, render_text
from .extract import APPLICATIONS, input_tensor, load_model

USAGE = ("python -m harness diff MODEL PORT [--torch-weights FILE.pt] [--transfer-weights] [--save-weights FILE.pt] "
         "[--map MAP.yaml] [--torch-layout channels_first|channels_last] [--input-size N] [--seed S] "
         "[--image FILE.npy] [--json FILE] [--html FILE]")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.usage = USAGE
    parser.add_argument("model", nargs="?", metavar="MODEL",
                        help=f"a .keras file or a keras.applications name: {', '.join(APPLICATIONS)}")
    parser.add_argument("port", nargs="?", metavar="PORT",
                        help="the PyTorch port: path/to/file.py:factory or module:factory returning an nn.Module")
    parser.add_argument("--torch-weights", metavar="FILE.pt", help="a state dict loaded into the port (weights_only)")
    parser.add_argument("--transfer-weights", action="store_true",
                        help="copy the Keras weights into the mapped torch modules (the harness's converters), "
                             "then diff")
    parser.add_argument("--save-weights", metavar="FILE.pt", help="with --transfer-weights: save the state dict")
    parser.add_argument("--map", metavar="MAP.yaml",
                        help="Keras layer name -> torch module path (or a list of paths), overriding the mapping")
    parser.add_argument("--torch-layout", choices=("channels_first", "channels_last"), default="channels_first",
                        help="the layout the port takes its input in (default channels_first)")
    parser.add_argument("--input-size", type=int, default=None, metavar="N", help="square image side")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights (applications) and input")
    parser.add_argument("--image", default=None, metavar="FILE.npy", help="input image (channels last)")
    parser.add_argument("--batch", type=int, default=1, help="batch size of the seeded input (default 1)")
    parser.add_argument("--json", metavar="FILE", help="write the diff as JSON")
    parser.add_argument("--html", metavar="FILE", help="write the model page")


def read_map(path: str | None) -> dict[str, list[str]]:
    """A --map file: {keras layer: torch module path | [paths]}; ValueError names the file and the entry."""
    if not path:
        return {}
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"--map {path}: {exc.__class__.__name__}: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ValueError(f"--map {path}: a mapping of Keras layer name to torch module path(s) is needed")
    out: dict[str, list[str]] = {}
    for key, value in data.items():
        paths = [value] if isinstance(value, str) else value
        if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
            raise ValueError(f"--map {path}: {key!r}: a module path or a list of module paths is needed")
        out[str(key)] = paths
    return out


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


def randomise_statistics(keras_model: Any, seed: int) -> None:
    """Freshly built models hold BatchNorm statistics 0 and 1 and zero biases, under which an eps or a bias bug
    is invisible: draw them (seeded) the way trained ones look (means around 0, variances in [0.25, 2), gammas
    around 1, biases and betas around 0)."""
    rng = np.random.default_rng(seed + 1)
    for layer in keras_model.layers:
        for v in layer.weights:
            name = str(getattr(v, "path", v.name)).rsplit("/", 1)[-1]
            shape = tuple(v.shape)
            draw = {"moving_mean": lambda s: rng.normal(0.0, 0.5, s),
                    "moving_variance": lambda s: rng.uniform(0.25, 2.0, s),
                    "gamma": lambda s: rng.normal(1.0, 0.25, s),
                    "beta": lambda s: rng.normal(0.0, 0.25, s),
                    "bias": lambda s: rng.normal(0.0, 0.25, s)}.get(name)
            if draw is not None:
                v.assign(np.asarray(draw(shape)).astype(np.dtype(v.dtype)))


def transfer(keras_model: Any, module: Any, x: np.ndarray, torch_first: bool,
             overrides: Mapping[str, Sequence[str]]) -> list[str]:
    """Copy the Keras weights into the mapped torch modules (the harness's converters); the lines it says."""
    import torch

    nodes = capture_keras(import_keras(), keras_model, x)
    calls, _ = capture_torch(module, streams.channels_first(x) if torch_first else x)
    mapping = align(nodes, calls, overrides)
    said = []
    for pair in mapping.pairs:
        span = split(pair)
        flat = flat_origin(pair.unit.head, nodes)
        flat_spatial = None
        if flat is not None:
            layout = streams.match(pair.unit.head.inputs[0], span.body[0].inputs[0], torch_first, flat)
            flat_spatial = tuple(flat[1:]) if layout is not None and layout.name.startswith("flattened") else None
        for call, want in zip(span.body, expected_params(pair.unit, flat_spatial)):
            for name, value in want.items():
                current = getattr(call.module, name, None)
                if current is None:
                    raise ValueError(f"--transfer-weights: Keras layer {pair.unit.name!r} has {name!r}, torch module "
                                     f"{call.path!r} has none")
                if tuple(current.shape) != value.shape:
                    raise ValueError(f"--transfer-weights: Keras layer {pair.unit.name!r} gives {name} "
                                     f"{list(value.shape)}, torch module {call.path!r} holds {list(current.shape)}")
                with torch.no_grad():
                    current.copy_(torch.from_numpy(np.ascontiguousarray(value)).to(current.dtype))
        said.append(f"{pair.unit.name} -> {', '.join(c.path for c in span.body)}")
    return said


def run(args: argparse.Namespace) -> int:
    """Diff a Keras model against its PyTorch port: every mapped layer judged against the float64 oracle (isolated,
    weights, configuration), the first failing layer named with its cause and a fix judged again."""
    if not args.model or not args.port:
        print(f"usage: {USAGE}", file=sys.stderr)
        return 2
    keras = import_keras()
    pixels = np.load(args.image, allow_pickle=False) if args.image else None
    loaded = load_model(keras, args.model, args.input_size, args.seed, pixels)
    if args.model in APPLICATIONS:
        randomise_statistics(loaded.keras_model, args.seed)
    x = input_tensor(loaded.keras_model, args.input_size, args.seed, pixels, args.batch)
    module = load_port(args.port, args.torch_weights)
    overrides = read_map(args.map)
    torch_first = args.torch_layout == "channels_first"
    if args.transfer_weights:
        lines = transfer(loaded.keras_model, module, x, torch_first, overrides)
        print(f"transferred the weights of {len(lines)} layers")
        if args.save_weights:
            import torch

            torch.save(module.state_dict(), args.save_weights)
            print(f"saved the state dict to {args.save_weights}")
    result = diff(loaded.keras_model, module, x, torch_first=torch_first, overrides=overrides)
    print(render_text(result, loaded.name, args.port))
    write_outputs(result, args, loaded.name)
    return 0 if result.passed else 1


def write_outputs(result: DiffResult, args: argparse.Namespace, name: str) -> None:
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_json(), indent=1, default=float))
    if args.html:
        Path(args.html).write_text(render_html(result, name, args.port))
