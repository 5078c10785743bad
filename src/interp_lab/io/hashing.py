"""Stable hashes of prompt ids: the basis of every deterministic split and probe choice.

FNV-1a over the UTF-8 bytes followed by the splitmix64 finalizer, computed
for all ids at once with numpy (one pass per byte position), so hashing a
million prompt ids costs milliseconds and gives the same numbers on every
machine.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable

import numpy as np
import pyarrow as pa

_OFFSET = np.uint64(0xCBF29CE484222325)
_PRIME = np.uint64(0x100000001B3)


def hash64(prompt_ids: Iterable[str] | np.ndarray | pa.Array) -> np.ndarray:
    """[n] uint64 hash of each id's UTF-8 bytes."""
    arr = prompt_ids if isinstance(prompt_ids, pa.Array) else pa.array(
        np.asarray(prompt_ids, dtype=object) if not isinstance(prompt_ids, np.ndarray) else prompt_ids,
        pa.large_string())
    arr = arr.cast(pa.large_string())
    n = len(arr)
    if arr.null_count:
        raise ValueError("prompt ids must not be null")
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset: arr.offset + n + 1]
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8) if arr.buffers()[2] is not None else np.zeros(0, np.uint8)
    lengths = np.diff(offsets)
    h = np.full(n, _OFFSET, dtype=np.uint64)
    # walk byte positions; strings sorted by length so each pass touches only the live tail
    order = np.argsort(lengths, kind="stable")
    sorted_len = lengths[order]
    starts = offsets[:-1][order]
    hs = h[order]
    for j in range(int(sorted_len[-1]) if n else 0):
        first = int(np.searchsorted(sorted_len, j, side="right"))
        hs[first:] = (hs[first:] ^ data[starts[first:] + j].astype(np.uint64)) * _PRIME
    h[order] = hs
    # splitmix64 finalizer: every input bit reaches every output bit
    h ^= h >> np.uint64(30)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(27)
    h *= np.uint64(0x94D049BB133111EB)
    h ^= h >> np.uint64(31)
    return h


def hash_unit(prompt_ids: Iterable[str] | np.ndarray | pa.Array) -> np.ndarray:
    """Map each prompt_id to a number in [0, 1) (53 bits of its hash)."""
    return (hash64(prompt_ids) >> np.uint64(11)).astype(np.float64) / 2.0**53


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
