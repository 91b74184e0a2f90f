"""A module that imports itself on first attribute use, so that collecting the tests loads no framework."""
import importlib
from types import ModuleType


class Lazy:
    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str):
        if attr.startswith(("_", "pytest")):  # pytest's collection probes module globals for these
            raise AttributeError(attr)
        module: ModuleType = importlib.import_module(self._name)
        return getattr(module, attr)
