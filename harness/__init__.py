"""Cross-framework equivalence harness for convolution layers (Keras, PyTorch, a float64 NumPy oracle)."""

__version__ = "0.1.0"
