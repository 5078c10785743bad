"""Writing a store: whole shards at a time, each file atomically, the manifest last."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from interp_lab.errors import UsageError
from interp_lab.io.atomic import atomic_path, write_bytes_atomic
from interp_lab.io.hashing import sha256_file
from interp_lab.store.format import STORE_SCHEMA, Shard, StoreManifest, shard_file, tokens_part
from interp_lab.store.lock import StoreLock


def settings_key(m: StoreManifest) -> str:
    return hashlib.sha256(msgspec.json.encode(m.resume_key(), order="sorted")).hexdigest()


class StoreWriter:
    """Appends shards to a store directory; resumes one whose settings match.

    Holds the store's lock (``lock``, or one it takes) until ``close()`` or the end of a ``with`` block:
    a second writer of the same store fails at once instead of interleaving shards with the first.
    """

    def __init__(self, out: str | os.PathLike, manifest: StoreManifest, *, overwrite: bool = False,
                 lock: StoreLock | None = None):
        self.root = Path(out)
        self._own_lock = lock is None
        self.lock = StoreLock(self.root) if lock is None else lock
        try:
            self._open(manifest, overwrite)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Release the store's lock if this writer took it."""
        if self._own_lock:
            self.lock.release()

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self, manifest: StoreManifest, overwrite: bool) -> None:
        manifest.schema_version = STORE_SCHEMA
        manifest.settings_key = settings_key(manifest)
        path = self.root / "manifest.json"
        if path.exists() and not overwrite:
            old = msgspec.json.decode(path.read_bytes(), type=StoreManifest)
            if old.settings_key != manifest.settings_key:
                raise UsageError(f"{self.root} holds a store harvested with other settings "
                                 f"({_differences(old, manifest)}); use another --out or --overwrite")
            self.manifest = old
        else:
            if overwrite and self.root.exists():
                import shutil

                for sub in ("acts", "tokens", "tokens.parquet", "manifest.json"):
                    p = self.root / sub
                    shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            self.manifest = manifest
            self._save()

    @property
    def completed_batches(self) -> int:
        return self.manifest.completed_batches

    def _save(self) -> None:
        write_bytes_atomic(self.root / "manifest.json",
                           msgspec.json.format(msgspec.json.encode(self.manifest), indent=2) + b"\n")

    def write_shard(self, acts: dict[str, Any], tokens: pa.Table, batches: tuple[int, int]) -> None:
        """Write one shard (every hook's activations, each a list of row blocks, and the token rows),
        then record it."""
        m = self.manifest
        index = len(m.shards)
        rows = tokens.num_rows
        sha: dict[str, str] = {}
        for hook, chunks in acts.items():
            chunks = chunks if isinstance(chunks, list) else [chunks]
            got = sum(int(c.shape[0]) for c in chunks)
            if got != rows:
                raise ValueError(f"{hook}: {got} activation rows for {rows} tokens")
            rel = shard_file(hook, index)
            with atomic_path(self.root / rel) as tmp:
                sha[rel] = write_safetensors(tmp, "acts", chunks)
        rel = tokens_part(index)
        with atomic_path(self.root / rel) as tmp:
            pq.write_table(tokens, tmp, compression="zstd")
        sha[rel] = sha256_file(self.root / rel)
        m.shards.append(Shard(index=index, first_row=m.rows, rows=rows, batches=batches, sha256=sha))
        m.rows += rows
        m.completed_batches = batches[1]
        self._save()

    def finish(self) -> None:
        """Merge the token parts into tokens.parquet and mark the store complete."""
        m = self.manifest
        if m.complete:  # rerunning a finished harvest changes nothing
            return
        parts = [self.root / tokens_part(s.index) for s in m.shards]
        if parts:
            table = pa.concat_tables([pq.read_table(p) for p in parts])
            with atomic_path(self.root / "tokens.parquet") as tmp:
                pq.write_table(table, tmp, compression="zstd", row_group_size=1 << 17)
            m.tokens_sha256 = sha256_file(self.root / "tokens.parquet")
        m.complete = True
        self._save()
        for p in parts:
            p.unlink(missing_ok=True)
        tokens_dir = self.root / "tokens"
        if tokens_dir.is_dir() and not any(tokens_dir.iterdir()):
            tokens_dir.rmdir()


_ST_DTYPES = {"float16": "F16", "float32": "F32", "bfloat16": "BF16"}


def write_safetensors(path: str | os.PathLike, name: str, chunks: list[Any]) -> str:
    """One tensor, given as row blocks (numpy arrays, or torch tensors for bfloat16), written as a
    safetensors file block by block (no concatenated copy), hashed while written; returns the sha256.

    The bytes equal ``safetensors.numpy.save_file({name: np.concatenate(chunks)})`` (tested): an
    8-byte little-endian header length, the JSON header padded with spaces to 8 bytes, the data."""
    blocks = [_raw(c) for c in chunks]
    dtype = {_raw_dtype(c) for c in chunks}
    widths = {tuple(c.shape[1:]) for c in chunks}
    if len(dtype) != 1 or len(widths) != 1:
        raise ValueError(f"{name}: row blocks differ in dtype or width")
    nbytes = sum(b.nbytes for b in blocks)
    shape = [sum(int(c.shape[0]) for c in chunks), *next(iter(widths))]
    header = msgspec.json.encode({name: {"dtype": _ST_DTYPES[dtype.pop()], "shape": shape,
                                         "data_offsets": [0, nbytes]}})
    header += b" " * (-len(header) % 8)
    h = hashlib.sha256()
    with open(path, "wb") as fh:
        for part in (len(header).to_bytes(8, "little"), header, *(memoryview(b).cast("B") for b in blocks)):
            h.update(part)
            fh.write(part)
    return h.hexdigest()


def _raw_dtype(c: Any) -> str:
    return str(c.dtype).removeprefix("torch.")


def _raw(c: Any) -> np.ndarray:
    """The C-contiguous bytes of a block as numpy (bfloat16 torch tensors through an int16 view)."""
    if isinstance(c, np.ndarray):
        return np.ascontiguousarray(c)
    import torch

    t = c.contiguous()
    return (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy()


def _differences(a: StoreManifest, b: StoreManifest) -> str:
    ka, kb = a.resume_key(), b.resume_key()
    keys = [*ka, *(k for k in kb if k not in ka)]  # the engine is in a key only when it is not the default
    va, vb = ({k: key.get(k, getattr(m, k)) for k in keys} for key, m in ((ka, a), (kb, b)))
    diff = [k for k in keys if va[k] != vb[k]]
    return ", ".join(f"{k}: {va[k]!r} vs {vb[k]!r}" for k in diff) or "settings differ"
