"""DuckDB over an activation store's token table: the connection and the contexts around rows.

Shared by the token and activation queries (``store.queries``) and the latent queries (``store.latents``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from interp_lab.store.reader import Store


def connect(store: Store):
    """A DuckDB connection with the store's token table as the view ``tokens``."""
    import duckdb

    con = duckdb.connect()
    if (store.root / "tokens.parquet").exists():
        src = str(store.root / "tokens.parquet")
    else:
        src = str(store.root / "tokens" / "part-*.parquet")
    con.execute(f"CREATE VIEW tokens AS SELECT * FROM read_parquet('{src}')")
    return con


def contexts(store: Store, rows: np.ndarray, *, window: int = 6, con=None,
             values: dict[int, float] | None = None) -> list[dict[str, Any]]:
    """For each row: its document, position and the tokens around it (same sequence only)."""
    if len(rows) == 0:
        return []
    con = con or connect(store)
    lo = np.maximum(rows - window, 0)
    hi = rows + window
    ranges = " OR ".join(f"(row BETWEEN {int(a)} AND {int(b)})" for a, b in zip(lo, hi))
    near = con.execute(f"SELECT row, doc_id, prompt_id, position, doc_position, token_str FROM tokens "
                       f"WHERE {ranges} ORDER BY row").fetchall()
    by_row = {r[0]: r for r in near}
    out = []
    for r in rows.tolist():
        _, doc, pid, pos, dpos, tok = by_row[r]
        ctx = []
        for k in range(max(r - window, 0), r + window + 1):
            n = by_row.get(k)
            if n is None or n[1] != doc or abs(n[4] - dpos) > window or (n[3] - pos) != (k - r):
                continue  # another document or sequence
            ctx.append({"token": n[5], "focus": k == r, **({"activation": values.get(k)} if values else {})})
        out.append({"row": r, "doc_id": doc, "prompt_id": pid, "position": pos, "token": tok,
                    **({"activation": values[r]} if values else {}), "context": ctx})
    return out
