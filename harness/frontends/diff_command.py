"""python -m harness diff MODEL PORT: a Keras model against its PyTorch port, every layer judged, the culprit named."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from ..models.diff import DiffResult
from ..models.render import render_html, render_text
from .extract import APPLICATIONS
from .model_session import diff_model, write_repros

USAGE = ("python -m harness diff MODEL PORT [--torch-weights FILE.pt] [--transfer-weights] [--save-weights FILE.pt] "
         "[--map MAP.yaml] [--torch-layout channels_first|channels_last] [--input-size N] [--seed S] "
         "[--image FILE.npy] [--json FILE] [--html FILE] [--repro DIR] [--save-onnx FILE.onnx]; "
         "PORT: FILE.py:factory | module:factory | FILE.onnx | converter:tf2onnx | converter:onnx2torch")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.usage = USAGE
    parser.add_argument("model", nargs="?", metavar="MODEL",
                        help=f"a .keras file or a keras.applications name: {', '.join(APPLICATIONS)}")
    parser.add_argument("port", nargs="?", metavar="PORT",
                        help="the port: path/to/file.py:factory or module:factory returning an nn.Module; "
                             "FILE.onnx, an ONNX file run by onnxruntime (each node judged as the torch.nn module it "
                             "is equivalent to); converter:tf2onnx (the harness exports MODEL with Keras's ONNX export "
                             "and diffs that file in onnxruntime) or converter:onnx2torch (that file converted by "
                             "onnx2torch). The ONNX kinds run where onnxruntime is installed: `make engine-onnx`, then "
                             ".engines/onnx/bin/python -m harness diff ...")
    parser.add_argument("--torch-weights", metavar="FILE.pt", help="a state dict loaded into the port (weights_only)")
    parser.add_argument("--transfer-weights", action="store_true",
                        help="copy the Keras weights into the mapped torch modules (the harness's converters), "
                             "then diff")
    parser.add_argument("--save-weights", metavar="FILE.pt", help="with --transfer-weights: save the state dict")
    parser.add_argument("--map", metavar="MAP.yaml",
                        help="Keras layer name -> torch module path (or a list of paths), overriding the mapping")
    parser.add_argument("--torch-layout", choices=("channels_first", "channels_last"), default=None,
                        help="the layout the port takes its input in (default channels_first; an ONNX PORT's is read "
                             "from its graph input's shape, this only where both layouts fit it)")
    parser.add_argument("--input-size", type=int, default=None, metavar="N", help="square image side")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights (applications) and input")
    parser.add_argument("--image", default=None, metavar="FILE.npy", help="input image (channels last)")
    parser.add_argument("--batch", type=int, default=1, help="batch size of the seeded input (default 1)")
    parser.add_argument("--json", metavar="FILE", help="write the diff as JSON")
    parser.add_argument("--html", metavar="FILE", help="write the model page")
    parser.add_argument("--repro", metavar="DIR", help="write each failing layer as a standalone repro into DIR "
                                                       "(LAYER.npz; a case LAYER.yaml for the conv families)")
    parser.add_argument("--save-onnx", metavar="FILE.onnx",
                        help="with PORT converter:NAME: save the ONNX file the harness exported (diff it again as "
                             "PORT)")


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


def run(args: argparse.Namespace) -> int:
    """Diff a Keras model against its PyTorch port: every mapped layer judged against the float64 oracle (isolated,
    weights, configuration), the first failing layer named with its cause and a fix judged again."""
    if not args.model or not args.port:
        print(f"usage: {USAGE}", file=sys.stderr)
        return 2
    diffed = diff_model(args.model, args.port, torch_weights=args.torch_weights,
                        transfer_weights=args.transfer_weights, save_weights=args.save_weights,
                        overrides=read_map(args.map), input_size=args.input_size, seed=args.seed, image=args.image,
                        batch=args.batch, torch_layout=args.torch_layout, save_onnx=args.save_onnx)
    if args.save_onnx:
        print(f"saved the exported ONNX file to {args.save_onnx}")
    for note in diffed.notes:
        print(note)
    if args.transfer_weights:
        print(f"transferred the weights of {diffed.transferred} layers"
              + (f"; saved the state dict to {args.save_weights}" if args.save_weights else ""))
    result, name = diffed.result, diffed.model
    print(render_text(result, name, args.port))
    write_outputs(result, args, name)
    if args.repro and not result.passed:
        for path in write_repros(result, args.repro):
            print(f"repro: {path}")
    return 0 if result.passed else 1


def write_outputs(result: DiffResult, args: argparse.Namespace, name: str) -> None:
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_json(), indent=1, default=float))
    if args.html:
        Path(args.html).write_text(render_html(result, name, args.port))
