"""Semantic criteria: passages of a corpus scored by sentence-embedding similarity to the criterion.

Documents are cut into passages (runs of whole sentences, 60-400 characters,
each a verbatim character span of its document). Each passage is embedded
with all-MiniLM-L6-v2 and scored by cosine similarity to the criterion (the
mean of the criterion text and its example sentences, normalized). Ranked by
similarity: the top ``positive_fraction`` (at most ``max_prompts / 2``) are
positives (score 1); the next ``margin`` fraction is left out so that no
negative is a near-positive; negatives (score 0) come from the rest, as many
as positives: with ``hard_negatives``, half are the most similar passages
below the margin (labelled ``hard_negative``), the others drawn at random
(deterministically) from everything below.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from interp_lab.errors import UsageError
from interp_lab.schemas.records import CriterionSpec

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
MIN_CHARS, MAX_CHARS = 60, 400


def passages(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) character spans of consecutive whole sentences, MIN_CHARS..MAX_CHARS long."""
    starts = [0] + [m.end() for m in _SENTENCE_END.finditer(text)]
    start = None
    for a, b in zip(starts, starts[1:] + [len(text)]):
        b = a + len(text[a:b].rstrip())
        if "\n" in text[a:b] or b - a > MAX_CHARS:  # headings, lists, run-ons: not prose sentences
            start = None
            continue
        if start is None or b - start > MAX_CHARS:
            start = a
        if b - start >= MIN_CHARS:
            yield start, b
            start = None


def corpus_passages(docs: Iterable[Any], source: str) -> list[dict[str, Any]]:
    """Prompt rows for every passage of the documents (``io.datasets.Document``) of the corpus
    ``source``: ``metadata.doc`` names the document (passages of one document share a split) and
    ``metadata.source`` the corpus (the document's ``labels.corpus`` when it has one, as lee+enwiki's do,
    else ``source``), which the ranker adjusts for."""
    rows = []
    for d in docs:
        where = str(d.labels.get("corpus") or source)
        for a, b in passages(d.text):
            rows.append({"prompt_id": f"{d.prompt_id}@{a}-{b}", "text": d.text[a:b], "criterion_score": None,
                         "split": None, "labels": dict(d.labels),
                         "metadata": {"doc": d.prompt_id, "source": where, "char_start": a, "char_end": b}})
    return rows


def cached_embeddings(embedder, texts: list[str], progress: Any = None) -> np.ndarray:
    """Embeddings of ``texts``, cached on disk by model name and a hash of the texts."""
    from interp_lab.io.cache import cache_dir

    h = hashlib.sha256(embedder.name.encode())
    for t in texts:
        h.update(t.encode())
        h.update(b"\0")
    path = cache_dir() / "embeddings" / f"{h.hexdigest()[:32]}.npy"
    if path.exists():
        got = np.load(path, allow_pickle=False)
        if got.shape[0] == len(texts):
            return got
    v = embedder.embed(texts, progress=progress).astype(np.float32)
    from interp_lab.io.atomic import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, v, allow_pickle=False)
    return v


def select(similarity: np.ndarray, spec: CriterionSpec, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(positive rows, negative rows, hard-negative mask over the negatives) by the spec's rule."""
    n = len(similarity)
    order = np.argsort(-similarity, kind="stable")
    n_pos = min(int(round(spec.positive_fraction * n)), spec.max_prompts // 2)
    below = order[n_pos + int(round(spec.margin * n)):]
    if n_pos < 1 or len(below) < n_pos:
        raise UsageError(f"the corpus has {n} passages: too few for positive_fraction {spec.positive_fraction} "
                         f"and margin {spec.margin} (give a larger corpus)")
    n_hard = n_pos // 2 if spec.hard_negatives else 0
    hard = below[:n_hard]
    rest = below[n_hard:]
    easy = np.sort(np.random.default_rng(seed).choice(rest, size=n_pos - n_hard, replace=False))
    neg = np.concatenate([hard, easy])
    return order[:n_pos], neg, np.r_[np.ones(n_hard, bool), np.zeros(len(easy), bool)]


def compile_semantic(spec: CriterionSpec, rows: list[dict[str, Any]], progress: Any = None
                     ) -> tuple[list[dict[str, Any]], dict]:
    """Scored rows (positives 1, negatives 0) chosen from ``rows`` by similarity to the criterion."""
    from interp_lab.criteria.scorers import anchor_vector
    from interp_lab.models.embed import embedder

    emb = embedder(spec.embedding_model)
    anchor = anchor_vector(emb, spec.criterion, spec.examples)
    sim = cached_embeddings(emb, [r["text"] for r in rows], progress) @ anchor
    pos, neg, hard = select(sim, spec)
    out = []
    for idx, score, is_hard in [*((i, 1.0, False) for i in pos), *((i, 0.0, h) for i, h in zip(neg, hard))]:
        r = rows[int(idx)]
        labels = {**r["labels"], "class": "positive" if score else "negative"}
        if is_hard:
            labels["hard_negative"] = True
        meta = {**r["metadata"], "similarity": round(float(sim[idx]), 6), "score_kind": "similarity_label"}
        out.append({**r, "criterion_score": score, "labels": labels, "metadata": meta})
    info = {"passages": len(rows), "positives": len(pos), "negatives": len(neg), "hard_negatives": int(hard.sum()),
            "similarity_of_weakest_positive": round(float(sim[pos].min()), 6),
            "similarity_of_strongest_negative": round(float(sim[neg].max()), 6),
            "embedding_model": spec.embedding_model}
    return out, info


WORD = re.compile(r"^ [A-Za-z][a-z]{2,}$")
NEUTRAL = "the text is about something"


def derived_targets(tokenizer, embedder, anchor: np.ndarray, k: int) -> tuple[list[str], list[int], list[float]]:
    """The ``k`` vocabulary words (whole-word tokens: a space and 3+ letters) closest to the criterion.

    A word's score is its similarity to the criterion minus its similarity to a neutral criterion
    ("the text is about something"), which cancels the framing: without it, words like "text" and
    "essay" rank high for any "the text is about ..." criterion."""
    vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    ids, words = [], []
    for i, piece in enumerate(vocab):
        text = tokenizer.convert_tokens_to_string([piece]) if piece is not None else ""
        if WORD.match(text):
            ids.append(i)
            words.append(text)
    W = cached_embeddings(embedder, [w.strip() for w in words])
    sim = W @ anchor - W @ embedder.embed([NEUTRAL])[0]
    top = np.argsort(-sim, kind="stable")[:k]
    return [words[j] for j in top], [ids[j] for j in top], [round(float(sim[j]), 6) for j in top]
