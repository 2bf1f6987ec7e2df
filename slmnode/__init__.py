"""slmnode: a reliable 24/7 local language-model node for small Linux boxes."""

__version__ = "0.1.0"
__all__ = ["__version__"]
