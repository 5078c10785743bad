"""``interp-lab validate``: check a file against its format without running anything."""

from __future__ import annotations

import os
from typing import Any

from interp_lab.errors import UsageError
from interp_lab.io.prompts import read_prompts

KINDS = ("records", "features", "interventions", "prompts")


def validate_file(path: str | os.PathLike, kind: str) -> dict[str, Any]:
    if kind not in KINDS:
        raise UsageError(f"unknown --kind {kind!r} (use {', '.join(KINDS)})")
    if kind == "records":
        from interp_lab.io.records import read_records

        m = read_records(path)
        return {"rows": m.n_rows, "features": m.n_features, "non-zero": int(m.X.nnz),
                "scored": int((m.scores == m.scores).sum())}
    if kind == "features":
        from interp_lab.providers.features import load_dump

        return {"features": len(load_dump(path).rows)}
    if kind == "interventions":
        from interp_lab.evidence.causal import load_interventions

        t = load_interventions(path, None)
        return {"rows": t.rows_read}
    return {"prompts": len(read_prompts(path))}
