"""The activation store on disk (``interp-lab.activation_store.v1``, formats.md)::

    manifest.json                       what was harvested, from what, and which shards are complete
    tokens.parquet                      one row per stored token (written when the harvest completes;
                                        tokens/part-NNNNN.parquet until then)
    acts/<hook>/shard-NNNNN.safetensors tensor "acts" [rows, d] in the store dtype

The manifest holds no times, hosts or absolute paths, so an interrupted and
resumed harvest ends byte-identical to an uninterrupted one.
"""

from __future__ import annotations

from typing import Any, Optional

import msgspec

STORE_SCHEMA = "interp-lab.activation_store.v1"


class Shard(msgspec.Struct, frozen=True):
    index: int
    first_row: int
    rows: int
    batches: tuple[int, int]  # [first, end) batch indices it holds
    sha256: dict[str, str]  # file (relative) -> sha256


class StoreManifest(msgspec.Struct):
    schema_version: str
    model: str
    revision: Optional[str]
    family: str
    tokenizer: str
    dtype: str
    hooks: list[str]
    d: dict[str, int]  # hook -> width
    dataset: str
    dataset_hash: str
    documents: int
    context_length: int
    batch_size: int
    max_tokens: Optional[int]
    shard_rows: int
    total_batches: int
    engine: str = "hooks"  # what read the hooks: hooks (interp-lab's own), transformerlens or nnsight
    shards: list[Shard] = []
    completed_batches: int = 0
    complete: bool = False
    rows: int = 0
    tokens_sha256: Optional[str] = None
    settings_key: str = ""  # hash of everything that must match to resume
    # an hf: dataset's identity (io/hf_datasets.py): kind, name or path, config, split, revision or fingerprint
    # (a file's sha256), text column; None for the corpora and files, whose name says it
    dataset_source: Optional[dict[str, Any]] = None

    def resume_key(self) -> dict[str, Any]:
        key = {k: getattr(self, k) for k in ("model", "revision", "dtype", "hooks", "dataset_hash", "context_length",
                                             "batch_size", "max_tokens", "shard_rows", "total_batches")}
        if self.engine != "hooks":  # a store of the default engine keeps the key it had before engines existed
            key["engine"] = self.engine
        return key


def hook_dir(hook: str) -> str:
    """Directory name of a hook's shards (hook names are already filesystem-safe)."""
    return f"acts/{hook}"


def shard_file(hook: str, index: int) -> str:
    return f"{hook_dir(hook)}/shard-{index:05d}.safetensors"


def tokens_part(index: int) -> str:
    return f"tokens/part-{index:05d}.parquet"
