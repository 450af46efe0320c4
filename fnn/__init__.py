"""fnn: a functional neural-network training framework on JAX."""
__version__ = "0.1.0"
