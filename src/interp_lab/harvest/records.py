"""``export-hf-records``: pooled activation records of residual dimensions or MLP neurons, per prompt.

Feature ids follow architecture.md: ``L{layer}:R{dim}`` for residual-stream
dimensions (``hook_resid_post``), ``L{layer}:N{index}`` for MLP neurons
(``mlp.hook_post``). Pooling over each prompt's tokens: mean, max or last.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from interp_lab.errors import UsageError
from interp_lab.harvest.run import pad_right
from interp_lab.io.datasets import iter_documents
from interp_lab.schemas.feature_id import HOOK_OF_KIND, format_id
from interp_lab.schemas.records import ACTIVATION_RECORD

KINDS = {"residual": (HOOK_OF_KIND["R"], "R"), "neurons": (HOOK_OF_KIND["N"], "N")}
POOLINGS = ("mean", "max", "last")


def parse_layers(spec: str | None, n_layers: int) -> list[int]:
    if spec in (None, "", "all"):
        return list(range(n_layers))
    if spec == "middle":
        return [n_layers // 2]
    layers = []
    for part in str(spec).split(","):
        part = part.strip()
        lo, _, hi = part.partition("-")
        try:
            rng = range(int(lo), int(hi) + 1) if hi else [int(lo)]
        except ValueError:
            raise UsageError(f"--layers: {part!r} is not a layer number or range (e.g. 6 or 3-9)") from None
        layers.extend(rng)
    bad = [i for i in layers if not 0 <= i < n_layers]
    if bad:
        raise UsageError(f"--layers: the model has layers 0..{n_layers - 1}, not {bad}")
    return sorted(set(layers))


def export_records(model: str | Any, dataset: str, out: str | os.PathLike, *, layers: str | None = "middle",
                   kind: str = "residual", pooling: str = "mean", batch_size: int = 8, context_length: int = 256,
                   top_k_features: int | None = None, text_column: str | None = None,
                   progress: Callable[..., None] | None = None, engine: str = "hooks",
                   activation_path: str | None = None) -> dict[str, Any]:
    """Write one activation record per prompt (JSONL by default, Parquet for a ``.parquet`` path);
    ``text_column`` chooses the text of an ``hf:`` dataset; ``progress(stage, done, total)`` hears of the
    prompts read. ``engine`` reads the activations (hooks, transformerlens or nnsight, models/engines.py); with
    ``activation_path`` (nnsight only) the one block output or MLP-neuron input it names is read instead of
    ``layers`` and ``kind``."""
    import torch

    from interp_lab.io.jsonl import write_jsonl
    from interp_lab.models.engines import model_name, open_engine, require, site_of_path
    from interp_lab.models.load import LoadedModel, load_model

    if kind not in KINDS:
        raise UsageError(f"--kind must be one of {', '.join(KINDS)}")
    if pooling not in POOLINGS:
        raise UsageError(f"--pooling must be one of {', '.join(POOLINGS)}")
    if activation_path is not None and engine != "nnsight":
        raise UsageError("an activation path is read by the nnsight engine (export-nnsight-records)")
    require(engine)
    if activation_path is not None:
        from interp_lab.models.activation_path import parse_activation_path

        parse_activation_path(activation_path)  # a bad path is one line before the model loads
    docs = list(iter_documents(dataset, text_column))  # a bad name or column fails before the model loads
    lm = model if isinstance(model, LoadedModel) else load_model(model_name(engine, str(model)))
    reader = open_engine(engine, lm)
    if activation_path is None:
        hook_suffix, letter = KINDS[kind]
        chosen = parse_layers(layers, lm.n_layers)
        hooks = [f"blocks.{i}.{hook_suffix}" for i in chosen]

        def read(ids, mask):
            acts = reader.read(ids, mask, hooks)
            return [acts[h] for h in hooks]
    else:
        _, path = reader.resolve(activation_path)
        layer, letter = site_of_path(lm.model, path)
        chosen = [layer]
        hooks = [f"blocks.{layer}.{HOOK_OF_KIND[letter]}"]

        def read(ids, mask):
            return [reader.read_path(ids, mask, path)]
    tok = lm.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0

    def rows():
        for start in range(0, len(docs), batch_size):
            if progress is not None:
                progress("exporting records (prompts)", start, len(docs))
            batch = docs[start: start + batch_size]
            enc = tok([d.text for d in batch], add_special_tokens=True, truncation=True, max_length=context_length)
            ids, mask = pad_right(enc["input_ids"], pad)
            acts = read(ids, mask)
            m = mask.unsqueeze(-1).to(torch.float32)
            lengths = mask.sum(1)
            pooled = []
            for a in acts:
                a = a.float()
                if pooling == "mean":
                    p = (a * m).sum(1) / lengths[:, None]
                elif pooling == "max":
                    p = a.masked_fill(m == 0, float("-inf")).amax(1)
                else:
                    p = a[torch.arange(len(batch)), lengths - 1]
                pooled.append(p.numpy())
            for r, d in enumerate(batch):
                feats = []
                for layer, p in zip(chosen, pooled):
                    v = p[r]
                    idx = np.arange(len(v)) if top_k_features is None else \
                        np.sort(np.argsort(-np.abs(v), kind="stable")[:top_k_features])
                    feats += [{"feature_id": format_id(layer, letter, j), "activation": round(float(v[j]), 6),
                               "layer": layer} for j in idx if v[j] != 0]
                row: dict[str, Any] = {"schema_version": ACTIVATION_RECORD, "model": lm.name, "prompt_id": d.prompt_id,
                                       "text": d.text}
                if d.criterion_score is not None:
                    row["criterion_score"] = d.criterion_score
                if d.split is not None:
                    row["split"] = d.split
                row["features"] = feats
                row["metadata"] = {"source": reader.source, "hook": ",".join(hooks), "pooling": pooling,
                                   **({"activation_path": activation_path} if activation_path else {}),
                                   "revision": lm.revision, **({"labels": d.labels} if d.labels else {})}
                yield row

    out = Path(out)
    if out.suffix == ".parquet":
        import tempfile

        from interp_lab.io.records import read_records, write_records_parquet

        with tempfile.TemporaryDirectory() as tmp:
            staged = Path(tmp) / "records.jsonl"
            n = write_jsonl(staged, rows())
            write_records_parquet(read_records(staged), out)
    else:
        n = write_jsonl(out, rows())
    return {"out": str(out), "rows": n, "hooks": hooks, "features_per_row": None if top_k_features is None
            else top_k_features * len(hooks), "pooling": pooling}
