"""Engine workers: isolated engines run in one long-lived child process each; outputs, errors, crashes and hangs
cross back as they would in-process (fakes in fake_worker_engines.py, registered by patching the registry)."""
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from harness import engines
from harness.frontends.cli import build_parser
from harness.engines import protocol
from harness.engines.base import EngineOutput
from harness.engines.worker import WorkerEngine
from harness.judge.runner import make_inputs, request, run_one
from harness.cases.selection import select_engines
from harness.tensors.values import numpy_dtype

import fake_worker_engines as fakes
from testkit import ROOT, close_workers, load_case

FAKES = {name: f"tests.fake_worker_engines:{cls}" for name, cls in
         (("fake", "Fake"), ("hasty", "Hasty"), ("missing", "InMissingVenv"), ("invenv", "InVenv"),
          ("slowstart", "SlowStart"))}


@pytest.fixture(scope="module", autouse=True)
def registered():
    """The fakes as built-ins for this module; one worker per fake serves all its tests, stopped at the end."""
    with pytest.MonkeyPatch.context() as patch:
        for name, spec in FAKES.items():
            patch.setitem(engines.BUILTIN, name, spec)
        yield
        close_workers(*FAKES, "fp")
        engines._plugins.pop("fp", None)


def _case(tmp_path, layer="DepthwiseConv2D", shape=(1, 8, 8, 3), dtype="float32", options=None, name="c",
          config="{kernel_size: 3}"):
    text = (f"cases:\n  - id: {name}\n    layer: {layer}\n    input_shape: {list(shape)}\n    dtype: {dtype}\n"
            f"    config: {config}\n")
    if options:
        text += f"    engine_options: {options}\n"
    return load_case(tmp_path, text, f"{name}.yaml")


def _misbehaving(tmp_path, engine, action):
    return _case(tmp_path, options=f"{{{engine}: {{action: {action}}}}}", name=f"{engine}-{action}")


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
def test_output_crosses_bit_for_bit(tmp_path, dtype):
    case = _case(tmp_path, layer="SeparableConv2D", shape=(1, 6, 5, 3), dtype=dtype,
                 config="{filters: 2, kernel_size: 2, depth_multiplier: 2}")
    req = request(case, "fake", make_inputs(case))
    there, here = engines.get("fake").run(req), fakes.Fake().run(req)
    assert there.y.dtype == numpy_dtype(dtype), f"y dtype={there.y.dtype}, but should be {dtype}"
    assert _same(there.y, here.y), f"y differs from the in-process engine's in {dtype}"
    assert _same(there.gauge_extra, here.gauge_extra)
    assert list(there.intermediate) == list(here.intermediate)
    assert all(_same(there.intermediate[k], here.intermediate[k]) for k in here.intermediate)
    assert (there.params, there.weight_shapes, there.notes, there.extra_roundings) == \
        (here.params, here.weight_shapes, here.notes, here.extra_roundings)
    assert there.facts["onednn"] is False and there.facts["pid"] != os.getpid()


def test_special_values_cross_bit_for_bit():
    bits = np.array([0x0000, 0x8000, 0x0001, 0x7C00, 0xFC00, 0x7E01, 0x7F81, 0x3C00], dtype=np.uint16)
    arrays = {"f16": bits.view(np.float16), "bf16": bits.view(numpy_dtype("bfloat16")),
              "f32": np.array([-0.0, np.inf, np.nan, 1e-45], np.float32),
              "f64": np.arange(12.0).reshape(3, 4)[:, ::2],   # not contiguous
              "scalar": np.array(2.5), "empty": np.zeros((0, 3), np.float16), "ints": np.arange(3)}
    frame = protocol.pack({"k": 1}, arrays)
    head_len, _ = protocol.lengths(frame[:protocol.PREFIX.size])
    start = protocol.PREFIX.size
    header, back = protocol.unpack(frame[start:start + head_len], frame[start + head_len:])
    assert header == {"k": 1}
    for key, value in arrays.items():
        assert _same(back[key], value), f"{key} changed crossing: {value!r} -> {back[key]!r}"


def _crossed(arrays: dict) -> dict:
    frame = protocol.pack({}, arrays)
    head_len, _ = protocol.lengths(frame[:protocol.PREFIX.size])
    start = protocol.PREFIX.size
    return protocol.unpack(frame[start:start + head_len], frame[start + head_len:])[1]


@pytest.mark.parametrize("name", ["float16", "bfloat16", "float32", "float64", "int8", "int32", "int64", "uint8",
                                  "uint16", "bool"])
def test_every_dtype_crosses_bit_for_bit_from_any_dtype_instance(name):
    # An unpickled array's dtype is an equal copy, not NumPy's shared instance; a big-endian one is equal in
    # value only. Each crosses as the same bits, and arrives with the one canonical dtype of its name.
    dtype = numpy_dtype(name)
    bits = np.arange(-20, 20, dtype=np.int64).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    value = np.frombuffer(bits.tobytes(), np.uint8)[:40 * dtype.itemsize].view(dtype).reshape(2, -1)
    if name == "bool":
        value = (np.arange(40) % 3 == 0).reshape(2, -1)
    forms = {"shared": value, "unpickled": pickle.loads(pickle.dumps(value)), "strided": value[:, ::3],
             "big-endian": value.astype(dtype.newbyteorder(">"))}
    assert forms["unpickled"].dtype is not dtype or dtype.kind == "V", "the test needs a copy of the dtype"
    back = _crossed(forms)
    for form, sent in forms.items():
        assert back[form].dtype is dtype, f"{form} {name} arrived as {back[form].dtype!r}, not the canonical dtype"
        expect = np.ascontiguousarray(sent).astype(dtype)
        assert back[form].shape == sent.shape and back[form].tobytes() == expect.tobytes(), f"{form} {name} changed"
    # And a whole answer, as a plug-in returns it, crosses back as itself.
    out = EngineOutput(y=forms["unpickled"], params=3)
    header, arrays = _crossed_frame(protocol.output_frame(out))
    assert _same(protocol.output_of(header, arrays).y, value)


def _crossed_frame(frame: bytes):
    head_len, _ = protocol.lengths(frame[:protocol.PREFIX.size])
    start = protocol.PREFIX.size
    return protocol.unpack(frame[start:start + head_len], frame[start + head_len:])


def unpickled(layer, config, x, weights):
    """A plug-in whose answer comes out of pickle (a cache, a multiprocessing pool): an equal dtype, not
    NumPy's shared instance."""
    return pickle.loads(pickle.dumps(fakes.answer(layer, config, x, weights).y))


def test_a_plugins_unpickled_answer_crosses_from_its_worker(tmp_path, monkeypatch):
    monkeypatch.delenv(engines.PYTHONS_VARIABLE, raising=False)
    select_engines(["up=tests.engines.test_worker:unpickled"], [f"up={sys.executable}"])
    try:
        for dtype in ("float32", "bfloat16", "float16"):
            result = run_one(_case(tmp_path, dtype=dtype, name=f"up-{dtype}"), "up")
            assert result.verdict == "pass", f"{dtype}: verdict={result.verdict} [{result.message}]"
    finally:
        close_workers("up")
        engines._plugins.pop("up", None)


def test_what_cannot_cross_is_refused_by_name():
    for value in (np.array(["a"]), np.zeros(2, dtype=[("a", "f4")]), np.array([object()])):
        with pytest.raises(TypeError, match=r"array 'y' of dtype .* cannot cross to the worker"):
            protocol.pack({}, {"y": value})


def test_isolation_environment_is_the_workers_alone(tmp_path):
    case = _case(tmp_path)
    out = engines.get("fake").run(request(case, "fake", make_inputs(case)))
    assert out.facts["variable"] == "set-by-isolation", out.facts
    assert engines.get("fake").worker_environment() == {"fake": {"variable": "set-by-isolation"}}
    assert fakes.VARIABLE not in os.environ


def test_one_worker_serves_many_requests(tmp_path):
    case = _case(tmp_path)
    pids = {run_one(case, "fake").facts["pid"] for _ in range(20)}
    assert pids == {engines.get("fake").pid}, f"worker pids={pids}, but should be one: {engines.get('fake').pid}"


def test_refusal_skip_and_crash_cross_as_themselves(tmp_path):
    rejected = run_one(_misbehaving(tmp_path, "fake", "reject"), "fake")
    assert rejected.verdict == "rejected" and "refuses this" in rejected.message, rejected.message
    assert rejected.facts == {"onednn": False, "fake_fact": 7}, rejected.facts
    for action in ("skip", "not_implemented"):
        skipped = run_one(_misbehaving(tmp_path, "fake", action), "fake")
        assert skipped.verdict == "skip", f"{action}: verdict={skipped.verdict} [{skipped.message}]"
    crashed = run_one(_misbehaving(tmp_path, "fake", "crash"), "fake")
    assert crashed.verdict == "error" and "ValueError: the fake port crashed" in crashed.message, crashed.message
    assert "in the engine worker" in crashed.details and "in act" in crashed.details, crashed.details


def test_a_workers_third_party_seconds_cross_back_with_its_answer_and_its_refusal(tmp_path):
    run_one(_case(tmp_path), "fake")   # the worker started: its start is not what is measured here
    for action, verdict in (("spend", "pass"), ("spend-reject", "rejected"), ("none", "pass")):
        result = run_one(_misbehaving(tmp_path, "fake", action), "fake")
        assert result.verdict == verdict, f"{action}: verdict={result.verdict} [{result.message}]"
        spent = fakes.SPENT if action != "none" else 0.0
        # The worker counts only its third_party() block: the sleep, and nothing of the oracle it also computes.
        assert spent <= result.third_party_s < spent + 0.1, f"{action}: third_party_s={result.third_party_s}"
        assert result.third_party_s <= result.duration_s, (result.third_party_s, result.duration_s)


def test_warmed_workers_build_their_engines_in_parallel_and_the_first_item_reads_it(tmp_path):
    close_workers("slowstart", "missing")
    engines.warm(["slowstart", "missing", "oracle"])   # a missing venv is left for its first item to report
    pid = engines.get("slowstart").pid
    assert pid is not None, "warm starts the worker"
    # The caller's own work, while the worker builds its engine (the worker's start itself is warm's: under load it
    # may take longer than the build, so only what follows it is timed).
    time.sleep(fakes.SlowStart.START_S + 1.0)
    result = run_one(_case(tmp_path), "slowstart")
    assert result.verdict == "pass" and result.facts["pid"] == pid, (result.verdict, result.facts, pid)
    # the engine was built during the sleep: the item did not wait for it, and its seconds are not the item's
    assert result.duration_s < fakes.SlowStart.START_S, result.duration_s
    assert result.third_party_s <= result.duration_s, (result.third_party_s, result.duration_s)
    missing = run_one(_case(tmp_path), "missing")
    assert missing.verdict == "skip" and "make engine-no-such-venv" in missing.message, missing.message


def test_stray_output_does_not_corrupt_the_protocol(tmp_path):
    chatty = run_one(_misbehaving(tmp_path, "fake", "chatter"), "fake")
    assert chatty.verdict == "pass", chatty.message


@pytest.mark.parametrize("action, death", [("segfault", "signal 11 SIGSEGV"), ("exit", "exit status 3")])
def test_a_crash_is_an_error_and_the_next_case_gets_a_fresh_worker(tmp_path, action, death):
    before = run_one(_case(tmp_path), "fake").facts["pid"]
    crashed = run_one(_misbehaving(tmp_path, "fake", action), "fake")
    assert crashed.verdict == "error", f"verdict={crashed.verdict} [{crashed.message}]"
    assert f"worker for fake died ({death}) while running DepthwiseConv2D" in crashed.message, crashed.message
    after = run_one(_case(tmp_path), "fake")
    assert after.verdict == "pass" and after.facts["pid"] != before, (after.verdict, after.message)


def test_a_hang_times_out_and_the_next_case_gets_a_fresh_worker(tmp_path):
    before = run_one(_case(tmp_path), "hasty").facts["pid"]
    start = time.monotonic()
    hung = run_one(_misbehaving(tmp_path, "hasty", "hang"), "hasty")
    took = time.monotonic() - start
    assert hung.verdict == "error" and "timed out after 2 s" in hung.message, hung.message
    assert took < 6, f"the hang took {took:.1f} s to be reported, but the timeout is 2 s"
    with pytest.raises(ProcessLookupError):
        os.kill(before, 0)   # killed, and reaped
    after = run_one(_case(tmp_path), "hasty")
    assert after.verdict == "pass" and after.facts["pid"] != before, (after.verdict, after.message)


def test_a_missing_venv_is_a_skip_naming_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_ENGINES_DIR", str(tmp_path))
    result = run_one(_case(tmp_path), "missing")
    assert result.verdict == "skip", f"verdict={result.verdict} [{result.message}]"
    assert "runs in its own venv" in result.message and "run `make engine-no-such-venv`" in result.message


def test_the_venv_interpreter_runs_the_worker(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_ENGINES_DIR", str(tmp_path))
    python = tmp_path / "fakevenv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\necho 'numpy is missing' >&2\nexit 3\n")   # a venv whose install failed
    python.chmod(0o755)
    broken = run_one(_case(tmp_path), "invenv")
    assert broken.verdict == "skip", f"verdict={broken.verdict} [{broken.message}]"
    assert "could not start (exit status 3: numpy is missing); rebuild its venv: run `make engine-fakevenv`" in \
        broken.message, broken.message
    python.write_text(f"#!/bin/sh\necho 'a greeting from sitecustomize'\nexec {sys.executable} \"$@\"\n")
    garbled = run_one(_case(tmp_path), "invenv")   # stdout written to before the worker could take it over
    assert garbled.verdict == "skip" and "not a frame: it starts with b'a greeting" in garbled.message, \
        garbled.message
    python.write_text(f"#!/bin/sh\nexport {fakes.VARIABLE}=via-venv\nexec {sys.executable} \"$@\"\n")
    fixed = run_one(_case(tmp_path), "invenv")
    assert fixed.verdict == "pass" and fixed.facts["variable"] == "via-venv", (fixed.message, fixed.facts)


def test_plugin_on_another_interpreter(tmp_path, monkeypatch):
    monkeypatch.delenv(engines.PYTHONS_VARIABLE, raising=False)
    with pytest.raises(ValueError, match="does not exist"):
        select_engines([], ["fp=/no/such/python"])
    with pytest.raises(ValueError, match="no plug-in engine 'zz'"):
        select_engines([], [f"zz={sys.executable}"])
    with pytest.raises(ValueError, match="built-in"):
        select_engines([], [f"torch={sys.executable}"])
    chosen = select_engines(["oracle", "fp=tests.fake_worker_engines:plugin"], [f"fp={sys.executable}"])
    assert chosen == ["oracle", "fp"] and isinstance(engines.get("fp"), WorkerEngine)
    result = run_one(_case(tmp_path), "fp")
    assert result.verdict == "pass" and result.facts["pid"] == engines.get("fp").pid != os.getpid()
    # A fresh process gets the same interpreter: from the environment it inherits, and from its command line.
    assert engines.cli_args("fp") == ["--engine", "fp=tests.fake_worker_engines:plugin",
                                      "--engine-python", f"fp={sys.executable}"]
    assert sys.executable in os.environ[engines.PYTHONS_VARIABLE]
    monkeypatch.delenv(engines.PYTHONS_VARIABLE)
    build_parser().parse_args(["run", "--engine-python", f"fp={sys.executable}"])   # the CLI registers it too
    assert engines.plugin_python("fp") == sys.executable


def test_workers_end_with_the_harness(tmp_path):
    script = textwrap.dedent(f"""\
        import sys
        from harness import engines
        from harness.judge.runner import make_inputs, request
        from harness.cases.schema import load_file
        engines.BUILTIN["fake"] = {FAKES["fake"]!r}
        case = load_file({str(_case(tmp_path).file)!r})[0][0]
        engines.get("fake").run(request(case, "fake", make_inputs(case)))
        print(engines.get("fake").pid, flush=True)
        if sys.argv[1] == "hang":
            input()
        """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script, "exit"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    _assert_gone(int(done.stdout.split()[-1]), "after its harness exited")
    proc = subprocess.Popen([sys.executable, "-c", script, "hang"], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    pid = int(proc.stdout.readline())
    proc.kill()   # no atexit: the worker sees its stdin close
    proc.wait()
    _assert_gone(pid, "after its harness was killed")


def _assert_gone(pid: int, when: str) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    pytest.fail(f"worker {pid} still ran {when}")


def test_under_xdist_each_worker_has_its_own_child(pytester, monkeypatch):
    pytester.makeconftest(textwrap.dedent(f"""\
        from harness import engines
        engines.BUILTIN["fake"] = {FAKES["fake"]!r}
        """))
    cases = "".join(f"  - {{id: c{i}, layer: DepthwiseConv2D, input_shape: [1, 6, 6, 2], config: {{kernel_size: "
                    f"{1 + i % 3}}}, seed: {i}}}\n" for i in range(8))
    pytester.makefile(".yaml", cases="cases:\n" + cases)
    log = pytester.path / "requests.log"
    monkeypatch.setenv(fakes.LOG, str(log))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.delenv(engines.PYTHONS_VARIABLE, raising=False)
    result = pytester.runpytest_subprocess(
        "cases.yaml", "-n", "2", "-p", "no:cacheprovider", "--engine", "oracle", "--engine", "fake",
        "--engine", "fp=tests.fake_worker_engines:plugin", "--engine-python", f"fp={sys.executable}")
    result.assert_outcomes(passed=24)
    seen: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for line in log.read_text().splitlines():
        xdist_worker, engine, pid, parent = line.split()
        seen.setdefault((xdist_worker, engine), set()).add((pid, parent))
    assert {w for w, _ in seen} == {"gw0", "gw1"}, f"requests came from {sorted(seen)}, but should be gw0 and gw1"
    for key, children in seen.items():
        assert len(children) == 1, f"{key} was served by {children}, but should be one child"
    for engine in ("fake", "plugin"):
        (gw0,), (gw1,) = seen[("gw0", engine)], seen[("gw1", engine)]
        assert gw0[0] != gw1[0] and gw0[1] != gw1[1], f"{engine}: gw0 and gw1 share a child {gw0} {gw1}"
