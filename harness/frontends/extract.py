"""python -m harness extract: one case per convolution layer of a real Keras model (every kind of the harness's
layer families: Conv, DepthwiseConv, SeparableConv, ConvTranspose), with its weights and input."""
from __future__ import annotations

import argparse
import hashlib
import re
import shlex
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..cases.schema import case_from_entry
from ..errors import CaseError
from ..keras_layer import import_keras
from ..layers.geometry import ACTIVATIONS, LAYERS
from ..models.capture import call_sites, graph_of
from ..tensors.values import DTYPES

# keras.applications models by the name the command takes: (class, default square input side).
APPLICATIONS: dict[str, tuple[str, int]] = {
    "mobilenet_v2": ("MobileNetV2", 224),
    "xception": ("Xception", 299),
    "efficientnet_b0": ("EfficientNetB0", 224),
    "mobilenet_v3_small": ("MobileNetV3Small", 224),
}
TENSOR_FILE = "tensors.npz"
# get_config() keys that do not change what the layer computes in inference: left out of the case.
INERT_KEYS = frozenset({"name", "trainable", "dtype", "activity_regularizer"})
INERT_SUFFIXES = ("_initializer", "_regularizer", "_constraint")
ZIP_TIME = (1980, 1, 1, 0, 0, 0)   # every member's timestamp: the same command writes the same bytes


@dataclass
class Model:
    """A loaded Keras model and what the YAML header says about it."""

    keras_model: Any
    name: str          # the suite's name: the applications name or the .keras file's stem
    source: str        # how it was built, for the header


@dataclass
class Extracted:
    """The outcome for one layer of the conv families: a case entry, or the reason it was skipped."""

    layer: Any
    node: Any = None   # the layer's call in the model's graph: its input and output tensors
    entry: dict[str, Any] | None = None
    skipped: str = ""
    tensors: dict[str, np.ndarray] = field(default_factory=dict)


USAGE = ("python -m harness extract MODEL --out DIR [--input-size N] [--seed SEED] [--image FILE.npy] "
         "[--batch N]")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # MODEL and --out are checked by run, so that `extract` alone parses like every subcommand (and only run says
    # what is missing, with the usage).
    parser.usage = USAGE
    parser.add_argument("model", nargs="?", metavar="MODEL",
                        help=f"a .keras file or a keras.applications name: {', '.join(APPLICATIONS)}")
    parser.add_argument("--out", metavar="DIR", help="folder for MODEL.yaml and tensors.npz (required)")
    parser.add_argument("--input-size", type=int, default=None, metavar="N",
                        help="square image side (a .keras file: the free spatial sizes); default: the model's")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights (applications) and input image")
    parser.add_argument("--image", default=None, metavar="FILE.npy",
                        help="input image, batch first or without a batch axis (default: seeded normal(0, 1))")
    parser.add_argument("--batch", type=int, default=1, help="batch size of the seeded input (default 1)")


def run(args: argparse.Namespace) -> int:
    """Write a case file from a Keras model, one case per Conv, Depthwise, Separable and transposed conv layer.

    MODEL is a .keras file or a keras.applications name; each case holds the layer's config, its weights and the
    activation that reaches it (in tensors.npz)."""
    models = [args.model] if args.model else []
    if len(models) != 1 or not args.out:
        raise ValueError(f"extract takes one MODEL and --out DIR; usage: {USAGE}")
    if Path(models[0]).suffix in (".yaml", ".yml"):   # refused before Keras loads: a usage error (exit 2)
        raise ValueError(f"{models[0]} is a case file: extract reads a model (a .keras file or one of "
                         f"{', '.join(APPLICATIONS)}) and writes a case file; validate, run, report read case files")
    path = extract(models[0], Path(args.out), args.input_size, args.seed, args.image, args.batch)
    print(f"wrote {path} and {path.parent / TENSOR_FILE}")
    return 0


def command_line(model: str, out: Path, input_size: int | None, seed: int, image: str | None, batch: int) -> str:
    """The command that writes these files, in one canonical spelling (recorded in the header)."""
    words = ["python", "-m", "harness", "extract", model, "--out", str(out), "--seed", str(seed)]
    words += ["--input-size", str(input_size)] if input_size is not None else []
    words += ["--image", image] if image is not None else ["--batch", str(batch)]
    return shlex.join(words)


def extract(model: str, out: Path, input_size: int | None = None, seed: int = 0, image: str | None = None,
            batch: int = 1) -> Path:
    """Extract every layer of the conv families of ``model`` into ``out``; returns the case file's path."""
    if image is not None and input_size is not None:
        raise ValueError("--image sets the input's size: give --image or --input-size, not both")
    keras = import_keras()
    pixels = None if image is None else np.load(image, allow_pickle=False)
    loaded = load_model(keras, model, input_size, seed, pixels)
    x = input_tensor(loaded.keras_model, input_size, seed, pixels, batch)
    extracted = extract_layers(keras, loaded, x)
    out.mkdir(parents=True, exist_ok=True)
    digest = write_npz(out / TENSOR_FILE, {k: v for e in extracted for k, v in e.tensors.items()})
    for e in extracted:
        if e.entry is not None:
            attach_files(e.entry, digest)
    header = header_lines(keras, loaded, x, seed, image, extracted,
                          command_line(model, out, input_size, seed, image, batch))
    path = out / f"{loaded.name}.yaml"
    path.write_text(render_yaml(header, extracted), encoding="utf-8")
    return path


def load_model(keras: Any, model: str, size: int | None, seed: int, pixels: np.ndarray | None) -> Model:
    """A keras.applications model built offline (weights=None, after keras.utils.set_random_seed), or a .keras
    file loaded with safe_mode."""
    keras.utils.set_random_seed(seed)
    if model in APPLICATIONS:
        cls, default = APPLICATIONS[model]
        shape = tuple(pixels.shape[-3:]) if pixels is not None else (size or default, size or default, 3)
        built = getattr(keras.applications, cls)(weights=None, input_shape=shape, include_top=True, classes=1000)
        return Model(built, model, f"keras.applications.{cls}(weights=None, input_shape={shape}, "
                                   "include_top=True, classes=1000)")
    path = Path(model)
    if path.suffix != ".keras" or not path.is_file():
        raise ValueError(f"MODEL must be a .keras file or one of {', '.join(APPLICATIONS)}, got {model!r}")
    loaded = keras.saving.load_model(path, safe_mode=True)
    if len(loaded.inputs) != 1:
        raise ValueError(f"{model}: a model with one input is needed, this one has {len(loaded.inputs)}")
    return Model(loaded, sanitise(path.stem), f"keras.saving.load_model({path.name!r}, safe_mode=True)")


def input_tensor(model: Any, size: int | None, seed: int, pixels: np.ndarray | None, batch: int) -> np.ndarray:
    """The image that runs through the model, batch first: the given one, or seeded normal(0, 1)."""
    shape = tuple(model.inputs[0].shape[1:])
    dtype = np.dtype(model.inputs[0].dtype)
    if pixels is not None:
        x = pixels if pixels.ndim == len(shape) + 1 else pixels[None]
        if x.ndim != len(shape) + 1 or any(d is not None and d != n for d, n in zip(shape, x.shape[1:])):
            raise ValueError(f"--image has shape {list(pixels.shape)}; the model takes {['N', *shape]}")
        return x.astype(dtype)
    if batch < 1:
        raise ValueError(f"--batch must be positive, got {batch}")
    if size is not None and all(d is not None for d in shape[:-1]) and any(d != size for d in shape[:-1]):
        raise ValueError(f"--input-size {size}: the model's input is fixed at {list(shape)}")
    if any(d is None for d in shape[:-1]) and size is None:
        raise ValueError(f"the model's input {['N', *shape]} has free sizes: give --input-size or --image")
    full = tuple((size or 0) if d is None else d for d in shape)   # size is given where d is None (above)
    return np.random.default_rng(seed).standard_normal((batch, *full)).astype(dtype)


def sanitise(name: str) -> str:
    """A case id made of the characters schema.ID_PATTERN allows."""
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", name) or "_"


def family_of(keras: Any, layer: Any) -> str | None:
    """The harness layer kind of a Keras layer of the conv families (or a subclass of one), else None."""
    for cls in type(layer).__mro__:
        if cls.__name__ in LAYERS and getattr(keras.layers, cls.__name__, None) is cls:
            return cls.__name__
    return None


def walk(keras: Any, model: Any, prefix: str = "") -> list[tuple[Any, str, Any, str]]:
    """(layer, kind, its call in the model's graph, reason it cannot be extracted or '') for every layer of the
    conv families, nested models' included (those are skipped: their inputs live in the nested model's graph)."""
    found = []
    graph = graph_of(keras, model)
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            for inner, inner_kind, _, _ in walk(keras, layer, f"{prefix}{layer.name}/"):
                found.append((inner, inner_kind, None, (f"inside the nested model {prefix}{layer.name!r}: flatten "
                                                        "the model to extract it")))
            continue
        kind = family_of(keras, layer)
        if kind is None:
            continue
        calls = call_sites(layer, graph)
        reason = ""
        if type(layer) is not getattr(keras.layers, kind):
            reason = f"{type(layer).__module__}.{type(layer).__name__} subclasses {kind}: its call may differ"
        elif len(calls) != 1:
            reason = f"called {len(calls)} times in the model: not one activation reaches it"
        found.append((layer, kind, calls[0] if len(calls) == 1 else None, reason))
    return found


def config_of(layer: Any, kind: str) -> tuple[dict[str, Any], str]:
    """The layer's get_config() as the case's config (the keys the harness accepts, tuples as lists, activation
    by name, linear as null), or the reason the harness cannot express it."""
    accepted = LAYERS[kind].config_keys
    config: dict[str, Any] = {}
    for key, value in layer.get_config().items():
        if key in accepted:
            config[key] = list(value) if isinstance(value, tuple) else value
        elif key not in INERT_KEYS and not key.endswith(INERT_SUFFIXES) and value not in (None, 0, False):
            return {}, f"{key}={value!r} is not an argument the harness expresses"
    activation = config.get("activation")
    if activation == "linear":
        config["activation"] = None
    elif activation is not None and (not isinstance(activation, str) or activation not in ACTIVATIONS):
        return {}, (f"activation {activation!r} is not one the harness expresses "
                    f"({', '.join(ACTIVATIONS)})")
    if "padding" in config:
        config["padding"] = str(config["padding"]).lower()
    return config, ""


def dtype_of(layer: Any) -> tuple[str, str]:
    """The case dtype of a layer (its compute dtype, which must be its variables' too), or the reason not."""
    policy = layer.dtype_policy
    compute, variables = str(policy.compute_dtype), str(policy.variable_dtype)
    if compute != variables or compute not in DTYPES:
        return "", f"dtype policy {policy.name!r} (compute {compute}, variables {variables}) is not one case dtype"
    return compute, ""


def stored(array: np.ndarray) -> np.ndarray:
    """An array as the tensor file holds it: bfloat16 (which .npy cannot name) widened exactly to float32."""
    array = np.asarray(array)
    return array.astype(np.float32) if array.dtype.name == "bfloat16" else np.ascontiguousarray(array)


def extract_layers(keras: Any, loaded: Model, x: np.ndarray) -> list[Extracted]:
    """Each family layer's case entry and tensors (its input from one pass of ``x`` through the model), or why
    it was skipped, in the model's order."""
    results = [classify(layer, kind, node, reason) for layer, kind, node, reason in walk(keras, loaded.keras_model)]
    probes = [item for item in results if item.entry is not None]
    if probes:
        for item, x_in, y in zip(probes, *capture(keras, loaded.keras_model, [p.node for p in probes], x)):
            fill_entry(item, loaded.name, x_in, y)
    ids: set[str] = set()
    for item in probes:
        entry = item.entry
        assert entry is not None   # a probe has one (fill_entry rewrote it)
        item.entry = {"id": unique_id(entry.pop("id"), ids), **entry}
        problem = validation_problem(item.entry)
        if problem:
            item.entry, item.tensors, item.skipped = None, {}, problem
    return results


def classify(layer: Any, kind: str, node: Any, reason: str) -> Extracted:
    """A layer with its kind, config and dtype in ``entry``, or with the reason the harness cannot express it."""
    config, reason = config_of(layer, kind) if not reason else ({}, reason)
    dtype, reason = dtype_of(layer) if not reason else ("", reason)
    if reason:
        return Extracted(layer, skipped=reason)
    return Extracted(layer, node, entry={"layer": kind, "config": config, "dtype": dtype})


def capture(keras: Any, model: Any, nodes: list[Any], x: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The input and output of each call when ``x`` runs through the model once (inference: training=False)."""
    tensors = [node.input_tensors[0] for node in nodes] + [node.output_tensors[0] for node in nodes]
    values = [keras.ops.convert_to_numpy(v) for v in keras.Model(model.inputs, tensors)([x], training=False)]
    return values[:len(nodes)], values[len(nodes):]


def fill_entry(item: Extracted, model_name: str, x_in: np.ndarray, y: np.ndarray) -> None:
    """The case entry of one layer: the captured input, the layer's weights, its output shape and parameters."""
    layer, entry = item.layer, item.entry
    assert entry is not None   # classify gave a probe its kind, config and dtype
    name = layer.name
    item.tensors[f"{name}/input"] = stored(x_in)
    weights = {}
    for variable, value in zip(layer.weights, layer.get_weights()):
        item.tensors[f"{name}/{variable.name}"] = stored(value)
        weights[variable.name] = f"{name}/{variable.name}"
    item.entry = {"id": sanitise(f"{model_name}.{name}"), "layer": entry["layer"],
                  "input_shape": list(x_in.shape), "dtype": entry["dtype"], "config": entry["config"],
                  "input": f"{name}/input", "weights": weights,
                  "expect": {"output_shape": list(y.shape), "params": int(layer.count_params())}}


def unique_id(wanted: str, taken: set[str]) -> str:
    """``wanted``, or ``wanted-2``, ``-3``... where sanitising made two layer names alike."""
    candidate, n = wanted, 1
    while candidate in taken:
        n += 1
        candidate = f"{wanted}-{n}"
    taken.add(candidate)
    return candidate


def validation_problem(entry: dict[str, Any]) -> str:
    """What the schema finds wrong with an entry's config, shapes and facts (tensors as seeded specs, so that
    the check does not depend on the tensor file), or ''."""
    probe = {**entry, "input": "normal", "weights": {}}
    try:
        case_from_entry("extract", probe)
    except CaseError as exc:
        return f"the harness cannot express it: {exc.field + ': ' if exc.field else ''}{exc.message}"
    return ""


def attach_files(entry: dict[str, Any], digest: str) -> None:
    """Replace the entry's npz keys with tensor-file specs (file relative to the YAML, key, the file's sha256)."""
    def spec(key: str) -> dict[str, str]:
        return {"file": TENSOR_FILE, "key": key, "sha256": digest}

    entry["input"] = spec(entry["input"])
    entry["weights"] = {name: spec(key) for name, key in entry["weights"].items()}


def write_npz(path: Path, tensors: dict[str, np.ndarray]) -> str:
    """An .npz (one .npy member per key, uncompressed, fixed timestamps: the same tensors give the same bytes);
    returns the file's sha256."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for key in sorted(tensors):
            info = zipfile.ZipInfo(f"{key}.npy", date_time=ZIP_TIME)
            info.create_system, info.external_attr = 3, 0o644 << 16
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, tensors[key], allow_pickle=False)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def header_lines(keras: Any, loaded: Model, x: np.ndarray, seed: int, image: str | None,
                 extracted: list[Extracted], command: str) -> list[str]:
    """The file's comment header: where the cases come from and the parameter totals."""
    cases = [e.entry for e in extracted if e.entry is not None]
    source = f"the image {image}" if image else f"seeded normal(0, 1) (numpy default_rng({seed}))"
    return [
        "Cases extracted from a real model: one per layer of the conv families, with the layer's own config and",
        f"weights and the activation that reaches it ({TENSOR_FILE}, Keras layout). pytest on this file is the",
        "layer-by-layer verdict of a port. Written by the command below; do not edit.",
        f"model: {loaded.name}",
        f"built: {loaded.source}",
        f"keras: {keras.__version__} (backend {keras.backend.backend()})",
        f"seed: {seed}",
        f"input: {source}, shape {list(x.shape)}",
        f"model_params: {int(loaded.keras_model.count_params())}",
        f"family_layers: {len(extracted)}",
        f"family_params: {sum(int(e.layer.count_params()) for e in extracted)}",
        f"extracted_layers: {len(cases)}",
        f"extracted_params: {sum(entry['expect']['params'] for entry in cases)}",
        f"skipped_layers: {len(extracted) - len(cases)}",
        f"command: {command}",
    ]


def flow(value: Any) -> str:
    """One value in YAML flow style on one line."""
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=1 << 30)
    return text[:-len("\n...\n")] if text.endswith("\n...\n") else text.rstrip("\n")


def render_case(entry: dict[str, Any]) -> list[str]:
    lines = [f"  - id: {flow(entry['id'])}"]
    for key in ("layer", "input_shape", "dtype", "config", "input"):
        lines.append(f"    {key}: {flow(entry[key])}")
    lines.append("    weights:")
    lines += [f"      {name}: {flow(spec)}" for name, spec in entry["weights"].items()]
    lines.append(f"    expect: {flow(entry['expect'])}")
    return lines


def render_yaml(header: list[str], extracted: list[Extracted]) -> str:
    """The case file: the header, then the cases in the model's order, a comment where a layer was skipped."""
    lines = [f"# {line}" for line in header] + ["cases:" if any(e.entry for e in extracted) else "cases: []"]
    for e in extracted:
        if e.entry is not None:
            lines += render_case(e.entry)
        else:
            lines.append(f"  # skipped {e.layer.name} ({type(e.layer).__name__}): {e.skipped}")
    return "\n".join(lines) + "\n"
