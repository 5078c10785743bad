"""PNG figures through matplotlib (the ``plots`` extra): loaded on demand, written all or nothing.

A command whose only output is a figure needs matplotlib (``pyplot()``); a command that writes a
figure beside other results skips the figure without it (``pyplot(required=False)``) and says so.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

PLOTS_EXTRA = "pip install 'interp-lab[plots]'"


def missing_note(name: str) -> str:
    """What a command says when it skips the figure ``name``."""
    return f"{name} not drawn: matplotlib is not installed ({PLOTS_EXTRA})"


def pyplot(required: bool = True) -> Any:
    """``matplotlib.pyplot`` on the Agg backend. Without matplotlib: a one-line ``UsageError`` naming the
    extra, or with ``required=False``, None."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        if not required:
            return None
        from interp_lab.errors import UsageError

        raise UsageError(f"PNG plots need matplotlib: {PLOTS_EXTRA}") from None
    return plt


def save_png(fig: Any, path: str | os.PathLike, **savefig: Any) -> Path:
    """Write ``fig`` to ``path`` as a PNG (temporary name, then rename; no software stamp) and close it."""
    import matplotlib.pyplot as plt

    from interp_lab.io.atomic import atomic_path

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", metadata={"Software": None}, **savefig)
    finally:
        plt.close(fig)
    return Path(path)
