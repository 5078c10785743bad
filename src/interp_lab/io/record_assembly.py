"""Assembling batches into a ``RecordMatrix``: vectorized checks, one growing buffer, no copies twice."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from interp_lab.errors import InputError
from interp_lab.io.record_batches import META_KEYS, Batch, FastPathUnsupported
from interp_lab.io.record_matrix import (
    NO_SPLIT,
    NO_TOKEN,
    SPLIT_CODES,
    RecordMatrix,
    RowError,
    text_prompt_id,
)
from interp_lab.io.sparse import Compressed
from interp_lab.schemas.feature_id import sort_key
from interp_lab.schemas.records import ACTIVATION_RECORD, SPLITS


class Assembler:
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

    def add(self, b: Batch) -> None:
        n0, n = self.n, len(b.prompt_id)

        def fail(mask: np.ndarray, fieldname: str, message: str) -> None:
            bad = np.flatnonzero(mask)
            if bad.size:
                raise RowError(n0 + int(bad[0]), fieldname, message)

        sv = b.schema_version
        if sv.null_count < len(sv):
            fail(np.asarray(pc.fill_null(pc.not_equal(sv, ACTIVATION_RECORD), False)), "schema_version",
                 f"unknown schema_version (this reader knows {ACTIVATION_RECORD!r})")
        strings = {"prompt_id": b.prompt_id, "text": b.text, "split": b.split, "model": b.model,
                   "schema_version": b.schema_version,
                   **{f"metadata.{k}": v for k, v in b.meta.items()},
                   **{f"metadata.covariates.{k}": v for k, v in b.covariates.items()}}
        for name, arr in strings.items():
            bad = _bad_utf8(arr)
            if bad is not None:
                raise RowError(n0 + bad, name, _NOT_UTF8)
        for k, arr in b.covariates.items():
            if pa.types.is_floating(arr.type):
                fail(~np.asarray(pc.fill_null(pc.is_finite(arr), True)), f"metadata.covariates.{k}",
                     "expected a finite number")
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
        self._check_entries(flat, row_of, n0)
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
        for k in META_KEYS:
            self.meta.setdefault(k, []).append(b.meta.get(k, pa.nulls(n, pa.string())))
        for k, arr in b.covariates.items():
            self.covs.setdefault(k, [pa.nulls(n0)] if n0 else []).append(arr)
        for k, chunks in self.covs.items():
            if k not in b.covariates:
                chunks.append(pa.nulls(n))
        self.n += n

    @staticmethod
    def _check_entries(flat: pa.StructArray, row_of: np.ndarray, n0: int) -> None:
        """Feature ids and labels are UTF-8, decoder signatures finite numbers (entry i is on row n0 + row_of[i])."""
        names = {flat.type.field(i).name for i in range(flat.type.num_fields)}
        for name in ("feature_id", "label"):
            bad = _bad_utf8(flat.field(name)) if name in names else None
            if bad is not None:
                raise RowError(n0 + int(row_of[bad]), f"features.{name}", _NOT_UTF8)
        if "decoder_signature" not in names:
            return
        sig = flat.field("decoder_signature")
        if not (pa.types.is_list(sig.type) or pa.types.is_large_list(sig.type)) or not (
                pa.types.is_floating(sig.type.value_type) or pa.types.is_integer(sig.type.value_type)):
            raise FastPathUnsupported(f"decoder_signature has type {sig.type}")
        values = pc.list_flatten(sig)
        bad = np.flatnonzero(~np.asarray(pc.fill_null(pc.is_finite(values), False)))
        if bad.size:
            entry = pc.list_parent_indices(sig)[int(bad[0])].as_py()
            raise RowError(n0 + int(row_of[entry]), "features.decoder_signature", "expected a list of finite numbers")

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
        order = sorted(range(len(raw_ids)), key=lambda i: sort_key(raw_ids[i]))
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


_NOT_UTF8 = "invalid UTF-8 (text must be UTF-8 encoded)"


def _bad_utf8(arr: pa.Array) -> int | None:
    """The index of the first string of ``arr`` that is not valid UTF-8, or None.

    pyarrow's JSON and Parquet readers pass invalid UTF-8 through into string arrays.
    """
    if pa.types.is_dictionary(arr.type):
        bad = _bad_utf8(arr.dictionary)
        if bad is None:
            return None
        hit = np.flatnonzero(np.asarray(pc.fill_null(pc.equal(arr.indices, bad), False)))
        return int(hit[0]) if hit.size else 0
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return None
    try:
        arr.validate(full=True)
        return None
    except pa.ArrowInvalid:
        pass
    lo, hi = 0, len(arr)  # the first bad string is in [lo, hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            arr.slice(lo, mid - lo).validate(full=True)
            lo = mid
        except pa.ArrowInvalid:
            hi = mid
    return lo


def _distinct(arr: pa.ChunkedArray | None) -> list[str]:
    if arr is None:
        return []
    return sorted(x for x in pc.unique(arr).to_pylist() if x is not None)


def dedupe(m: RecordMatrix, locate) -> RecordMatrix:
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


def check_prompt_splits(m: RecordMatrix) -> None:
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
