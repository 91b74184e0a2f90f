"""python -m harness extract on transposed convs: Conv1DTranspose and Conv3DTranspose layers (output_padding, a fused
activation, no bias) become cases like the other conv families', which pass in the oracle and torch. No dilation:
TensorFlow's Eigen kernels refuse it (a registered refusal), and extract runs the model. The Conv2DTranspose of a
U-Net decoder is tests/models/test_transpose_diff.py's."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.cases.schema import load_file
from harness.frontends.cli import main
from harness.judge.runner import run_one


def _models(root: Path) -> dict[str, Path]:
    """A 1D and a 3D model, each with transposed convs between plain ones, saved as .keras."""
    keras = pytest.importorskip("keras")
    L = keras.layers
    keras.utils.set_random_seed(11)
    one = keras.Sequential([
        keras.Input((7, 3)),
        L.Conv1D(4, 3, padding="same", name="c1"),                                                    # 7x4
        L.Conv1DTranspose(3, 3, strides=2, output_padding=1, activation="relu", name="up1"),         # 16x3
        L.Conv1DTranspose(2, 2, padding="same", use_bias=False, name="nobias1"),                     # 16x2
    ], name="one")
    three = keras.Sequential([
        keras.Input((3, 4, 3, 2)),
        L.Conv3DTranspose(2, (2, 3, 2), strides=(2, 1, 2), padding="same", name="up3"),              # 6x4x6x2
        L.Conv3D(3, 1, name="c3"),
    ], name="three")
    paths = {}
    for model in (one, three):
        paths[model.name] = root / f"{model.name}.keras"
        model.save(paths[model.name])
    return paths


def test_transposed_convs_are_extracted_and_pass_in_oracle_and_torch(tmp_path: Path) -> None:
    expected = {"one": {"one.c1": "Conv1D", "one.up1": "Conv1DTranspose", "one.nobias1": "Conv1DTranspose"},
                "three": {"three.up3": "Conv3DTranspose", "three.c3": "Conv3D"}}
    for name, path in _models(tmp_path).items():
        out = tmp_path / name
        assert main(["extract", str(path), "--out", str(out)]) == 0
        text = (out / f"{name}.yaml").read_text()
        assert "  # skipped " not in text, text
        entries = {c["id"]: c for c in yaml.safe_load(text)["cases"]}
        assert {k: c["layer"] for k, c in entries.items()} == expected[name]
        cases, errors = load_file(out / f"{name}.yaml")
        assert not errors, errors
        for case in cases:
            for engine in ("oracle", "torch"):
                result = run_one(case, engine)
                assert result.verdict == "pass", (case.id, engine, result.message)
    one = yaml.safe_load((tmp_path / "one" / "one.yaml").read_text())["cases"]
    up1, nobias1 = one[1], one[2]
    assert up1["config"]["output_padding"] == [1] and up1["config"]["activation"] == "relu"
    assert up1["expect"] == {"output_shape": [1, 16, 3], "params": 3 * 3 * 4 + 3}
    assert nobias1["config"]["kernel_size"] == [2] and nobias1["config"]["use_bias"] is False
    assert list(nobias1["weights"]) == ["kernel"]
    up3 = yaml.safe_load((tmp_path / "three" / "three.yaml").read_text())["cases"][0]
    assert up3["config"]["output_padding"] is None and up3["expect"]["output_shape"] == [1, 6, 4, 6, 2]
