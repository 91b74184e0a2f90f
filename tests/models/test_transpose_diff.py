"""Transposed convs (Conv{N}DTranspose) through `extract` and the model diff: a small Keras U-Net-style decoder
(Conv2D down, Conv2DTranspose up at strides 2 'same', a Concatenate skip, a final Conv2D), saved as .keras,
extracted (its Conv2DTranspose case passes in the oracle and torch), and diffed against a hand-written torch port:
the correct port passes (exit 0), and each broken one fails at the transposed conv with its cause and a fix that
makes it pass (exit 1). torch and keras are imported inside the fixtures and tests."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

SIZE, IN, FEATURES, OUT = 8, 3, 4, 2   # the up layer reads FEATURES channels and gives FEATURES: in == out

# The torch port, written apart from the harness. Keras's 'same' at kernel 3, strides 2 gives 2n outputs of the
# 2n + 1 long full scatter, cropping (0, 1) (TensorFlow's odd pixel at the end): torch's padding crops both ends
# alike, so the port scatters with padding=0 and slices the last row and column off in its forward. The 'crop'
# bug is the usual port: padding=1, output_padding=1, which crops (1, 0): the same shape, shifted by one pixel;
# 'output_size' the U-Net idiom up(x, output_size=skip.shape) at padding=1, where torch chooses output_padding=1.
PORT = '''
import torch
from torch import nn


class Port(nn.Module):
    def __init__(self, bug=None):
        super().__init__()
        self.bug = bug
        self.enc = nn.Conv2d(3, 4, 3, padding=1)
        self.enc_relu = nn.ReLU()
        self.down_pad = nn.ZeroPad2d((0, 1, 0, 1))            # TensorFlow's 'same' at stride 2 on an even size
        self.down = nn.Conv2d(4, 4, 3, stride=2)
        self.down_relu = nn.ReLU()
        if bug == "crop":
            self.up = nn.ConvTranspose2d(4, 4, 3, stride=2, padding=1, output_padding=1)
        elif bug == "output_size":
            self.up = nn.ConvTranspose2d(4, 4, 3, stride=2, padding=1)
        else:
            self.up = nn.ConvTranspose2d(4, 4, 3, stride=2, padding=0)
        self.up_relu = nn.ReLU()
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        skip = self.enc_relu(self.enc(x))
        x = self.down_relu(self.down(self.down_pad(skip)))
        if self.bug == "output_size":
            y = self.up(x, output_size=skip.shape[2:])
        else:
            y = self.up(x)
        if self.bug is None:
            y = y[:, :, :-1, :-1]                              # Keras's crop (0, 1) on each axis
        return self.head(torch.cat([self.up_relu(y), skip], dim=1))


def good():
    return Port()


def crop():
    return Port("crop")


def output_size():
    return Port("output_size")
'''


def unet(path: Path) -> None:
    """The Keras decoder, saved to ``path``; biases drawn (fresh ones are zero, under which little shows)."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(7)
    inputs = keras.Input((SIZE, SIZE, IN), name="input")
    skip = layers.Conv2D(FEATURES, 3, padding="same", activation="relu", name="enc")(inputs)
    x = layers.Conv2D(FEATURES, 3, strides=2, padding="same", activation="relu", name="down")(skip)
    x = layers.Conv2DTranspose(FEATURES, 3, strides=2, padding="same", activation="relu", name="up")(x)
    x = layers.Concatenate(name="skip")([x, skip])
    outputs = layers.Conv2D(OUT, 1, name="head")(x)
    model = keras.Model(inputs, outputs, name="unet")
    rng = np.random.default_rng(7)
    for layer in model.layers:
        for v in layer.weights:
            if v.name == "bias":
                v.assign(rng.normal(0.0, 0.25, tuple(v.shape)).astype(np.float32))
    model.save(path)


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The decoder as .keras, the port file, and the port's weights carried across by `diff --transfer-weights`
    (which must pass: exit 0)."""
    from testkit import hand_ports

    hand_ports()   # skips without torch or keras; sets the Keras backend
    root = tmp_path_factory.mktemp("transpose")
    unet(root / "unet.keras")
    (root / "port.py").write_text(PORT)
    return {"root": root, "model": root / "unet.keras", "port": root / "port.py", "weights": root / "w.pt"}


def _diff(saved: dict[str, Path], factory: str, *args: str) -> tuple[int, dict[str, Any], str]:
    from testkit import diff_cli

    return diff_cli(saved, factory, *args)


@pytest.fixture(scope="module")
def good(saved: dict[str, Path]) -> tuple[int, dict[str, Any], str]:
    return _diff(saved, "good", "--transfer-weights", "--save-weights", str(saved["weights"]))


def test_extracted_transposed_conv_cases_pass_in_oracle_and_torch(saved: dict[str, Path]) -> None:
    from harness.cases.schema import load_file
    from harness.frontends.cli import main
    from harness.judge.runner import run_one

    out = saved["root"] / "suite"
    assert main(["extract", str(saved["model"]), "--out", str(out)]) == 0
    cases, errors = load_file(out / "unet.yaml")
    assert not errors, errors
    layers = {case.id: case.layer for case in cases}
    assert layers == {"unet.enc": "Conv2D", "unet.down": "Conv2D", "unet.up": "Conv2DTranspose",
                      "unet.head": "Conv2D"}, layers
    up = next(case for case in cases if case.layer == "Conv2DTranspose")
    assert up.expect["output_shape"] == [1, SIZE, SIZE, FEATURES] and up.config["padding"] == "same"
    for case in cases:
        for engine in ("oracle", "torch"):
            result = run_one(case, engine)
            assert result.verdict == "pass", (case.id, engine, result.message)


def test_correct_port_passes_with_its_crop_read_from_its_forward(good: tuple[int, dict[str, Any], str]) -> None:
    code, result, text = good
    layers = {d["name"]: d for d in result["layers"]}
    assert code == 0 and result["passed"], text
    up = layers["up"]
    assert up["modules"] == ["up", "up_relu"], up["modules"]
    assert up["verdict"] == "pass" and up["isolated"] is not None and up["isolated"] <= 1.0, up
    assert "cropped [[0, 1], [0, 1]] in its forward" in up["layout"], up["layout"]
    assert layers["skip"]["verdict"] == "pass", layers["skip"]   # the concat judged on the port's cropped tensor
    assert all(d["verdict"] == "pass" for d in result["layers"]), [(d["name"], d["cause"]) for d in result["layers"]]


def _bad_weights(saved: dict[str, Path], name: str, change: Any) -> Path:
    import torch

    state = torch.load(saved["weights"], weights_only=True)
    state["up.weight"] = change(state["up.weight"])
    path = saved["root"] / f"{name}.pt"
    torch.save(state, path)
    return path


# bug -> (the port's factory, how its weights are made, the cause (kind, id) at the transposed conv)
BROKEN = {
    "crop_on_the_wrong_side": ("crop", None, ("config", "padding")),
    "crop_by_output_size": ("output_size", None, ("config", "padding")),
    "in_out_swapped": ("good", lambda w: w.transpose(0, 1).contiguous(), ("weights", "in_out_swapped")),
    "kernel_flipped": ("good", lambda w: w.flip(2, 3).contiguous(), ("weights", "kernel_flipped")),
}


@pytest.mark.parametrize("bug", sorted(BROKEN))
def test_broken_port_fails_at_the_transposed_conv_with_its_cause_and_fix(
        saved: dict[str, Path], good: tuple[int, dict[str, Any], str], bug: str) -> None:
    factory, change, cause = BROKEN[bug]
    weights = saved["weights"] if change is None else _bad_weights(saved, bug, change)
    repro = saved["root"] / f"repro-{bug}"
    code, result, text = _diff(saved, factory, "--torch-weights", str(weights), "--repro", str(repro))
    assert code == 1, text
    assert result["culprit"] == "up", f"culprit={result['culprit']}, but should be up [{bug}]\n{text}"
    up = next(d for d in result["layers"] if d["name"] == "up")
    issues = [(i["kind"], i["id"]) for i in up["issues"]]
    assert issues == [cause], f"issues={issues}, but should be {[cause]} [{bug}]"
    assert up["fix"] and up["fixed"] is not None and up["fixed"] <= 1.0, (up["fix"], up["fixed"])
    assert any(line.startswith("FAIL (culprit) up [Conv2DTranspose -> up, up_relu]") for line in text.splitlines())
    others = [d["name"] for d in result["layers"] if d["verdict"] == "fail" and d["name"] != "up"]
    assert others == [], f"also failed={others} [{bug}]"
    if bug.startswith("crop_"):
        assert "crops rows [0, 1], columns [0, 1]" in up["cause"] and "crops rows [1, 0], columns [1, 0]" in up["cause"]
        assert "padding=(1, 1), output_padding=(1, 1)" in up["cause"], up["cause"]
        assert up["fix"].startswith("nn.ConvTranspose2d(..., padding=0, output_padding=0), then y = y[:, :, :-1, :-1] "
                                    "in the forward"), up["fix"]
    if bug == "crop_by_output_size":
        assert "(from its output_size argument)" in up["cause"] and up["fix"].endswith("called without output_size")
    # --repro: the layer as a case (its Keras input and weights), on which the harness's own engines agree.
    from harness.cases.schema import load_file
    from harness.judge.runner import run_one

    cases, errors = load_file(repro / "up.yaml")
    assert not errors and [c.layer for c in cases] == ["Conv2DTranspose"], errors
    assert all(run_one(cases[0], engine).verdict == "pass" for engine in ("oracle", "torch"))


def test_one_dimensional_port_crops_named_and_fixed_with_torchs_own_padding() -> None:
    """Conv1DTranspose at kernel 4, strides 2 'same' crops (1, 1): torch's padding=1 expresses it (the fix names it
    and drops the port's own crop); a port that slices [2:] instead fails there. The harness's own port of the
    layer (its module crops in its forward) passes: its padding attributes are then only noted."""
    from testkit import hand_ports

    hand_ports()
    import keras
    import torch

    from harness import api
    from harness.torch_port import CLASSES

    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((6, 3)), keras.layers.Conv1DTranspose(2, 4, strides=2, padding="same",
                                                                                 name="up1d")])
    kernel, bias = (np.asarray(v) for v in model.get_layer("up1d").get_weights())
    x = np.random.default_rng(3).normal(size=(2, 6, 3)).astype(np.float32)

    class Sliced(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.up = torch.nn.ConvTranspose1d(3, 2, 4, stride=2)
            with torch.no_grad():
                self.up.weight.copy_(torch.from_numpy(kernel.transpose(2, 1, 0).copy()))
                self.up.bias.copy_(torch.from_numpy(bias))

        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return self.up(t)[:, :, 2:]

    result = api.diff(model, Sliced(), x)
    assert result.culprit == "up1d", [(d.name, d.cause) for d in result.layers]
    d = result.layers[0]
    assert [(i.kind, i.id) for i in d.issues] == [("config", "padding")], d.issues
    assert d.fix == "nn.ConvTranspose1d(..., padding=(1,), output_padding=(0,))" and d.fixed is not None \
        and d.fixed <= 1.0, (d.fix, d.fixed)
    ported = CLASSES["Conv1DTranspose"].from_keras(model.get_layer("up1d").get_config(),  # type: ignore[attr-defined]
                                                   {"kernel": kernel, "bias": bias}, in_channels=3)
    result = api.diff(model, ported, x)
    assert result.passed, [(d.name, d.cause) for d in result.layers]


def test_batch_norm_folded_into_a_transposed_conv_is_judged_as_the_fold() -> None:
    """torch's fuse_conv_bn_eval(..., transpose=True) scales a transposed conv's weight per output channel, its
    second axis (in, out, *k): the pair is judged as one unit against the exact fold, as for a conv."""
    from testkit import hand_ports

    hand_ports()
    import keras
    import torch
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    from harness import api

    keras.utils.set_random_seed(2)
    inputs = keras.Input((5, 5, 3))
    x = keras.layers.Conv2DTranspose(4, 4, strides=2, padding="same", name="up")(inputs)
    model = keras.Model(inputs, keras.layers.BatchNormalization(name="bn")(x))
    rng = np.random.default_rng(2)
    model.get_layer("bn").set_weights([rng.uniform(0.5, 2.0, 4), rng.normal(size=4), rng.normal(size=4),
                                       rng.uniform(0.5, 2.0, 4)])
    kernel, bias = model.get_layer("up").get_weights()
    up = torch.nn.ConvTranspose2d(3, 4, 4, stride=2, padding=1).eval()   # Keras's crop (1, 1): torch's padding=1
    bn = torch.nn.BatchNorm2d(4, eps=1e-3).eval()
    with torch.no_grad():
        up.weight.copy_(torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()))
        up.bias.copy_(torch.from_numpy(bias))
        statistics = (bn.weight, bn.bias, bn.running_mean, bn.running_var)
        for tensor, value in zip(statistics, model.get_layer("bn").get_weights()):
            tensor.copy_(torch.from_numpy(value))
    result = api.diff(model, torch.nn.Sequential(fuse_conv_bn_eval(up, bn, transpose=True)),
                      rng.normal(size=(1, 5, 5, 3)).astype(np.float32))
    assert result.passed, [(d.name, d.cause) for d in result.failed]
    (only,) = result.layers
    assert only.kind == "Conv2DTranspose+BatchNormalization" and "folded" in only.note, (only.kind, only.note)
