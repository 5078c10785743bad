"""``train-sae --records``: an SAE on the feature vectors of activation records (0.2's way of training
without a model at hand). The records of one layer become a one-shard store (one row per record, the
layer's features as columns in index order), so training, resume and evaluation are the ones stores get.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from interp_lab.errors import InputError, UsageError
from interp_lab.io.hashing import sha256_file
from interp_lab.schemas.feature_id import FeatureId, parse_id


def _unit(fid: str) -> FeatureId | None:
    """A feature id of one capital-letter kind (N, R, D, F, or another tool's); None for other ids."""
    got = parse_id(fid)
    return got if got and len(got.kind) == 1 and "A" <= got.kind <= "Z" else None


def records_hook(layer: int) -> str:
    return f"records.L{layer}"


def records_store(records: str | os.PathLike, out: str | os.PathLike, *, layer: int | None = None,
                  max_records: int | None = None) -> tuple[Path, str]:
    """Write (or reuse) the store of ``records`` at ``out``; (its path, its hook). ``max_records`` keeps a
    deterministic sample: the rows whose prompt_id hashes lowest (the same rows whatever the file order)."""
    from interp_lab.io.records import read_records
    from interp_lab.store.format import StoreManifest
    from interp_lab.store.writer import StoreWriter

    src = Path(records)
    m = read_records(src)
    parsed = [_unit(str(f)) for f in m.feature_ids]
    if not any(parsed):
        raise InputError(src, "no L<layer>:<kind><index> feature ids to train on", field="features")
    layers = sorted({p.layer for p in parsed if p})
    if layer is None:
        if len(layers) > 1:
            raise UsageError(f"{src}: features of layers {layers}; choose one with --layer")
        layer = layers[0]
    if layer not in layers:
        raise UsageError(f"{src}: no features of layer {layer} (it has {layers})")
    cols = [i for i, p in enumerate(parsed) if p and p.layer == layer]
    width = max(parsed[i].index for i in cols) + 1
    X = m.X.to_scipy().tocsr()[:, cols]
    keep = np.arange(m.n_rows)
    if max_records is not None and m.n_rows > max_records:
        h = np.array([int.from_bytes(hashlib.sha256(str(p).encode()).digest()[:8], "big") for p in m.prompt_ids],
                     dtype=np.uint64)
        keep = np.sort(np.argsort(h, kind="stable")[:max_records])
    dense = np.zeros((len(keep), width), dtype=np.float32)
    sub = X[keep].tocoo()
    dense[sub.row, [parsed[cols[c]].index for c in sub.col]] = sub.data
    hook = records_hook(layer)
    n = len(keep)
    digest = sha256_file(src)
    man = StoreManifest(schema_version="", model=(m.models or ["records"])[0], revision=None, family="records",
                        tokenizer="", dtype="float32", hooks=[hook], d={hook: width}, dataset=str(src),
                        dataset_hash=digest, documents=n, context_length=1, batch_size=n,
                        max_tokens=max_records, shard_rows=n, total_batches=1)
    with StoreWriter(out, man) as w:
        if not w.manifest.complete:  # a finished store of the same file is reused
            pids = [str(p) for p in m.prompt_ids[keep]]
            scores = m.scores[keep]
            tokens = pa.table({"row": pa.array(np.arange(n), pa.int64()), "doc_id": pa.array(np.arange(n), pa.int32()),
                               "prompt_id": pa.array(pids, pa.string()),
                               # position 1: a record is not a window's first token, which training leaves out
                               "position": pa.array(np.ones(n), pa.int32()), "doc_position": pa.array(np.zeros(n), pa.int32()),
                               "token_id": pa.array(np.full(n, -1), pa.int32()), "token_str": pa.array([""] * n, pa.string()),
                               "criterion_score": pa.array([None if np.isnan(s) else float(s) for s in scores], pa.float64())})
            w.write_shard({hook: dense}, tokens, (0, 1))
            w.finish()
    return Path(out), hook
