"""prodgan: a model registry and evaluation harness for product-image GANs."""

__version__ = "0.1.0"
