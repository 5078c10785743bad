"""Activation records (JSONL, .gz, .zst or Parquet) -> a sparse prompts x features matrix.

Two readers feed one assembler:

* the fast path streams the file through pyarrow's multi-threaded JSON (or
  Parquet) reader in blocks, never creating a Python object per feature;
* the validating path decodes line by line with msgspec and knows the line
  of every row. It runs when the fast path meets anything it cannot take
  (a ``features`` map, drifting types, malformed JSON) or any bad value, so
  that every error names the file, the line and the field.

Absent features are zeros (formats.md); explicit zeros are dropped. Values
are stored as float32; statistics accumulate in float64.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa

from interp_lab.errors import InputError
from interp_lab.io.jsonl import DECODE_ERRORS, compression_of, readable_file, validation_error
from interp_lab.io.record_assembly import Assembler, check_prompt_splits, dedupe
from interp_lab.io.record_batches import (
    JSON_SCHEMA,
    FastPathUnsupported,
    Progress,
    fast_batches,
    validated_batches,
)
from interp_lab.io.record_matrix import RecordMatrix, RowError, text_prompt_id
from interp_lab.schemas.records import ACTIVATION_RECORD, SPLITS

__all__ = ["JSON_SCHEMA", "RecordMatrix", "read_records", "record_rows", "text_prompt_id",
           "write_records_parquet"]

FEATURE_META_KEY = b"interp_lab.feature_meta"


def read_records(path: str | os.PathLike, *, display: str | None = None,
                 progress: Progress | None = None) -> RecordMatrix:
    """Read activation records (JSONL, .jsonl.gz, .jsonl.zst or .parquet) into a ``RecordMatrix``.

    Raises ``InputError`` naming file, line (row for Parquet) and field for any bad input.
    ``progress(done, total)`` reports bytes (JSONL) or rows (Parquet) as they are read.
    """
    shown = display or str(path)
    p = readable_file(path, shown)
    if p.suffix == ".parquet":
        return _read_parquet(p, shown, progress)
    # at least ~30 bytes of JSON per feature entry: an upper bound for a plain file
    estimate = p.stat().st_size // 30 if compression_of(p) is None else 1 << 22
    pool = pa.default_memory_pool()
    try:
        asm = Assembler(estimate)
        for batch in fast_batches(p, progress):
            asm.add(batch)
            del batch
            pool.release_unused()  # hand the parsed block's memory back before the next one
        m = asm.build(shown, "fast")
        m = dedupe(m, lambda row: f"an earlier row (row {row + 1})")
        check_prompt_splits(m)
        return m
    except (FastPathUnsupported, RowError, InputError):
        pass  # the validating reader finds and names the exact problem
    lines: list[np.ndarray] = []
    asm = Assembler(estimate)
    try:
        for batch in validated_batches(p, lines):
            asm.add(batch)
        line_of = np.concatenate(lines) if lines else np.zeros(0, dtype=np.int64)
        m = asm.build(shown, "validating")
        m = dedupe(m, lambda row: f"line {int(line_of[row])}")
        check_prompt_splits(m)
        return m
    except RowError as exc:
        line_of = np.concatenate(lines) if lines else np.zeros(0, dtype=np.int64)
        line = int(line_of[exc.row]) if exc.row < len(line_of) else None
        raise InputError(shown, exc.message, line=line, field=exc.field) from None
    except InputError as exc:
        exc.path = shown
        raise


def _parquet_entries(pf) -> int:
    """The number of feature entries, from the Parquet metadata (exact, without reading data)."""
    names = pf.schema_arrow.names
    meta = pf.metadata
    total = 0
    for g in range(meta.num_row_groups):
        rg = meta.row_group(g)
        for c in range(rg.num_columns):
            col = rg.column(c)
            if col.path_in_schema.endswith("activation") and col.path_in_schema.startswith("features"):
                total += col.num_values
    return total if "features" in names and total else 1 << 20


def _read_parquet(p: Path, shown: str, progress: Progress | None = None) -> RecordMatrix:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(p)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(shown, f"not a readable Parquet file ({exc})") from None
    if "features" not in pf.schema_arrow.names:
        raise InputError(shown, "required column is missing", field="features")
    asm = Assembler(_parquet_entries(pf))
    try:
        for batch in fast_batches(p, progress):
            asm.add(batch)
            del batch
            pa.default_memory_pool().release_unused()
        m = asm.build(shown, "parquet")
        m = dedupe(m, lambda row: f"row {row + 1}")
        check_prompt_splits(m)
    except RowError as exc:
        raise InputError(shown, exc.message, line=exc.row + 1, field=exc.field, unit="row") from None
    except FastPathUnsupported as exc:
        raise InputError(shown, f"unsupported column type ({exc})") from None
    meta = (pf.schema_arrow.metadata or {}).get(FEATURE_META_KEY)
    if meta:
        try:
            extra = msgspec.json.decode(meta, type=_FeatureMeta)
        except DECODE_ERRORS as exc:
            err = validation_error(shown, 0, exc, meta)
            err.line, err.field = None, ".".join(filter(None, [FEATURE_META_KEY.decode(), err.field]))
            raise err from None
        m.feature_labels.update(extra.labels)
        m.feature_layers.update(extra.layers)
        m.feature_decoders.update(extra.decoders)
    return m


class _FeatureMeta(msgspec.Struct):
    """Per-feature labels, layers and decoder signatures, kept in the Parquet schema metadata."""

    labels: dict[str, str] = {}
    layers: dict[str, int] = {}
    decoders: dict[str, list[float]] = {}

    def __post_init__(self) -> None:
        for fid, sig in self.decoders.items():
            if not all(map(math.isfinite, sig)):
                raise ValueError(f"@decoders.{fid}: expected a list of finite numbers")


def write_records_parquet(m: RecordMatrix, path: str | os.PathLike) -> None:
    """Write a ``RecordMatrix`` as Parquet activation records (feature ids dictionary-encoded)."""
    import pyarrow.parquet as pq

    from interp_lab.io.atomic import atomic_path

    X = m.X.tocsr()
    fid = pa.DictionaryArray.from_arrays(pa.array(X.indices, pa.int32()), pa.array(list(m.feature_ids), pa.string()))
    entries = pa.StructArray.from_arrays([fid, pa.array(X.data, pa.float32())], names=["feature_id", "activation"])
    features = pa.ListArray.from_arrays(pa.array(X.indptr.astype(np.int32)), entries)
    split_names = np.array([None, *SPLITS], dtype=object)[m.splits.astype(np.int64) + 1]
    cols = {
        "schema_version": pa.array([ACTIVATION_RECORD] * m.n_rows, pa.string()).dictionary_encode(),
        "model": pa.array([m.models[0] if len(m.models) == 1 else None] * m.n_rows, pa.string()).dictionary_encode(),
        "prompt_id": pa.array(m.prompt_ids, pa.string()),
        "text": m.texts.combine_chunks(),
        "token_index": pa.array(np.where(m.token_index < 0, None, m.token_index).tolist(), pa.int64()),
        "criterion_score": pa.array(m.scores, pa.float64(), from_pandas=True),
        "split": pa.array(split_names.tolist(), pa.string()),
        "features": features,
    }
    meta_fields = {}
    if m.tokens is not None:
        meta_fields["token"] = pa.array(m.tokens.tolist(), pa.string())
    if m.covariates:
        meta_fields["covariates"] = pa.StructArray.from_arrays(
            [pa.array(v.tolist()) for v in m.covariates.values()], names=list(m.covariates))
    if meta_fields:
        cols["metadata"] = pa.StructArray.from_arrays(list(meta_fields.values()), names=list(meta_fields))
    table = pa.table(cols)
    extra = {"labels": m.feature_labels, "layers": m.feature_layers, "decoders": m.feature_decoders}
    table = table.replace_schema_metadata({FEATURE_META_KEY: msgspec.json.encode(extra)})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def record_rows(m: RecordMatrix) -> Iterator[dict[str, Any]]:
    """Rows of a ``RecordMatrix`` as activation-record dicts (sparse: only active features)."""
    X = m.X.tocsr()
    ids = m.feature_ids
    texts = m.texts.to_pylist()
    cov_names = sorted(m.covariates)
    col_of = {f: j for j, f in enumerate(ids.tolist())}
    unlabelled = {col_of[f] for f in (*m.feature_labels, *m.feature_layers) if f in col_of}
    for i in range(m.n_rows):
        lo, hi = X.indptr[i], X.indptr[i + 1]
        row: dict[str, Any] = {"schema_version": ACTIVATION_RECORD, "prompt_id": str(m.prompt_ids[i])}
        if len(m.models) == 1:
            row["model"] = m.models[0]
        if texts[i] is not None:
            row["text"] = texts[i]
        if m.token_index[i] >= 0:
            row["token_index"] = int(m.token_index[i])
        if np.isfinite(m.scores[i]):
            row["criterion_score"] = float(m.scores[i])
        if m.splits[i] >= 0:
            row["split"] = SPLITS[m.splits[i]]
        feats = []
        for j, v in zip(X.indices[lo:hi].tolist(), X.data[lo:hi].tolist()):
            entry: dict[str, Any] = {"feature_id": ids[j], "activation": round(float(v), 6)}
            if j in unlabelled:  # a feature's label and layer ride on its first row
                unlabelled.discard(j)
                fid = ids[j]
                if fid in m.feature_labels:
                    entry["label"] = m.feature_labels[fid]
                if fid in m.feature_layers:
                    entry["layer"] = m.feature_layers[fid]
            feats.append(entry)
        row["features"] = feats
        meta: dict[str, Any] = {}
        if len(m.sources) == 1:
            meta["source"] = m.sources[0]
        if m.tokens is not None and m.tokens[i] is not None:
            meta["token"] = str(m.tokens[i])
        if cov_names:
            meta["covariates"] = {k: (m.covariates[k][i].item() if hasattr(m.covariates[k][i], "item")
                                      else m.covariates[k][i]) for k in cov_names}
        if meta:
            row["metadata"] = meta
        yield row
