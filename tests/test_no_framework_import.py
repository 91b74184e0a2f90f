"""Importing the harness and collecting the cases must not import TensorFlow, Keras or PyTorch."""
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FRAMEWORKS = ("tensorflow", "keras", "torch", "jax")

CHECK = textwrap.dedent("""\
    import sys
    FRAMEWORKS = {frameworks!r}
    {body}
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in FRAMEWORKS)
    print("LOADED:", ",".join(loaded))
    """)


def run_check(body):
    code = CHECK.format(frameworks=FRAMEWORKS, body=body)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"exit={done.returncode}:\n{done.stdout}\n{done.stderr}"
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("LOADED:")][-1]
    return done, line.split(":", 1)[1].strip()


def test_import_loads_no_framework():
    done, loaded = run_check(
        "import harness, harness.cases.schema, harness.judge.runner, harness.frontends.pytest_plugin, harness.engines, harness.frontends.cli\n"
        "import harness.reference.oracle, harness.reference.agreement, harness.cases.selection, harness.engines.base\n"
        "parser = harness.frontends.cli.build_parser()\n"
        "for name, _, _ in harness.frontends.cli.subcommands():\n"   # every subcommand's module and options, as main sees them
        "    parser.parse_args([name])\n"
        "import harness.engines.oracle_engine"
    )
    assert loaded == "", f"frameworks in sys.modules after import={loaded}, but should be none"


def test_collecting_cases_and_tests_loads_no_framework():
    done, loaded = run_check(
        "import pytest\n"
        "rc = pytest.main(['--collect-only', '-o', 'addopts=', '-q', '-p', 'no:cacheprovider', 'cases', 'tests'])\n"
        "assert rc == 0, rc"
    )
    assert "[keras]" in done.stdout and "[torch]" in done.stdout, f"no case items collected:\n{done.stdout}"
    assert "test_torch_port.py::" in done.stdout, f"the torch port's tests were not collected:\n{done.stdout}"
    assert loaded == "", f"frameworks in sys.modules after collection={loaded}, but should be none"


def test_every_module_but_the_torch_port_imports_no_framework():
    # harness.torch_port is the public torch module library: importing it imports torch, by design. Every engine
    # module, family and report module must be importable for its traits alone.
    done, loaded = run_check(
        "import importlib, pkgutil, harness\n"
        "names = [m.name for m in pkgutil.walk_packages(harness.__path__, 'harness.')]\n"
        "skipped = {'harness.torch_port', 'harness.__main__'}\n"
        "for name in names:\n"
        "    if name not in skipped:\n"
        "        importlib.import_module(name)\n"
        "assert len(names) > 40, names\n"
        "from harness import engines\n"
        "for name in engines.BUILTIN:\n"
        "    engines.engine_class(name).environment()\n"
    )
    assert loaded == "", f"frameworks in sys.modules after importing every module={loaded}, but should be none"
