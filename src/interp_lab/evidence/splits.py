"""Deterministic splits by prompt_id hash, never by file order (formats.md).

Both schemes cut the same hash, so they nest: the 40/20/40 discovery set is
inside the 50/50 one and the 40/20/40 held-out set inside the 50/50 one.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from interp_lab.io.hashing import hash_unit
from interp_lab.schemas.records import SPLITS

DISCOVERY, CALIBRATION, HELDOUT = (SPLITS.index(s) for s in SPLITS)
SCHEMES = {
    "rank": {"discovery": 0.5, "calibration": 0.0, "heldout": 0.5},
    "calibrate": {"discovery": 0.4, "calibration": 0.2, "heldout": 0.4},
}


def split_codes(prompt_ids: np.ndarray, fractions: dict[str, float] | str = "rank",
                units: np.ndarray | None = None) -> np.ndarray:
    """Split code per row (index into ``SPLITS``); rows of one prompt share a split.

    ``units``: the rows' ``hash_unit`` values when already known.
    """
    frac = SCHEMES[fractions] if isinstance(fractions, str) else fractions
    if units is None:
        enc = pc.dictionary_encode(pa.array(np.asarray(prompt_ids, dtype=object).astype(str), pa.string()))
        inverse = enc.indices.to_numpy()
        u = hash_unit(enc.dictionary.to_pylist())
    else:
        inverse, u = np.arange(len(units)), units
    cuts = np.cumsum([frac.get("discovery", 0.0), frac.get("calibration", 0.0)])
    codes = np.where(u < cuts[0], DISCOVERY, np.where(u < cuts[1], CALIBRATION, HELDOUT)).astype(np.int8)
    return codes[inverse]


def assign_splits(prompt_ids: np.ndarray, given: np.ndarray, fractions: dict[str, float] | str = "rank",
                  units: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """Fill rows without a given split (code -1) by hash. Returns codes and how they were set."""
    missing = given < 0
    if not missing.any():
        return given.astype(np.int8), "given"
    codes = given.astype(np.int8).copy()
    codes[missing] = split_codes(prompt_ids[missing], fractions, None if units is None else units[missing])
    return codes, ("hash" if missing.all() else "given+hash")
