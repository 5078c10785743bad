"""Where interp-lab keeps converted models and other reusable artifacts."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$INTERP_LAB_CACHE``, else ``$XDG_CACHE_HOME/interp-lab``, else ``~/.cache/interp-lab``."""
    env = os.environ.get("INTERP_LAB_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "interp-lab"
