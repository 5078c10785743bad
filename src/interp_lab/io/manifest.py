"""Run manifests (``interp-lab.run.v1``): versions, platform, inputs and outputs with hashes, timings.

In io/ because two layers write them: runs/ (a run config's manifest) and report/ (the manifest ``inspect``
writes beside a report), and report/ sits below runs/ (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import socket
import sys
from datetime import datetime, timezone
from typing import Any

from interp_lab._version import __version__
from interp_lab.schemas.records import RUN_MANIFEST

PACKAGES = ("numpy", "scipy", "pyarrow", "msgspec", "typer", "torch", "transformers", "sae-lens",
            "transformer-lens", "nnsight", "ray", "fastapi")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def environment() -> dict[str, Any]:
    return {
        "tool": {"name": "interp-lab", "version": __version__},
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "host": socket.gethostname(),
        "packages": package_versions(),
    }


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def inspect_manifest(report: dict[str, Any], inputs: list, timings: dict[str, float],
                     files: dict[str, bytes], base: str | os.PathLike = ".") -> dict[str, Any]:
    """The manifest written beside a report by ``inspect`` in the directory ``base`` (input paths relative
    to it, io.paths)."""
    from interp_lab.io.paths import recorded_path

    return {
        "schema_version": RUN_MANIFEST,
        "created": now(),
        **environment(),
        "command": "inspect",
        "argv": sys.argv,
        "seed": report["settings"]["ranking"]["seed"],
        "inputs": [
            {"role": i.role, "path": i.path and recorded_path(i.path, base), "sha256": i.sha256, "rows": i.rows, **({"params": i.params} if i.params else {})}
            for i in inputs
        ],
        "outputs": [{"file": name, "sha256": sha256_bytes(data), "bytes": len(data)} for name, data in files.items()],
        "timings_s": {k: round(v, 4) for k, v in timings.items()},
        "deterministic": "report.json depends only on the inputs and the seed",
    }
