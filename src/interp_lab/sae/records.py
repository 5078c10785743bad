"""Activation records of SAE latents (``train-sae --records-out``): one row per document of a store, each
latent pooled over the document's tokens (every position but each window's first, as in training),
only active latents listed (formats.md: an absent feature is 0). ``inspect --backend records`` ranks them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from interp_lab.sae.base import SparseCoder
from interp_lab.schemas.feature_id import format_id
from interp_lab.schemas.records import ACTIVATION_RECORD
from interp_lab.store.reader import Store

POOLINGS = ("max", "mean")


def layer_of(hook: str) -> int | None:
    m = re.match(r"^blocks\.(\d+)\.", hook)
    return int(m.group(1)) if m else None


def _documents(store: Store) -> Iterator[tuple[str, np.ndarray, dict[str, Any]]]:
    """(prompt_id, its store rows past each window's first, its text and labels), in store order."""
    t = store.tokens()
    cols = set(t.column_names)
    pid = np.asarray(t.column("prompt_id").to_pylist(), dtype=object)
    pos = t.column("position").to_numpy()
    rows = t.column("row").to_numpy()
    tok = t.column("token_str").to_pylist()
    doc_pos = t.column("doc_position").to_numpy()
    score = t.column("criterion_score").to_pylist() if "criterion_score" in cols else [None] * len(rows)
    split = t.column("split").to_pylist() if "split" in cols else [None] * len(rows)
    labels = {c[len("label."):]: t.column(c).to_pylist() for c in cols if c.startswith("label.")}
    bounds = np.flatnonzero(np.r_[True, pid[1:] != pid[:-1], True])
    for a, b in zip(bounds[:-1], bounds[1:]):
        seen: dict[int, str] = {}
        for i in range(a, b):
            seen.setdefault(int(doc_pos[i]), tok[i])
        info = {"text": "".join(seen[k] for k in sorted(seen)), "criterion_score": score[a], "split": split[a],
                "labels": {k: v[a] for k, v in labels.items() if v[a] is not None}}
        yield str(pid[a]), rows[a:b][pos[a:b] > 0], info


@torch.no_grad()
def latent_records(sae: SparseCoder, store: Store, hook: str, *, pooling: str = "max", sae_id: str | None = None,
                   batch_size: int = 8192) -> Iterator[dict[str, Any]]:
    """Record rows (dicts) for ``write_jsonl``; the store is read document by document."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}")
    sae.eval()
    layer = layer_of(hook)
    man = store.manifest
    for prompt_id, rows, info in _documents(store):
        if not len(rows):
            continue
        pooled = torch.zeros(sae.cfg.d_sae)
        for a in range(0, len(rows), batch_size):
            z = sae.encode(torch.from_numpy(store.acts(hook, rows[a: a + batch_size]).astype(np.float32)))
            pooled = torch.maximum(pooled, z.amax(0)) if pooling == "max" else pooled + z.sum(0)
        if pooling == "mean":
            pooled /= len(rows)
        idx = torch.nonzero(pooled).flatten().tolist()
        row: dict[str, Any] = {"schema_version": ACTIVATION_RECORD, "model": man.model, "prompt_id": prompt_id,
                               "text": info["text"]}
        if info["criterion_score"] is not None:
            row["criterion_score"] = info["criterion_score"]
        if info["split"] is not None:
            row["split"] = info["split"]
        row["features"] = [{"feature_id": format_id(layer, "F", i), "activation": round(float(pooled[i]), 6),
                            **({"layer": layer} if layer is not None else {})} for i in idx]
        row["metadata"] = {"source": "sae", "sae": sae_id, "hook": hook, "pooling": pooling, "revision": man.revision,
                           "tokens": len(rows), **({"labels": info["labels"]} if info["labels"] else {})}
        yield row


def write_latent_records(sae: SparseCoder, store: Store, hook: str, out: str | os.PathLike, **kw: Any) -> int:
    """Write the records atomically (JSONL, .gz / .zst by suffix); the number of rows."""
    from interp_lab.io.jsonl import write_jsonl

    return write_jsonl(Path(out), latent_records(sae, store, hook, **kw))
