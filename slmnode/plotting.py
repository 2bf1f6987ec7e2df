"""matplotlib, an optional extra (``pip install 'slmnode[plot]'``), loaded only when a ``--plot`` asks for it."""

from __future__ import annotations

from types import ModuleType

from slmnode.errors import ConfigError


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the Agg backend, or a clear error saying how to install it."""
    try:
        import matplotlib
    except ImportError as exc:
        raise ConfigError("--plot needs matplotlib, an optional extra: pip install 'slmnode[plot]' "
                          "(or run without --plot; --json gives the same figures)") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
