"""Reading a store without loading it whole: memory-mapped shards, Parquet token rows."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from interp_lab.errors import InputError
from interp_lab.store.format import STORE_SCHEMA, StoreManifest, shard_file, tokens_part


class Store:
    """An activation store directory (complete, or the complete shards of an interrupted harvest)."""

    def __init__(self, path: str | os.PathLike):
        self.root = Path(path)
        mpath = self.root / "manifest.json"
        if not mpath.is_file():
            raise InputError(self.root, "not an activation store (no manifest.json)")
        try:
            self.manifest = msgspec.json.decode(mpath.read_bytes(), type=StoreManifest)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise InputError(mpath, f"malformed store manifest ({exc})") from None
        if self.manifest.schema_version != STORE_SCHEMA:
            raise InputError(mpath, f"unknown schema_version {self.manifest.schema_version!r}",
                             field="schema_version")

    @property
    def hooks(self) -> list[str]:
        return list(self.manifest.hooks)

    @property
    def rows(self) -> int:
        return self.manifest.rows

    def tokens(self, columns: list[str] | None = None) -> pa.Table:
        if (self.root / "tokens.parquet").exists():
            return pq.read_table(self.root / "tokens.parquet", columns=columns)
        parts = [self.root / tokens_part(s.index) for s in self.manifest.shards]
        if not parts:
            return pa.table({})
        return pa.concat_tables([pq.read_table(p, columns=columns) for p in parts])

    def width(self, hook: str) -> int:
        """The width of ``hook`` (its last dimension); a hook the store does not hold is the user's error."""
        if hook not in self.manifest.hooks or hook not in self.manifest.d:
            raise InputError(self.root, f"hook {hook!r} is not in this store (it has {', '.join(self.hooks)})")
        return self.manifest.d[hook]

    def shard(self, hook: str, index: int) -> np.ndarray:
        """One shard of one hook ([rows, d]; float16 / float32 as stored, bfloat16 widened to float32)."""
        from safetensors import safe_open

        self.width(hook)
        path = self.root / shard_file(hook, index)
        if self.manifest.dtype == "bfloat16":
            return _read_bf16(path)
        with safe_open(str(path), framework="np") as f:
            return f.get_tensor("acts")

    def acts(self, hook: str, rows: np.ndarray | None = None) -> np.ndarray:
        """Activations of ``hook`` for the given global rows (all rows when None)."""
        shards = self.manifest.shards
        if rows is None:
            return np.concatenate([self.shard(hook, s.index) for s in shards]) if shards else np.zeros((0, 0))
        rows = np.asarray(rows, dtype=np.int64)
        starts = np.array([s.first_row for s in shards])
        which = np.searchsorted(starts, rows, side="right") - 1
        out = None
        for k in np.unique(which):
            block = self.shard(hook, shards[k].index)
            sel = which == k
            if out is None:
                out = np.empty((len(rows), block.shape[1]), dtype=block.dtype)
            out[sel] = block[rows[sel] - starts[k]]
        return out if out is not None else np.zeros((0, 0))


def _read_bf16(path: Path) -> np.ndarray:
    """The "acts" tensor of a bfloat16 safetensors file as float32 (numpy has no bfloat16)."""
    with open(path, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        header = msgspec.json.decode(fh.read(n))
    meta = header["acts"]
    if meta["dtype"] != "BF16":
        raise InputError(path, f"expected BF16 activations, found {meta['dtype']}")
    a, b = meta["data_offsets"]
    raw = np.memmap(path, dtype="<u2", mode="r", offset=8 + n + a, shape=((b - a) // 2,))
    return (raw.astype(np.uint32) << 16).view(np.float32).reshape(meta["shape"])
