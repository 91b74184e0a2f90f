"""The float64 reference: the oracle's forward and gradients, the gauge and the error bound (case-agnostic numerics)."""
