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


def settings_key(m: StoreManifest) -> str:
    return hashlib.sha256(msgspec.json.encode(m.resume_key(), order="sorted")).hexdigest()


class StoreWriter:
    """Appends shards to a store directory; resumes one whose settings match."""

    def __init__(self, out: str | os.PathLike, manifest: StoreManifest, *, overwrite: bool = False):
        self.root = Path(out)
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
        """Write one shard (every hook's activations and the token rows), then record it."""
        from safetensors.numpy import save_file

        m = self.manifest
        index = len(m.shards)
        rows = tokens.num_rows
        sha: dict[str, str] = {}
        for hook, arr in acts.items():
            if arr.shape[0] != rows:
                raise ValueError(f"{hook}: {arr.shape[0]} activation rows for {rows} tokens")
            rel = shard_file(hook, index)
            with atomic_path(self.root / rel) as tmp:
                if isinstance(arr, np.ndarray):
                    save_file({"acts": np.ascontiguousarray(arr)}, str(tmp))
                else:  # a torch tensor (bfloat16 has no numpy dtype)
                    from safetensors.torch import save_file as save_torch

                    save_torch({"acts": arr.contiguous()}, str(tmp))
            sha[rel] = sha256_file(self.root / rel)
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


def _differences(a: StoreManifest, b: StoreManifest) -> str:
    ka, kb = a.resume_key(), b.resume_key()
    diff = [k for k in ka if ka[k] != kb[k]]
    return ", ".join(f"{k}: {ka[k]!r} vs {kb[k]!r}" for k in diff) or "settings differ"
