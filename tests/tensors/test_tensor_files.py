"""Tensors from files (harness/tensors/files.py): every format, torch layout, checksums, errors that name the file, case
and field, and hostile files refused without running their payload. Frameworks are imported inside the tests that
need them (collecting this file loads none)."""
from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import yaml

from harness.tensors import files as tensor_files, readers as tensor_readers
from harness.convert import keras_to_torch
from harness.errors import CaseError
from harness.layers.families import get_kind
from harness.judge.runner import make_inputs, reference
from harness.cases.schema import load_file
from testkit import ROOT


def write_cases(path: Path, *entries: dict, defaults: dict | None = None) -> Path:
    doc = {"cases": list(entries)} if defaults is None else {"defaults": defaults, "cases": list(entries)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def load_one(path: Path):
    cases, errors = load_file(path)
    assert not errors, f"unexpected schema errors: {[str(e) for e in errors]}"
    assert len(cases) == 1, [c.id for c in cases]
    return cases[0]


def load_error(path: Path) -> CaseError:
    cases, errors = load_file(path)
    assert not cases and len(errors) == 1, f"cases={[c.id for c in cases]}, errors={[str(e) for e in errors]}"
    return errors[0]


CONV = {"id": "c", "layer": "Conv2D", "input_shape": [2, 5, 4, 3], "dtype": "float64",
        "config": {"filters": 4, "kernel_size": [3, 2]}}


def rng_weights(layer: str, config: dict, input_shape: list[int], seed: int = 0) -> dict[str, np.ndarray]:
    from harness.layers.geometry import geometry

    rng = np.random.default_rng(seed)
    return {n: rng.standard_normal(s) for n, s in geometry(layer, config, tuple(input_shape)).weight_shapes().items()}


def keras_weights(case) -> dict[str, np.ndarray]:
    return make_inputs(case).weights64


# ---------------------------------------------------------------- every format reads the right values

def _save_everywhere(folder: Path, arrays: dict[str, np.ndarray]) -> dict[str, Callable[[str], dict]]:
    """The same arrays in every keyed format; returns name -> spec builder."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "w.npz", **arrays)
    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(folder / "w.safetensors"))
    for k, v in arrays.items():
        np.save(folder / f"{k}.npy", v)
    torch = pytest.importorskip("torch")
    for suffix in ("pt", "pth", "bin"):
        torch.save({k: torch.from_numpy(v) for k, v in arrays.items()}, folder / f"w.{suffix}")
    return {
        "npy": lambda k: {"file": f"{folder.name}/{k}.npy"},
        "npz": lambda k: {"file": f"{folder.name}/w.npz", "key": k},
        "safetensors": lambda k: {"file": f"{folder.name}/w.safetensors", "key": k},
        "pt": lambda k: {"file": f"{folder.name}/w.pt", "key": k},
        "pth": lambda k: {"file": f"{folder.name}/w.pth", "key": k},
        "bin": lambda k: {"file": f"{folder.name}/w.bin", "key": k},
    }


@pytest.mark.parametrize("fmt", ["npy", "npz", "safetensors", "pt", "pth", "bin"])
def test_each_format_reads_the_values_a_literal_gives(tmp_path, fmt):
    w = rng_weights(CONV["layer"], CONV["config"], CONV["input_shape"])
    x = np.random.default_rng(1).standard_normal(CONV["input_shape"])
    spec = _save_everywhere(tmp_path / "data", {"x": x, **w})[fmt]
    literal = load_one(write_cases(tmp_path / "lit.yaml", {
        **CONV, "input": x.tolist(), "weights": {k: v.tolist() for k, v in w.items()}}))
    from_file = load_one(write_cases(tmp_path / "file.yaml", {
        **CONV, "input": spec("x"), "weights": {k: spec(k) for k in w}}))
    want, got = make_inputs(literal), make_inputs(from_file)
    np.testing.assert_array_equal(got.x64, want.x64)
    for name in w:
        np.testing.assert_array_equal(got.weights64[name], want.weights64[name], err_msg=f"{fmt}: {name}")


def test_a_file_is_rounded_once_to_the_case_dtype_like_a_literal(tmp_path):
    w = rng_weights(CONV["layer"], CONV["config"], CONV["input_shape"])
    np.savez(tmp_path / "w.npz", **{k: v.astype(np.float64) for k, v in w.items()}, k16=w["kernel"].astype(np.float16),
             ki=np.arange(w["kernel"].size).reshape(w["kernel"].shape))
    base = {**CONV, "dtype": "bfloat16"}
    literal = load_one(write_cases(tmp_path / "lit.yaml", {**base, "weights": {"kernel": w["kernel"].tolist()}}))
    spec = {"file": "w.npz", "key": "kernel"}
    got = load_one(write_cases(tmp_path / "f.yaml", {**base, "weights": {"kernel": spec}}))
    assert make_inputs(got).weights["kernel"].dtype.name == "bfloat16"
    np.testing.assert_array_equal(make_inputs(got).weights["kernel"].astype(np.float64),
                                  make_inputs(literal).weights["kernel"].astype(np.float64))
    for key, want in (("k16", w["kernel"].astype(np.float16)), ("ki", np.arange(w["kernel"].size))):
        case = load_one(write_cases(tmp_path / f"{key}.yaml", {**CONV, "weights": {"kernel": {"file": "w.npz",
                                                                                               "key": key}}}))
        np.testing.assert_array_equal(keras_weights(case)["kernel"].ravel(), want.astype(np.float64).ravel())


def test_safetensors_bfloat16_and_torch_bfloat16_read_exactly(tmp_path):
    import ml_dtypes
    from safetensors.numpy import save_file

    torch = pytest.importorskip("torch")
    bias = np.array([1.5, -2.25, 3.0e38, 2.0**-130], dtype=ml_dtypes.bfloat16)
    save_file({"b": bias}, str(tmp_path / "b.safetensors"))
    torch.save({"b": torch.tensor(bias.astype(np.float32)).to(torch.bfloat16)}, tmp_path / "b.pt")
    for spec in ({"file": "b.safetensors", "key": "b"}, {"file": "b.pt", "key": "b"}):
        case = load_one(write_cases(tmp_path / "c.yaml", {**CONV, "weights": {"bias": spec}}))
        np.testing.assert_array_equal(keras_weights(case)["bias"], bias.astype(np.float64), err_msg=str(spec))


def test_keras_files_are_read_by_layer_and_weight_name_without_running_anything(tmp_path):
    """A real .keras archive, .weights.h5 and legacy .h5 (with a Lambda layer whose function writes a marker): the
    weights of conv, depthwise (multiplier 2) and separable layers by name, read with h5py; nothing runs."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    keras = pytest.importorskip("keras")
    marker = tmp_path / "lambda-ran"

    def touch(x):
        marker.touch()
        return x * 2

    model = keras.Sequential([
        keras.Input((6, 6, 3)),
        keras.layers.Conv2D(4, (3, 2), name="block1_conv"),
        keras.layers.DepthwiseConv2D(2, depth_multiplier=2, name="dw"),
        keras.layers.SeparableConv2D(3, 2, depth_multiplier=2, name="sep"),
        keras.layers.Lambda(touch, name="lam"),
    ])
    rng = np.random.default_rng(0)
    for layer in model.layers:   # random biases too (Keras initialises them to zero)
        layer.set_weights([rng.standard_normal(w.shape).astype(np.float32) for w in layer.get_weights()])
    model.save(tmp_path / "m.keras")
    model.save_weights(tmp_path / "m.weights.h5")
    model.save(tmp_path / "legacy.h5")
    marker.unlink(missing_ok=True)   # building the model called the Lambda; from here on nothing may
    stored = {layer.name: {w.name: np.asarray(w.numpy(), dtype=np.float64) for w in layer.weights}
              for layer in model.layers}
    cases = [
        ("block1_conv", {"layer": "Conv2D", "input_shape": [1, 6, 6, 3],
                         "config": {"filters": 4, "kernel_size": [3, 2]}}),
        ("dw", {"layer": "DepthwiseConv2D", "input_shape": [1, 4, 5, 4],
                "config": {"kernel_size": 2, "depth_multiplier": 2}}),
        ("sep", {"layer": "SeparableConv2D", "input_shape": [1, 3, 4, 8],
                 "config": {"filters": 3, "kernel_size": 2, "depth_multiplier": 2}}),
    ]
    for file in ("m.keras", "m.weights.h5", "legacy.h5"):
        for layer, entry in cases:
            names = list(stored[layer])
            spec = {n: {"file": file, "layer": layer, "weight": n} for n in names}
            case = load_one(write_cases(tmp_path / "k.yaml", {"id": "k", "dtype": "float32", **entry, "weights": spec}))
            got = keras_weights(case)
            for n in names:
                np.testing.assert_array_equal(got[n], stored[layer][n], err_msg=f"{file} {layer} {n}")
        by_index = load_one(write_cases(tmp_path / "i.yaml", {"id": "i", **cases[0][1], "weights": {
            "bias": {"file": file, "layer": "block1_conv", "weight": 1}}}))
        np.testing.assert_array_equal(keras_weights(by_index)["bias"], stored["block1_conv"]["bias"])
        wrong = load_error(write_cases(tmp_path / "w.yaml", {"id": "w", **cases[0][1], "weights": {
            "bias": {"file": file, "layer": "block1_conv", "weight": "depthwise_kernel"}}}))
        assert wrong.field == "weights.bias.weight" and "kernel" in wrong.message and "bias" in wrong.message, wrong
        gone = load_error(write_cases(tmp_path / "g.yaml", {"id": "g", **cases[0][1], "weights": {
            "bias": {"file": file, "layer": "block2_conv", "weight": "bias"}}}))
        assert gone.field == "weights.bias.layer" and "block2_conv" in gone.message and "dw" in gone.message, gone
    assert not marker.exists(), "reading a Keras file ran the Lambda layer's function"


def test_hdf5_layouts_written_by_hand(tmp_path):
    """Keras 2's save_weights (layer_names at the root, weight_names like 'conv/kernel:0') and a Keras 3 layer of a
    class the harness does not know (its variables unnamed: addressed by index)."""
    import h5py

    kernel, bias = np.random.default_rng(0).standard_normal((3, 2, 3, 4)), np.arange(4.0)
    with h5py.File(tmp_path / "k2.h5", "w") as f:
        f.attrs["layer_names"] = [b"conv"]
        group = f.create_group("conv")
        group.attrs["weight_names"] = [b"conv/kernel:0", b"conv/bias:0"]
        group["conv/kernel:0"], group["conv/bias:0"] = kernel, bias
    with h5py.File(tmp_path / "k3.weights.h5", "w") as f:
        group = f.create_group("layers/my_conv/vars")
        group.attrs["name"] = "mine"
        group["0"], group["1"] = kernel, bias
    case = load_one(write_cases(tmp_path / "a.yaml", {**CONV, "weights": {
        "kernel": {"file": "k2.h5", "layer": "conv", "weight": "kernel"},
        "bias": {"file": "k3.weights.h5", "layer": "mine", "weight": 1}}}))
    np.testing.assert_array_equal(keras_weights(case)["kernel"], kernel)
    np.testing.assert_array_equal(keras_weights(case)["bias"], bias)
    e = load_error(write_cases(tmp_path / "b.yaml", {**CONV, "weights": {
        "bias": {"file": "k3.weights.h5", "layer": "mine", "weight": "bias"}}}))
    assert e.field == "weights.bias.weight" and "give weight as an index" in e.message and "1: unnamed [4]" in e.message


# ---------------------------------------------------------------- torch layout, checked against real torch

TORCH_LAYOUT_CASES = {
    "conv2d-groups": ("Conv2D", [2, 6, 5, 4], {"filters": 6, "kernel_size": [3, 2], "groups": 2}),
    "conv1d": ("Conv1D", [2, 7, 3], {"filters": 2, "kernel_size": 3}),
    "depthwise2d-m2": ("DepthwiseConv2D", [2, 5, 6, 3], {"kernel_size": [2, 3], "depth_multiplier": 2}),
    "depthwise1d-m3": ("DepthwiseConv1D", [1, 6, 2], {"kernel_size": 3, "depth_multiplier": 3}),
    "separable2d-m2": ("SeparableConv2D", [2, 5, 5, 3], {"filters": 4, "kernel_size": [3, 2], "depth_multiplier": 2}),
    "separable1d-m2": ("SeparableConv1D", [1, 6, 2], {"filters": 3, "kernel_size": 2, "depth_multiplier": 2}),
    "conv2d-channels-first": ("Conv2D", [2, 3, 5, 4], {"filters": 2, "kernel_size": 2,
                                                      "data_format": "channels_first"}),
}


def _torch_modules(torch, layer: str, config: dict, channels: int):
    """The plain torch modules a porter has (torch's own initialisation), and the keys of their state dict."""
    nn = torch.nn
    rank = 2 if layer.endswith("2D") else 1
    conv = nn.Conv2d if rank == 2 else nn.Conv1d
    k = tuple(config["kernel_size"]) if isinstance(config["kernel_size"], list) else config["kernel_size"]
    m = config.get("depth_multiplier", 1)
    torch.manual_seed(0)
    if layer.startswith("Conv"):
        net = nn.Sequential(conv(channels, config["filters"], k, groups=config.get("groups", 1)))
        return net, {"kernel": "0.weight", "bias": "0.bias"}
    if layer.startswith("Depthwise"):
        net = nn.Sequential(conv(channels, channels * m, k, groups=channels))
        return net, {"kernel": "0.weight", "bias": "0.bias"}
    net = nn.Sequential(conv(channels, channels * m, k, groups=channels, bias=False),
                        conv(channels * m, config["filters"], 1))
    return net, {"depthwise_kernel": "0.weight", "pointwise_kernel": "1.weight", "bias": "1.bias"}


@pytest.mark.parametrize("name", list(TORCH_LAYOUT_CASES))
def test_torch_layout_gives_what_the_torch_module_computes(tmp_path, name):
    """A porter's state dict (.pt) and channels-first input (.npy), stated in torch layout: the oracle computes, in
    Keras layout, what the torch modules compute; the literal in torch layout gives the same weights."""
    torch = pytest.importorskip("torch")
    layer, input_shape, config = TORCH_LAYOUT_CASES[name]
    channels_first = config.get("data_format") == "channels_first"
    channels = input_shape[1] if channels_first else input_shape[-1]
    net, keys = _torch_modules(torch, layer, config, channels)
    state = {k: v.double() for k, v in net.state_dict().items()}
    torch.save(state, tmp_path / "model.pt")
    n, spatial = input_shape[0], (input_shape[2:] if channels_first else input_shape[1:-1])
    x = np.random.default_rng(2).standard_normal((n, channels, *spatial))   # torch layout: channels first
    np.save(tmp_path / "x.npy", x)
    entry = {"id": name, "layer": layer, "input_shape": input_shape, "config": config, "dtype": "float64",
             "input": {"file": "x.npy", "layout": "torch"},
             "weights": {w: {"file": "model.pt", "key": key, "layout": "torch"} for w, key in keys.items()}}
    case = load_one(write_cases(tmp_path / "c.yaml", entry))
    y = reference(case).y
    with torch.no_grad():
        want = net.double()(torch.from_numpy(x)).numpy()
    if not channels_first:
        want = np.moveaxis(want, 1, -1)
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(make_inputs(case).x64, x if channels_first else np.moveaxis(x, 1, -1))
    literal = load_one(write_cases(tmp_path / "l.yaml", {**entry, "input": {"values": x.tolist(), "layout": "torch"},
                                                         "weights": {w: {"values": state[k].numpy().tolist(),
                                                                         "layout": "torch"}
                                                                     for w, k in keys.items()}}))
    for w in keys:
        np.testing.assert_array_equal(keras_weights(literal)[w], keras_weights(case)[w], err_msg=w)
    np.testing.assert_array_equal(make_inputs(literal).x64, make_inputs(case).x64)


def test_torch_layout_converts_with_the_project_converters(tmp_path):
    """Every weight kind, through harness.convert (keras_to_torch) and back: the Keras weights again."""
    for layer, input_shape, config in TORCH_LAYOUT_CASES.values():
        w = rng_weights(layer, config, input_shape)
        kind = get_kind(layer)
        state = keras_to_torch(layer, w)
        np.savez(tmp_path / "t.npz", **{k.replace(".", "_"): v for k, v in state.items()})
        weights = {n: {"file": "t.npz", "key": kind.family.torch_names[n].replace(".", "_"), "layout": "torch"}
                   for n in w}
        case = load_one(write_cases(tmp_path / "c.yaml", {"id": "c", "layer": layer, "input_shape": input_shape,
                                                          "config": config, "dtype": "float64", "weights": weights}))
        for n in w:
            np.testing.assert_array_equal(keras_weights(case)[n], w[n], err_msg=f"{layer} {n}")


def test_a_wrong_torch_layout_shape_names_both_layouts(tmp_path):
    np.save(tmp_path / "k.npy", np.zeros((3, 3, 3, 4)))   # the Keras shape, stated as torch
    error = load_error(write_cases(tmp_path / "c.yaml", {**CONV, "weights": {
        "kernel": {"file": "k.npy", "layout": "torch"}}}))
    assert error.field == "weights.kernel" and error.case == "c" and str(tmp_path / "c.yaml") in error.file
    assert "'k.npy'" in error.message and "[3, 3, 3, 4]" in error.message, error.message
    assert "[4, 3, 3, 2] in torch layout ([3, 2, 3, 4] in Keras layout)" in error.message, error.message
    hint = load_error(write_cases(tmp_path / "d.yaml", {**CONV, "weights": {"kernel": {
        "values": np.zeros((4, 3, 3, 2)).tolist()}}}))
    assert "add layout: torch" in hint.message, hint.message


def test_torch_layout_of_the_input_and_grad_output(tmp_path):
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 4))   # N, C, H, W
    np.save(tmp_path / "x.npy", x)
    dy = np.random.default_rng(1).standard_normal((2, 4, 3, 3))   # N, F, H', W'
    np.save(tmp_path / "dy.npy", dy)
    case = load_one(write_cases(tmp_path / "c.yaml", {
        **CONV, "input_shape": [2, 5, 4, 3], "input": {"file": "x.npy", "layout": "torch"},
        "check": ["forward", "backward"], "grad_output": {"file": "dy.npy", "layout": "torch"}}))
    np.testing.assert_array_equal(make_inputs(case).x64, np.moveaxis(x, 1, -1))
    from harness.judge.gradients import grad_output

    np.testing.assert_array_equal(grad_output(case), np.moveaxis(dy, 1, -1))
    wrong = load_error(write_cases(tmp_path / "w.yaml", {**CONV, "input": {"file": "x.npy"}}))
    assert wrong.field == "input" and "[2, 3, 5, 4]" in wrong.message and "[2, 5, 4, 3]" in wrong.message


# ---------------------------------------------------------------- checksums, paths and errors

def test_sha256_verified(tmp_path):
    np.save(tmp_path / "b.npy", np.arange(4.0))
    digest = hashlib.sha256((tmp_path / "b.npy").read_bytes()).hexdigest()
    ok = load_one(write_cases(tmp_path / "ok.yaml", {**CONV, "weights": {"bias": {"file": "b.npy",
                                                                                  "sha256": digest.upper()}}}))
    np.testing.assert_array_equal(keras_weights(ok)["bias"], np.arange(4.0))
    bad = "0" * 64
    error = load_error(write_cases(tmp_path / "bad.yaml", {**CONV, "weights": {"bias": {"file": "b.npy",
                                                                                        "sha256": bad}}}))
    assert (error.case, error.field) == ("c", "weights.bias.sha256") and str(tmp_path / "bad.yaml") in error.file
    assert "'b.npy'" in error.message and digest in error.message and bad in error.message, error.message
    malformed = load_error(write_cases(tmp_path / "m.yaml", {**CONV, "weights": {"bias": {"file": "b.npy",
                                                                                          "sha256": "abc"}}}))
    assert malformed.field == "weights.bias.sha256" and "64 hexadecimal" in malformed.message
    np.save(tmp_path / "b.npy", np.arange(4.0) + 1)   # changed after validation: the run says so
    stat = os.stat(tmp_path / "b.npy")
    os.utime(tmp_path / "b.npy", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))   # a later write, not the same tick
    with pytest.raises(CaseError, match=r"ok.yaml::c: weights.bias.sha256: 'b.npy' has sha256"):
        make_inputs(ok)


def test_paths_are_relative_to_the_case_file_not_the_current_directory(tmp_path, monkeypatch):
    suite = tmp_path / "suite" / "models"
    (suite / "data").mkdir(parents=True)
    (tmp_path / "shared").mkdir()
    np.save(suite / "data" / "b.npy", np.arange(4.0))
    np.save(tmp_path / "shared" / "b2.npy", np.arange(4.0) * 2)
    np.save(tmp_path / "abs.npy", np.arange(4.0) * 3)
    path = write_cases(suite / "c.yaml",
                       {**CONV, "id": "rel", "weights": {"bias": {"file": "data/b.npy"}}},
                       {**CONV, "id": "up", "weights": {"bias": {"file": "../../shared/b2.npy"}}},
                       {**CONV, "id": "abs", "weights": {"bias": {"file": str(tmp_path / "abs.npy")}}})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cases, errors = load_file(os.path.relpath(path, elsewhere))
    assert not errors, [str(e) for e in errors]
    got = {c.id: keras_weights(c)["bias"] for c in cases}
    for case_id, factor in (("rel", 1), ("up", 2), ("abs", 3)):
        np.testing.assert_array_equal(got[case_id], np.arange(4.0) * factor, err_msg=case_id)


def test_a_missing_file_key_or_shape_is_an_error_naming_file_case_and_field(tmp_path):
    np.savez(tmp_path / "w.npz", kernel=np.zeros((3, 2, 3, 4)), odd=np.zeros((5,)))
    path = write_cases(
        tmp_path / "c.yaml",
        {**CONV, "id": "no-file", "input": {"file": "acts.npz", "key": "x"}},
        {**CONV, "id": "no-key", "weights": {"kernel": {"file": "w.npz", "key": "kernal"}}},
        {**CONV, "id": "bad-shape", "weights": {"bias": {"file": "w.npz", "key": "odd"}}},
        {**CONV, "id": "good", "weights": {"kernel": {"file": "w.npz", "key": "kernel"}}})
    cases, errors = load_file(path)
    assert [c.id for c in cases] == ["good"], "a bad file must not hide the other cases"
    by_case = {e.case: e for e in errors}
    assert set(by_case) == {"no-file", "no-key", "bad-shape"}
    assert all(e.file == str(path) for e in errors)
    e = by_case["no-file"]
    assert e.field == "input.file" and "'acts.npz' does not exist" in e.message
    assert str(tmp_path / "acts.npz") in e.message, e.message
    e = by_case["no-key"]
    assert e.field == "weights.kernel.key" and "w.npz has no array 'kernal'" in e.message and "kernel, odd" in e.message
    e = by_case["bad-shape"]
    assert e.field == "weights.bias" and "'w.npz' key 'odd' has shape [5]" in e.message and "[4]" in e.message
    assert str(e).startswith(f"{path}::bad-shape: weights.bias: impossible shape"), str(e)


@pytest.mark.parametrize("spec, field, words", [
    ({"file": "w.npz"}, "weights.bias.key", "a .npz file needs key"),
    ({"file": "b.npy", "key": "b"}, "weights.bias.key", "a .npy file takes no key"),
    ({"file": "m.keras", "key": "b"}, "weights.bias.key", "addressed by layer and weight"),
    ({"file": "m.weights.h5", "layer": "conv"}, "weights.bias.weight", "needs layer and weight"),
    ({"file": "b.txt"}, "weights.bias.file", "unknown file type '.txt'"),
    ({"file": "b.npy", "layout": "nchw"}, "weights.bias.layout", "keras (the default) or torch"),
    ({"file": "b.npy", "keys": "b"}, "weights.bias.keys", "not a field of a file tensor"),
    ({"file": "b.npy", "values": [0, 0, 0, 0]}, "weights.bias.values", "not both"),
    ({"values": [0, 0, 0], "layout": "torch"}, "weights.bias", "[3], the layer needs [4] in torch layout"),
    ({"values": [0, [0]]}, "weights.bias.values", "rectangular"),
    ({"values": [0, 0, 0, 0], "sha256": "0" * 64}, "weights.bias.sha256", "not a field of a literal"),
    ({"file": 3}, "weights.bias.file", "must be a path"),
])
def test_spec_mistakes_are_named(tmp_path, spec, field, words):
    np.save(tmp_path / "b.npy", np.zeros(4))
    np.savez(tmp_path / "w.npz", b=np.zeros(4))
    error = load_error(write_cases(tmp_path / "c.yaml", {**CONV, "weights": {"bias": spec}}))
    assert error.field == field and words in error.message, str(error)


def test_a_literal_in_keras_layout_is_the_plain_list(tmp_path):
    b = [1.0, 2.0, 3.0, 4.0]
    a = load_one(write_cases(tmp_path / "a.yaml", {**CONV, "weights": {"bias": {"values": b}}}))
    np.testing.assert_array_equal(keras_weights(a)["bias"], b)


def test_one_file_is_opened_once_for_many_cases(tmp_path):
    np.savez(tmp_path / "w.npz", b=np.arange(4.0), kernel=np.ones((3, 2, 3, 4)))
    entries = [{**CONV, "id": f"c{i}", "weights": {"bias": {"file": "w.npz", "key": "b"},
                                                  "kernel": {"file": "w.npz", "key": "kernel"}}} for i in range(30)]
    cases, errors = load_file(write_cases(tmp_path / "c.yaml", *entries))
    assert len(cases) == 30 and not errors
    for case in cases:
        make_inputs(case)
    info = tensor_readers.open_reader.cache_info()
    assert info.misses == 1, f"w.npz opened {info.misses} times for 30 cases, but should be once"


def test_linspace_init(tmp_path):
    case = load_one(write_cases(tmp_path / "c.yaml", {**CONV, "input": {"init": "linspace", "start": -1, "stop": 2},
                                                      "weights": {"bias": "linspace"}}))
    inputs = make_inputs(case)
    np.testing.assert_array_equal(inputs.x64, np.linspace(-1, 2, 2 * 5 * 4 * 3).reshape(2, 5, 4, 3))
    assert inputs.x64[0, 0, 0, 0] == -1 and inputs.x64[-1, -1, -1, -1] == 2
    np.testing.assert_array_equal(inputs.weights64["bias"], [0, 1 / 3, 2 / 3, 1])
    error = load_error(write_cases(tmp_path / "e.yaml", {**CONV, "input": {"init": "linspace", "step": 1}}))
    assert error.field == "input.step" and "start, stop" in error.message


# ---------------------------------------------------------------- hostile files: refused, their payload never runs

class Payload:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def test_an_object_npy_is_refused_and_its_pickle_never_runs(tmp_path):
    marker = tmp_path / "npy-payload-ran"
    np.save(tmp_path / "bomb.npy", np.array([Payload(marker)] * 4, dtype=object), allow_pickle=True)
    np.savez(tmp_path / "bomb.npz", b=np.array([Payload(marker)] * 4, dtype=object))
    for spec in ({"file": "bomb.npy"}, {"file": "bomb.npz", "key": "b"}):
        error = load_error(write_cases(tmp_path / "c.yaml", {**CONV, "weights": {"bias": spec}}))
        assert error.field == "weights.bias.file" and "Python objects (a pickle), refused" in error.message, error
        assert not marker.exists(), f"{spec}: the pickle's payload ran"
    # The reader itself never unpickles either (a file swapped after validation).
    with pytest.raises(tensor_files.FileProblem, match="Python objects"):
        tensor_readers.READERS["npz"](str(tmp_path / "bomb.npz")).values({"key": "b"})
    assert not marker.exists()
    np.load(tmp_path / "bomb.npy", allow_pickle=True)   # the control: the bomb is live
    assert marker.exists(), "the test's payload does not work, so it proves nothing"


def test_a_text_npy_is_refused(tmp_path):
    np.save(tmp_path / "s.npy", np.array(["a", "b", "c", "d"]))
    error = load_error(write_cases(tmp_path / "c.yaml", {**CONV, "weights": {"bias": {"file": "s.npy"}}}))
    assert error.field == "weights.bias" and "<U1 values; a tensor needs floats or integers" in error.message, error


def test_a_torch_file_with_a_reduce_payload_is_refused_and_never_runs(tmp_path):
    torch = pytest.importorskip("torch")
    marker = tmp_path / "pt-payload-ran"
    torch.save({"b": torch.zeros(4), "evil": Payload(marker)}, tmp_path / "evil.pt")
    error = load_error(write_cases(tmp_path / "c.yaml", {**CONV, "weights": {"bias": {"file": "evil.pt",
                                                                                      "key": "b"}}}))
    assert error.field == "weights.bias.file" and "evil.pt refused without unpickling it" in error.message
    assert "it names posix.system" in error.message, error.message
    assert not marker.exists(), "torch.load ran the payload"
    torch.load(tmp_path / "evil.pt", weights_only=False)   # the control: the payload is live
    assert marker.exists(), "the test's payload does not work, so it proves nothing"


def test_a_torch_file_that_is_not_a_state_dict_or_not_a_tensor(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save([torch.zeros(4)], tmp_path / "list.pt")
    torch.save({"b": 3}, tmp_path / "int.pt")
    (tmp_path / "raw.bin").write_bytes(b"not a pickle at all")
    e = load_error(write_cases(tmp_path / "r.yaml", {**CONV, "weights": {"bias": {"file": "raw.bin", "key": "b"}}}))
    assert e.field == "weights.bias.file" and "raw.bin is not in torch.save's zip format" in e.message, e
    e = load_error(write_cases(tmp_path / "a.yaml", {**CONV, "weights": {"bias": {"file": "list.pt", "key": "b"}}}))
    assert e.field == "weights.bias.file" and "not a state dict" in e.message, e
    e = load_error(write_cases(tmp_path / "b.yaml", {**CONV, "weights": {"bias": {"file": "int.pt", "key": "b"}}}))
    assert e.field == "weights.bias.key" and "not a tensor" in e.message, e


def test_a_truncated_or_garbled_safetensors_file_is_refused_cleanly(tmp_path):
    from safetensors.numpy import save_file

    save_file({"b": np.arange(4.0)}, str(tmp_path / "ok.safetensors"))
    data = (tmp_path / "ok.safetensors").read_bytes()
    header = int.from_bytes(data[:8], "little")
    bad = {"short.safetensors": data[:5],                        # not even the header's length
           "trunc.safetensors": data[:8 + header // 2],          # the header cut in the middle
           "huge.safetensors": (2**62).to_bytes(8, "little") + data[8:],   # a length past the end
           "json.safetensors": len(b"{not json").to_bytes(8, "little") + b"{not json",
           "data.safetensors": data[:-8]}                        # the tensor's bytes cut short
    for name, content in bad.items():
        (tmp_path / name).write_bytes(content)
        error = load_error(write_cases(tmp_path / "c.yaml", {**CONV, "weights": {"bias": {"file": name, "key": "b"}}}))
        words = f"{name}: cannot read it as a safetensors file" if name != "data.safetensors" else \
            "data.safetensors key 'b': its data ends at byte 32, past the 24 bytes of data the file holds (truncated)"
        assert error.field == "weights.bias.file" and words in error.message, \
            f"{name}: {error}"


def test_a_corrupt_keras_file_or_archive_without_weights_is_refused(tmp_path):
    import zipfile

    (tmp_path / "junk.weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 40)
    with zipfile.ZipFile(tmp_path / "nothing.keras", "w") as z:
        z.writestr("config.json", json.dumps({"class_name": "Lambda"}))
    for name, words in (("junk.weights.h5", "cannot read it as a Keras HDF5 file"),
                        ("nothing.keras", "not a Keras archive: it has no model.weights.h5")):
        error = load_error(write_cases(tmp_path / "c.yaml", {**CONV, "weights": {"bias": {
            "file": name, "layer": "conv", "weight": "bias"}}}))
        assert error.field == "weights.bias.file" and words in error.message, error


def test_reading_numpy_safetensors_and_keras_files_loads_no_framework(tmp_path):
    import h5py
    from safetensors.numpy import save_file

    np.savez(tmp_path / "w.npz", kernel=np.ones((3, 2, 3, 4)))
    save_file({"b": np.arange(4.0)}, str(tmp_path / "b.safetensors"))
    with h5py.File(tmp_path / "x.weights.h5", "w") as f:   # Keras 3's layout, written by hand
        group = f.create_group("layers/conv2d/vars")
        group.attrs["name"] = "conv"
        group["0"], group["1"] = np.ones((3, 2, 3, 4)), np.arange(4.0)
    path = write_cases(tmp_path / "c.yaml", {**CONV, "weights": {
        "kernel": {"file": "x.weights.h5", "layer": "conv", "weight": "kernel"},
        "bias": {"file": "b.safetensors", "key": "b"}}, "input": {"init": "ones"}},
        {**CONV, "id": "d", "weights": {"kernel": {"file": "w.npz", "key": "kernel"}}})
    code = ("import sys; from harness.cases.schema import load_file; from harness.judge.runner import make_inputs\n"
            "cases, errors = load_file(sys.argv[1]); assert len(cases) == 2 and not errors, errors\n"
            "[make_inputs(c) for c in cases]\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'tensorflow', 'keras', 'jax')))")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout


# ---------------------------------------------------------------- a suite that reads files, run by pytest

def test_pytest_runs_a_yaml_of_file_tensors_and_every_engine_passes(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("keras")
    from safetensors.numpy import save_file

    rng = np.random.default_rng(5)
    data = tmp_path / "data"
    data.mkdir()
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(4, 6, (3, 2), groups=2)
    torch.save({"features.0." + k: v for k, v in conv.state_dict().items()}, data / "model.pt")
    np.savez(data / "acts.npz", block1_input=rng.standard_normal((2, 4, 6, 5)).astype(np.float32))
    dw = rng.standard_normal((6, 1, 3, 3))   # torch depthwise: C*M = 3*2 outputs
    save_file({"dw": dw, "pw": rng.standard_normal((4, 6, 1, 1)), "b": rng.standard_normal(4)},
              str(data / "sep.safetensors"))
    digest = hashlib.sha256((data / "sep.safetensors").read_bytes()).hexdigest()
    np.save(data / "dy.npy", rng.standard_normal((2, 4, 6, 5)))   # N, F, H, W
    write_cases(
        tmp_path / "cases" / "files.yaml",
        {"id": "files-conv", "layer": "Conv2D", "input_shape": [2, 6, 5, 4],
         "config": {"filters": 6, "kernel_size": [3, 2], "groups": 2, "activation": "relu"},
         "input": {"file": "../data/acts.npz", "key": "block1_input", "layout": "torch"},
         "weights": {"kernel": {"file": "../data/model.pt", "key": "features.0.weight", "layout": "torch"},
                     "bias": {"file": "../data/model.pt", "key": "features.0.bias"}}},
        {"id": "files-separable", "layer": "SeparableConv2D", "input_shape": [2, 3, 6, 5],
         "config": {"filters": 4, "kernel_size": 3, "depth_multiplier": 2, "data_format": "channels_first",
                    "padding": "same"},
         "input": {"init": "linspace", "start": -2, "stop": 3},
         "check": ["forward", "backward"], "grad_output": {"file": "../data/dy.npy", "layout": "torch"},
         "weights": {"depthwise_kernel": {"file": "../data/sep.safetensors", "key": "dw", "layout": "torch",
                                          "sha256": digest},
                     "pointwise_kernel": {"file": "../data/sep.safetensors", "key": "pw", "layout": "torch"},
                     "bias": {"values": rng.standard_normal(4).tolist(), "layout": "torch"}}},
        defaults={"dtype": "float32"})
    done = subprocess.run([sys.executable, "-m", "pytest", "cases/files.yaml", "-p", "no:cacheprovider", "-v",
                           "--engine", "oracle", "--engine", "keras", "--engine", "torch"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    tail = done.stdout[-3000:] + done.stderr[-2000:]
    assert done.returncode == 0, tail
    items = [f"files-conv[{e}]" for e in ("oracle", "keras", "torch")] + \
        [f"files-separable[{e}{c}]" for e in ("oracle", "keras", "torch") for c in ("", ":backward")]
    for item in items:
        assert f"{item} PASSED" in done.stdout, f"{item} did not pass:\n{tail}"
    assert "9 passed" in done.stdout and "failed" not in done.stdout and "error" not in done.stdout, tail
