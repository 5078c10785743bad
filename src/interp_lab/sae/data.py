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


def _schedule(store: Store, rows: np.ndarray, batch_size: int, seed: int,
              buffer_rows: int) -> list[tuple[int, np.ndarray]]:
    """The shuffle of ``shuffled_batches`` on row numbers alone (no activations read): per shard in the
    order visited, its position in the manifest and the batches [m, batch_size] of global rows given
    out once it is in the buffer (the last entry's include the final flush)."""
    rng = np.random.default_rng(seed)
    shards = store.manifest.shards
    want = np.zeros(store.rows, dtype=bool)
    want[rows] = True
    none = np.zeros((0, batch_size), dtype=np.int64)
    plan: list[tuple[int, np.ndarray]] = []
    buf: list[np.ndarray] = []
    held = 0
    for k in rng.permutation(len(shards)):
        s = shards[k]
        mine = np.flatnonzero(want[s.first_row: s.first_row + s.rows]) + s.first_row
        if not len(mine):
            continue
        buf.append(mine)
        held += len(mine)
        given = none
        if held >= buffer_rows:
            pool = np.concatenate(buf)
            pool = pool[rng.permutation(len(pool))]
            out, keep = pool[: len(pool) // 2], pool[len(pool) // 2:]
            n = len(out) // batch_size * batch_size
            given = out[:n].reshape(-1, batch_size)
            buf, held = [keep, out[n:]], len(keep) + len(out) - n
        plan.append((int(k), given))
    if buf:
        pool = np.concatenate(buf)
        pool = pool[rng.permutation(len(pool))]
        n = len(pool) // batch_size * batch_size
        plan[-1] = (plan[-1][0], np.concatenate([plan[-1][1], pool[:n].reshape(-1, batch_size)]))
    return plan


def shuffled_batches(store: Store, hook: str | Sequence[str], rows: np.ndarray, batch_size: int, seed: int,
                     buffer_rows: int = 1 << 18, share: slice | None = None, ahead: int = 16) -> Iterator[np.ndarray]:
    """Float32 batches [batch_size, d] of the given rows in a shuffled order, shard by shard: shards are
    visited in a random order and mixed in a buffer of ``buffer_rows`` (never the whole store), half the
    buffer given out per refill. Several hooks (a transcoder's input and output) come side by side, d the
    sum of their widths. Deterministic for a seed; the last partial batch is dropped.

    ``share``: only these positions of every batch (one process's part of it in a torchrun run); the
    order is the same whatever the share, and rows outside it are never kept in memory.

    A background thread prepares up to ``ahead`` batches (0: none, all in the caller's thread), so that
    shard reads happen while the caller trains instead of stalling it."""
    batches = _batches(store, hook, rows, batch_size, seed, buffer_rows, share)
    return _prefetched(batches, ahead) if ahead > 0 else batches


def _batches(store: Store, hook: str | Sequence[str], rows: np.ndarray, batch_size: int, seed: int,
             buffer_rows: int, share: slice | None) -> Iterator[np.ndarray]:
    """shuffled_batches in the caller's thread. The rows read are kept in the store's dtype, and each
    batch is gathered and widened to float32 on its own when it is given out (gathering a refill's half
    of the buffer at once, in float32, took about a second per refill)."""
    hooks = [hook] if isinstance(hook, str) else list(hook)
    shards = store.manifest.shards
    plan = _schedule(store, rows, batch_size, seed, buffer_rows)
    share = share or slice(None)
    needed = np.zeros(store.rows, dtype=bool)
    for _, given in plan:
        needed[given[:, share].ravel()] = True
    # rows read and not yet given out, per shard: its needed rows (ascending), their activations, how many
    # are still to come
    held: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    left: dict[int, int] = {}
    starts = np.array([s.first_row for s in shards], dtype=np.int64)
    width = sum(store.manifest.d[h] for h in hooks)
    for k, given in plan:
        s = shards[k]
        mine = needed[s.first_row: s.first_row + s.rows]
        if mine.any():
            parts = [store.shard(h, s.index)[mine] for h in hooks]
            held[k] = (np.flatnonzero(mine) + s.first_row, parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1))
            left[k] = len(held[k][0])
        for want in given[:, share]:
            which = np.searchsorted(starts, want, side="right") - 1
            out = np.empty((len(want), width), dtype=np.float32)
            for j in np.unique(which):
                sel = which == j
                ids, acts = held[j]
                out[sel] = acts[np.searchsorted(ids, want[sel])]
                left[j] -= int(sel.sum())
                if not left[j]:
                    del held[j], left[j]
            yield out


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
