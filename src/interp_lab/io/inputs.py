"""One input of a run (a file, a model, a corpus, generated data): what the report and the manifest say of it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interp_lab.io.hashing import sha256_file


@dataclass
class InputInfo:
    """One input of a run: its role, a path-free name for the report, and its hash."""

    role: str
    name: str
    sha256: str | None = None
    rows: int | None = None
    path: str | None = None  # as given; the manifest records it relative to itself (io.paths)
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def file(cls, role: str, path: str | os.PathLike, rows: int | None = None) -> InputInfo:
        p = Path(path)
        return cls(role=role, name=p.name, sha256=sha256_file(p), rows=rows, path=str(p))

    @classmethod
    def synthetic(cls, params: dict[str, Any]) -> InputInfo:
        return cls(role="synthetic", name="interp_lab.providers.synthetic", params=dict(params))

    def for_report(self) -> dict[str, Any]:
        d: dict[str, Any] = {"role": self.role, "name": self.name}
        if self.sha256:
            d["sha256"] = self.sha256
        if self.rows is not None:
            d["rows"] = self.rows
        if self.params:
            d["params"] = self.params
        return d
