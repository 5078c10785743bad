"""An SAE's latents over a whole activation store (``latents/<sae_id>/``, formats.md): where they live, which
encodings a store holds, and the queries over them (a latent's top contexts, firing frequencies), run through
DuckDB over the sparse Parquet parts without reading them into memory whole.

The encoding itself needs the SAE and torch and lives in ``sae.store_latents``; the store only reads it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from interp_lab.errors import UsageError
from interp_lab.store.reader import Store
from interp_lab.store.tokens import connect, contexts

LATENTS_SCHEMA = "interp-lab.store_latents.v1"


def latents_dir(store: Store, sae_id: str) -> Path:
    return store.root / "latents" / sae_id


def stored_latents(store: Store) -> list[dict[str, Any]]:
    """The ``info.json`` of every complete encoding in the store."""
    root = store.root / "latents"
    if not root.is_dir():
        return []
    return [json.loads((d / "info.json").read_text()) for d in sorted(root.iterdir())
            if not d.name.startswith(".") and (d / "info.json").is_file()]


def _parts(store: Store, sae_id: str) -> str:
    d = latents_dir(store, sae_id)
    if not (d / "info.json").is_file():
        known = ", ".join(i["sae_id"] for i in stored_latents(store)) or "none"
        raise UsageError(f"{store.root}: no latents {sae_id!r} (encoded: {known}; interp-lab store encode)")
    return str(d / "part-*.parquet")


def top_latent(store: Store, sae_id: str, latent: int, *, k: int = 20, window: int = 6,
               exclude_first: bool = True) -> list[dict[str, Any]]:
    """The ``k`` highest values of one latent over the store, with their contexts (position 0 left out by
    default, as for channels; ties broken by the earlier row)."""
    con = connect(store)
    first = "AND t.position > 0" if exclude_first else ""
    got = con.execute(f"SELECT l.row, l.value FROM read_parquet('{_parts(store, sae_id)}') l JOIN tokens t "
                      f"ON t.row = l.row WHERE l.latent = ? {first} ORDER BY l.value DESC, l.row LIMIT ?",
                      [int(latent), int(k)]).fetchall()
    rows = np.array([r for r, _ in got], dtype=np.int64)
    return contexts(store, rows, window=window, con=con, values={int(r): float(v) for r, v in got})


def latent_frequencies(store: Store, sae_id: str, *, exclude_first: bool = True) -> np.ndarray:
    """Per latent: the fraction of the store's rows where it is non-zero."""
    con = connect(store)
    info = json.loads((latents_dir(store, sae_id) / "info.json").read_text())
    first = "WHERE t.position > 0" if exclude_first else ""
    n = con.execute(f"SELECT count(*) FROM tokens t {first}").fetchone()[0]
    got = con.execute(f"SELECT l.latent, count(*) FROM read_parquet('{_parts(store, sae_id)}') l JOIN tokens t "
                      f"ON t.row = l.row {first} GROUP BY 1").fetchnumpy()
    freq = np.zeros(info["d_sae"], dtype=np.float64)
    freq[got["latent"]] = got["count_star()"] / max(n, 1)
    return freq


def latent_values(store: Store, sae_id: str, latent: int, rows: list[int]) -> dict[int, float]:
    """{row: value} of one latent on the given store rows where it is non-zero (absent: 0)."""
    if not rows:
        return {}
    con = connect(store)
    got = con.execute(f"SELECT row, value FROM read_parquet('{_parts(store, sae_id)}') WHERE latent = ? AND "
                      f"row IN ({', '.join(str(int(r)) for r in rows)})", [int(latent)]).fetchall()
    return {int(r): float(v) for r, v in got}


def latent_histogram(store: Store, sae_id: str, latent: int, *, bins: int = 50,
                     exclude_first: bool = True) -> tuple[list[int], list[float]]:
    """Histogram of one latent's non-zero values over the store: (bar heights, bar centres); empty when it
    never fires."""
    con = connect(store)
    first = "AND t.position > 0" if exclude_first else ""
    values = con.execute(f"SELECT l.value FROM read_parquet('{_parts(store, sae_id)}') l JOIN tokens t ON t.row = "
                         f"l.row WHERE l.latent = ? {first}", [int(latent)]).fetchnumpy()["value"]
    if len(values) == 0:
        return [], []
    heights, edges = np.histogram(values, bins=bins)
    return heights.tolist(), ((edges[:-1] + edges[1:]) / 2).round(6).tolist()
