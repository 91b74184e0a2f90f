"""A user's whole Keras model against its PyTorch port: every node's float64 reference and error bound."""
