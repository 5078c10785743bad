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

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from interp_lab.errors import InputError
from interp_lab.io.hashing import hash_unit
from interp_lab.io.jsonl import compression_of, iter_lines, open_binary, validation_error
from interp_lab.io.sparse import Compressed
from interp_lab.schemas.records import ACTIVATION_RECORD, SPLITS, ActivationRecord

SPLIT_CODES = {name: i for i, name in enumerate(SPLITS)}
NO_SPLIT = -1
NO_TOKEN = -1

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
_META_KEYS = ("source", "hook", "token", "token_str")
FEATURE_META_KEY = b"interp_lab.feature_meta"


class RowError(Exception):
    """A bad value found by the vectorized checks, located by row index."""

    def __init__(self, row: int, field: str, message: str):
        self.row, self.field, self.message = row, field, message
        super().__init__(message)


class _FastPathUnsupported(Exception):
    """The fast reader cannot take this file; the validating reader will."""


@dataclass
class RecordMatrix:
    """Activation records as arrays: one row per record, one column per feature."""

    path: str
    X: Compressed  # [rows, features] float32 (CSR, or CSC once ranked), absent = 0
    feature_ids: np.ndarray  # [features] object (str), sorted
    prompt_ids: np.ndarray  # [rows] object (str)
    token_index: np.ndarray  # [rows] int64, -1 = a per-prompt row
    scores: np.ndarray  # [rows] float64, nan = unscored (context only)
    splits: np.ndarray  # [rows] int8 code into SPLITS, -1 = not given
    texts: pa.ChunkedArray  # [rows] string (may hold nulls)
    tokens: np.ndarray | None  # [rows] object: metadata.token when given
    covariates: dict[str, np.ndarray]  # name -> [rows] float64 or object (categorical)
    models: list[str]
    sources: list[str]
    hooks: list[str]
    feature_labels: dict[str, str] = field(default_factory=dict)
    feature_layers: dict[str, int] = field(default_factory=dict)
    feature_decoders: dict[str, list[float]] = field(default_factory=dict)
    duplicates_dropped: int = 0
    reader: str = "fast"
    _groups: np.ndarray | None = None
    _unique_prompts: np.ndarray | None = None
    _units: np.ndarray | None = None

    @property
    def n_rows(self) -> int:
        return self.X.shape[0]

    @property
    def n_features(self) -> int:
        return self.X.shape[1]

    def text(self, row: int) -> str | None:
        return self.texts[int(row)].as_py()

    def to_csc(self) -> Compressed:
        """Switch the matrix to column-major in place (frees the row-major copy)."""
        if self.X.format != "csc":
            self.X = self.X.tocsc()
        return self.X

    def prompt_groups(self) -> np.ndarray:
        """[rows] int code of each row's prompt_id (for resampling whole prompts)."""
        if self._groups is None:
            enc = pc.dictionary_encode(pa.array(self.prompt_ids, pa.string()))
            self._groups = enc.indices.to_numpy()
            self._unique_prompts = enc.dictionary.to_numpy(zero_copy_only=False)
        return self._groups

    def prompt_units(self) -> np.ndarray:
        """[rows] ``hash_unit`` of each row's prompt_id, computed once per distinct prompt."""
        if self._units is None:
            groups = self.prompt_groups()
            self._units = hash_unit(self._unique_prompts)[groups]
        return self._units


# --------------------------------------------------------------------------- batches


@dataclass
class _Batch:
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
                raise _FastPathUnsupported(f"column {name} has type {arr.type}") from None
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
        raise _FastPathUnsupported(f"features column has type {t}")
    names = {t.value_type.field(i).name: t.value_type.field(i).type for i in range(t.value_type.num_fields)}
    fid, act = names.get("feature_id"), names.get("activation")
    if fid is None or act is None:
        raise _FastPathUnsupported("features entries lack feature_id or activation")
    fid_ok = pa.types.is_string(fid) or pa.types.is_large_string(fid) or (
        pa.types.is_dictionary(fid) and pa.types.is_string(fid.value_type))
    if not fid_ok or not (pa.types.is_floating(act) or pa.types.is_integer(act)):
        raise _FastPathUnsupported(f"features entries have types feature_id {fid}, activation {act}")
    return arr


def _struct_fields(arr: pa.Array | None) -> dict[str, pa.Array]:
    if arr is None or not pa.types.is_struct(arr.type):
        return {}
    return {arr.type.field(i).name: arr.field(i) for i in range(arr.type.num_fields)}


def _from_arrow(batch: pa.RecordBatch) -> _Batch:
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
            raise _FastPathUnsupported(f"covariate {k} has type {v.type}")
    features = _features_col(batch)
    return _Batch(
        prompt_id=_col(batch, "prompt_id", pa.string()),
        text=_col(batch, "text", pa.string()),
        token_index=_col(batch, "token_index", pa.int64()),
        criterion_score=_col(batch, "criterion_score", pa.float64()),
        split=_col(batch, "split", pa.string()),
        model=_col(batch, "model", pa.string()),
        schema_version=_col(batch, "schema_version", pa.string()),
        features=features,
        meta={k: meta[k].cast(pa.string()) for k in _META_KEYS if k in meta},
        covariates=covs,
    )


def _fast_batches(path: Path) -> Iterator[_Batch]:
    import pyarrow.json as pj

    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        # modest batches: measured several times faster than 64k-row batches on a cold process
        for rb in pf.iter_batches(batch_size=8192):
            yield _from_arrow(rb)
        return
    stream = open_binary(path)
    try:
        reader = pj.open_json(
            stream,
            # 2 MB blocks: faster than larger ones here; a longer line makes pyarrow fail and the
            # validating reader take over
            read_options=pj.ReadOptions(block_size=2 << 20, use_threads=True),
            parse_options=pj.ParseOptions(explicit_schema=JSON_SCHEMA, unexpected_field_behavior="infer"),
        )
        for rb in reader:
            yield _from_arrow(rb)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise _FastPathUnsupported(str(exc)) from None
    finally:
        stream.close()


def _validated_batches(path: Path, lines_out: list[np.ndarray], rows_per_batch: int = 8192) -> Iterator[_Batch]:
    """Decode line by line with full validation; record each row's line number."""
    decoder = msgspec.json.Decoder(ActivationRecord)
    cols: dict[str, list] = {}

    def flush() -> _Batch:
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
        out = _Batch(
            prompt_id=pa.array(cols["prompt_id"], pa.string()),
            text=pa.array(cols["text"], pa.string()),
            token_index=pa.array(cols["token_index"], pa.int64()),
            criterion_score=pa.array(cols["criterion_score"], pa.float64()),
            split=pa.array(cols["split"], pa.string()),
            model=pa.array(cols["model"], pa.string()),
            schema_version=pa.array(cols["schema_version"], pa.string()),
            features=feats,
            meta={k: pa.array(cols[k], pa.string()) for k in _META_KEYS},
            covariates=covariates,
        )
        lines_out.append(np.asarray(cols["line"], dtype=np.int64))
        cols = {}
        return out

    def reset() -> None:
        for key in ("line", "prompt_id", "text", "token_index", "criterion_score", "split", "model",
                    "schema_version", "features", "covariates", *_META_KEYS):
            cols.setdefault(key, [])

    reset()
    for number, raw in iter_lines(path):
        try:
            rec = decoder.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
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
        for k in _META_KEYS:
            v = meta.get(k)
            cols[k].append(None if v is None else str(v))
        if len(cols["line"]) >= rows_per_batch:
            yield flush()
            reset()
    if cols["line"]:
        yield flush()


# --------------------------------------------------------------------------- assembly


def text_prompt_id(text: str) -> str:
    """The default prompt_id of a row that has only a text: a short hash of it."""
    return "t-" + hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


_ID_RE = re.compile(r"^L(\d+):([A-Za-z]+)(\d+)$")


def feature_sort_key(fid: str) -> tuple:
    """Natural order for ``L{layer}:{kind}{index}`` ids; other ids after, by text."""
    m = _ID_RE.match(fid)
    if m:
        return (0, int(m.group(1)), m.group(2), int(m.group(3)), "")
    return (1, 0, "", 0, fid)


class _Assembler:
    """Accumulates batches; checks values vectorized; builds the CSR matrix."""

    def __init__(self, expected_nnz: int = 1 << 20) -> None:
        self.known: pa.Array | None = None  # feature ids in order of first appearance
        self.counts: list[np.ndarray] = []
        # one growing buffer per array: pages are resident only once written, so a generous
        # estimate costs address space, not memory, and no concatenation doubles the peak
        self.codes = _Growable(np.int32, expected_nnz)
        self.values = _Growable(np.float32, expected_nnz)
        self.row_cols: dict[str, list] = {k: [] for k in ("prompt_id", "text", "token_index", "score", "split")}
        self.meta: dict[str, list[pa.Array]] = {}
        self.covs: dict[str, list[pa.Array]] = {}
        self.models: set[str] = set()
        self.labels: dict[int, str] = {}
        self.layers: dict[int, int] = {}
        self.decoders: dict[int, list[float]] = {}
        self.n = 0

    def add(self, b: _Batch) -> None:
        n0, n = self.n, len(b.prompt_id)

        def fail(mask: np.ndarray, fieldname: str, message: str) -> None:
            bad = np.flatnonzero(mask)
            if bad.size:
                raise RowError(n0 + int(bad[0]), fieldname, message)

        sv = b.schema_version
        if sv.null_count < len(sv):
            fail(np.asarray(pc.fill_null(pc.not_equal(sv, ACTIVATION_RECORD), False)), "schema_version",
                 f"unknown schema_version (this reader knows {ACTIVATION_RECORD!r})")
        pid, text = b.prompt_id, b.text
        if pid.null_count:
            missing = np.asarray(pc.is_null(pid))
            fail(missing & np.asarray(pc.is_null(text)), "prompt_id",
                 "a row needs a prompt_id (or a text to derive one from)")
            filled = pid.to_pylist()
            texts = text.to_pylist()
            for i in np.flatnonzero(missing):
                filled[i] = text_prompt_id(texts[i])
            pid = pa.array(filled, pa.string())
        tok = b.token_index.to_numpy(zero_copy_only=False)
        tok = np.where(np.isnan(tok), NO_TOKEN, tok).astype(np.int64) if b.token_index.null_count else tok.astype(np.int64)
        fail((tok < 0) & np.asarray(pc.is_valid(b.token_index)), "token_index", "expected an integer >= 0")
        score = b.criterion_score.to_numpy(zero_copy_only=False).astype(np.float64)
        valid = np.asarray(pc.is_valid(b.criterion_score))
        fail(valid & ~np.isfinite(score), "criterion_score", "expected a finite number")
        fail(valid & ((score < 0) | (score > 1)), "criterion_score", "expected a number in [0, 1]")
        score[~valid] = np.nan
        split = np.full(n, NO_SPLIT, dtype=np.int8)
        if b.split.null_count < n:
            sp_valid = np.asarray(pc.is_valid(b.split))
            for name, code in SPLIT_CODES.items():
                split[np.asarray(pc.fill_null(pc.equal(b.split, name), False))] = code
            fail(sp_valid & (split == NO_SPLIT), "split", f"expected one of {', '.join(SPLITS)}")
        if b.model.null_count < n:
            self.models.update(x for x in pc.unique(b.model).to_pylist() if x is not None)

        feats = b.features
        fail(np.asarray(pc.is_null(feats)), "features",
             "required field is missing (a list of {feature_id, activation} or an object of id: activation)")
        counts = np.asarray(pc.list_value_length(feats)).astype(np.int64)
        flat = pc.list_flatten(feats)
        row_of = np.repeat(np.arange(n), counts)
        fids = flat.field("feature_id")
        acts = flat.field("activation")
        if fids.null_count:
            fail_entry = np.asarray(pc.is_null(fids))
            raise RowError(n0 + int(row_of[np.flatnonzero(fail_entry)[0]]), "features.feature_id",
                           "required field is missing")
        values = acts.to_numpy(zero_copy_only=False)
        if values.dtype != np.float32 and values.dtype != np.float64:
            values = values.astype(np.float64)
        bad = ~np.isfinite(values)
        if acts.null_count:
            bad |= np.asarray(pc.is_null(acts))
        if bad.any():
            raise RowError(n0 + int(row_of[np.flatnonzero(bad)[0]]), "features.activation",
                           "expected a finite number")
        enc = fids if pa.types.is_dictionary(fids.type) else pc.dictionary_encode(fids)
        mapping = self._global_codes(enc.dictionary)
        codes = enc.indices.to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
        if not np.array_equal(mapping, np.arange(len(mapping))):
            codes = mapping[codes]
        self._feature_meta(flat, codes)
        self.counts.append(counts)
        self.codes.extend(codes)
        self.values.extend(values)
        self.row_cols["prompt_id"].append(pid)
        self.row_cols["text"].append(text)
        self.row_cols["token_index"].append(tok)
        self.row_cols["score"].append(score)
        self.row_cols["split"].append(split)
        for k in _META_KEYS:
            self.meta.setdefault(k, []).append(b.meta.get(k, pa.nulls(n, pa.string())))
        for k, arr in b.covariates.items():
            self.covs.setdefault(k, [pa.nulls(n0)] if n0 else []).append(arr)
        for k, chunks in self.covs.items():
            if k not in b.covariates:
                chunks.append(pa.nulls(n))
        self.n += n

    def _global_codes(self, local: pa.Array) -> np.ndarray:
        """Map a batch's feature-id dictionary onto the ids seen so far (new ids get new codes)."""
        local = local.cast(pa.string())
        if self.known is None:
            self.known = local
            return np.arange(len(local), dtype=np.int32)
        idx = pc.index_in(local, value_set=self.known)
        missing = np.asarray(pc.is_null(idx))
        mapping = idx.to_numpy(zero_copy_only=False)
        if missing.any():
            mapping = np.where(missing, 0, mapping).astype(np.int32)
            new = local.filter(pa.array(missing))
            mapping[missing] = np.arange(len(self.known), len(self.known) + len(new), dtype=np.int32)
            self.known = pa.concat_arrays([self.known, new])
        return mapping.astype(np.int32, copy=False)

    def _feature_meta(self, flat: pa.StructArray, codes: np.ndarray) -> None:
        names = {flat.type.field(i).name for i in range(flat.type.num_fields)}
        for name, store in (("label", self.labels), ("layer", self.layers), ("decoder_signature", self.decoders)):
            if name not in names:
                continue
            arr = flat.field(name)
            if arr.null_count == len(arr):
                continue
            have = np.flatnonzero(np.asarray(pc.is_valid(arr)))
            uniq, first = np.unique(codes[have], return_index=True)
            new = [(int(c), int(have[i])) for c, i in zip(uniq, first) if int(c) not in store]
            if new:
                vals = arr.take(pa.array([i for _, i in new])).to_pylist()
                for (c, _), v in zip(new, vals):
                    store[c] = v

    def build(self, path: str, reader: str) -> RecordMatrix:
        if self.n == 0:
            raise InputError(path, "file is empty (expected at least one record)")
        counts = np.concatenate(self.counts)
        indptr = np.zeros(self.n + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        self.counts.clear()
        codes = self.codes.take()
        values = self.values.take()
        pa.default_memory_pool().release_unused()
        # Sort features into natural id order so every output is independent of file order.
        raw_ids = [] if self.known is None else self.known.to_pylist()
        order = sorted(range(len(raw_ids)), key=lambda i: feature_sort_key(raw_ids[i]))
        rank = np.empty(len(raw_ids), dtype=np.int32)
        rank[order] = np.arange(len(raw_ids), dtype=np.int32)
        if not np.array_equal(rank, np.arange(len(raw_ids))):  # ids already in order (our Parquet) skip this
            step = 1 << 22
            for a in range(0, len(codes), step):  # in place, block by block (no full-size temporary)
                codes[a: a + step] = rank[codes[a: a + step]]
        feature_ids = np.array([raw_ids[i] for i in order], dtype=object)
        if indptr[-1] < 2**31:
            indptr = indptr.astype(np.int32)
        X = Compressed(values, codes, indptr, (self.n, len(raw_ids)), "csr")
        X.sort_indices()
        dup = X.duplicate_entry()  # the same feature twice on one row would be silently summed: refuse it
        if dup is not None:
            raise RowError(dup[0], "features", f"feature {feature_ids[dup[1]]!r} is listed twice on this row")
        X.eliminate_zeros()
        prompt_ids = pa.chunked_array(self.row_cols["prompt_id"], pa.string()).to_numpy(zero_copy_only=False)
        meta = {k: pa.chunked_array(v, pa.string()) for k, v in self.meta.items()}
        tokens = None
        for key in ("token", "token_str"):
            if key in meta and meta[key].null_count < len(meta[key]):
                tokens = meta[key].to_numpy(zero_copy_only=False)
                break
        covariates = self._covariates()
        return RecordMatrix(
            path=path,
            X=X,
            feature_ids=feature_ids,
            prompt_ids=prompt_ids,
            token_index=np.concatenate(self.row_cols["token_index"]),
            scores=np.concatenate(self.row_cols["score"]),
            splits=np.concatenate(self.row_cols["split"]),
            texts=pa.chunked_array(self.row_cols["text"], pa.string()),
            tokens=tokens,
            covariates=covariates,
            models=sorted(self.models),
            sources=_distinct(meta.get("source")),
            hooks=_distinct(meta.get("hook")),
            feature_labels={raw_ids[c]: v for c, v in self.labels.items()},
            feature_layers={raw_ids[c]: v for c, v in self.layers.items()},
            feature_decoders={raw_ids[c]: v for c, v in self.decoders.items()},
            reader=reader,
        )

    def _covariates(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for name, chunks in sorted(self.covs.items()):
            arr = pa.chunked_array([c for c in chunks if len(c)] or [pa.nulls(0)])
            types = {c.type for c in chunks if not pa.types.is_null(c.type)}
            if arr.null_count:
                row = int(np.flatnonzero(np.asarray(pc.is_null(arr)))[0])
                raise RowError(row, f"metadata.covariates.{name}", "missing on this row but present on others")
            if all(pa.types.is_integer(t) or pa.types.is_floating(t) for t in types):
                out[name] = arr.cast(pa.float64()).to_numpy()
            else:
                out[name] = np.array([str(v) for v in arr.to_pylist()], dtype=object)
        return out


class _Growable:
    """An append-only numpy buffer that doubles when full (amortized O(1) appends)."""

    def __init__(self, dtype, capacity: int):
        self.buf = np.empty(max(int(capacity), 1024), dtype=dtype)
        self.n = 0

    def extend(self, values: np.ndarray) -> None:
        need = self.n + len(values)
        if need > len(self.buf):
            bigger = np.empty(max(need, 2 * len(self.buf)), dtype=self.buf.dtype)
            bigger[: self.n] = self.buf[: self.n]
            self.buf = bigger
        self.buf[self.n: need] = values
        self.n = need

    def take(self) -> np.ndarray:
        """The filled part (a view: the untouched tail never became resident)."""
        out, self.buf = self.buf[: self.n], np.empty(0, dtype=self.buf.dtype)
        return out


def _distinct(arr: pa.ChunkedArray | None) -> list[str]:
    if arr is None:
        return []
    return sorted(x for x in pc.unique(arr).to_pylist() if x is not None)


# --------------------------------------------------------------------------- duplicates and splits


def _dedupe(m: RecordMatrix, locate) -> RecordMatrix:
    """Drop exact duplicate rows (same prompt_id, token_index and content); refuse conflicting ones."""
    enc = pc.dictionary_encode(pa.array(m.prompt_ids, pa.string()))
    pcode = enc.indices.to_numpy().astype(np.int64)
    key = pcode * (int(m.token_index.max()) + 2) + (m.token_index + 1)
    order = np.argsort(key, kind="stable")
    sk = key[order]
    dup = np.flatnonzero(sk[1:] == sk[:-1])
    if dup.size == 0:
        return m
    drop = []
    X = m.X
    for d in dup:
        a, b = int(order[d]), int(order[d + 1])
        # find the first row of this key (runs of 3+ compare against the first)
        first = a
        j = d
        while j > 0 and sk[j - 1] == sk[d]:
            j -= 1
            first = int(order[j])
        same = (
            m.text(first) == m.text(b)
            and (m.scores[first] == m.scores[b] or (np.isnan(m.scores[first]) and np.isnan(m.scores[b])))
            and m.splits[first] == m.splits[b]
            and all(np.array_equal(u, w) for u, w in zip(X.major_slice(first), X.major_slice(b)))
        )
        if not same:
            where = locate(first)
            raise RowError(b, "prompt_id",
                           f"duplicate prompt_id {m.prompt_ids[b]!r}"
                           + ("" if m.token_index[b] < 0 else f" at token_index {m.token_index[b]}")
                           + f" conflicts with {where}")
        drop.append(b)
    keep = np.ones(m.n_rows, dtype=bool)
    keep[drop] = False
    idx = np.flatnonzero(keep)
    m.X = m.X.take_major(idx)
    m._groups = m._units = None
    m.prompt_ids = m.prompt_ids[idx]
    m.token_index = m.token_index[idx]
    m.scores = m.scores[idx]
    m.splits = m.splits[idx]
    m.texts = m.texts.take(pa.array(idx))
    if m.tokens is not None:
        m.tokens = m.tokens[idx]
    m.covariates = {k: v[idx] for k, v in m.covariates.items()}
    m.duplicates_dropped = len(drop)
    return m


def _check_prompt_splits(m: RecordMatrix) -> None:
    """All rows of one prompt must share a split (token rows of a prompt never straddle splits)."""
    given = np.flatnonzero(m.splits != NO_SPLIT)
    if given.size == 0 or (m.token_index < 0).all():
        return
    enc = pc.dictionary_encode(pa.array(m.prompt_ids[given], pa.string())).indices.to_numpy()
    first = np.full(enc.max() + 1, -1, dtype=np.int16)
    # first split code seen per prompt (reverse assignment keeps the earliest)
    first[enc[::-1]] = m.splits[given][::-1]
    clash = np.flatnonzero(first[enc] != m.splits[given])
    if clash.size:
        row = int(given[clash[0]])
        raise RowError(row, "split", f"prompt {m.prompt_ids[row]!r} has rows in more than one split")


# --------------------------------------------------------------------------- entry point


def read_records(path: str | os.PathLike, *, display: str | None = None) -> RecordMatrix:
    """Read activation records (JSONL, .jsonl.gz, .jsonl.zst or .parquet) into a ``RecordMatrix``.

    Raises ``InputError`` naming file, line (row for Parquet) and field for any bad input.
    """
    p = Path(path)
    shown = display or str(path)
    if not p.exists():
        raise InputError(shown, "file not found")
    if p.suffix == ".parquet":
        return _read_parquet(p, shown)
    # at least ~30 bytes of JSON per feature entry: an upper bound for a plain file
    estimate = p.stat().st_size // 30 if compression_of(p) is None else 1 << 22
    pool = pa.default_memory_pool()
    try:
        asm = _Assembler(estimate)
        for batch in _fast_batches(p):
            asm.add(batch)
            del batch
            pool.release_unused()  # hand the parsed block's memory back before the next one
        m = asm.build(shown, "fast")
        m = _dedupe(m, lambda row: f"an earlier row (row {row + 1})")
        _check_prompt_splits(m)
        return m
    except (_FastPathUnsupported, RowError, InputError):
        pass  # the validating reader finds and names the exact problem
    lines: list[np.ndarray] = []
    asm = _Assembler(estimate)
    try:
        for batch in _validated_batches(p, lines):
            asm.add(batch)
        line_of = np.concatenate(lines) if lines else np.zeros(0, dtype=np.int64)
        m = asm.build(shown, "validating")
        m = _dedupe(m, lambda row: f"line {int(line_of[row])}")
        _check_prompt_splits(m)
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


def _read_parquet(p: Path, shown: str) -> RecordMatrix:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(p)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(shown, f"not a readable Parquet file ({exc})") from None
    if "features" not in pf.schema_arrow.names:
        raise InputError(shown, "required column is missing", field="features")
    asm = _Assembler(_parquet_entries(pf))
    try:
        for batch in _fast_batches(p):
            asm.add(batch)
            del batch
            pa.default_memory_pool().release_unused()
        m = asm.build(shown, "parquet")
        m = _dedupe(m, lambda row: f"row {row + 1}")
        _check_prompt_splits(m)
    except RowError as exc:
        raise InputError(shown, exc.message, line=exc.row + 1, field=exc.field, unit="row") from None
    except _FastPathUnsupported as exc:
        raise InputError(shown, f"unsupported column type ({exc})") from None
    meta = (pf.schema_arrow.metadata or {}).get(FEATURE_META_KEY)
    if meta:
        extra: dict[str, Any] = msgspec.json.decode(meta)
        m.feature_labels.update(extra.get("labels", {}))
        m.feature_layers.update(extra.get("layers", {}))
        m.feature_decoders.update(extra.get("decoders", {}))
    return m


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
