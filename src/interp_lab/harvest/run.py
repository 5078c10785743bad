"""Harvest: run a model over documents and stream the chosen hook points into a resumable store.

Batches are fixed slices of the sequence list and shards hold whole batches,
so a resumed harvest recomputes exactly the batches an interrupted one lost,
with the same shapes, and ends byte-identical to an uninterrupted run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from interp_lab.errors import UsageError
from interp_lab.io.datasets import Corpus, Document, dataset_hash
from interp_lab.store.format import StoreManifest
from interp_lab.store.lock import StoreLock
from interp_lab.store.writer import StoreWriter

STORE_DTYPES = ("float16", "bfloat16", "float32")
Progress = Callable[[int, int], None]


@dataclass
class Sequence:
    doc: int  # index into the document list
    start: int  # first token's offset in the document
    ids: list[int]
    offsets: list[tuple[int, int]]


@dataclass
class HarvestResult:
    out: Path
    rows: int
    batches_run: int
    resumed_from_batch: int
    seconds: float
    tokens_per_s: float
    manifest: StoreManifest


def pad_right(seqs: list[list[int]], pad: int):
    """([batch, T] input ids, [batch, T] attention mask) with right padding to the longest sequence."""
    import torch

    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), T), dtype=torch.long)
    for r, s in enumerate(seqs):
        ids[r, : len(s)] = torch.tensor(s)
        mask[r, : len(s)] = 1
    return ids, mask


def read_documents(corpus: Corpus, tokenizer, max_tokens: int | None) -> list[Document]:
    """The corpus's documents (of an hf: dataset, as many as ``max_tokens`` need); none is an error."""
    docs = corpus.read(max_tokens, lambda text: len(tokenizer(text, add_special_tokens=True)["input_ids"]))
    if not docs:
        raise UsageError(f"{corpus.dataset}: no documents")
    return docs


def make_sequences(tokenizer, docs: list[Document], context_length: int, max_tokens: int | None) -> list[Sequence]:
    """Tokenize documents and cut them into windows of at most ``context_length`` tokens."""
    if context_length < 2:
        raise UsageError("--context-length must be at least 2")
    enc = tokenizer([d.text for d in docs], add_special_tokens=True, return_offsets_mapping=True)
    seqs: list[Sequence] = []
    total = 0
    for i, (ids, offs) in enumerate(zip(enc["input_ids"], enc["offset_mapping"])):
        for start in range(0, len(ids), context_length):
            chunk = ids[start: start + context_length]
            if max_tokens is not None and total + len(chunk) > max_tokens:
                chunk = chunk[: max_tokens - total]
            if not chunk:
                return seqs
            seqs.append(Sequence(i, start, list(chunk), [tuple(o) for o in offs[start: start + len(chunk)]]))
            total += len(chunk)
            if max_tokens is not None and total >= max_tokens:
                return seqs
    return seqs


def _token_rows(batch: list[Sequence], docs: list[Document], tokenizer, first_row: int,
                label_keys: list[str], meta_keys: list[str]) -> pa.Table:
    doc_id, pid, seq_pos, doc_pos, tid, tstr, cs, ce, score, split = ([] for _ in range(10))
    labels = {k: [] for k in label_keys}
    metas = {k: [] for k in meta_keys}
    for s in batch:
        d = docs[s.doc]
        n = len(s.ids)
        doc_id += [d.doc_id] * n
        pid += [d.prompt_id] * n
        seq_pos += range(n)
        doc_pos += range(s.start, s.start + n)
        tid += s.ids
        pieces = tokenizer.convert_ids_to_tokens(s.ids)
        for (a, b), piece in zip(s.offsets, pieces):
            cs.append(a)
            ce.append(b)
            tstr.append(d.text[a:b] if b > a else piece)  # the surface text; special tokens by name
        score += [d.criterion_score] * n
        split += [d.split] * n
        for k in label_keys:
            labels[k] += [None if d.labels.get(k) is None else str(d.labels[k])] * n
        for k in meta_keys:
            metas[k] += [None if d.metadata.get(k) is None else str(d.metadata[k])] * n
    rows = len(tid)
    cols: dict[str, pa.Array] = {
        "row": pa.array(np.arange(first_row, first_row + rows, dtype=np.int64)),
        "doc_id": pa.array(doc_id, pa.int32()), "prompt_id": pa.array(pid, pa.string()),
        "position": pa.array(seq_pos, pa.int32()), "doc_position": pa.array(doc_pos, pa.int32()),
        "token_id": pa.array(tid, pa.int32()), "token_str": pa.array(tstr, pa.string()),
        "char_start": pa.array(cs, pa.int32()), "char_end": pa.array(ce, pa.int32()),
        "criterion_score": pa.array(score, pa.float64()), "split": pa.array(split, pa.string()),
    }
    cols.update({f"label.{k}": pa.array(v, pa.string()) for k, v in labels.items()})
    cols.update({f"meta.{k}": pa.array(v, pa.string()) for k, v in metas.items()})
    return pa.table(cols)


def harvest(
    model: str | Any,
    dataset: str | Corpus,
    hooks: str | list[str] = "blocks.*.hook_resid_post",
    out: str | os.PathLike = "store",
    *,
    max_tokens: int | None = None,
    context_length: int = 256,
    batch_size: int = 8,
    dtype: str = "float16",
    shard_tokens: int = 1 << 16,
    overwrite: bool = False,
    text_column: str | None = None,
    engine: str = "hooks",
    progress: Progress | None = None,
) -> HarvestResult:
    """Harvest ``hooks`` of ``model`` over ``dataset`` into the store at ``out`` (resuming if it is there).

    ``model`` is a registered name, a local directory, a Hugging Face id, or an already loaded
    ``LoadedModel``; ``text_column`` chooses the text of an ``hf:`` dataset (``dataset`` may be an opened
    ``io.datasets.Corpus``); ``engine`` reads the hooks: ``hooks`` (interp-lab's own), ``transformerlens`` or
    ``nnsight`` (models/engines.py), into the same store layout under the same hook names.
    """
    from interp_lab.models.engines import require

    require(engine)  # before the lock and the model: a missing package is one line at once
    if dtype not in STORE_DTYPES:
        raise UsageError(f"unknown --dtype {dtype!r} (use {', '.join(STORE_DTYPES)})")
    if batch_size < 1 or shard_tokens < 1:
        raise UsageError("--batch-size and the shard size must be at least 1")
    # the store's lock before torch and the model load: a second harvest into this store fails at once,
    # naming the first, which goes on unharmed
    # a bad name or column fails before the lock and the model load
    corpus = dataset if isinstance(dataset, Corpus) else Corpus(dataset, text_column)
    with StoreLock(out) as lock:
        import torch

        from interp_lab.models.engines import model_name, open_engine
        from interp_lab.models.hooked import hook_widths
        from interp_lab.models.hooks import expand
        from interp_lab.models.load import LoadedModel, load_model

        lm = model if isinstance(model, LoadedModel) else load_model(model_name(engine, str(model)))
        names = [h.name for h in expand(hooks if isinstance(hooks, str) else ",".join(hooks), lm.model)]
        docs = read_documents(corpus, lm.tokenizer, max_tokens)
        seqs = make_sequences(lm.tokenizer, docs, context_length, max_tokens)
        batches = [seqs[i: i + batch_size] for i in range(0, len(seqs), batch_size)]
        widths = hook_widths(lm, names)
        manifest = StoreManifest(
            schema_version="", model=lm.name, revision=lm.revision, family=lm.family,
            tokenizer=type(lm.tokenizer).__name__, dtype=dtype, hooks=names, d=widths,
            dataset=corpus.label, dataset_hash=dataset_hash(docs), dataset_source=corpus.identity(),
            documents=len(docs), context_length=context_length, batch_size=batch_size, max_tokens=max_tokens,
            shard_rows=shard_tokens, total_batches=len(batches), engine=engine,
        )
        writer = StoreWriter(out, manifest, overwrite=overwrite, lock=lock)
        start_batch = writer.completed_batches
        label_keys = sorted({k for d in docs for k in d.labels})
        meta_keys = sorted({k for d in docs for k in d.metadata})
        store_dtype = getattr(torch, dtype)
        reader = open_engine(engine, lm)
        pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
        total_tokens = sum(len(s.ids) for s in seqs)
        done_tokens = skipped = sum(len(s.ids) for b in batches[:start_batch] for s in b)
        buf: dict[str, list[np.ndarray]] = {h: [] for h in names}
        tok_tables: list[pa.Table] = []
        buf_rows, shard_first = 0, start_batch
        t0 = time.perf_counter()
        ran = 0
        for bi in range(start_batch, len(batches)):
            batch = batches[bi]
            ids, mask = pad_right([s.ids for s in batch], pad)
            acts = reader.read(ids, mask, names, store_dtype=store_dtype)
            keep = mask.bool()
            for h in names:
                buf[h].append(_to_numpy(acts[h][keep]))
            rows = int(keep.sum())
            tok_tables.append(_token_rows(batch, docs, lm.tokenizer, writer.manifest.rows + buf_rows, label_keys,
                                          meta_keys))
            buf_rows += rows
            ran += 1
            done_tokens += rows
            if progress:
                progress(done_tokens, total_tokens)
            if buf_rows >= shard_tokens or bi == len(batches) - 1:
                writer.write_shard(buf, pa.concat_tables(tok_tables),
                                   (shard_first, bi + 1))
                buf = {h: [] for h in names}
                tok_tables, buf_rows, shard_first = [], 0, bi + 1
        writer.finish()
        seconds = time.perf_counter() - t0
        computed = done_tokens - skipped
        return HarvestResult(out=Path(out), rows=writer.manifest.rows, batches_run=ran, resumed_from_batch=start_batch,
                             seconds=seconds, tokens_per_s=computed / seconds if seconds > 0 else 0.0,
                             manifest=writer.manifest)


def _to_numpy(t):
    """numpy for float16 / float32; bfloat16 stays a torch tensor (numpy has no such dtype)."""
    import torch

    return t.contiguous() if t.dtype == torch.bfloat16 else t.contiguous().numpy()
