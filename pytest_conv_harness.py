"""pytest11 entry point of the harness: loads harness.frontends.pytest_plugin, from a module outside the package.

pytest rewrites the asserts of every module of the package that holds a plug-in's entry point (for an editable
install, the package of the entry point's module), from source, in every process: with the entry point inside
`harness`, all of its ~100 modules that a run imports were parsed and recompiled through pytest's rewriter (about
twice plain compilation) in the controller and again in each xdist worker, where PYTHONDONTWRITEBYTECODE keeps
nothing cached. Here only this module and the plug-in's own (named in pytest_plugins, which pytest marks) are.
The harness has no test asserts to rewrite; tests/ and conftest.py files are rewritten as before.
"""

# pytest imports and registers these (the plug-in, and with it harness.frontends.shard) as it loads this module.
pytest_plugins = ["harness.frontends.pytest_plugin"]
