"""Hostile tensor files, generated here, in every format the harness reads (harness/tensors/files.py,
harness/tensor_readers): pickle payloads, lying headers, truncated bodies, decompression bombs, declared sizes over
the cap, a Lambda in a .keras config. Each is refused at validation (the same checks as at run) with one stable line
naming the case file, the case, the field and the tensor file; no payload runs (each payload is shown live in a
control); a bomb costs bounded memory and time (measured in a subprocess); no file handle outlives a read (an
h5py file left open until interpreter shutdown crashed the process with SIGSEGV)."""
from __future__ import annotations

import json
import os
import pickle
import re
import shlex
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from harness.tensors import files as tensor_files
from harness.errors import CaseError
from harness.judge.runner import make_inputs
from harness.cases.schema import load_file
from testkit import ROOT

CONV = {"id": "c", "layer": "Conv2D", "input_shape": [1, 5, 4, 3], "dtype": "float64",
        "config": {"filters": 4, "kernel_size": [3, 2]}}
KERNEL = (3, 2, 3, 4)
CAP_ENV = "HARNESS_MAX_TENSOR_BYTES"
ADDRESS_RE = re.compile(r"0x[0-9a-fA-F]{4,}| at 0x|object at")


def write_case(folder: Path, weights: dict, name: str = "c.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump({"cases": [{**CONV, "weights": weights}]}, sort_keys=False), encoding="utf-8")
    return path


def refused(folder: Path, spec: dict, weight: str = "kernel") -> CaseError:
    """The case's one error, checked for the common contract: one line naming the YAML, case, field and file."""
    path = write_case(folder, {weight: spec})
    cases, errors = load_file(path)
    assert not cases and len(errors) == 1, f"not refused at validation: {[str(e) for e in errors]}"
    error = errors[0]
    text = str(error)
    assert text.startswith(f"{path}::c: weights.{weight}"), text
    assert Path(spec["file"]).name in error.message, text
    assert "\n" not in text and not ADDRESS_RE.search(text), f"not a stable one-line message: {text!r}"
    return error


class Payload:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def npy_bytes(header: str, data: bytes = b"") -> bytes:
    """A version 1.0 .npy with ``header`` as written (padded the way NumPy pads it)."""
    text = header.encode("latin1")
    pad = 64 - (10 + len(text) + 1) % 64
    text += b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + data


def npz_with(path: Path, members: dict[str, bytes], compress: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compress) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def zeros_member(path: Path, member: str, size: int, others: dict[str, bytes] | None = None,
                 head: bytes = b"") -> Path:
    """A zip whose ``member`` inflates to ``head`` and zero bytes, ``size`` in all (written in chunks: the test never
    holds it)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for name, data in (others or {}).items():
            z.writestr(name, data)
        with z.open(member, "w") as fh:
            fh.write(head)
            size -= len(head)
            chunk = bytes(1 << 20)
            for _ in range(size >> 20):
                fh.write(chunk)
    return path


def lie_about_size(path: Path, member: str, declared: int) -> None:
    """Rewrite the sizes the zip declares for ``member`` (local header and central directory) to ``declared``."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(member)
    start = info.header_offset
    assert data[start:start + 4] == b"PK\x03\x04"
    struct.pack_into("<I", data, start + 22, declared)
    name = member.encode()
    central = data.find(b"PK\x01\x02")
    while central >= 0:
        n = struct.unpack_from("<H", data, central + 28)[0]
        if bytes(data[central + 46:central + 46 + n]) == name:
            struct.pack_into("<I", data, central + 24, declared)
        central = data.find(b"PK\x01\x02", central + 4)
    path.write_bytes(bytes(data))


def run_harness(*args: str, env: dict | None = None, timeout: int = 300) -> tuple[subprocess.CompletedProcess, float,
                                                                                   float]:
    """``python -m harness ARGS`` in a subprocess: (result, peak RSS in MiB, wall seconds). The peak is the child's
    own: RUSAGE_CHILDREN measured in a fresh interpreter that runs only this one child."""
    code = ("import resource, subprocess, sys, time, json\n"
            "t = time.perf_counter()\n"
            "p = subprocess.run([sys.executable, '-m', 'harness', *sys.argv[1:]], capture_output=True, text=True)\n"
            "wall = time.perf_counter() - t\n"
            "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
            "print(json.dumps({'rc': p.returncode, 'out': p.stdout, 'err': p.stderr, 'rss': rss, 'wall': wall}))\n")
    full = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT), **(env or {})}
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT,
                          env=full, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    result = subprocess.CompletedProcess(args, got["rc"], got["out"], got["err"])
    return result, got["rss"], got["wall"]


# ---------------------------------------------------------------- lying and code-bearing .npy headers

def test_an_npy_header_holding_code_is_refused_with_a_stable_message(tmp_path):
    evil = "{'descr': '<f8', 'fortran_order': False, 'shape': (4,) and __import__('os').system('true')}"
    (tmp_path / "evil_header.npy").write_bytes(npy_bytes(evil, bytes(32)))
    first = refused(tmp_path, {"file": "evil_header.npy"}, "bias")
    assert first.field == "weights.bias.file" and "header" in first.message, first
    tensor_files.clear_cache()
    assert str(refused(tmp_path, {"file": "evil_header.npy"}, "bias")) == str(first)


@pytest.mark.parametrize("name, make", [
    ("short.npy", lambda p: p.write_bytes(npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2, 3, 4), }",
                                                    bytes(8)))),
    ("long.npy", lambda p: p.write_bytes(npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2, 3, 4), }",
                                                   bytes(8 * 72 + 8)))),
    ("short.npz", lambda p: npz_with(p, {"kernel.npy": npy_bytes(
        "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2, 3, 4), }", bytes(8))})),
    ("deflated.npz", lambda p: npz_with(p, {"kernel.npy": npy_bytes(
        "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2, 3, 4), }", bytes(8))}, zipfile.ZIP_DEFLATED)),
])
def test_a_header_that_lies_about_the_data_is_refused_at_validation(tmp_path, name, make):
    make(tmp_path / name)
    spec = {"file": name, **({"key": "kernel"} if name.endswith(".npz") else {})}
    error = refused(tmp_path, spec)
    assert error.field == "weights.kernel.file" and "576 bytes" in error.message, error


def test_a_truncated_npz_fails_validate_on_the_command_line(tmp_path):
    npz_with(tmp_path / "w.npz", {"kernel.npy": npy_bytes(
        "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2, 3, 4), }", bytes(8))})
    path = write_case(tmp_path, {"kernel": {"file": "w.npz", "key": "kernel"}})
    done = subprocess.run([sys.executable, "-m", "harness", "validate", str(path)], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{path}::c: weights.kernel.file: " in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_a_zip_member_whose_stream_is_not_its_declared_size_is_refused(tmp_path):
    data = npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2, 3, 4), }", bytes(8 * 72))
    for name, declared in (("shrunk.npz", len(data) - 64), ("grown.npz", len(data) + 64)):
        npz_with(tmp_path / name, {"kernel.npy": data}, zipfile.ZIP_DEFLATED)
        lie_about_size(tmp_path / name, "kernel.npy", declared)
        error = refused(tmp_path, {"file": name, "key": "kernel"})
        assert error.field == "weights.kernel.file", error


# ---------------------------------------------------------------- declared sizes against the cap, every format

def _save_kernel(folder: Path, fmt: str) -> dict:
    """A correct file of each format holding a kernel of 576 bytes (float64 3x2x3x4); its spec."""
    kernel = np.arange(72, dtype=np.float64).reshape(KERNEL)
    if fmt == "npy":
        np.save(folder / "k.npy", kernel)
        return {"file": "k.npy"}
    if fmt == "npz":
        np.savez(folder / "k.npz", kernel=kernel)
        return {"file": "k.npz", "key": "kernel"}
    if fmt == "safetensors":
        from safetensors.numpy import save_file

        save_file({"kernel": kernel}, str(folder / "k.safetensors"))
        return {"file": "k.safetensors", "key": "kernel"}
    if fmt in ("h5", "keras"):
        import h5py

        with h5py.File(folder / "k.weights.h5", "w") as f:
            group = f.create_group("layers/conv2d/vars")
            group.attrs["name"] = "conv"
            group["0"], group["1"] = kernel, np.zeros(4)
        if fmt == "h5":
            return {"file": "k.weights.h5", "layer": "conv", "weight": "kernel"}
        with zipfile.ZipFile(folder / "k.keras", "w") as z:
            z.writestr("config.json", "{}")
            z.write(folder / "k.weights.h5", "model.weights.h5")
        return {"file": "k.keras", "layer": "conv", "weight": "kernel"}
    torch = pytest.importorskip("torch")
    torch.save({"kernel": torch.from_numpy(kernel)}, folder / "k.pt")
    return {"file": "k.pt", "key": "kernel"}


FORMATS = ["npy", "npz", "safetensors", "h5", "keras", "pt"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_checks_the_declared_size_against_the_cap(tmp_path, monkeypatch, fmt):
    spec = _save_kernel(tmp_path, fmt)
    path = write_case(tmp_path, {"kernel": spec})
    cases, errors = load_file(path)
    assert len(cases) == 1 and not errors, [str(e) for e in errors]
    np.testing.assert_array_equal(make_inputs(cases[0]).weights64["kernel"].ravel(), np.arange(72.0))
    tensor_files.clear_cache()
    monkeypatch.setenv(CAP_ENV, "512")   # under the kernel's 576 bytes
    error = refused(tmp_path, spec)
    assert error.field == "weights.kernel.file" and "576 bytes" in error.message and CAP_ENV in error.message, error
    # at run time too (the same check): the case validated under the old cap, the file is read under the new one
    tensor_files.clear_cache()
    with pytest.raises(CaseError, match=CAP_ENV):
        make_inputs(cases[0])


def test_a_huge_declared_shape_is_refused_without_allocating(tmp_path):
    (tmp_path / "huge.npy").write_bytes(npy_bytes(
        "{'descr': '<f8', 'fortran_order': False, 'shape': (1099511627776, 3, 2, 3, 4), }", bytes(64)))
    error = refused(tmp_path, {"file": "huge.npy"})
    assert "over the cap" in error.message, error


# ---------------------------------------------------------------- truncated bodies, every format

def _truncate(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_truncated_file_of_every_format_is_refused_at_validation(tmp_path, fmt):
    spec = _save_kernel(tmp_path, fmt)
    file = tmp_path / spec["file"]
    if fmt in ("npz", "pt", "keras"):   # an archive: cut the member that holds the data, keep the zip valid
        with zipfile.ZipFile(file) as z:
            members = {i.filename: (z.read(i.filename), i.compress_type) for i in z.infolist()}
        data_name = {"npz": "kernel.npy", "keras": "model.weights.h5"}.get(fmt) or \
            next(n for n in members if n.endswith("/data/0"))
        with zipfile.ZipFile(file, "w") as z:
            for name, (data, compress) in members.items():
                z.writestr(name, data[:len(data) // 2] if name == data_name else data, compress_type=compress)
    else:
        _truncate(file, 0.6)
    error = refused(tmp_path, spec)
    assert error.field == "weights.kernel.file", error


# ---------------------------------------------------------------- pickle payloads

def test_pickle_payloads_never_run(tmp_path):
    """A state dict carrying a reduce payload (zip format, legacy format, a bare pickle), an object .npy/.npz:
    refused; the same payload, unpickled, creates the marker (the control)."""
    torch = pytest.importorskip("torch")
    marker = tmp_path / "payload-ran"
    torch.save({"kernel": torch.zeros(KERNEL), "evil": Payload(marker)}, tmp_path / "zip.pt")
    torch.save({"kernel": torch.zeros(KERNEL), "evil": Payload(marker)}, tmp_path / "legacy.pt",
               _use_new_zipfile_serialization=False)
    (tmp_path / "bare.pth").write_bytes(pickle.dumps({"kernel": Payload(marker)}))
    np.save(tmp_path / "obj.npy", np.array([Payload(marker)] * 4, dtype=object), allow_pickle=True)
    np.savez(tmp_path / "obj.npz", kernel=np.array([Payload(marker)] * 4, dtype=object))
    for spec in ({"file": "zip.pt", "key": "kernel"}, {"file": "legacy.pt", "key": "kernel"},
                 {"file": "bare.pth", "key": "kernel"}, {"file": "obj.npy"}, {"file": "obj.npz", "key": "kernel"}):
        error = refused(tmp_path, spec)
        assert error.field == "weights.kernel.file", error
        assert not marker.exists(), f"{spec}: the payload ran"
    zip_error = refused(tmp_path, {"file": "zip.pt", "key": "kernel"})
    assert "posix.system" in zip_error.message, zip_error
    pickle.loads((tmp_path / "bare.pth").read_bytes())   # the control: the payload is live
    assert marker.exists(), "the test's payload does not work, so it proves nothing"


@pytest.mark.parametrize("what", ["storage-numel", "tensor-extent", "dtype", "global"])
def test_a_torch_file_whose_pickle_lies_is_refused(tmp_path, what):
    """The pickle of a zip-format state dict declares its storages and views: each declared size is checked against
    the bytes in the archive before any is read."""
    torch = pytest.importorskip("torch")
    torch.save({"kernel": torch.zeros(KERNEL, dtype=torch.float64)}, tmp_path / "k.pt")
    with zipfile.ZipFile(tmp_path / "k.pt") as z:
        members = {i.filename: z.read(i.filename) for i in z.infolist()}
    name = next(n for n in members if n.endswith("data.pkl"))
    pkl = members[name]
    if what == "storage-numel":   # the storage says 2**40 elements, the archive holds 72
        pkl = pkl.replace(b"K\x48t", b"\x8a\x06\x00\x00\x00\x00\x00\x01t", 1)
    elif what == "tensor-extent":   # the view's shape needs more than the storage's 72 elements
        pkl = pkl.replace(b"K\x03K\x02K\x03K\x04t", b"K\x09K\x02K\x03K\x04t", 1)
    elif what == "dtype":
        pkl = pkl.replace(b"DoubleStorage", b"ObjectStorage", 1)
    else:
        pkl = pkl.replace(b"torch._utils\n_rebuild_tensor_v2", b"torch._utils\n_rebuild_tensor_v9", 1)
    assert pkl != members[name], "the test's edit did not apply"
    members[name] = pkl
    with zipfile.ZipFile(tmp_path / "k.pt", "w") as z:
        for n, data in members.items():
            z.writestr(n, data)
    error = refused(tmp_path, {"file": "k.pt", "key": "kernel"})
    assert error.field == "weights.kernel.file", error


# ---------------------------------------------------------------- bombs: refused at bounded memory and time

BOMB = 256 << 20   # what each bomb inflates to


@pytest.mark.parametrize("fmt", ["npz", "keras"])
def test_a_zip_bomb_is_refused_at_bounded_memory(tmp_path, fmt):
    if fmt == "npz":
        zeros_member(tmp_path / "bomb.npz", "kernel.npy", BOMB)
        spec = {"file": "bomb.npz", "key": "kernel"}
    else:
        zeros_member(tmp_path / "bomb.keras", "model.weights.h5", BOMB, {"config.json": b"{}"})
        spec = {"file": "bomb.keras", "layer": "conv", "weight": "kernel"}
    assert (tmp_path / spec["file"]).stat().st_size < BOMB / 500
    path = write_case(tmp_path, {"kernel": spec})
    done, rss, wall = run_harness("validate", str(path))
    out = done.stdout + done.stderr
    assert done.returncode == 1 and f"{path}::c: weights.kernel.file: " in out and "Traceback" not in out, out
    assert "bomb" in out, out
    assert rss < 150, f"validate peaked at {rss:.0f} MiB on a {BOMB >> 20} MiB bomb"
    assert wall < 30, wall


def test_a_bomb_under_the_ratio_but_over_the_cap_streams_at_bounded_memory(tmp_path):
    """A member declaring (honestly) more than the cap allows: refused from the zip's directory, nothing inflated;
    and one lying about its size (declares what its .npy header needs, inflates to 256 MiB): refused, memory bounded."""
    header = npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2, 3, 4), }")
    zeros_member(tmp_path / "lying.npz", "kernel.npy", BOMB, head=header)
    lie_about_size(tmp_path / "lying.npz", "kernel.npy", len(header) + 576)   # what the header needs
    zeros_member(tmp_path / "big.keras", "model.weights.h5", BOMB, {"config.json": b"{}"})
    for spec, env in (({"file": "lying.npz", "key": "kernel"}, {}),
                      ({"file": "big.keras", "layer": "conv", "weight": "kernel"},
                       {"HARNESS_MAX_INFLATE_RATIO": "100000", "HARNESS_MAX_MEMBER_BYTES": str(64 << 20)})):
        path = write_case(tmp_path, {"kernel": spec})
        done, rss, wall = run_harness("validate", str(path), env=env)
        out = done.stdout + done.stderr
        assert done.returncode == 1 and f"{path}::c: weights.kernel.file: " in out and "Traceback" not in out, out
        assert rss < 150 and wall < 30, (spec, rss, wall)


# ---------------------------------------------------------------- .keras: handles closed, a Lambda never runs, exit 0

def test_no_hdf5_file_stays_open_after_a_case_is_read(tmp_path):
    import h5py

    spec = _save_kernel(tmp_path, "keras")
    h5 = _save_kernel(tmp_path, "h5")
    path = write_case(tmp_path, {"kernel": spec, "bias": {**h5, "weight": "bias"}})
    cases, errors = load_file(path)
    assert len(cases) == 1 and not errors, [str(e) for e in errors]
    make_inputs(cases[0])
    open_files = h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE)
    assert not open_files, f"{len(open_files)} HDF5 files left open (closed only at interpreter shutdown)"


def test_a_case_with_keras_weights_runs_and_exits_zero(tmp_path):
    """A Conv2D saved with model.save: `python -m harness run` prints the verdicts and exits 0 (it crashed with
    SIGSEGV, exit 139, at interpreter shutdown)."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    keras = pytest.importorskip("keras")
    pytest.importorskip("torch")
    model = keras.Sequential([keras.Input((5, 4, 3)), keras.layers.Conv2D(4, (3, 2), name="conv")])
    model.save(tmp_path / "m.keras")
    path = write_case(tmp_path, {"kernel": {"file": "m.keras", "layer": "conv", "weight": "kernel"},
                                 "bias": {"file": "m.keras", "layer": "conv", "weight": "bias"}}, "x.yaml")
    done = subprocess.run([sys.executable, "-m", "harness", "run", str(path), "--engine", "oracle", "--engine",
                           "torch"], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    assert "torch" in done.stdout and "FAIL" not in done.stdout, done.stdout


def test_a_lambda_in_a_keras_config_never_runs(tmp_path):
    """The archive's config.json holds a Lambda whose function creates a marker: reading the weights never reads
    the config; the control (Keras loading it with safe_mode off and calling it) creates the marker."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    keras = pytest.importorskip("keras")
    marker = tmp_path / "lambda-ran"
    code = f"lambda x: (__import__('pathlib').Path({str(marker)!r}).touch(), x)[1]"
    model = keras.Sequential([keras.Input((5, 4, 3)), keras.layers.Conv2D(4, (3, 2), name="conv"),
                              keras.layers.Lambda(eval(code), name="lam")])
    model.save(tmp_path / "lam.keras")
    marker.unlink(missing_ok=True)
    path = write_case(tmp_path, {"kernel": {"file": "lam.keras", "layer": "conv", "weight": "kernel"}})
    cases, errors = load_file(path)
    assert len(cases) == 1 and not errors, [str(e) for e in errors]
    make_inputs(cases[0])
    assert not marker.exists(), "reading the weights ran the Lambda"
    with zipfile.ZipFile(tmp_path / "lam.keras") as z:
        assert "Lambda" in z.read("config.json").decode()
    loaded = keras.saving.load_model(tmp_path / "lam.keras", safe_mode=False)
    loaded(np.zeros((1, 5, 4, 3), np.float32))
    assert marker.exists(), "the test's Lambda does not run when loaded, so it proves nothing"
