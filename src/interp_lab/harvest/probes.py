"""Probe sets and activation signatures keyed by character span, so that two models with different
tokenizers can be compared position by position (formats.md: ``prompt_id@start-end`` keys).

A probe set is a prompt JSONL (``prompt_id``, ``text``) of corpus sentences. Its keys are word spans:
maximal runs of letters and digits, each ``start-end`` in characters of the probe text. A feature's
value at a span is its value at the last token that starts before the span's end (the token that
completes the word; both tokenizers have one, whatever they do inside the word), so every model reads
the same keys. The first word of every probe is left out (on a model without a BOS token it sits on
the attention sink), and so are the spans whose token's norm at the hook exceeds 10x the batch median
(massive activations: a projection on them is large whatever the direction); those keys are absent
from the signature, which the matcher counts as 0 on that side.

Hook activations at the span tokens are cached per model revision, probe file and hook, so the
features of another report at the same hooks cost no forward pass.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from interp_lab.errors import InputError, UsageError

PROBES_VERSION = "probes-v1"
WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
OUTLIER_NORM = 10.0
Progress = Callable[[int, int], None]


def sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) character spans of the sentences of ``text`` (split after . ! ? before a capital
    or digit), whitespace trimmed."""
    spans, start = [], 0
    for m in SENTENCE_END.finditer(text):
        spans.append((start, m.start()))
        start = m.end()
    spans.append((start, len(text)))
    out = []
    for a, b in spans:
        seg = text[a:b]
        lead = len(seg) - len(seg.lstrip())
        out.append((a + lead, a + len(seg.rstrip())))
    return [(a, b) for a, b in out if b > a]


def make_probe_set(dataset: str = "lee+enwiki", n: int = 2400, *, min_chars: int = 60, max_chars: int = 320,
                   min_words: int = 8, seed: int = 0, text_column: str | None = None) -> list[dict[str, Any]]:
    """``n`` corpus sentences as probe prompts, the same number from each corpus of ``dataset`` (as far
    as each has them), chosen by a hash of their ids (deterministic per seed) among the sentences of
    ``min_chars``-``max_chars`` characters with at least ``min_words`` words and mostly letters."""
    from interp_lab.io.datasets import Corpus

    source = Corpus(dataset, text_column)
    by_corpus: dict[str, list[dict[str, Any]]] = {}
    for doc in source.documents():
        corpus = str(doc.labels.get("corpus") or doc.metadata.get("corpus")
                     or (source.label if source.streamed else doc.prompt_id.split("-")[0]))
        for j, (a, b) in enumerate(sentences(doc.text)):
            text = doc.text[a:b]
            if not min_chars <= len(text) <= max_chars or len(WORD.findall(text)) < min_words:
                continue
            if sum(c.isalpha() for c in text) < 0.6 * len(text):
                continue  # tables, lists of numbers, markup
            pid = f"{doc.prompt_id}.s{j}"
            by_corpus.setdefault(corpus, []).append(
                {"prompt_id": pid, "text": text, "metadata": {"corpus": corpus, "document": doc.prompt_id,
                                                               "start": a, "end": b}})
    if not by_corpus:
        raise UsageError(f"{dataset}: no sentences between {min_chars} and {max_chars} characters")

    def order(row: dict[str, Any]) -> str:
        return hashlib.sha256(f"{seed}\0{row['prompt_id']}".encode()).hexdigest()

    pools = {c: sorted(rows, key=order) for c, rows in sorted(by_corpus.items())}
    chosen: list[dict[str, Any]] = []
    quota, left = n, sorted(pools, key=lambda c: len(pools[c]))
    while left:  # smallest corpus first; what it cannot fill goes to the others
        c = left.pop(0)
        take = min(len(pools[c]), quota // (len(left) + 1))
        chosen += pools[c][:take]
        quota -= take
    if len(chosen) < n:
        raise UsageError(f"{dataset}: only {len(chosen)} sentences qualify as probes (asked for {n})")
    return sorted(chosen, key=lambda r: r["prompt_id"])


def write_probe_set(rows: list[dict[str, Any]], out: str | Path) -> Path:
    from interp_lab.io.jsonl import write_jsonl

    write_jsonl(out, rows)
    return Path(out)


def read_probe_set(path: str | Path) -> list[tuple[str, str]]:
    """(prompt_id, text) of every probe; ids are required (and unique)."""
    from interp_lab.io.prompts import read_prompts

    out = []
    for line, row in read_prompts(path):  # ids repeated within the file are refused there
        if row.prompt_id is None:
            raise InputError(path, "a probe needs a prompt_id (signature keys are prompt_id@start-end)",
                             line=line, field="prompt_id")
        out.append((str(row.prompt_id), row.text))
    if not out:
        raise InputError(path, "no probes")
    return out


def word_spans(text: str, per_probe: int | None) -> list[tuple[int, int]]:
    """The word spans of ``text`` but the first; at most ``per_probe`` of them, evenly spaced (None: all)."""
    spans = [m.span() for m in WORD.finditer(text)][1:]
    if per_probe is None or len(spans) <= per_probe:
        return spans
    pick = np.unique(np.linspace(0, len(spans) - 1, per_probe).round().astype(int))
    return [spans[i] for i in pick]


@dataclass
class ProbeTokens:
    """Where every key of a probe set sits in one model's tokenization."""

    keys: list[str]
    probe: np.ndarray  # [n_keys] probe index
    token: np.ndarray  # [n_keys] token position in that probe's ids
    exact: int  # keys whose token ends exactly at the word's end
    ids: list[list[int]]


def locate(tokenizer, probes: Sequence[tuple[str, str]], per_probe: int | None) -> ProbeTokens:
    """Every probe's word spans mapped to the token completing the word."""
    texts = [t for _, t in probes]
    enc = tokenizer(texts, add_special_tokens=True, return_offsets_mapping=True)
    keys, pi, ti, exact = [], [], [], 0
    for i, ((pid, text), offs) in enumerate(zip(probes, enc["offset_mapping"])):
        starts = np.array([a if b > a else -1 for a, b in offs])  # special tokens have empty offsets
        ends = np.array([b for _, b in offs])
        for a, b in word_spans(text, per_probe):
            before = np.flatnonzero((starts >= 0) & (starts < b))
            if not len(before):
                continue
            t = int(before[-1])
            exact += int(ends[t] == b)
            keys.append(f"{pid}@{a}-{b}")
            pi.append(i)
            ti.append(t)
    return ProbeTokens(keys, np.asarray(pi, dtype=np.int64), np.asarray(ti, dtype=np.int64), exact,
                       [list(x) for x in enc["input_ids"]])


def _cache_path(lm, probes_sha: str, per_probe: int | None, hook: str) -> Path:
    from interp_lab.io.cache import cache_dir

    h = hashlib.sha256(f"{PROBES_VERSION}\0{lm.name}\0{lm.revision}\0{probes_sha}\0{per_probe}\0{hook}".encode())
    return cache_dir() / "probes" / f"{h.hexdigest()[:32]}.safetensors"


def span_activations(lm, probes_path: str | Path, hooks: Sequence[str], *, per_probe: int | None = 4,
                     batch_size: int = 16, cache: bool = True, progress: Progress | None = None
                     ) -> tuple[ProbeTokens, dict[str, np.ndarray], dict[str, Any]]:
    """(where the keys are, {hook: [n_keys, d] float32 activations at the span tokens, NaN rows for the
    outlier tokens}, what was done). Hooks already cached are read from disk; the others are computed
    in one pass over the probes."""
    import torch
    from safetensors.numpy import load_file, save_file

    from interp_lab.harvest.run import pad_right
    from interp_lab.io.atomic import atomic_path
    from interp_lab.io.hashing import sha256_file
    from interp_lab.models.hooked import run

    probes = read_probe_set(probes_path)
    sha = sha256_file(probes_path)
    loc = locate(lm.tokenizer, probes, per_probe)
    out: dict[str, np.ndarray] = {}
    todo = []
    for h in dict.fromkeys(hooks):
        path = _cache_path(lm, sha, per_probe, h)
        if cache and path.exists():
            out[h] = load_file(path)["acts"].astype(np.float32)
        else:
            todo.append(h)
    excluded = {}
    if todo:
        pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
        by_probe = np.split(np.arange(len(loc.keys)), np.flatnonzero(np.diff(loc.probe)) + 1) if loc.keys else []
        rows_of = {int(loc.probe[r[0]]): r for r in by_probe if len(r)}
        got: dict[str, np.ndarray] = {}  # allocated at the first batch, when the hook widths are known
        order = np.argsort([len(x) for x in loc.ids], kind="stable")  # similar lengths batch together
        done = 0
        for s in range(0, len(order), batch_size):
            chunk = [int(i) for i in order[s: s + batch_size]]
            ids, mask = pad_right([loc.ids[i] for i in chunk], pad)
            with torch.no_grad():
                acts = run(lm.model, {"input_ids": ids, "attention_mask": mask}, todo, logits=False, flat=True).acts
            valid = mask.bool()
            for h in todo:
                a = acts[h].float()
                norm = a.norm(dim=-1)
                med = norm[valid].median()
                if h not in got:
                    got[h] = np.full((len(loc.keys), a.shape[-1]), np.nan, dtype=np.float32)
                for b, i in enumerate(chunk):
                    rows = rows_of.get(i)
                    if rows is None:
                        continue
                    t = torch.as_tensor(loc.token[rows])
                    keep = (norm[b, t] <= OUTLIER_NORM * med).numpy()
                    got[h][rows[keep]] = a[b, t[torch.as_tensor(keep)]].numpy()
            done += len(chunk)
            if progress:
                progress(done, len(order))
        for h in todo:
            excluded[h] = int(np.isnan(got[h][:, 0]).sum()) if len(loc.keys) else 0
            if cache:
                path = _cache_path(lm, sha, per_probe, h)
                path.parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(path) as tmp:
                    save_file({"acts": got[h].astype(np.float16)}, str(tmp))
            out[h] = got[h].astype(np.float16).astype(np.float32)  # the cached values, bit for bit
    for h in out:
        excluded.setdefault(h, int(np.isnan(out[h][:, 0]).sum()) if len(loc.keys) else 0)
    info = {"file": Path(probes_path).name, "sha256": sha, "probes": len(probes), "keys": len(loc.keys),
            "spans_per_probe": per_probe, "keys_ending_at_a_token_end": loc.exact,
            "excluded_outlier_tokens": {h: excluded[h] for h in sorted(out)},
            "key": "prompt_id@start-end (characters of the probe text): a word but each probe's first, read at "
                   "the token that completes it", "stored_as": "float16"}
    return loc, out, info


def probe_signatures(lm, probes_path: str | Path, targets: Sequence[Any], *, per_probe: int | None = 4,
                     batch_size: int = 16, cache: bool = True, digits: int = 4, progress: Progress | None = None
                     ) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """({feature_id: {key: value}}, info) for ``targets`` (``interventions.features.Target``) on the probe
    set: each feature's value at every span token (outlier tokens absent), to ``digits`` significant
    digits."""
    import torch

    from interp_lab.evidence.stats import significant

    loc, acts, info = span_activations(lm, probes_path, sorted({t.hook for t in targets}), per_probe=per_probe,
                                       batch_size=batch_size, cache=cache, progress=progress)
    keys = np.asarray(loc.keys)
    out: dict[str, dict[str, float]] = {}
    for t in targets:
        x = acts[t.hook]
        ok = ~np.isnan(x[:, 0])
        v = t.space.values(torch.from_numpy(x[ok]), [t.index])[:, 0].numpy()
        out[t.feature_id] = {str(k): significant(float(val), digits) for k, val in zip(keys[ok], v)}
    return out, info
