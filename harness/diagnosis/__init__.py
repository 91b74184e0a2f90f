"""Naming the likely cause of a failure: the mutant that reproduces it, value patterns, shape/dtype findings, causes."""
