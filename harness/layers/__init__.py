"""The layers the harness knows, case-agnostic: primitives (padding, layouts, float64 conv ops and their VJPs,
activations), the families, the normalised Geometry."""
