"""The model diff against hand-written ports (tests/models/ports/, written apart from the harness): every correct port
passes every mapped layer, and each broken port is named at the right layer with the right cause, whose fix,
applied to that layer alone, makes it pass. torch and keras are imported inside the fixtures."""
from __future__ import annotations

import os
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from testkit import hand_ports

ROOT = Path(__file__).resolve().parents[2]

# bug -> (the Keras layer that must be the culprit, the cause as (kind, id) of one of its issues)
EXPECTED = {
    "bn_eps": ("expanded_conv_depthwise_BN", ("config", "bn_eps")),
    "same_symmetric": ("block_1_pad", ("config", "padding")),
    "kernel_transposed": ("Conv1", ("weights", "kernel_transposed")),
    "relu_not_relu6": ("Conv1_relu", ("config", "activation")),
    "blocks_swapped": ("block_4_expand", ("mapping", "weights_of_another_layer")),
    "missing_bias": ("block1a_se_reduce", ("config", "missing_bias")),
    "multiplier_order": ("dw", ("weights", "multiplier_order")),
    "separable_bias": ("sep", ("config", "separable_bias")),
    "flatten_order": ("dense", ("weights", "flatten_order")),
}


def _ports() -> Any:
    return hand_ports()


@cache
def _keras(name: str) -> Any:
    ports = _ports()
    return ports.keras_model(name, ports.TEST_SIZES[name])


def _input(name: str) -> np.ndarray:
    ports = _ports()
    lo, hi = ports.INPUT_RANGES[name]
    size = ports.TEST_SIZES[name]
    return np.random.default_rng(0).uniform(lo, hi, (1, size, size, 3)).astype(np.float32)


def _diff(name: str, bug: str | None) -> Any:
    from harness import api

    ports = _ports()
    model = _keras(name)
    return api.diff(model, ports.build(name, model, bug=bug), _input(name))


@pytest.mark.parametrize("name", ["small_net", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "xception"])
def test_correct_port_passes_every_mapped_layer(name: str) -> None:
    result = _diff(name, None)
    mapped = [d for d in result.layers if d.modules]
    failed = [(d.name, d.cause) for d in result.failed]
    assert failed == [], f"failed={failed}, but should be none [{name}]"
    assert len(mapped) >= 0.75 * len(result.layers), f"mapped={len(mapped)} of {len(result.layers)} [{name}]"
    judged = [d.isolated for d in mapped if d.isolated is not None]
    assert judged and max(judged) <= 1.0
    assert all(d.kind in ("Add", "Multiply", "Rescaling", "Normalization", "Reshape", "Flatten", "Dropout")
               for d in result.layers if not d.modules), \
        f"unmapped={[(d.name, d.kind) for d in result.layers if not d.modules]} [{name}]"


@pytest.mark.parametrize("bug", sorted(EXPECTED))
def test_broken_port_is_named_at_its_layer_with_its_cause_and_fix(bug: str) -> None:
    ports = _ports()
    name = ports.BUGS[bug][0]
    layer, (kind, cause_id) = EXPECTED[bug]
    result = _diff(name, bug)
    assert result.culprit == layer, f"culprit={result.culprit}, but should be {layer} [{bug}]"
    culprit = next(d for d in result.layers if d.name == layer)
    keys = [(i.kind, i.id) for i in culprit.issues]
    assert (kind, cause_id) in keys, f"issues={keys}, but should hold {(kind, cause_id)} [{bug}]"
    assert culprit.fix, f"fix={culprit.fix!r}, but should be spelled out [{bug}]"
    assert culprit.fixed is not None and culprit.fixed <= 1.0, f"fixed={culprit.fixed}, but should be <= 1 [{bug}]"
    others = [d.name for d in result.failed if d.name != layer]
    # Swapped blocks fail at both blocks; every other bug at its layer alone (no false alarm downstream).
    assert others == (["block_5_expand"] if bug == "blocks_swapped" else []), f"also failed={others} [{bug}]"


def test_momentum_alone_passes_with_a_note() -> None:
    result = _diff("mobilenet_v2", "bn_momentum")
    assert result.passed
    notes = {(i.kind, i.id) for d in result.layers for i in d.issues}
    assert ("info", "bn_momentum") in notes


def _port_file(tmp_path: Path, factories: dict[str, str]) -> Path:
    """A port file whose factories build the hand ports (``name: 'PORT_NAME' or "PORT_NAME', bug='BUG'"``)."""
    port = tmp_path / "port.py"
    port.write_text("import sys\n" f"sys.path.insert(0, {str(ROOT / 'tests' / 'models')!r})\n" "import ports\n"
                    + "".join(f"def {name}():\n    return ports.PORTS[{args.split(',')[0]}].Port({args.partition(',')[2]})\n"
                              for name, args in factories.items()))
    return port


def test_cli_exit_codes_and_transfer(tmp_path: Path) -> None:
    """`python -m harness diff`: 0 for a correct port (weights carried across by --transfer-weights), 1 for a broken
    one with the culprit on its own line, 2 for a usage error."""
    _ports()
    port = _port_file(tmp_path, {"good": "'mobilenet_v2'", "relu": "'mobilenet_v2', bug='relu_not_relu6'"})
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "harness", "diff", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)

    good = run("mobilenet_v2", f"{port}:good", "--input-size", "32", "--transfer-weights",
               "--save-weights", "w.pt", "--json", "d.json", "--html", "d.html")
    assert good.returncode == 0, good.stdout[-2000:] + good.stderr[-2000:]
    assert (tmp_path / "w.pt").stat().st_size > 0 and "<table>" in (tmp_path / "d.html").read_text()
    again = run("mobilenet_v2", f"{port}:good", "--input-size", "32", "--torch-weights", "w.pt")
    assert again.returncode == 0, again.stdout[-2000:]
    bad = run("mobilenet_v2", f"{port}:relu", "--input-size", "32", "--transfer-weights")
    assert bad.returncode == 1, bad.stdout[-2000:] + bad.stderr[-2000:]
    assert any(line.startswith("FAIL (culprit) Conv1_relu") and "relu6" in line for line in bad.stdout.splitlines())
    usage = run("mobilenet_v2")
    assert usage.returncode == 2 and "usage" in usage.stderr


def test_cli_repro_of_a_failing_conv_runs_as_a_case(tmp_path: Path) -> None:
    """--repro writes the failing layer as a case (its Keras input and weights): valid, and the harness's own
    engines agree on it (the fault is the port's, not the layer's)."""
    _ports()
    port = _port_file(tmp_path, {"nobias": "'efficientnet_b0', bug='missing_bias'"})
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}

    def harness(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "harness", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)

    done = harness("diff", "efficientnet_b0", f"{port}:nobias", "--input-size", "32", "--transfer-weights",
                   "--repro", "repro")
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert "FAIL (culprit) block1a_se_reduce" in done.stdout and "missing_bias" not in done.stderr
    case = tmp_path / "repro" / "block1a_se_reduce.yaml"
    assert case.is_file() and (tmp_path / "repro" / "block1a_se_reduce.npz").is_file(), done.stdout[-2000:]
    ran = harness("run", str(case), "--engine", "oracle", "--engine", "torch")
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]


def test_batch_norm_folded_into_the_conv_is_judged_as_the_fold() -> None:
    """A converter's (or torch.fx's) fold of a BatchNormalization into the conv before it is the same function:
    the pair is judged as one unit against the exact fold, not failed as a conv with wrong weights."""
    import torch
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    from harness import api

    ports = _ports()
    model = _keras("mobilenet_v2")
    port = ports.build("mobilenet_v2", model)
    named = dict(port.named_modules())
    order = list(named)
    conv_name = next(n for n in order if isinstance(named[n], torch.nn.Conv2d))
    bn_name = next(n for n in order[order.index(conv_name):] if isinstance(named[n], torch.nn.BatchNorm2d))

    def put(path: str, module: torch.nn.Module) -> None:
        parent, _, leaf = path.rpartition(".")
        setattr(port.get_submodule(parent) if parent else port, leaf, module)

    put(conv_name, fuse_conv_bn_eval(named[conv_name], named[bn_name]))
    put(bn_name, torch.nn.Identity())
    result = api.diff(model, port, _input("mobilenet_v2"))
    assert result.passed, [(d.name, d.cause) for d in result.failed]
    first = next(d for d in result.layers if d.modules)
    assert first.kind == "Conv2D+BatchNormalization" and "folded" in first.note, (first.kind, first.note)


def test_map_overrides_a_pair_and_names_what_it_cannot_find() -> None:
    """--map (overrides): the swapped blocks' port passes once each Keras layer is mapped to the module that holds
    its weights; a name on either side that does not exist is an error naming it."""
    from harness import api

    ports = _ports()
    model = _keras("mobilenet_v2")
    port = ports.build("mobilenet_v2", model, bug="blocks_swapped")
    swapped = {"block_4_expand": ["blocks.5.expand"], "block_5_expand": ["blocks.4.expand"]}
    result = api.diff(model, port, _input("mobilenet_v2"), overrides=swapped)
    pairs = {d.name: d.modules for d in result.layers if d.name in swapped}
    assert pairs == swapped, pairs
    assert not any(d.name in swapped for d in result.failed), [(d.name, d.cause) for d in result.failed]
    with pytest.raises(ValueError, match="'block_99' is not a layer of the Keras model"):
        api.diff(model, port, _input("mobilenet_v2"), overrides={"block_99": ["blocks.4.expand"]})
    with pytest.raises(ValueError, match="no torch module of that name"):
        api.diff(model, port, _input("mobilenet_v2"), overrides={"block_4_expand": ["blocks.99"]})


@pytest.mark.parametrize("seed", range(4))
def test_transfer_reads_the_flatten_order_after_carrying_the_layers_before_it(seed: int) -> None:
    """--transfer-weights into a freshly built port: the Dense after small_net's Flatten (6 x 6 x 6: every order has
    one shape) gets its rows in the port's flatten order, read from the port's values once the layers before it
    carry the Keras weights. Read from the untransferred port, the order depended on its random init (the same
    entry passed or failed from one process to the next)."""
    import torch

    from harness.frontends.model_session import transfer
    from harness.keras_layer import import_keras
    from harness.models import streams
    from harness.models.capture import capture_keras, capture_torch
    from harness.models.diff import diff_captured

    ports = _ports()
    model, x = _keras("small_net"), _input("small_net")
    torch.manual_seed(seed)
    port = ports.PORTS["small_net"].Port(ports.TEST_SIZES["small_net"]).eval()
    nodes = capture_keras(import_keras(), model, x)
    transfer(nodes, port, x, True, {})
    calls, out = capture_torch(port, streams.channels_first(x))
    result = diff_captured(nodes, calls, out, True)
    dense = next(d for d in result.layers if d.name == "dense")
    assert result.passed, [(d.name, d.cause) for d in result.failed]
    assert dense.verdict == "pass" and dense.layout.startswith("flattened"), (dense.verdict, dense.layout)
