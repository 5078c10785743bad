"""Compile a criterion spec into scored, split prompts (formats.md), and the score a model measures.

Kinds:

- ``labelled``: the user's prompts with their ``criterion_score`` (JSONL or CSV).
- ``next_token``: the user's prompts, scored by the model's probability mass on the target tokens.
- ``semantic`` (what plain text means): passages of a corpus (``lee + enwiki`` unless the spec or
  ``--dataset`` names another) or the user's prompts, scored by MiniLM similarity to the criterion,
  with a margin between positives and negatives and hard negatives (``criteria.semantic``).
- ``contrast``: paired prompts. Rows carrying ``metadata.positive`` and ``metadata.negative``
  continuations are scored by the model: sigmoid(log p(positive) - log p(negative)); otherwise
  each row's ``criterion_score`` is used. Rows sharing ``labels.pair`` share a split.

Splits are the prompt's own, else dealt by group (``metadata.group``, default the source document
``metadata.doc``, else the prompt id; rows sharing ``labels.pair`` joined) and stratified by class
(and by corpus, ``metadata.source``, when the prompts come from several), so no document feeds two
splits and each split holds the spec's fraction of positives and of negatives
(``evidence.splits.stratified_group_splits``). The kinds the model scores are scored before they are
split (their class is the score). Held-out gets at least ``min_heldout`` prompts: its share is raised
when the fraction gives fewer, and a prompt set that cannot hold them (held-out would be more than
half) is an error, never a silent shortfall. Given splits that put one group in two splits are refused.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from interp_lab import defaults
from interp_lab.errors import InputError, UsageError
from interp_lab.evidence.splits import heldout_fractions, prompt_groups, stratified_group_splits
from interp_lab.io.prompts import prompt_covariates, read_prompts
from interp_lab.io.records import text_prompt_id
from interp_lab.io.specs import criterion_file, load_criterion
from interp_lab.schemas.records import SPLITS, CriterionSpec

DEFAULT_CORPUS = "lee+enwiki"
BATCH = 64  # prompts per batch when the model scores them (the interventions' default too)


@dataclass
class Compiled:
    spec: CriterionSpec
    rows: list[dict[str, Any]]  # prompt-set rows: prompt_id, text, criterion_score, split, labels, metadata
    score_kind: str
    target_ids: list[int] = field(default_factory=list)
    source: str = ""  # where the prompts came from (file name or corpus)
    info: dict[str, Any] = field(default_factory=dict)  # how they were chosen (semantic selection, ...)

    @property
    def counts(self) -> dict[str, int]:
        return {s: sum(1 for r in self.rows if r["split"] == s) for s in SPLITS}

    def write(self, path: str | os.PathLike) -> int:
        from interp_lab.io.jsonl import write_jsonl

        return write_jsonl(path, self.rows)

    def split(self, name: str) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["split"] == name]


def target_token_ids(tokenizer, targets: list[str]) -> list[int]:
    """The first token of each target text (a target that is several tokens is counted by its first)."""
    ids: list[int] = []
    for t in targets:
        enc = tokenizer(t, add_special_tokens=False)["input_ids"]
        if not enc:
            raise UsageError(f"target {t!r} is empty for this tokenizer")
        if enc[0] not in ids:
            ids.append(enc[0])
    return ids


def _model_scores(lm, rows: list[dict[str, Any]], scorer) -> np.ndarray:
    """The scorer's score of every row: before splitting (the class decides the split), all rows in one
    prompt set; rows whose splits are all given, split by split (the prompt sets interventions reuse)."""
    from interp_lab.interventions.batches import scores
    from interp_lab.interventions.run import split_set

    out = np.zeros(len(rows))
    for s in dict.fromkeys(r["split"] for r in rows):
        idx = [i for i, r in enumerate(rows) if r["split"] == s]
        out[idx] = scores(split_set(lm, [rows[i] for i in idx], BATCH), scorer)
    return out


def _prompt_rows(path: str | os.PathLike, lines: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """Prompt-set rows of a file; ``lines`` (when given) gets each prompt's line number."""
    rows = []
    for number, r in read_prompts(path):
        pid = str(r.prompt_id) if r.prompt_id is not None else text_prompt_id(r.text)
        rows.append({"prompt_id": pid, "text": r.text, "criterion_score": r.criterion_score, "split": r.split,
                     "labels": dict(r.labels or {}), "metadata": dict(r.metadata or {})})
        if lines is not None:
            lines[pid] = number
    return rows


def _resolve(source: str, base_dir: str | os.PathLike | None) -> Path:
    path = Path(source)
    if not path.is_absolute() and base_dir is not None and not path.exists():
        path = Path(base_dir) / path
    return path


def _load_model(model: Any):
    from interp_lab.models.load import LoadedModel, load_model

    return model if isinstance(model, LoadedModel) else load_model(str(model or defaults.MODEL))


def continuation_ids(tokenizer, rows: list[dict[str, Any]], path: Path) -> dict[str, tuple[list[int], list[int]]]:
    """Token ids of each contrast row's positive and negative continuation, by prompt_id."""
    out = {}
    for r in rows:
        pair = []
        for side in ("positive", "negative"):
            text = r["metadata"].get(side)
            if not isinstance(text, str) or not text:
                raise InputError(path, f"prompt {r['prompt_id']!r} has no metadata.{side} continuation (contrast "
                                       "rows carry both, or none and a criterion_score)", field=f"metadata.{side}")
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            if not ids:
                raise InputError(path, f"prompt {r['prompt_id']!r}: metadata.{side} tokenizes to nothing",
                                 field=f"metadata.{side}")
            pair.append(list(ids))
        out[r["prompt_id"]] = (pair[0], pair[1])
    return out


def _score_contrast(lm, rows: list[dict[str, Any]], path: Path) -> dict[str, tuple[list[int], list[int]]]:
    from interp_lab.criteria.scorers import ContrastLogprob

    conts = continuation_ids(lm.tokenizer, rows, path)
    diff = _model_scores(lm, rows, ContrastLogprob(conts))
    for r, d in zip(rows, diff):
        r["criterion_score"] = round(float(1.0 / (1.0 + np.exp(-d))), 6)
        r["metadata"]["logprob_diff"] = round(float(d), 6)
        r["metadata"]["score_kind"] = "contrast_preference"
        r["metadata"]["model"] = lm.name
    return conts


def _require_scores(rows: list[dict[str, Any]], path: Path, kind: str) -> None:
    missing = [r["prompt_id"] for r in rows if r["criterion_score"] is None]
    if missing:
        raise InputError(path, f"{len(missing)} prompts have no criterion_score (first: {missing[0]!r}); a {kind} "
                               "criterion needs one on every prompt", field="criterion_score")


def compile_criterion(criterion: str | CriterionSpec, *, model: Any = None, prompts: str | None = None,
                      dataset: str | None = None, base_dir: str | os.PathLike | None = None,
                      progress: Any = None) -> Compiled:
    """Scored, split prompt rows for a criterion (text, spec path or ``CriterionSpec``).

    ``model``: a ``LoadedModel`` or a name, for the kinds the model scores (next_token, contrast with
    continuations). ``prompts`` overrides the spec's prompt set; ``dataset`` names the corpus of a
    semantic criterion when the spec names none. ``progress(stage, done, total)`` hears of the passages
    embedded (a semantic criterion on a cold cache).
    """
    spec = criterion if isinstance(criterion, CriterionSpec) else load_criterion(criterion)
    spec_file = None if isinstance(criterion, CriterionSpec) else criterion_file(criterion)
    if base_dir is None and spec_file is not None:
        base_dir = spec_file.parent
    target_ids: list[int] = []
    info: dict[str, Any] = {}
    lines: dict[str, int] = {}
    if spec.kind == "semantic":
        from interp_lab.criteria.semantic import compile_semantic, corpus_passages

        file_source = prompts or spec.prompts
        if file_source:
            path = _resolve(file_source, base_dir)
            candidates = _prompt_rows(path, lines)
            source = path.name
        else:
            from interp_lab.io.datasets import iter_documents

            source = spec.corpus or spec.dataset or dataset or DEFAULT_CORPUS
            path = Path(source)
            candidates = corpus_passages(iter_documents(source), Path(source).name)
        rows, info = compile_semantic(spec, candidates, progress)
        plan = _plan_splits(rows, spec, path, lines)
        score_kind = "similarity_label"
    else:
        source_name = prompts or spec.prompts or spec.dataset
        if source_name is None:
            raise UsageError(f"a {spec.kind} criterion needs prompts (the spec's 'prompts' or --prompts)")
        path = _resolve(source_name, base_dir)
        source = path.name
        rows = _prompt_rows(path, lines)
        plan = _plan_splits(rows, spec, path, lines)  # before the model scores them
        if spec.kind == "labelled":
            _require_scores(rows, path, "labelled")
            score_kind = "label"
        elif spec.kind == "next_token":
            from interp_lab.criteria.scorers import NextTokenMass

            lm = _load_model(model)
            target_ids = target_token_ids(lm.tokenizer, list(spec.targets))
            for r, s in zip(rows, _model_scores(lm, rows, NextTokenMass(target_ids))):
                r["criterion_score"] = round(float(s), 6)
                r["metadata"]["score_kind"] = "next_token_mass"
                r["metadata"]["model"] = lm.name
            score_kind = "next_token_mass"
        elif any("positive" in r["metadata"] or "negative" in r["metadata"] for r in rows):  # contrast
            _score_contrast(_load_model(model), rows, path)
            score_kind = "contrast_preference"
        else:
            _require_scores(rows, path, "contrast")
            score_kind = "label"
    info["splits"] = _assign_splits(rows, spec, plan)
    return Compiled(spec, rows, score_kind, target_ids, source=source, info=info)


def check_criterion(criterion: str, *, prompts: str | None = None) -> CriterionSpec:
    """The criterion's spec, and its prompt file read and validated, without a model: what a command
    checks before its expensive work (a model load, training) so that a bad spec or a missing prompt
    file fails at once. A semantic criterion over a corpus is only checked for the spec."""
    spec = load_criterion(criterion)
    source = prompts or spec.prompts or (None if spec.kind == "semantic" else spec.dataset)
    if source is None:
        if spec.kind != "semantic":
            raise UsageError(f"a {spec.kind} criterion needs prompts (the spec's 'prompts' or --prompts)")
        return spec
    spec_file = criterion_file(criterion)
    path = _resolve(source, spec_file.parent if spec_file is not None else None)
    lines: dict[str, int] = {}
    rows = _prompt_rows(path, lines)
    if spec.kind == "labelled":
        _require_scores(rows, path, "labelled")
    if spec.kind != "semantic":  # a semantic criterion splits the prompts it chooses
        _plan_splits(rows, spec, path, lines)
    return spec


@dataclass
class _SplitPlan:
    groups: Any  # evidence.splits.Groups
    given: np.ndarray  # [rows] split code, -1 = to assign
    fractions: dict[str, float]  # the spec's, the held-out share raised to hold min_heldout
    path: Path


def _plan_splits(rows: list[dict[str, Any]], spec: CriterionSpec, path: Path, lines: dict[str, int]) -> _SplitPlan:
    """What can be checked before the prompts are scored: no group is given two splits, and the prompt set
    can hold ``min_heldout`` held-out prompts."""
    groups = prompt_groups(rows)
    given = np.array([SPLITS.index(r["split"]) if r["split"] is not None else -1 for r in rows], dtype=np.int8)
    where: dict[int, int] = {}  # group -> its first row with a given split
    for i in np.flatnonzero(given >= 0):
        g = int(groups.index[i])
        j = where.setdefault(g, int(i))
        if given[j] != given[i]:
            first, pid = rows[j]["prompt_id"], rows[i]["prompt_id"]
            raise InputError(path, f"prompt {pid!r} is in the {SPLITS[given[i]]} split but {first!r} of the same "
                                   f"group ({groups.names[g]!r}) is in {SPLITS[given[j]]}: no group (metadata.group, "
                                   "else metadata.doc) may feed two splits (give metadata.group, or leave split out "
                                   "and interp-lab splits by group)", line=lines.get(pid), field="split")
    fractions = {s: float(spec.splits.get(s, 0.0)) for s in SPLITS}
    if (given < 0).any():
        try:
            fractions = heldout_fractions(fractions, len(rows), spec.min_heldout)
        except ValueError as exc:
            raise InputError(path, f"{exc} (add prompts or lower min_heldout)", field="min_heldout") from None
    else:
        _check_heldout(int((given == SPLITS.index("heldout")).sum()), spec, path)
    return _SplitPlan(groups, given, fractions, path)


def _check_heldout(held: int, spec: CriterionSpec, path: Path) -> None:
    if held < spec.min_heldout:
        raise InputError(path, f"only {held} held-out prompts; the criterion asks for min_heldout "
                               f"{spec.min_heldout} (add prompts or lower min_heldout)", field="min_heldout")


def _assign_splits(rows: list[dict[str, Any]], spec: CriterionSpec, plan: _SplitPlan) -> dict[str, Any]:
    """Give every row without a split one, by group and stratified by class (module docstring). Returns
    what was done."""
    from interp_lab.evidence.stats import class_cut

    groups, given, fractions = plan.groups, plan.given, plan.fractions
    raw = np.array([np.nan if r["criterion_score"] is None else r["criterion_score"] for r in rows], dtype=float)
    scored = np.isfinite(raw)
    cut = class_cut(raw[scored]) if scored.any() else 0.5
    classes = np.where(scored, (raw > cut).astype(np.int8), 2)  # 2: no score (context)
    source = prompt_covariates(rows).get("source")  # prompts of several corpora: each split its share of each
    strata = classes if source is None else np.char.add(classes.astype(str), np.asarray(source, dtype=str))
    note = None
    if (given < 0).any():
        if fractions["heldout"] > spec.splits.get("heldout", 0.0) + 1e-12:
            note = (f"held-out raised from {spec.splits.get('heldout', 0.0):.0%} to {fractions['heldout']:.1%} of "
                    f"the prompts to hold min_heldout {spec.min_heldout}")
        codes = stratified_group_splits(groups, strata, fractions, given, spec.min_heldout)
        for r, c in zip(rows, codes):
            r["split"] = SPLITS[c]
    codes = np.array([SPLITS.index(r["split"]) for r in rows])
    _check_heldout(int((codes == SPLITS.index("heldout")).sum()), spec, plan.path)
    per_group = np.zeros(len(groups), dtype=np.int64)
    per_group[groups.index] = codes
    out: dict[str, Any] = {
        "by": groups.by,
        "stratified_by": ("class" if scored.any() else "nothing") + ("" if source is None else " and source"),
        "class": f"criterion_score > {round(cut, 6)}" if scored.any() else None,
        "method": "given" if (given >= 0).all() else
                  ("dealt by group" if (given < 0).all() else "given, the rest dealt by group"),
        "fractions": {s: round(v, 4) for s, v in fractions.items()},
        "groups": {s: int((per_group == k).sum()) for k, s in enumerate(SPLITS)},
        "positives": {s: int(((codes == k) & (classes == 1)).sum()) for k, s in enumerate(SPLITS)},
        "negatives": {s: int(((codes == k) & (classes == 0)).sum()) for k, s in enumerate(SPLITS)},
    }
    if note:
        out["note"] = note
    return out


def scorer_for(compiled: Compiled, lm, prompts_path: str | os.PathLike | None = None):
    """How interventions measure this criterion on the model.

    Target tokens: next-token mass. Contrast rows with continuations: log p(positive) - log p(negative).
    Otherwise (``measure``): the next-token mass on the vocabulary words most similar to the criterion
    (recorded in ``compiled.info``), or the MiniLM similarity of the greedy continuation to it.
    """
    from interp_lab.criteria import scorers

    spec = compiled.spec
    if spec.targets:
        ids = compiled.target_ids or target_token_ids(lm.tokenizer, list(spec.targets))
        return scorers.NextTokenMass(ids)
    if spec.kind == "contrast" and compiled.score_kind == "contrast_preference":
        return scorers.ContrastLogprob(continuation_ids(lm.tokenizer, compiled.rows, Path(prompts_path or
                                                                                         compiled.source)))
    from interp_lab.models.embed import embedder

    emb = embedder(spec.embedding_model)
    anchor = scorers.anchor_vector(emb, spec.criterion, spec.examples)
    if spec.measure == "continuation":
        return scorers.ContinuationSimilarity(emb, anchor, n_tokens=spec.continuation_tokens)
    from interp_lab.criteria.semantic import derived_targets

    words, ids, sims = derived_targets(lm.tokenizer, emb, anchor, spec.derived_targets)
    compiled.target_ids = ids
    compiled.info["derived_targets"] = {"words": words, "similarity": sims, "embedding_model": emb.name,
                                        "rule": "the vocabulary's whole-word tokens most similar to the criterion"}
    return scorers.NextTokenMass(ids, kind="derived_target_mass")
