"""Feature dumps (``interp-lab.feature.v1`` JSONL): fingerprints and reported effects per feature.

A dump has no scored rows of its own. It is ranked on the evidence its rows
carry: activation signatures keyed by probe prompt_id, compared with the
criterion scores of the same prompts when activation records are given;
``causal_effects`` for the criterion; intervention records.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from interp_lab.errors import InputError
from interp_lab.evidence.causal import normalize_criterion
from interp_lab.io.jsonl import read_jsonl
from interp_lab.io.records import RecordMatrix
from interp_lab.io.sparse import Compressed
from interp_lab.schemas.feature_id import sort_key
from interp_lab.schemas.records import FeatureRow

MIN_SHARED_PROBES = 20


@dataclass
class FeatureDump:
    path: str
    rows: dict[str, FeatureRow]  # feature_id -> row, in natural id order
    duplicates_dropped: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def models(self) -> list[str]:
        return sorted({r.model for r in self.rows.values() if r.model})


def load_dump(path: str | os.PathLike, display: str | None = None) -> FeatureDump:
    shown = display or str(path)
    rows: dict[str, FeatureRow] = {}
    where: dict[str, int] = {}
    dropped = 0
    try:
        for number, row in read_jsonl(path, FeatureRow):
            prev = rows.get(row.feature_id)
            if prev is not None:
                if prev != row:
                    raise InputError(shown, f"duplicate feature_id {row.feature_id!r} conflicts with line "
                                            f"{where[row.feature_id]}", line=number, field="feature_id")
                dropped += 1
                continue
            rows[row.feature_id] = row
            where[row.feature_id] = number
    except InputError as exc:
        exc.path = shown
        raise
    ordered = {k: rows[k] for k in sorted(rows, key=sort_key)}
    return FeatureDump(path=shown, rows=ordered, duplicates_dropped=dropped)


def keyed_signature(row: FeatureRow) -> dict[str, float] | None:
    """The row's activation signature keyed by probe prompt_id, or None if it is positional only."""
    sig = row.activation_signature
    if isinstance(sig, dict):
        return sig
    if sig is not None and row.signature_prompt_ids is not None:
        return dict(zip(row.signature_prompt_ids, sig))
    return None


def reported_effect(row: FeatureRow, criterion: str) -> float | None:
    """``causal_effects`` for this criterion (by normalized text, or the 0.2 key ``criterion``)."""
    effects = row.causal_effects or {}
    want = normalize_criterion(criterion)
    for key, value in effects.items():
        if normalize_criterion(key) == want:
            return float(value)
    if "criterion" in effects:
        return float(effects["criterion"])
    return None


def signature_matrix(dump: FeatureDump, records: RecordMatrix) -> tuple[RecordMatrix | None, list[str]]:
    """Signatures on the probes every keyed signature shares with the records' scored prompts.

    Keys ``prompt_id@start-end`` (token spans) are pooled to their prompt by max.
    Returns ``(matrix, notes)``; the matrix is None when fewer than
    ``MIN_SHARED_PROBES`` probes are shared.
    """
    notes: list[str] = []
    scored = np.isfinite(records.scores)
    pid = records.prompt_ids[scored].astype(str)
    # per prompt: max score, the first row's split, text and covariates
    order = np.argsort(pid, kind="stable")
    spid = pid[order]
    starts = np.flatnonzero(np.r_[True, spid[1:] != spid[:-1]])
    prompts = spid[starts]
    rows_idx = np.flatnonzero(scored)[order]
    score = np.maximum.reduceat(records.scores[rows_idx], starts)
    first = rows_idx[starts]
    index = {p: i for i, p in enumerate(prompts.tolist())}
    keyed: dict[str, dict[str, float]] = {}
    positional = 0
    for fid, row in dump.rows.items():
        sig = keyed_signature(row)
        if sig is None:
            positional += row.activation_signature is not None
            continue
        pooled: dict[str, float] = {}
        for key, value in sig.items():
            base = key.split("@", 1)[0]
            if base in index:
                pooled[base] = max(value, pooled.get(base, -np.inf))
        keyed[fid] = pooled
    if positional:
        notes.append(f"{positional} features have positional activation signatures without signature_prompt_ids; "
                     "they were not compared with the records' prompts (positions say nothing about which prompt)")
    if not keyed:
        return None, notes
    shared = set.intersection(*(set(s) for s in keyed.values()))
    union = set.union(*(set(s) for s in keyed.values()))
    if len(union) > len(shared):
        notes.append(f"signatures were compared on the {len(shared)} scored probes all of them share "
                     f"({len(union) - len(shared)} probes present in only some signatures were left out)")
    if len(shared) < MIN_SHARED_PROBES:
        notes.append(f"only {len(shared)} shared scored probes (< {MIN_SHARED_PROBES}); signatures not ranked")
        return None, notes
    probes = sorted(shared)
    pi = np.array([index[p] for p in probes])
    fids = list(keyed)
    dense = np.array([[keyed[f][p] for f in fids] for p in probes], dtype=np.float32)
    src = first[pi]
    m = RecordMatrix(
        path=f"{dump.path} (signatures) x {records.path} (scores)",
        X=Compressed.from_dense(dense),
        feature_ids=np.array(fids, dtype=object),
        prompt_ids=np.array(probes, dtype=object),
        token_index=np.full(len(probes), -1, dtype=np.int64),
        scores=score[pi],
        splits=records.splits[src],
        texts=records.texts.take(pa.array(src)),
        tokens=None,
        covariates={k: v[src] for k, v in records.covariates.items()},
        models=dump.models,
        sources=sorted({r.source for r in dump.rows.values() if r.source}),
        hooks=[],
        feature_labels={f: dump.rows[f].label for f in fids if dump.rows[f].label},
        reader="signatures",
    )
    return m, notes


def card_fields(row: FeatureRow, criterion: str) -> dict[str, Any]:
    """Descriptive card fields (label, examples, fingerprint) from a dump row."""
    fp: dict[str, Any] = dict(row.fingerprint or {})
    sig = keyed_signature(row)
    if sig is not None:
        fp["activation"] = sig
    elif row.activation_signature is not None:
        fp["activation"] = list(row.activation_signature)  # type: ignore[arg-type]
        fp["activation_positional"] = True
    if row.decoder_signature is not None:
        fp["decoder"] = {"vector": row.decoder_signature, "basis": {"model": row.model, "layer": row.layer}}
    if row.causal_effects:
        fp["causal"] = dict(row.causal_effects)
    return {
        "label": row.label,
        "layer": row.layer,
        "examples": [{"text": t} for t in row.examples],
        "fingerprint": fp,
        "reported_causal": reported_effect(row, criterion),
        "provenance": {"source": row.source or "features", "model": row.model},
    }
