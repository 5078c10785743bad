"""An SAE's latents over a whole activation store, as sparse Parquet (``latents/<sae_id>/``, formats.md).

One part per activation shard, with the non-zero latents only (``row`` int64, ``latent`` int32,
``value`` float32, sorted by row then latent), and an ``info.json`` naming the SAE (path, sha256 of its
weights, architecture, width, hook). The directory is written under a temporary name and renamed when
complete, so a store never holds half an encoding. The store reads them (``store.latents``: a latent's
top contexts, firing frequencies, through DuckDB over the parts), without importing this module.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from interp_lab.errors import UsageError
from interp_lab.store.latents import LATENTS_SCHEMA, latents_dir
from interp_lab.store.reader import Store

SAE_ID = re.compile(r"^[A-Za-z0-9._-]+$")


def encode_store(store: str | os.PathLike | Store, sae: str | os.PathLike, *, sae_id: str | None = None,
                 batch_size: int = 8192, progress: Callable[[int, int], None] | None = None) -> Path:
    """Encode every row of ``store`` at the SAE's hook; returns the ``latents/<sae_id>`` directory.
    ``sae_id`` defaults to the checkpoint directory's name and the first 8 hex digits of its weights'
    sha256. An existing encoding of the same id is replaced (only once the new one is complete)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch

    from interp_lab.sae.space import latent_space

    st = store if isinstance(store, Store) else Store(store)
    space = latent_space(sae)
    if space.hook not in st.hooks:
        raise UsageError(f"{st.root}: the SAE reads {space.hook}; the store has {', '.join(st.hooks)}")
    if st.manifest.d[space.hook] != space.sae.cfg.d_in:
        raise UsageError(f"{sae}: d_in {space.sae.cfg.d_in}, but {space.hook} in {st.root} has width "
                         f"{st.manifest.d[space.hook]}")
    _check_revision(Path(sae), st)
    sae_id = sae_id or f"{Path(sae).resolve().name}-{space.fingerprint[:8]}"
    if not SAE_ID.match(sae_id):
        raise UsageError(f"--sae-id {sae_id!r}: letters, digits, '.', '_' and '-' only")
    final = latents_dir(st, sae_id)
    tmp = final.with_name(f".{sae_id}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    schema = pa.schema([("row", pa.int64()), ("latent", pa.int32()), ("value", pa.float32())])
    nnz = 0
    try:
        for n, shard in enumerate(st.manifest.shards):
            acts = st.shard(space.hook, shard.index)
            rows, lats, vals = [], [], []
            for a in range(0, len(acts), batch_size):
                x = torch.from_numpy(np.ascontiguousarray(acts[a: a + batch_size], dtype=np.float32))
                z = space.values(x, range(space.size))
                r, c = torch.nonzero(z, as_tuple=True)  # row-major: sorted by row, then latent
                rows.append((r + shard.first_row + a).numpy())
                lats.append(c.to(torch.int32).numpy())
                vals.append(z[r, c].float().numpy())
            table = pa.table([np.concatenate(rows), np.concatenate(lats), np.concatenate(vals)], schema=schema)
            nnz += table.num_rows
            pq.write_table(table, tmp / f"part-{shard.index:05d}.parquet", compression="zstd")
            if progress:
                progress(n + 1, len(st.manifest.shards))
        info = {"schema_version": LATENTS_SCHEMA, "sae_id": sae_id, "sae": str(Path(sae).resolve()),
                "sae_sha256": space.fingerprint, "architecture": space.sae.architecture, "d_sae": space.size,
                "hook": space.hook, "rows": st.rows, "nonzero": nnz,
                "parts": [f"part-{s.index:05d}.parquet" for s in st.manifest.shards]}
        (tmp / "info.json").write_text(json.dumps(info, indent=2) + "\n")
        old = final.with_name(f".{sae_id}.old")
        shutil.rmtree(old, ignore_errors=True)
        if final.exists():
            final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _check_revision(sae: Path, st: Store) -> None:
    """Refuse a store harvested from another revision of the model than the SAE was trained on."""
    manifest = sae / "manifest.json"
    if not manifest.is_file() or not st.manifest.revision:
        return
    try:
        revision = json.loads(manifest.read_text()).get("revision")
    except (json.JSONDecodeError, AttributeError):
        return
    if revision and revision != st.manifest.revision:
        raise UsageError(f"{sae}: trained on model revision {revision[:12]}, the store was harvested from "
                         f"{st.manifest.revision[:12]}")
