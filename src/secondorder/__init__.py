"""secondorder: second-order optimizers on transformers, measured honestly."""

__version__ = "0.1.0"
