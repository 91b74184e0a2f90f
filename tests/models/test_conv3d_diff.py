"""Conv3D through the model diff: a small Keras volumetric net (Conv3D 'same' stride 1 with BatchNormalization and
relu, a MaxPooling3D, a Conv3D 'same' at stride 2 on an even size, GlobalAveragePooling3D, Dense) against a
hand-written torch port. The mapping asks the layer families for the conv roles (nothing names Conv3D in the model
diff), so the 3-D layers map and are judged like their 2-D kin: the correct port passes (exit 0); one with
torch's symmetric padding=1 at the stride-2 conv (TensorFlow pads (0, 1) there) fails at that layer with the
padding cause and a fix that passes; one with BatchNorm eps 1e-5 fails at the norm. torch and keras are imported
inside the fixtures and tests."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

SIZE, IN = 6, 2

# The torch port, written apart from the harness: TensorFlow's 'same' at kernel 3, stride 2 on an even size pads
# (0, 1) on each axis, so the port pads explicitly; the 'symmetric' bug is the usual padding=1.
PORT = '''
import torch
from torch import nn


class Port(nn.Module):
    def __init__(self, bug=None):
        super().__init__()
        self.bug = bug
        self.stem = nn.Conv3d(2, 4, 3, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm3d(4, eps=1e-5 if bug == "eps" else 1e-3)
        self.stem_relu = nn.ReLU()
        self.pool = nn.MaxPool3d(1)
        if bug == "symmetric":
            self.down = nn.Conv3d(4, 3, 3, stride=2, padding=1)
        else:
            self.down_pad = nn.ZeroPad3d((0, 1, 0, 1, 0, 1))
            self.down = nn.Conv3d(4, 3, 3, stride=2)
        self.down_relu = nn.ReLU()
        self.gap = nn.AdaptiveAvgPool3d(1)
        self.head = nn.Linear(3, 2)

    def forward(self, x):
        x = self.pool(self.stem_relu(self.stem_bn(self.stem(x))))
        if self.bug != "symmetric":
            x = self.down_pad(x)
        x = self.gap(self.down_relu(self.down(x))).flatten(1)
        return self.head(x)


def good():
    return Port()


def symmetric():
    return Port("symmetric")


def eps():
    return Port("eps")
'''


def volumetric(path: Path) -> None:
    """The Keras net, saved to ``path``; BatchNorm statistics and biases drawn (fresh ones hide an eps bug)."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(3)
    inputs = keras.Input((SIZE, SIZE, SIZE, IN), name="input")
    x = layers.Conv3D(4, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    x = layers.MaxPooling3D(1, name="pool")(x)
    x = layers.Conv3D(3, 3, strides=2, padding="same", activation="relu", name="down")(x)
    x = layers.GlobalAveragePooling3D(name="gap")(x)
    outputs = layers.Dense(2, name="head")(x)
    model = keras.Model(inputs, outputs, name="volumetric")
    rng = np.random.default_rng(3)
    for layer in model.layers:
        for v in layer.weights:
            name = str(getattr(v, "path", v.name)).rsplit("/", 1)[-1]
            if name in ("bias", "beta", "moving_mean"):
                v.assign(rng.normal(0.0, 0.25, tuple(v.shape)).astype(np.float32))
            elif name in ("gamma", "moving_variance"):
                # variance near 0 makes eps 1e-3 against 1e-5 a visible difference
                v.assign(rng.uniform(0.001, 0.01, tuple(v.shape)).astype(np.float32))
    model.save(path)


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from testkit import hand_ports

    hand_ports()   # skips without torch or keras; sets the Keras backend
    root = tmp_path_factory.mktemp("conv3d")
    volumetric(root / "net.keras")
    (root / "port.py").write_text(PORT)
    return {"root": root, "model": root / "net.keras", "port": root / "port.py", "weights": root / "w.pt"}


def _diff(saved: dict[str, Path], factory: str, *args: str) -> tuple[int, dict[str, Any], str]:
    from testkit import diff_cli

    return diff_cli(saved, factory, *args)


@pytest.fixture(scope="module")
def good(saved: dict[str, Path]) -> tuple[int, dict[str, Any], str]:
    return _diff(saved, "good", "--transfer-weights", "--save-weights", str(saved["weights"]))


def test_the_correct_3d_port_passes_every_layer_mapped(good: tuple[int, dict[str, Any], str]) -> None:
    code, result, text = good
    layers = {d["name"]: d for d in result["layers"]}
    assert code == 0 and result["passed"], text
    assert layers["stem"]["kind"] == "Conv3D" and layers["stem"]["modules"] == ["stem"], layers["stem"]
    assert layers["down"]["modules"] == ["down_pad", "down", "down_relu"], layers["down"]["modules"]
    for name in ("stem", "stem_bn", "pool", "down", "gap", "head"):
        d = layers[name]
        assert d["verdict"] == "pass" and d["isolated"] is not None and d["isolated"] <= 1.0, (name, d)
    assert result["torch_unmapped"] == [], result["torch_unmapped"]


# bug -> (the culprit, its cause (kind, id))
BROKEN = {"symmetric": ("down", ("config", "padding")), "eps": ("stem_bn", ("config", "bn_eps"))}


@pytest.mark.parametrize("bug", sorted(BROKEN))
def test_a_broken_3d_port_fails_at_its_layer_with_the_cause_and_a_fix_that_passes(
        saved: dict[str, Path], good: tuple[int, dict[str, Any], str], bug: str) -> None:
    culprit, cause = BROKEN[bug]
    state_path = saved["weights"]
    if bug == "symmetric":   # the port's conv has no pad module: the same parameters, other names absent
        import torch

        state = torch.load(saved["weights"], weights_only=True)
        state_path = saved["root"] / "symmetric.pt"
        torch.save(state, state_path)
    code, result, text = _diff(saved, bug, "--torch-weights", str(state_path))
    assert code == 1, text
    assert result["culprit"] == culprit, f"culprit={result['culprit']}, but should be {culprit} [{bug}]\n{text}"
    layer = next(d for d in result["layers"] if d["name"] == culprit)
    issues = [(i["kind"], i["id"]) for i in layer["issues"] if i["kind"] != "info"]   # momentum: inert, a note
    assert issues == [cause], f"issues={issues}, but should be {[cause]} [{bug}]"
    assert layer["fix"] and layer["fixed"] is not None and layer["fixed"] <= 1.0, (layer["fix"], layer["fixed"])
