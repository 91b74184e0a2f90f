"""Audits of a suite that judge files, not engines: coverage of the arguments and lint of weak cases."""
