"""Questions asked of an activation store, without loading it whole.

Token and metadata queries run in DuckDB over ``tokens.parquet``; activations
are read shard by shard from memory-mapped safetensors. User-owned metadata
(name, tags) lives in ``store.json`` beside the manifest, so tagging never
touches the harvested bytes.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from interp_lab.errors import InputError, UsageError
from interp_lab.io.atomic import write_bytes_atomic
from interp_lab.store.latents import stored_latents
from interp_lab.store.reader import Store
from interp_lab.store.tokens import connect, contexts

META_FILE = "store.json"


# --------------------------------------------------------------------------- user metadata


def user_meta(store: Store) -> dict[str, Any]:
    path = store.root / META_FILE
    if path.is_file():
        return msgspec.json.decode(path.read_bytes())
    return {"name": store.root.name, "tags": []}


def _save_meta(store: Store, meta: dict[str, Any]) -> None:
    write_bytes_atomic(store.root / META_FILE, msgspec.json.format(msgspec.json.encode(meta), indent=2) + b"\n")


def tag(store: Store, add: list[str] = (), remove: list[str] = ()) -> list[str]:
    meta = user_meta(store)
    tags = sorted((set(meta.get("tags", [])) | set(add)) - set(remove))
    meta["tags"] = tags
    _save_meta(store, meta)
    return tags


def rename(store: Store, name: str) -> None:
    meta = user_meta(store)
    meta["name"] = name
    _save_meta(store, meta)


def remove(path: str | os.PathLike) -> None:
    """Delete a store directory (only if it is one)."""
    Store(path)  # refuses anything that is not a store
    shutil.rmtree(path)


# --------------------------------------------------------------------------- summaries and listings


def summary(store: Store) -> dict[str, Any]:
    m = store.manifest
    meta = user_meta(store)
    size = sum(f.stat().st_size for f in store.root.rglob("*") if f.is_file())
    out: dict[str, Any] = {
        "path": str(store.root), "name": meta.get("name"), "tags": meta.get("tags", []), "model": m.model,
        "revision": m.revision, "dataset": m.dataset, "documents": m.documents, "tokens": m.rows,
        "hooks": m.hooks, "dtype": m.dtype, "shards": len(m.shards), "complete": m.complete, "bytes": size,
        "context_length": m.context_length,
    }
    con = connect(store)
    cols = [r[0] for r in con.execute("DESCRIBE SELECT * FROM tokens").fetchall()]
    labels = {}
    for c in cols:
        if c.startswith("label.") or c == "split":
            counts = con.execute(f'SELECT "{c}", count(*) FROM tokens GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 20').fetchall()
            labels[c] = {("(none)" if k is None else str(k)): v for k, v in counts}
    out["labels"] = labels
    out["latents"] = [{k: i[k] for k in ("sae_id", "architecture", "d_sae", "hook", "nonzero", "sae_sha256")}
                      for i in stored_latents(store)]
    return out


def list_stores(root: str | os.PathLike, *, model: str | None = None, dataset: str | None = None,
                tag_filter: str | None = None, since: str | None = None) -> list[dict[str, Any]]:
    """Stores under ``root`` (any depth), filtered by model, dataset, tag and creation date (YYYY-MM-DD)."""
    out = []
    for manifest in sorted(Path(root).rglob("manifest.json")):
        try:
            st = Store(manifest.parent)
        except InputError:
            continue
        meta = user_meta(st)
        # the manifest is rewritten after every shard: its time is when the harvest last wrote
        created = datetime.fromtimestamp(manifest.stat().st_mtime, timezone.utc).isoformat(timespec="seconds")
        row = {"path": str(st.root), "name": meta.get("name"), "tags": meta.get("tags", []),
               "model": st.manifest.model, "dataset": st.manifest.dataset, "tokens": st.manifest.rows,
               "hooks": len(st.manifest.hooks), "complete": st.manifest.complete, "created": created}
        if model and row["model"] != model:
            continue
        if dataset and dataset not in row["dataset"]:
            continue
        if tag_filter and tag_filter not in row["tags"]:
            continue
        if since and created[:10] < since:
            continue
        out.append(row)
    return out


# --------------------------------------------------------------------------- token queries


def search(store: Store, *, token: str | None = None, regex: str | None = None, limit: int = 50,
           window: int = 6) -> list[dict[str, Any]]:
    """Rows whose token text equals ``token`` (ignoring surrounding spaces) or matches ``regex``, with context."""
    if (token is None) == (regex is None):
        raise UsageError("give exactly one of --token and --regex")
    con = connect(store)
    if token is not None:
        where, arg = "trim(token_str) = ?", token.strip()
    else:
        try:
            re.compile(regex)
        except re.error as exc:
            raise UsageError(f"--regex: {exc}") from None
        where, arg = "regexp_matches(token_str, ?)", regex
    hits = con.execute(f"SELECT row FROM tokens WHERE {where} ORDER BY row LIMIT ?", [arg, limit]).fetchall()
    rows = np.array([h[0] for h in hits], dtype=np.int64)
    return contexts(store, rows, window=window, con=con)


# --------------------------------------------------------------------------- activation queries


def check_channel(store: Store, hook: str, index: int) -> None:
    """``index`` must be a channel of ``hook`` in ``store``."""
    d = store.width(hook)
    if not 0 <= index < d:
        raise UsageError(f"channel {index} is out of range for {hook} (width {d})")


def channel(store: Store, hook: str, index: int) -> np.ndarray:
    """One channel of one hook over every row (float32), shard by shard."""
    check_channel(store, hook, index)
    return np.concatenate([store.shard(hook, s.index)[:, index].astype(np.float32)
                           for s in store.manifest.shards]) if store.manifest.shards else np.zeros(0, np.float32)


def top(store: Store, hook: str, index: int, *, k: int = 20, window: int = 6,
        exclude_first: bool = True) -> list[dict[str, Any]]:
    """The ``k`` highest activations of one channel, with their contexts (position 0 left out by default:
    the first position is an attention sink with a huge norm, evidence.md)."""
    values = channel(store, hook, index)
    if exclude_first:
        pos = connect(store).execute("SELECT position FROM tokens ORDER BY row").fetchnumpy()["position"]
        values = np.where(pos == 0, -np.inf, values)
    k = min(k, len(values))
    if k == 0:
        return []
    kth = np.partition(values, len(values) - k)[len(values) - k]  # the k-th largest value
    above = np.flatnonzero(values > kth)
    idx = np.concatenate([above, np.flatnonzero(values == kth)[: k - len(above)]])  # ties: earliest rows
    idx = idx[np.lexsort((idx, -values[idx]))]
    vals = {int(i): float(values[i]) for i in idx}
    return contexts(store, idx, window=window, values=vals)


DIFF_ORDERS = ("mean", "rate")


def check_order(by: str) -> None:
    """``by`` must name a difference ``Diff.top`` orders by."""
    if by not in DIFF_ORDERS:
        raise UsageError(f"--by {by!r}: use {' or '.join(DIFF_ORDERS)}")


@dataclass
class Diff:
    hook: str
    a: str
    b: str
    n_a: int
    n_b: int
    mean_a: np.ndarray
    mean_b: np.ndarray
    mean_diff: np.ndarray
    mean_diff_ci: tuple[np.ndarray, np.ndarray]
    rate_a: np.ndarray
    rate_b: np.ndarray
    rate_diff: np.ndarray
    rate_diff_ci: tuple[np.ndarray, np.ndarray]

    def top(self, k: int = 20, by: str = "mean") -> list[dict[str, Any]]:
        check_order(by)
        v = self.mean_diff if by == "mean" else self.rate_diff
        idx = np.argsort(-np.abs(v), kind="stable")[:k]
        return [{"channel": int(i), "mean_a": float(self.mean_a[i]), "mean_b": float(self.mean_b[i]),
                 "mean_diff": float(self.mean_diff[i]),
                 "mean_diff_ci": [float(self.mean_diff_ci[0][i]), float(self.mean_diff_ci[1][i])],
                 "rate_a": float(self.rate_a[i]), "rate_b": float(self.rate_b[i]),
                 "rate_diff": float(self.rate_diff[i]),
                 "rate_diff_ci": [float(self.rate_diff_ci[0][i]), float(self.rate_diff_ci[1][i])]} for i in idx]


def _moments(store: Store, hook: str, rows: np.ndarray | None, threshold: float):
    """Per-channel sum, sum of squares and firing count over the selected rows (None = all)."""
    d = store.width(hook)
    s = np.zeros(d)
    ss = np.zeros(d)
    fire = np.zeros(d)
    n = 0
    for sh in store.manifest.shards:
        block = store.shard(hook, sh.index)
        if rows is not None:
            lo = np.searchsorted(rows, sh.first_row)
            hi = np.searchsorted(rows, sh.first_row + sh.rows)
            if hi == lo:
                continue
            sel = rows[lo:hi] - sh.first_row
            contiguous = sel[-1] - sel[0] == len(sel) - 1  # one run of rows: a view, not a copy
            block = block[sel[0]: sel[-1] + 1] if contiguous else block[sel]
        for start in range(0, len(block), 8192):  # cache-sized chunks: no full-size temporaries
            x = block[start: start + 8192].astype(np.float32)
            s += x.sum(0)
            ss += np.einsum("ij,ij->j", x, x)
            fire += np.count_nonzero(x > threshold, axis=0)
            n += len(x)
    return n, s, ss, fire


def _rows_where(store: Store, where: str) -> np.ndarray:
    """Rows matching ``key=value`` on a tokens.parquet column (label.x, split, prompt_id ...)."""
    key, sep, value = where.partition("=")
    if not sep:
        raise UsageError(f"{where!r}: expected COLUMN=VALUE (e.g. label.topic=war)")
    con = connect(store)
    cols = {r[0] for r in con.execute("DESCRIBE SELECT * FROM tokens").fetchall()}
    if key not in cols:
        raise UsageError(f"{key!r} is not a tokens column (have: {', '.join(sorted(cols))})")
    got = con.execute(f'SELECT row FROM tokens WHERE CAST("{key}" AS VARCHAR) = ? ORDER BY row', [value]).fetchnumpy()
    return got["row"].astype(np.int64)


def diff(a: Store, hook: str, *, b: Store | None = None, where_a: str | None = None, where_b: str | None = None,
         threshold: float = 0.0) -> Diff:
    """Mean and firing-rate (> threshold) differences per channel, A - B, with 95% normal intervals.

    A and B are two stores, or two labelled subsets of one store (``where_a`` / ``where_b``).
    """
    b = b or a
    if b is a and not (where_a and where_b):
        raise UsageError("diff within one store needs --where-a and --where-b (e.g. label.topic=war)")
    if a.width(hook) != b.width(hook):
        raise UsageError(f"{hook} is {a.width(hook)} wide in {a.root} but {b.width(hook)} in {b.root}")
    rows_a = _rows_where(a, where_a) if where_a else None
    rows_b = _rows_where(b, where_b) if where_b else None
    na, sa, ssa, fa = _moments(a, hook, rows_a, threshold)
    nb, sb, ssb, fb = _moments(b, hook, rows_b, threshold)
    if na < 2 or nb < 2:
        raise UsageError(f"too few rows to compare ({na} vs {nb})")
    ma, mb = sa / na, sb / nb
    va = np.maximum(ssa / na - ma**2, 0) * na / (na - 1)
    vb = np.maximum(ssb / nb - mb**2, 0) * nb / (nb - 1)
    se = np.sqrt(va / na + vb / nb)
    ra, rb = fa / na, fb / nb
    se_r = np.sqrt(ra * (1 - ra) / na + rb * (1 - rb) / nb)
    z = 1.959963984540054
    md, rd = ma - mb, ra - rb
    return Diff(hook, where_a or str(a.root), where_b or str(b.root), na, nb, ma, mb, md, (md - z * se, md + z * se),
                ra, rb, rd, (rd - z * se_r, rd + z * se_r))


def trace_png(store: Store, hook: str, index: int, doc_id: int, path: str | os.PathLike) -> Path:
    """A per-token trace of one channel across one document (PNG: needs matplotlib, the ``plots`` extra)."""
    from interp_lab.io.figures import pyplot, save_png

    check_channel(store, hook, index)
    plt = pyplot()  # the figure is the only output: no matplotlib, no command
    con = connect(store)
    got = con.execute("SELECT row, token_str FROM tokens WHERE doc_id = ? ORDER BY row", [doc_id]).fetchall()
    if not got:
        raise UsageError(f"document {doc_id} is not in this store")
    rows = np.array([g[0] for g in got])
    vals = store.acts(hook, rows)[:, index].astype(np.float32)
    fig, ax = plt.subplots(figsize=(max(6, 0.12 * len(vals)), 3))
    ax.plot(np.arange(len(vals)), vals, lw=1)
    ax.set_xlabel("token")
    ax.set_ylabel(f"{hook}[{index}]")
    ax.set_title(f"{store.manifest.model}: {hook} channel {index}, document {doc_id}", fontsize=9)
    if len(vals) <= 120:
        ax.set_xticks(np.arange(len(vals)), [g[1] for g in got], rotation=90, fontsize=6)
    fig.tight_layout()
    return save_png(fig, path, dpi=110)
