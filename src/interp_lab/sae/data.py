"""Token rows of a store for SAE training and evaluation, streamed through a shuffled buffer."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

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
                     buffer_rows: int = 1 << 18, ahead: int = 16) -> Iterator[np.ndarray]:
    """Float32 batches [batch_size, d] of the given rows in a shuffled order, shard by shard: shards are
    visited in a random order and mixed in a buffer of ``buffer_rows`` (never the whole store), half the
    buffer given out per refill. Several hooks (a transcoder's input and output) come side by side, d the
    sum of their widths. Deterministic for a seed; the last partial batch is dropped.

    A background thread prepares up to ``ahead`` batches (0: none, all in the caller's thread), so that
    shard reads and refills happen while the caller trains instead of stalling it."""
    batches = _shuffled(store, hook, rows, batch_size, seed, buffer_rows)
    return _prefetched(batches, ahead) if ahead > 0 else batches


def _shuffled(store: Store, hook: str | Sequence[str], rows: np.ndarray, batch_size: int, seed: int,
              buffer_rows: int) -> Iterator[np.ndarray]:
    """shuffled_batches in the caller's thread. The buffer is two arrays in the store's dtype, allocated once
    (a fresh array per refill cost more in page faults than in copying), never permuted as a whole: each
    batch is gathered through the permutation and widened to float32 on its own, and the rows kept are
    gathered into the other array. (Permuting a float32 copy of the whole buffer took 1.5 s per refill.)"""
    hooks = [hook] if isinstance(hook, str) else list(hook)
    rng = np.random.default_rng(seed)
    shards = store.manifest.shards
    want = np.zeros(store.rows, dtype=bool)
    want[rows] = True
    counts = [int(want[s.first_row: s.first_row + s.rows].sum()) for s in shards]
    width = sum(store.manifest.d[h] for h in hooks)
    pool = spare = None
    held = 0
    for k in rng.permutation(len(shards)):
        s, count = shards[k], counts[k]
        if not count:
            continue
        mine, col = want[s.first_row: s.first_row + s.rows], 0
        for h in hooks:
            acts = store.shard(h, s.index)
            if pool is None:
                cap = min(buffer_rows + max(counts), sum(counts))
                pool, spare = np.empty((cap, width), acts.dtype), np.empty((cap, width), acts.dtype)
            pool[held: held + count, col: col + acts.shape[1]] = acts[mine]
            col += acts.shape[1]
        held += count
        if held >= buffer_rows:
            order = rng.permutation(held)
            half = held // 2
            n = half // batch_size * batch_size
            yield from _gathered(pool, order[:n], batch_size)
            # what stays: the unserved half, then the rows short of a whole batch
            np.take(pool, np.concatenate([order[half:], order[n:half]]), axis=0, out=spare[: held - n])
            pool, spare, held = spare, pool, held - n
    if held:
        order = rng.permutation(held)
        yield from _gathered(pool, order[: held // batch_size * batch_size], batch_size)


def _gathered(pool: np.ndarray, order: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    for a in range(0, len(order), batch_size):
        yield pool[order[a: a + batch_size]].astype(np.float32)


_END = object()


class _Failed(NamedTuple):
    error: BaseException


def _prefetched(items: Iterator[np.ndarray], depth: int) -> Iterator[np.ndarray]:
    """``items`` run in a daemon thread, at most ``depth`` ahead of the consumer; an exception there is
    raised here, and closing this generator (a loop that breaks early) stops the thread."""
    q: queue.Queue = queue.Queue(depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def run() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_END)
        except BaseException as e:  # handed to the consumer, raised in its thread
            put(_Failed(e))

    threading.Thread(target=run, name="shuffled-batches", daemon=True).start()
    try:
        while (item := q.get()) is not _END:
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
