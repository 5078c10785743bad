"""Token rows of a store for SAE training and evaluation, streamed through a shuffled buffer."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from interp_lab.evidence.splits import HELDOUT, split_codes
from interp_lab.store.reader import Store

HELDOUT_FRACTION = 0.1  # evidence.md: a deterministic 10% of documents by id hash


@dataclass(frozen=True)
class Rows:
    train: np.ndarray  # global store rows, int64
    heldout: np.ndarray


def split_rows(store: Store) -> Rows:
    """Train / held-out rows by document (10% of documents by hash of their id), the first position of
    every window (an attention sink with a huge norm) left out of both."""
    t = store.tokens(["row", "prompt_id", "position"])
    rows = t.column("row").to_numpy()
    keep = t.column("position").to_numpy() > 0
    held = split_codes(t.column("prompt_id").to_numpy(zero_copy_only=False),
                       {"discovery": 1 - HELDOUT_FRACTION, "calibration": 0.0}) == HELDOUT
    return Rows(rows[keep & ~held].astype(np.int64), rows[keep & held].astype(np.int64))


def shuffled_batches(store: Store, hook: str | Sequence[str], rows: np.ndarray, batch_size: int, seed: int,
                     buffer_rows: int = 1 << 18) -> Iterator[np.ndarray]:
    """Float32 batches [batch_size, d] of the given rows in a shuffled order, shard by shard: shards are
    visited in a random order and mixed in a buffer of ``buffer_rows`` (never the whole store), half the
    buffer given out per refill. Several hooks (a transcoder's input and output) come side by side, d the
    sum of their widths. Deterministic for a seed; the last partial batch is dropped."""
    hooks = [hook] if isinstance(hook, str) else list(hook)
    rng = np.random.default_rng(seed)
    shards = store.manifest.shards
    want = np.zeros(store.rows, dtype=bool)
    want[rows] = True
    buf: list[np.ndarray] = []
    held = 0
    for k in rng.permutation(len(shards)):
        s = shards[k]
        mine = want[s.first_row: s.first_row + s.rows]
        if not mine.any():
            continue
        parts = [store.shard(h, s.index)[mine].astype(np.float32) for h in hooks]
        buf.append(parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1))
        held += len(buf[-1])
        if held >= buffer_rows:
            pool = np.concatenate(buf)
            pool = pool[rng.permutation(len(pool))]
            out, keep = pool[: len(pool) // 2], pool[len(pool) // 2:]
            n = len(out) // batch_size * batch_size
            yield from out[:n].reshape(-1, batch_size, pool.shape[1])
            buf, held = [keep, out[n:]], len(keep) + len(out) - n
    if buf:
        pool = np.concatenate(buf)
        pool = pool[rng.permutation(len(pool))]
        n = len(pool) // batch_size * batch_size
        yield from pool[:n].reshape(-1, batch_size, pool.shape[1])
