"""Deterministic splits, never by file order (formats.md, evidence rule 3).

Activation records without a split: by prompt_id hash. Both schemes cut the
same hash, so they nest: the 40/20/40 discovery set is inside the 50/50 one
and the 40/20/40 held-out set inside the 50/50 one.

Compiled prompt sets: by group (``metadata.group``, default the source
document ``metadata.doc``, else the prompt id; contrast pairs joined), so no
document feeds two splits, and stratified by class (``stratified_group_splits``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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


# --- prompt sets: splits by group (evidence rule 3) -------------------------------------------------------------

GROUP_FIELDS = ("metadata.group", "metadata.doc")


def _group_key(row: dict[str, Any]) -> tuple[str, str]:
    """(where the key came from, the key): ``metadata.group``, else ``metadata.doc``, else the prompt id."""
    meta = row.get("metadata") or {}
    for name in GROUP_FIELDS:
        value = meta.get(name.split(".", 1)[1])
        if value is not None and value != "":
            return name, str(value)
    return "prompt_id", str(row["prompt_id"])


@dataclass
class Groups:
    """Which group each prompt row belongs to: rows of one group must share a split."""

    index: np.ndarray  # [rows] group number
    names: list[str]  # [groups] the smallest key of the group (what ties are hashed by)
    by: str  # what the groups are: "metadata.doc", "metadata.group", "prompt_id", or several joined by " / "

    def __len__(self) -> int:
        return len(self.names)


def prompt_groups(rows: Sequence[dict[str, Any]]) -> Groups:
    """Group prompt rows by ``metadata.group`` (default ``metadata.doc``, else the prompt id), and join the
    groups of rows that share ``labels.pair`` (a contrast pair is never split, even across documents)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        root = x
        while parent.setdefault(root, root) != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    keys, used = [], {}
    for r in rows:
        source, key = _group_key(r)
        used[source] = True
        node = "k\0" + key
        find(node)
        pair = (r.get("labels") or {}).get("pair")
        if pair is not None:
            a, b = find(node), find("p\0" + str(pair))
            if a != b:
                parent[max(a, b)] = min(a, b)
        keys.append(node)
    roots = [find(k) for k in keys]
    members: dict[str, str] = {}
    for root, key in zip(roots, keys):
        if root not in members or key < members[root]:
            members[root] = key
    order = sorted(members, key=lambda root: members[root])
    number = {root: i for i, root in enumerate(order)}
    by = " / ".join(s for s in (*GROUP_FIELDS, "prompt_id") if s in used)
    if any((r.get("labels") or {}).get("pair") is not None for r in rows):
        by += " (contrast pairs joined)"
    return Groups(np.array([number[r] for r in roots], dtype=np.int64), [members[r][2:] for r in order], by)


def heldout_fractions(fractions: dict[str, float], n: int, min_heldout: int) -> dict[str, float]:
    """The spec's fractions, with the held-out share raised to ``min_heldout`` prompts when its fraction
    gives fewer (discovery and calibration keep their proportions of the rest). Raises ``ValueError`` when
    that would leave held-out more than half of the ``n`` prompts."""
    frac = {s: float(fractions.get(s, 0.0)) for s in SPLITS}
    if frac["heldout"] * n >= min_heldout:
        return frac
    if 2 * min_heldout > n:
        raise ValueError(f"{n} prompts cannot hold min_heldout {min_heldout} held-out prompts with at least as "
                         "many left for discovery and calibration")
    share = min_heldout / n
    rest = 1.0 - frac["heldout"]
    out = {s: (frac[s] / rest * (1.0 - share) if rest > 0 else 0.0) for s in ("discovery", "calibration")}
    return {**out, "heldout": share}


def stratified_group_splits(groups: Groups, classes: np.ndarray, fractions: dict[str, float],
                            given: np.ndarray | None = None, min_heldout: int = 0) -> np.ndarray:
    """Split code per row: every group in one split, each split with its fraction of every class.

    Rows with a ``given`` split code (>= 0) keep it, and the other rows of their group join them (the
    caller refuses a group given two splits). The other groups are dealt, largest first (equal sizes in
    the order of a hash of their name), each to the split it fills least: the split whose share of the
    group's classes, with the group added, is the smallest fraction of its target (the split's fraction
    of every class's prompts); ties go by a hash of group and split. So splits hold their fraction of
    positives and negatives within about one group, a document never feeds two splits, and the result
    depends on the prompt set alone. Afterwards, while held-out has fewer than ``min_heldout`` rows, the
    smallest dealt group of the fullest other split moves to it.
    """
    classes = np.asarray(classes)
    n = len(classes)
    given = np.full(n, -1, dtype=np.int8) if given is None else np.asarray(given, dtype=np.int8)
    levels, cls = np.unique(classes, return_inverse=True)
    G, C, S = len(groups), len(levels), len(SPLITS)
    frac = np.array([float(fractions.get(s, 0.0)) for s in SPLITS])
    counts = np.zeros((G, C), dtype=np.int64)
    np.add.at(counts, (groups.index, cls), 1)
    target = frac[:, None] * np.bincount(cls, minlength=C)[None, :].astype(np.float64)  # [S, C]
    fill = np.zeros((S, C), dtype=np.int64)
    split_of = np.full(G, -1, dtype=np.int8)
    pinned = given >= 0
    split_of[groups.index[pinned]] = given[pinned]
    for g in np.flatnonzero(split_of >= 0):
        fill[split_of[g]] += counts[g]
    free = np.flatnonzero(split_of < 0)
    names = np.array(groups.names, dtype=object)
    unit = hash_unit(names[free]) if len(free) else np.zeros(0)
    tie = (hash_unit([f"{name}\0{s}" for name in names[free] for s in SPLITS]).reshape(len(free), S)
           if len(free) else np.zeros((0, S)))
    open_ = frac > 0
    safe = np.where(target > 0, target, np.inf)
    for j in np.lexsort((unit, -counts[free].sum(1))):
        g = free[j]
        cost = ((fill + counts[g]) / safe * counts[g]).sum(1)
        cost[~open_] = np.inf
        best = cost.min()
        near = np.flatnonzero(cost <= best + 1e-9 * max(best, 1.0))
        s = near[np.argmin(tie[j, near])]
        split_of[g] = s
        fill[s] += counts[g]
    dealt = np.zeros(G, dtype=bool)
    dealt[free] = True
    size = counts.sum(1)
    while fill[HELDOUT].sum() < min_heldout:
        ratio = np.where(target.sum(1) > 0, fill.sum(1) / np.maximum(target.sum(1), 1e-12), -np.inf)
        ratio[HELDOUT] = -np.inf
        movable = [s for s in np.argsort(-ratio, kind="stable") if s != HELDOUT
                   and (dealt & (split_of == s)).any()]
        if not movable:
            break
        cand = np.flatnonzero(dealt & (split_of == movable[0]))
        g = cand[np.lexsort((hash_unit(names[cand]), size[cand]))[0]]
        fill[split_of[g]] -= counts[g]
        split_of[g] = HELDOUT
        fill[HELDOUT] += counts[g]
    return split_of[groups.index]
