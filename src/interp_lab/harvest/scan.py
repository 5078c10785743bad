"""Top-activating contexts of a few features over every position of a corpus, without storing the hooks.

The corpus is cut into windows as a harvest cuts it; each batch runs up to
the last layer any feature needs (no lm_head), the features' values are
computed inside the loop, and only a running top-k per feature is kept, so
memory does not grow with the corpus. The first position of every window is
left out (an attention sink whose activations are far off the scale of the
rest), and so are the few other tokens whose norm at the hook is more than
10x the batch median: a projection on them is large whatever the direction. Results are cached by model revision, dataset, windowing and the
feature's write vector.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from interp_lab.errors import UsageError

Progress = Callable[[int, int], None]
SCAN_VERSION = "scan-v2"
OUTLIER_NORM = 10.0  # tokens this many times the median norm are massive-activation outliers


def _key(lm, dataset: str, target, context_length: int, max_tokens: int | None, k: int, dtype: str) -> str:
    w = target.space.write([target.index])[0].numpy().astype(np.float32)
    h = hashlib.sha256(f"{SCAN_VERSION}\0{lm.name}\0{lm.revision}\0{dataset}\0{context_length}\0{max_tokens}\0{k}"
                       f"\0{dtype}\0{target.hook}\0{target.feature_id}\0{getattr(target.space, 'fingerprint', '')}"
                       .encode())
    h.update(w.tobytes())
    return h.hexdigest()[:32]


def top_contexts(lm, dataset: str, targets: Sequence[Any], *, k: int = 20, window: int = 8,
                 context_length: int = 128, batch_size: int = 16, max_tokens: int | None = None,
                 cache: bool = True, dtype: str = "float32", progress: Progress | None = None
                 ) -> dict[str, dict[str, Any]]:
    """Per target (``interventions.features.Target``): its ``k`` highest values over the corpus, each with
    the token, the next token and ``window`` tokens either side; plus how many tokens were scanned.
    ``dtype`` bfloat16 runs the model under CPU autocast (about twice as fast where the CPU has bf16
    instructions; values to about 3 significant digits, which can reorder near-ties)."""
    import torch

    from interp_lab.harvest.run import make_sequences, pad_right, read_documents
    from interp_lab.io.atomic import write_bytes_atomic
    from interp_lab.io.cache import cache_dir
    from interp_lab.io.datasets import Corpus
    from interp_lab.models.hooked import run

    out: dict[str, dict[str, Any]] = {}
    todo = []
    corpus = Corpus(dataset)
    name = corpus.key()  # an hf: dataset by its revision or fingerprint and text column
    for t in targets:
        path = cache_dir() / "contexts" / f"{_key(lm, name, t, context_length, max_tokens, k, dtype)}.json"
        if cache and path.exists():
            out[t.feature_id] = {**json.loads(path.read_text()), "cached": True}
        else:
            todo.append((t, path))
    if not todo:
        return out
    if dtype not in ("float32", "bfloat16"):
        raise UsageError(f"scan dtype {dtype!r}: use float32 or bfloat16")
    docs = read_documents(corpus, lm.tokenizer, max_tokens)
    seqs = make_sequences(lm.tokenizer, docs, context_length, max_tokens)
    total = sum(len(s.ids) for s in seqs)
    hooks = sorted({t.hook for t, _ in todo})
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    best_v = {t.feature_id: np.full(0, -np.inf, dtype=np.float32) for t, _ in todo}
    best_at = {t.feature_id: np.zeros((0, 2), dtype=np.int64) for t, _ in todo}  # (sequence, position)
    excluded = {h: 0 for h in hooks}
    done = 0
    for i in range(0, len(seqs), batch_size):
        batch = seqs[i: i + batch_size]
        ids, mask = pad_right([s.ids for s in batch], pad)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
            acts = run(lm.model, {"input_ids": ids, "attention_mask": mask}, hooks, logits=False, flat=True).acts
        valid = mask.bool()
        valid[:, 0] = False  # the attention sink
        rows, cols = torch.nonzero(valid, as_tuple=True)
        where = np.stack([rows.numpy() + i, cols.numpy()], 1)
        picked = {h: acts[h][rows, cols].float() for h in hooks}  # [valid tokens, d] per hook
        loud = {}
        for h, x in picked.items():  # massive-norm tokens (evidence.md): left out, counted
            norm = x.norm(dim=-1)
            loud[h] = (norm > OUTLIER_NORM * norm.median()).numpy()
            excluded[h] += int(loud[h].sum())
        for t, _ in todo:
            v = t.space.values(picked[t.hook], [t.index])[:, 0].numpy()
            v[loud[t.hook]] = -np.inf
            fid = t.feature_id
            allv = np.concatenate([best_v[fid], v])
            allat = np.concatenate([best_at[fid], where])
            keep = np.argsort(-allv, kind="stable")[:k]
            best_v[fid], best_at[fid] = allv[keep], allat[keep]
        done += sum(len(s.ids) for s in batch)
        if progress:
            progress(done, total)
    for t, path in todo:
        fid = t.feature_id
        contexts = []
        for value, (si, pos) in zip(best_v[fid], best_at[fid]):
            if not np.isfinite(value):
                continue
            s = seqs[int(si)]
            ids_ = s.ids
            nxt = ids_[pos + 1] if pos + 1 < len(ids_) else None
            if nxt is None:  # the next token opens the following window of the same document
                follow = seqs[int(si) + 1] if int(si) + 1 < len(seqs) else None
                if follow is not None and follow.doc == s.doc:
                    nxt = follow.ids[0]
            dec = lm.tokenizer.decode
            contexts.append({
                "doc": docs[s.doc].prompt_id, "position": int(s.start + pos), "value": round(float(value), 6),
                "left": dec(ids_[max(0, pos - window): pos]), "token": dec([ids_[pos]]),
                "right": dec(ids_[pos + 1: pos + 1 + window]),
                "next_token": None if nxt is None else dec([nxt]), "next_token_id": None if nxt is None else int(nxt),
            })
        res = {"dataset": dataset, "tokens_scanned": total, "context_length": context_length, "k": k,
               "compute_dtype": dtype,
               "hook": t.hook, "excluded": f"the first position of every window (attention sink) and "
                                           f"{excluded[t.hook]} tokens whose norm at the hook exceeds "
                                           f"{OUTLIER_NORM:g}x the batch median",
               "contexts": contexts}
        if cache:
            write_bytes_atomic(path, json.dumps(res).encode())
        out[fid] = {**res, "cached": False}
    return out
