"""Tensor values: deterministic generation and dtype rounding, and tensors read from files without running them."""
