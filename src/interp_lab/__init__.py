"""interp-lab: criterion-driven mechanistic interpretability.

``import interp_lab`` is light: the API functions load their machinery on
first use, and nothing here imports torch.
"""

from __future__ import annotations

from typing import Any

__version__ = "4.0.0.dev0"

_API = ("inspect", "harvest", "intervene", "contrast", "steer", "InspectResult")


def __getattr__(name: str) -> Any:
    if name in _API:
        from interp_lab import api

        return getattr(api, name)
    raise AttributeError(f"module 'interp_lab' has no attribute {name!r}")


__all__ = ["__version__", *_API]
