"""Naming the likely cause of a failure: which mutant reproduces it, value patterns, shape and dtype findings, error causes."""
