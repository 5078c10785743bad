"""``interp-lab version``: the version of interp-lab and of what it runs on."""

from __future__ import annotations

import importlib.metadata
import sys
from dataclasses import dataclass

from interp_lab._version import __version__
from interp_lab.api.registry import command
from interp_lab.schemas.command import Progress


@dataclass(kw_only=True)
class VersionOptions:
    """``version`` takes no options."""


@dataclass
class VersionResult:
    """interp-lab's version, Python's, and the versions of the libraries that decide its numbers (None: not
    installed; read from the installed metadata, so torch is not imported)."""

    interp_lab: str
    python: str
    libraries: dict[str, str | None]


@command("version", options=VersionOptions, result=VersionResult, group="utilities", json=True,
         help="Print the version of interp-lab, Python and the libraries that decide its numbers.")
def version(o: VersionOptions, progress: Progress) -> VersionResult:
    libraries = {name: installed(name) for name in ("numpy", "scipy", "pyarrow", "torch", "transformers")}
    return VersionResult(interp_lab=__version__, python=sys.version.split()[0], libraries=libraries)


def installed(name: str) -> str | None:
    """The installed version of the distribution ``name``, or None."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None
