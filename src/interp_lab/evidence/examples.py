"""What a card shows beside its numbers: top activating contexts and an activation signature."""

from __future__ import annotations

from typing import Any

import numpy as np

from interp_lab.io.records import RecordMatrix
from interp_lab.schemas.records import SPLITS

MAX_TEXT = 600
WINDOW_BEFORE, WINDOW_AFTER = 8, 4


class ExampleFinder:
    """Top contexts of feature columns; token rows get a window of neighbouring tokens."""

    def __init__(self, m: RecordMatrix, splits: np.ndarray):
        self.m = m
        self.Xc = m.to_csc()
        self.splits = splits
        self.token_rows = bool((m.token_index >= 0).any() and m.tokens is not None)
        if self.token_rows:
            groups = m.prompt_groups()
            order = np.lexsort((m.token_index, groups))
            self._order = order
            self._starts = np.searchsorted(groups[order], np.arange(groups.max() + 2))
            self._groups = groups

    def column(self, col: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.Xc.indptr[col], self.Xc.indptr[col + 1]
        return self.Xc.indices[lo:hi], self.Xc.data[lo:hi]

    def top(self, col: int, k: int) -> list[dict[str, Any]]:
        rows, vals = self.column(col)
        if len(rows) == 0:
            return []
        k = min(k, len(rows))
        pick = np.argpartition(-vals, k - 1)[:k] if k < len(rows) else np.arange(len(rows))
        # highest activation first; ties broken by row for determinism
        pick = pick[np.lexsort((rows[pick], -vals[pick]))]
        act_of = dict(zip(rows.tolist(), vals.tolist())) if self.token_rows else None
        out = []
        for i in pick:
            out.append(self._example(int(rows[i]), float(vals[i]), act_of))
        return out

    def _example(self, row: int, act: float, act_of: dict[int, float] | None) -> dict[str, Any]:
        m = self.m
        text = m.text(row)
        ex: dict[str, Any] = {
            "prompt_id": str(m.prompt_ids[row]),
            "activation": round(act, 6),
            "split": SPLITS[self.splits[row]] if self.splits[row] >= 0 else None,
            "criterion_score": None if not np.isfinite(m.scores[row]) else round(float(m.scores[row]), 6),
        }
        if text is not None:
            ex["text"] = text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"
        if m.token_index[row] >= 0:
            ex["token_index"] = int(m.token_index[row])
            if m.tokens is not None and m.tokens[row] is not None:
                ex["token"] = str(m.tokens[row])
        if act_of is not None and m.token_index[row] >= 0:
            g = self._groups[row]
            rows = self._order[self._starts[g]: self._starts[g + 1]]
            ti = m.token_index[row]
            near = rows[(m.token_index[rows] >= ti - WINDOW_BEFORE) & (m.token_index[rows] <= ti + WINDOW_AFTER)]
            ex["context"] = [
                {"token": None if m.tokens[r] is None else str(m.tokens[r]),
                 "activation": round(act_of.get(int(r), 0.0), 6), "focus": bool(r == row)}
                for r in near
            ]
        return ex


def signature_probes(m: RecordMatrix, k: int) -> np.ndarray:
    """Rows of the ``k`` prompts with the smallest hash: the same probes for any model run on the same prompts."""
    units = m.prompt_units()
    uniq = np.unique(units)
    cut = uniq[k - 1] if len(uniq) > k else np.inf
    return np.flatnonzero(units <= cut)


def activation_signatures(m: RecordMatrix, cols: list[int], k: int) -> dict[int, dict[str, float]]:
    """Per column, ``{prompt_id: max activation over the prompt's rows}`` on the probe prompts."""
    if not cols:
        return {}
    rows = signature_probes(m, k)
    pids = m.prompt_ids[rows].astype(str)
    order = np.argsort(pids, kind="stable")
    rows, pids = rows[order], pids[order]
    starts = np.flatnonzero(np.r_[True, pids[1:] != pids[:-1]])
    keys = pids[starts]
    dense = m.to_csc().take_major(np.asarray(cols)).dense_rows(rows)  # [probe rows, cols]
    pooled = np.maximum.reduceat(dense, starts, axis=0) if len(rows) else np.zeros((0, len(cols)))
    return {c: {str(key): round(float(v), 6) for key, v in zip(keys, pooled[:, j])} for j, c in enumerate(cols)}
