"""Reading activation records block by block into canonical arrow batches.

Two readers, one output (``Batch``):

* ``fast_batches`` streams the file through pyarrow's multi-threaded JSON (or
  Parquet) reader, never creating a Python object per feature;
* ``validated_batches`` decodes line by line with msgspec and knows the line
  of every row; it runs when the fast path meets anything it cannot take (a
  ``features`` map, drifting types, a field the first row lacks, malformed
  JSON, a compressed stream cut short) or any bad value, so that every error
  names the file, the line and the field.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from interp_lab.io.jsonl import DECODE_ERRORS, iter_lines, open_native, validation_error
from interp_lab.schemas.records import ActivationRecord

_FEATURE_STRUCT = pa.struct(
    [
        ("feature_id", pa.string()),
        ("activation", pa.float64()),
        ("layer", pa.int64()),
        ("label", pa.string()),
        ("decoder_signature", pa.list_(pa.float64())),
    ]
)
JSON_SCHEMA = pa.schema(
    [
        ("schema_version", pa.string()),
        ("model", pa.string()),
        ("prompt_id", pa.string()),
        ("text", pa.string()),
        ("token_index", pa.int64()),
        ("criterion_score", pa.float64()),
        ("split", pa.string()),
        ("features", pa.list_(_FEATURE_STRUCT)),
    ]
)
META_KEYS = ("source", "hook", "token", "token_str")  # metadata fields carried per row
_ROW = pa.struct([*JSON_SCHEMA, pa.field("metadata", pa.struct([(k, pa.string()) for k in META_KEYS]))])
_FIRST_ROW_DEPTH = 16  # a first row nested deeper than this is left to the validating reader
Progress = Callable[[int, "int | None"], None]


class FastPathUnsupported(Exception):
    """The fast reader cannot take this file; the validating reader will."""


@dataclass
class Batch:
    """One block of rows in canonical form (arrow arrays, numpy where numeric)."""

    prompt_id: pa.Array
    text: pa.Array
    token_index: pa.Array
    criterion_score: pa.Array
    split: pa.Array
    model: pa.Array
    schema_version: pa.Array
    features: pa.Array  # list<struct<feature_id, activation, ...>>
    meta: dict[str, pa.Array]
    covariates: dict[str, pa.Array]


def _col(batch: pa.RecordBatch | pa.Table, name: str, typ: pa.DataType) -> pa.Array:
    if name in batch.schema.names:
        arr = batch.column(name)
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        if arr.type != typ and not pa.types.is_dictionary(arr.type):
            try:
                arr = arr.cast(typ)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise FastPathUnsupported(f"column {name} has type {arr.type}") from None
        return arr
    return pa.nulls(batch.num_rows, typ)


def _features_col(batch: pa.RecordBatch) -> pa.Array:
    """The features column as list<struct<feature_id, activation, ...>>, without casting its values.

    A dictionary-encoded feature_id (as interp-lab writes Parquet) stays encoded:
    decoding it to strings would cost more than the rest of the read.
    """
    if "features" not in batch.schema.names:
        return pa.nulls(batch.num_rows, JSON_SCHEMA.field("features").type)
    arr = batch.column("features")
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    t = arr.type
    if pa.types.is_null(t):
        return pa.nulls(batch.num_rows, JSON_SCHEMA.field("features").type)
    if not (pa.types.is_list(t) or pa.types.is_large_list(t)) or not pa.types.is_struct(t.value_type):
        raise FastPathUnsupported(f"features column has type {t}")
    names = {t.value_type.field(i).name: t.value_type.field(i).type for i in range(t.value_type.num_fields)}
    fid, act = names.get("feature_id"), names.get("activation")
    if fid is None or act is None:
        raise FastPathUnsupported("features entries lack feature_id or activation")
    fid_ok = pa.types.is_string(fid) or pa.types.is_large_string(fid) or (
        pa.types.is_dictionary(fid) and pa.types.is_string(fid.value_type))
    if not fid_ok or not (pa.types.is_floating(act) or pa.types.is_integer(act)):
        raise FastPathUnsupported(f"features entries have types feature_id {fid}, activation {act}")
    return arr


def _struct_fields(arr: pa.Array | None) -> dict[str, pa.Array]:
    if arr is None or not pa.types.is_struct(arr.type):
        return {}
    return {arr.type.field(i).name: arr.field(i) for i in range(arr.type.num_fields)}


def _from_arrow(batch: pa.RecordBatch) -> Batch:
    meta_arr = batch.column("metadata") if "metadata" in batch.schema.names else None
    meta = _struct_fields(meta_arr)
    if meta_arr is not None and meta_arr.null_count:
        # fields of a null struct are null too
        meta = {k: pc.if_else(pc.is_null(meta_arr), pa.nulls(len(v), v.type), v) for k, v in meta.items()}
    covs = _struct_fields(meta.get("covariates"))
    if "covariates" in meta and meta["covariates"].null_count:
        cv = meta["covariates"]
        covs = {k: pc.if_else(pc.is_null(cv), pa.nulls(len(v), v.type), v) for k, v in covs.items()}
    for k, v in covs.items():
        if not (pa.types.is_integer(v.type) or pa.types.is_floating(v.type)
                or pa.types.is_string(v.type) or pa.types.is_boolean(v.type) or pa.types.is_null(v.type)):
            raise FastPathUnsupported(f"covariate {k} has type {v.type}")
    features = _features_col(batch)
    return Batch(
        prompt_id=_col(batch, "prompt_id", pa.string()),
        text=_col(batch, "text", pa.string()),
        token_index=_col(batch, "token_index", pa.int64()),
        criterion_score=_col(batch, "criterion_score", pa.float64()),
        split=_col(batch, "split", pa.string()),
        model=_col(batch, "model", pa.string()),
        schema_version=_col(batch, "schema_version", pa.string()),
        features=features,
        meta={k: meta[k].cast(pa.string()) for k in META_KEYS if k in meta},
        covariates=covs,
    )


def fast_batches(path: Path, progress: Progress | None = None) -> Iterator[Batch]:
    """Canonical batches from JSONL (pyarrow's streaming JSON reader) or Parquet.

    ``progress(done, total)`` is called after each batch: rows for Parquet,
    bytes of the file on disk for JSONL (``total`` None when it cannot be known).
    """
    import pyarrow.json as pj

    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        done, total = 0, pf.metadata.num_rows
        # modest batches: measured several times faster than 64k-row batches on a cold process
        for rb in pf.iter_batches(batch_size=8192):
            yield _from_arrow(rb)
            done += rb.num_rows
            if progress:
                progress(done, total)
        return
    schema = _json_schema(path)
    raw, stream = open_native(path)
    size = path.stat().st_size
    try:
        # The reader reads ahead on pyarrow's IO threads. It gets a native stream (never a Python file:
        # closing one under a read in flight aborted the process or hung it at exit) and keeps it: the
        # file closes when the reader is freed, after its read-ahead has stopped, however the loop ends.
        reader = pj.open_json(
            stream,
            # 2 MB blocks: faster than larger ones here; a longer line makes pyarrow fail and the
            # validating reader take over
            read_options=pj.ReadOptions(block_size=2 << 20, use_threads=True),
            # Nothing left to infer: pyarrow's inference recurses once per level of nesting and
            # overflows the stack (a segfault) on a value nested ~10^4 deep. A field the schema lacks,
            # or a value of another type, fails here and the validating reader takes over.
            parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error"),
        )
        for rb in reader:
            yield _from_arrow(rb)
            if progress:
                try:
                    progress(min(raw.tell(), size), size)
                except (OSError, ValueError):
                    progress(0, None)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OSError) as exc:
        # OSError: a compressed stream cut short or corrupt (the validating reader names the line)
        raise FastPathUnsupported(str(exc)) from None


def _json_schema(path: Path) -> pa.Schema:
    """The schema pyarrow reads the file with: the fields interp-lab reads, and any other the first row has.

    Every other row must fit it, or the validating reader takes over; pyarrow infers nothing.
    """
    lines = iter_lines(path)
    try:
        _, first = next(lines)
    finally:
        lines.close()
    try:
        row = msgspec.json.decode(first)
    except DECODE_ERRORS as exc:
        raise FastPathUnsupported(f"first row: {exc}") from None
    if not isinstance(row, dict):
        raise FastPathUnsupported("first row is not a JSON object")
    return pa.schema(list(_typed_like(row, _ROW)))


def _typed_like(value: Any, declared: pa.DataType | None, depth: int = 0) -> pa.DataType:
    """``declared`` widened by the object keys ``value`` has beyond it; the arrow type of ``value`` if None.

    Numbers become float64 (an integer reads into it too); null and empty lists become strings.
    """
    if depth > _FIRST_ROW_DEPTH:
        raise FastPathUnsupported("first row nested deeply")
    if isinstance(value, dict) and (declared is None or pa.types.is_struct(declared)):
        fields = {f.name: f.type for f in declared} if declared is not None else {}
        for key, v in value.items():
            fields[key] = _typed_like(v, fields.get(key), depth + 1)
        return pa.struct(list(fields.items()))
    if isinstance(value, list) and (declared is None or pa.types.is_list(declared)):
        item = None if declared is None else declared.value_type
        for v in value:
            item = _typed_like(v, item, depth + 1)
        return pa.list_(pa.string() if item is None else item)
    if declared is not None:
        return declared  # a value of another type fails at parse time, and the validating reader names it
    if isinstance(value, bool):
        return pa.bool_()
    if isinstance(value, (int, float)):
        return pa.float64()
    return pa.string()


def validated_batches(path: Path, lines_out: list[np.ndarray], rows_per_batch: int = 8192) -> Iterator[Batch]:
    """Decode line by line with full validation; record each row's line number."""
    decoder = msgspec.json.Decoder(ActivationRecord)
    cols: dict[str, list] = {}

    def flush() -> Batch:
        nonlocal cols
        feats = pa.array(cols["features"], type=JSON_SCHEMA.field("features").type)
        covs_rows = cols["covariates"]
        cov_names = sorted({k for c in covs_rows if c for k in c})
        covariates = {}
        for name in cov_names:
            vals = [None if c is None else c.get(name) for c in covs_rows]
            kinds = {type(v) for v in vals if v is not None}
            if kinds <= {int, float}:
                covariates[name] = pa.array([None if v is None else float(v) for v in vals], pa.float64())
            elif kinds == {bool}:
                covariates[name] = pa.array(vals, pa.bool_())
            else:
                covariates[name] = pa.array([None if v is None else str(v) for v in vals], pa.string())
        out = Batch(
            prompt_id=pa.array(cols["prompt_id"], pa.string()),
            text=pa.array(cols["text"], pa.string()),
            token_index=pa.array(cols["token_index"], pa.int64()),
            criterion_score=pa.array(cols["criterion_score"], pa.float64()),
            split=pa.array(cols["split"], pa.string()),
            model=pa.array(cols["model"], pa.string()),
            schema_version=pa.array(cols["schema_version"], pa.string()),
            features=feats,
            meta={k: pa.array(cols[k], pa.string()) for k in META_KEYS},
            covariates=covariates,
        )
        lines_out.append(np.asarray(cols["line"], dtype=np.int64))
        cols = {}
        return out

    def reset() -> None:
        for key in ("line", "prompt_id", "text", "token_index", "criterion_score", "split", "model",
                    "schema_version", "features", "covariates", *META_KEYS):
            cols.setdefault(key, [])

    reset()
    for number, raw in iter_lines(path):
        try:
            rec = decoder.decode(raw)
        except DECODE_ERRORS as exc:
            raise validation_error(path, number, exc, raw) from None
        if isinstance(rec.features, dict):
            feats = [{"feature_id": k, "activation": v} for k, v in rec.features.items()]
        else:
            feats = [
                {"feature_id": f.feature_id, "activation": f.activation, "layer": f.layer,
                 "label": f.label, "decoder_signature": f.decoder_signature}
                for f in rec.features
            ]
        meta = rec.metadata or {}
        cols["line"].append(number)
        cols["prompt_id"].append(None if rec.prompt_id is None else str(rec.prompt_id))
        cols["text"].append(rec.text)
        cols["token_index"].append(rec.token_index)
        cols["criterion_score"].append(rec.criterion_score)
        cols["split"].append(rec.split)
        cols["model"].append(rec.model)
        cols["schema_version"].append(rec.schema_version)
        cols["features"].append(feats)
        cols["covariates"].append(meta.get("covariates"))
        for k in META_KEYS:
            v = meta.get(k)
            cols[k].append(None if v is None else str(v))
        if len(cols["line"]) >= rows_per_batch:
            yield flush()
            reset()
    if cols["line"]:
        yield flush()


# --------------------------------------------------------------------------- assembly
