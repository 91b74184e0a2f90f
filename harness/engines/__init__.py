"""Engine registry: one line per engine; traits are read from engine classes, frameworks load only when one runs."""
from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import json
import os
import pkgutil
import re
import sys
from typing import Any

from ..known import facts
from . import stopwatch
from .base import (
    Engine,
    EngineOption,
    EngineOutput,
    FunctionEngine,
    Inputs,
    Request,
    SequenceOutput,
    SequenceRequest,
    Step,
)

# Every process that can run an engine imports this package first: TensorFlow's and Keras's log noise is
# silenced there (unless --verbose), engine workers and xdist workers included.
facts.quiet_imports()

# name -> "module:class". Importing this package imports no framework.
BUILTIN: dict[str, str] = {
    "oracle": "harness.engines.oracle_engine:OracleEngine",
    "keras": "harness.engines.keras_engine:KerasEngine",
    "torch": "harness.engines.torch_engine:TorchEngine",
    "keras-jax": "harness.engines.keras_backends:KerasJaxEngine",
    "keras-torch": "harness.engines.keras_backends:KerasTorchEngine",
    "keras-onnx": "harness.engines.onnx_engines:KerasOnnxEngine",
    "torch-onnx": "harness.engines.onnx_engines:TorchOnnxEngine",
    "torch-onnx-legacy": "harness.engines.onnx_engines:TorchOnnxLegacyEngine",
    "onnx2torch": "harness.engines.onnx_engines:Onnx2TorchEngine",
    "openvino": "harness.engines.openvino_engine:OpenVinoEngine",
    "openvino-f32": "harness.engines.openvino_engine:OpenVinoF32Engine",
    "litert": "harness.engines.litert_engine:LiteRtEngine",
    "nobuco": "harness.engines.nobuco_engine:NobucoEngine",
    "onnx2tf": "harness.engines.onnx2tf_engine:Onnx2TfEngine",
    "onnx2tf-legacy": "harness.engines.onnx2tf_engine:Onnx2TfLegacyEngine",
}
DEFAULT_ENGINES = ("oracle", "keras", "torch")
# The engine every other engine is judged against: the one built-in whose class says reference = True.
REFERENCE = "oracle"

_loaded: dict[str, Engine] = {}
_plugins: dict[str, str] = {}


def resolve(spec: str) -> Any:
    """The object ``MODULE:ATTR`` or ``PATH.py:ATTR`` names (ATTR may be dotted: ``Class.method``)."""
    module, _, attr = spec.rpartition(":")
    if not module or not attr:
        raise ValueError(f"engine {spec!r} must be MODULE:CALLABLE or PATH.py:CALLABLE")
    obj = load_file(module) if is_file(module) else importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj



def is_file(module: str) -> bool:
    """Whether a plug-in's MODULE part is a file path (``path/to/port.py``) rather than a dotted module name."""
    return module.endswith(".py") or "/" in module or os.sep in module


def load_file(path: str) -> Any:
    """The module in the Python file at ``path``, loaded once per process under a name of its own (its stem and
    a digest of its absolute path: two ``port.py`` in two folders are two modules). Its folder is appended to
    sys.path, as running the file would make its siblings importable (appended: never shadowing a package)."""
    path = os.path.abspath(os.path.expanduser(path))
    stem = re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0])
    name = f"harness_plugin_{stem}_{hashlib.sha256(path.encode()).hexdigest()[:8]}"
    if name in sys.modules:
        return sys.modules[name]
    if not os.path.isfile(path):
        raise FileNotFoundError(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    folder = os.path.dirname(path)
    if folder not in sys.path:
        sys.path.append(folder)
    sys.modules[name] = module   # before it runs: a dataclass or pickle in it looks its module up
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


# An engine name: part of every pytest id (``case[engine]``), marker and results.json record.
_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def _given_name(spec: str) -> tuple[str, str]:
    """``NAME=TARGET`` -> (NAME, TARGET); ('', spec) where no name is given (an '=' inside a path is no name)."""
    head, eq, rest = spec.partition("=")
    return (head, rest) if eq and "/" not in head and os.sep not in head else ("", spec)


def _split_plugin(spec: str) -> tuple[str, str, str]:
    """``[NAME=]MODULE:CALLABLE`` -> (engine name, module, callable path); ValueError where it is not of that
    form. Unnamed, the engine is named after the callable (``pkg.port:Port.run`` -> ``run``)."""
    name, target = _given_name(spec)
    module, _, attr = target.rpartition(":")   # the last colon: CALLABLE has none, a path may
    if not module or not attr:
        raise ValueError(f"--engine {spec!r}: a plug-in engine is [NAME=]MODULE:CALLABLE or "
                         "[NAME=]PATH.py:CALLABLE")
    name = name or attr.rpartition(".")[2]
    if not _NAME.fullmatch(name):
        raise ValueError(f"--engine {spec!r}: engine name {name!r} may hold only letters, digits, '_', '-' "
                         "and '.' (name it with NAME=MODULE:CALLABLE)")
    return name, module, attr


def did_you_mean(word: str, candidates: list[str], prefix: str = "", listed: bool = True) -> str:
    """'; did you mean ...?' with the closest candidates (each shown after ``prefix``), else (``listed``) the
    candidates themselves, a few, else ''."""
    close = difflib.get_close_matches(word, candidates, n=3, cutoff=0.6)
    if close:
        return "; did you mean " + " or ".join(repr(prefix + c) for c in close) + "?"
    if not listed or not candidates:
        return ""
    return f"; it has: {', '.join(candidates[:12])}{', ...' if len(candidates) > 12 else ''}"



def engine_names() -> list[str]:
    """Every engine name this process knows: the built-ins and the plug-ins registered so far."""
    return [*BUILTIN, *_plugins]


def suggest_engine(word: str) -> str:
    """'; did you mean 'keras'?' for a near miss of an engine name (the CLI's and pytest's --engine), else ''."""
    return did_you_mean(word, engine_names(), listed=False)


def _modules_near(name: str) -> list[str]:
    """The modules next to a missing module ``name`` (its package's submodules, or the top-level modules on
    sys.path), by their last name: what a typo of ``name`` may have meant."""
    parent = name.rpartition(".")[0]
    try:
        path = importlib.import_module(parent).__path__ if parent else None
    except (ImportError, AttributeError):   # the package is missing too, or is a plain module
        return []
    return sorted({m.name for m in pkgutil.iter_modules(path)})


def _user_folders() -> tuple[list[str], bool]:
    """The folders on sys.path a user puts a plug-in in (the current directory, PYTHONPATH's), not the installed
    packages' or the standard library's, and whether the current directory is on the path at all."""
    cwd = os.getcwd()
    own = {os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p}
    folders, cwd_on_path = [], False
    for entry in sys.path:
        folder = os.path.abspath(entry or cwd)   # '' is the current directory
        cwd_on_path = cwd_on_path or folder == cwd
        if (folder == cwd or folder in own) and folder not in folders:
            folders.append(folder)
    return folders, cwd_on_path


def _missing_module(spec: str, module: str, missing: str) -> str:
    """The one-line error for a plug-in module that is nowhere on the path: the near misses among what is there
    (a package's modules, or the modules in the user's folders: never the standard library's), where it was
    looked for, and the file form."""
    parent, _, last = missing.rpartition(".")
    if parent:
        hint = did_you_mean(last, _modules_near(missing), f"{parent}.", listed=False)
        where = f"not in package {parent}"
    else:
        folders, cwd_on_path = _user_folders()
        # The user's folders, and this package (installed editable it is on no folder: harness.mutation is what a
        # plug-in most often names).
        near = {m.name for m in pkgutil.iter_modules(folders)} | {__name__.partition(".")[0]}
        hint = did_you_mean(last, sorted(near), listed=False)
        where = "looked in " + (f"{', '.join(folders)} and " if folders else "") + "the installed packages"
        if not cwd_on_path:
            where += f"; the current directory {os.getcwd()} is not on the path"
    name, target = _given_name(spec)
    as_file = f"{name + '=' if name else ''}path/to/{module.replace('.', '/')}.py:{target.rpartition(':')[2]}"
    return (f"--engine {spec!r}: ModuleNotFoundError: no module named {missing!r}{hint} ({where}); a plug-in "
            f"in a file elsewhere is given by its path: --engine {as_file}")


def _plugin_module(spec: str, module: str) -> Any:
    """Import a plug-in's module (or load its file); ValueError that tells a missing module or file (a typo, or
    a folder not on the path) from one that exists but fails to import (a dependency missing, an error in its
    code)."""
    try:
        if is_file(module):
            return load_file(module)
        return importlib.import_module(module)
    except FileNotFoundError as exc:
        raise ValueError(f"--engine {spec!r}: no such file {module}"
                         + (f" ({exc.filename})" if exc.filename and exc.filename != module else "")) from None
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and not is_file(module) and (module == missing or module.startswith(missing + ".")):
            raise ValueError(_missing_module(spec, module, missing)) from None
        raise ValueError(f"--engine {spec!r}: importing {module} failed: ModuleNotFoundError: {exc} "
                         "(a dependency of the plug-in is not installed here)") from None
    except Exception as exc:  # a plug-in's module may raise anything while it is imported
        raise ValueError(f"--engine {spec!r}: importing {module} failed: {type(exc).__name__}: {exc}") from exc


def _callables(obj: Any) -> list[str]:
    """The public callables of a module (or class): what a plug-in's CALLABLE may name there."""
    return sorted(n for n in dir(obj) if not n.startswith("_") and callable(getattr(obj, n, None)))


def validate_plugin(spec: str) -> Any:
    """Resolve plug-in ``spec`` now and return its callable, so that a typo is one clear error before any case
    runs rather than an error in every item: ValueError naming the spec and what failed (no such module, no
    such attribute, with the closest of the module's callables, or not callable)."""
    _, module, attr = _split_plugin(spec)
    obj, where = _plugin_module(spec, module), module
    for part in attr.split("."):
        try:
            obj, where = getattr(obj, part), f"{where}{'.' if ':' in where else ':'}{part}"
        except AttributeError:
            raise ValueError(f"--engine {spec!r}: {where} has no attribute {part!r}"
                             f"{did_you_mean(part, _callables(obj))}") from None
    if not callable(obj):
        raise ValueError(f"--engine {spec!r}: {where} is not callable (a {type(obj).__name__}); a plug-in is a "
                         "function fn(layer, config, x, weights) -> y")
    return obj


def plugin_name(spec: str) -> str:
    """Engine name of a plug-in spec: NAME=MODULE:CALLABLE names it, else the callable's name."""
    return _split_plugin(spec)[0]


def register_plugin(spec: str, validate: bool = True) -> str:
    """Register ``[NAME=]MODULE:CALLABLE`` as an engine and return its name.

    Resolved now (validate_plugin: a typo stops the command before any case runs), except where the plug-in
    runs on another interpreter (--engine-python: its module may exist only there) or ``validate`` is False.
    The same spec twice is one engine; another spec under a registered name is an error, since both would be
    reported (and cached) under that one name.
    """
    name, module, attr = _split_plugin(spec)
    if name in BUILTIN:
        raise ValueError(f"--engine {spec!r}: plug-in engine name {name!r} clashes with a built-in engine; "
                         "name it with NAME=MODULE:CALLABLE")
    if is_file(module):   # absolute: a repro line, a fuzz or xdist worker may run in another directory
        module = os.path.abspath(os.path.expanduser(module))
    target, registered = f"{module}:{attr}", _plugins.get(name)
    if registered == target:
        return name
    if validate and not plugin_python(name):
        validate_plugin(spec)   # first: a typo says what is wrong with it even where its name is taken
    if registered is not None:
        raise ValueError(f"--engine {registered!r} and --engine {target!r}: two plug-in engines named {name!r}; "
                         f"name them apart with NAME=MODULE:CALLABLE, e.g. --engine {name}={registered} "
                         f"--engine {name}_2={target}")
    _plugins[name] = target
    return name


def cli_spec(name: str) -> str:
    """How a command line names engine ``name``: a built-in by its name, a plug-in as NAME=MODULE:CALLABLE."""
    return f"{name}={_plugins[name]}" if name in _plugins else name


def engine_class(name: str) -> type[Engine]:
    """The class of engine ``name``, for its traits: imports its module, not its framework."""
    if name in BUILTIN:
        return resolve(BUILTIN[name])
    if name in _plugins:
        return FunctionEngine
    raise KeyError(f"unknown engine {name!r}; known: {', '.join([*BUILTIN, *_plugins])}")


def warm(names: list[str]) -> None:
    """Start the workers of the engines in ``names`` that run apart (an isolated built-in, a plug-in on another
    interpreter) all at once, each importing its framework in parallel with the others and with the caller's next
    work (harness.engines.worker.warm_all); the in-process engines load on their first item, as ever."""
    from . import worker  # at call time: worker imports this package (a circle at import)

    apart = [n for n in names if (n in BUILTIN and engine_class(n).isolation is not None)
             or (n in _plugins and plugin_python(n))]
    worker.warm_all([e for e in map(get, apart) if isinstance(e, worker.WorkerEngine)])


def is_reference(name: str) -> bool:
    """Whether ``name`` is the reference (the oracle): judged in float64, never against a bound of its own."""
    return name in BUILTIN and engine_class(name).reference   # a plug-in (or an unknown name) never is


def sequence_engines() -> list[str]:
    """The built-in engines that compute a sequence of layers in one run (Engine.computes_sequences); a plug-in
    does where its callable has a `stack` attribute."""
    return [name for name in BUILTIN if engine_class(name).computes_sequences]


def get(name: str) -> Engine:
    """The engine called ``name``, importing its module (and its framework) on first use. An engine class that
    declares ``isolation``, and a plug-in given an interpreter (--engine-python), is a proxy to a worker process
    (harness/engines/worker.py) that imports the framework there instead."""
    if name not in _loaded:
        if name in BUILTIN:
            cls = resolve(BUILTIN[name])
            if cls.isolation is not None:
                from . import worker  # at call time: worker imports this package (a circle at import)

                _loaded[name] = worker.for_class(name, BUILTIN[name], cls)
            else:
                with stopwatch.third_party():   # the engine's imports: its framework's own work
                    _loaded[name] = cls()
        elif name in _plugins and (python := plugin_python(name)):
            from . import worker  # at call time, as above

            # Not resolved here: its module may exist only in that interpreter's environment.
            _loaded[name] = worker.for_plugin(name, _plugins[name], python)
        elif name in _plugins:
            _loaded[name] = FunctionEngine(name, resolve(_plugins[name]))
        else:
            raise KeyError(f"unknown engine {name!r}; known: {', '.join([*BUILTIN, *_plugins])}")
    return _loaded[name]


# Plug-in name -> the interpreter its worker runs on (--engine-python NAME=PATH). Mirrored in this environment
# variable, so that the fresh processes the harness starts (fuzz workers and replays, xdist workers) inherit it.
PYTHONS_VARIABLE = "HARNESS_ENGINE_PYTHONS"


def set_plugin_python(name: str, path: str) -> None:
    """Run plug-in ``name`` in a worker on the interpreter at ``path`` (a port living in another environment)."""
    if name in BUILTIN:
        raise ValueError(f"--engine-python {name}: {name} is a built-in engine; its class declares where it runs "
                         "(Engine.isolation)")
    # Absolute, not resolved: a venv's bin/python is a symlink whose target knows nothing of the venv.
    pythons = {**_pythons(), name: os.path.abspath(os.path.expanduser(path))}
    os.environ[PYTHONS_VARIABLE] = json.dumps(pythons)
    if _loaded.get(name) is not None and getattr(_loaded[name], "python", None) != pythons[name]:
        del _loaded[name]   # registered again with another interpreter: the next get() builds it anew


def plugin_python(name: str) -> str | None:
    """The interpreter plug-in ``name`` runs on, or None: in this process."""
    return _pythons().get(name)


def _pythons() -> dict[str, str]:
    try:
        pythons = json.loads(os.environ.get(PYTHONS_VARIABLE) or "{}")
    except ValueError:
        raise ValueError(f"${PYTHONS_VARIABLE} must be a JSON object NAME -> PATH, got "
                         f"{os.environ[PYTHONS_VARIABLE]!r}") from None
    return pythons if isinstance(pythons, dict) else {}


def cli_args(name: str) -> list[str]:
    """The command-line arguments that name engine ``name`` in a fresh process: --engine with its cli_spec, and
    for a plug-in run on another interpreter, its --engine-python."""
    args = ["--engine", cli_spec(name)]
    if name in _plugins and plugin_python(name):
        args += ["--engine-python", f"{name}={plugin_python(name)}"]
    return args


__all__ = ["BUILTIN", "DEFAULT_ENGINES", "Engine", "EngineOption", "EngineOutput", "FunctionEngine", "Inputs",
           "PYTHONS_VARIABLE", "REFERENCE", "Request", "SequenceOutput", "SequenceRequest", "Step", "cli_args",
           "cli_spec", "did_you_mean", "engine_class", "engine_names", "get", "is_file", "is_reference", "load_file",
           "plugin_name", "plugin_python", "register_plugin", "resolve", "sequence_engines", "set_plugin_python",
           "suggest_engine"]
