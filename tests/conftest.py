"""Shared test configuration: pytester drives the harness's pytest plugin in subprocesses."""

pytest_plugins = ["pytester"]
