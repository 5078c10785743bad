"""Paths written into manifests and metrics: relative to the file that records them, never the absolute
paths of the machine that wrote it.

A path inside the interp-lab cache is recorded as ``<cache>/`` and its place in the cache (the cache stays
on its machine; the outputs and their inputs may move together, a checkout of a study for one).
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE = "<cache>"


def recorded_path(path: str | os.PathLike, base: str | os.PathLike) -> str:
    """How a file written in the directory ``base`` records ``path`` (POSIX separators)."""
    from interp_lab.io.cache import cache_dir

    p = Path(os.path.abspath(path))
    cache = Path(os.path.abspath(cache_dir()))
    if p == cache or cache in p.parents:
        return Path(CACHE, p.relative_to(cache)).as_posix()
    try:
        return Path(os.path.relpath(p, os.path.abspath(base))).as_posix()
    except ValueError:  # another drive (Windows): no relative path exists
        return Path(path).as_posix()


def resolve_recorded(value: str, base: str | os.PathLike) -> Path:
    """The path ``recorded_path`` wrote as ``value`` in a file of the directory ``base``."""
    from interp_lab.io.cache import cache_dir

    head, _, rest = value.partition("/")
    if head == CACHE:
        return cache_dir() / rest
    return Path(base) / value
