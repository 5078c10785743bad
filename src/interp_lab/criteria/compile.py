"""Compile a criterion spec into scored, split prompts.

Kinds done here: ``labelled`` (the user's scores) and ``next_token`` (the
model's probability mass on the target tokens after each prompt).
``semantic`` and ``contrast`` are refused with a clear message until they land.
Splits are the prompt's own, else a hash of its prompt_id with the spec's
fractions (discovery / calibration / heldout); too few held-out prompts is an
error, never a silent shortfall.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from interp_lab.errors import InputError, UsageError
from interp_lab.evidence.splits import split_codes
from interp_lab.io.prompts import read_prompts
from interp_lab.io.records import text_prompt_id
from interp_lab.io.specs import load_criterion
from interp_lab.schemas.records import SPLITS, CriterionSpec


@dataclass
class Compiled:
    spec: CriterionSpec
    rows: list[dict[str, Any]]  # prompt-set rows: prompt_id, text, criterion_score, split, labels, metadata
    score_kind: str
    target_ids: list[int] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        return {s: sum(1 for r in self.rows if r["split"] == s) for s in SPLITS}

    def write(self, path: str | os.PathLike) -> int:
        from interp_lab.io.jsonl import write_jsonl

        return write_jsonl(path, self.rows)


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


def next_token_mass(lm, texts: list[str], target_ids: list[int], batch_size: int = 16) -> np.ndarray:
    """Probability the model gives the target tokens right after each text (one forward per batch)."""
    import torch

    from interp_lab.harvest.run import pad_right
    from interp_lab.models.hooked import run

    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    out = np.zeros(len(texts))
    ids_t = torch.tensor(target_ids)
    for i in range(0, len(texts), batch_size):
        enc = lm.tokenizer(texts[i: i + batch_size], add_special_tokens=True)["input_ids"]
        ids, mask = pad_right(enc, pad)
        logits = run(lm.model, {"input_ids": ids, "attention_mask": mask}).logits
        last = logits[torch.arange(len(enc)), mask.sum(1) - 1].float()
        out[i: i + len(enc)] = torch.softmax(last, -1)[:, ids_t].sum(-1).numpy()
    return out


def _prompt_rows(path: str | os.PathLike) -> list[dict[str, Any]]:
    rows = []
    for _, r in read_prompts(path):
        rows.append({"prompt_id": str(r.prompt_id) if r.prompt_id is not None else text_prompt_id(r.text),
                     "text": r.text, "criterion_score": r.criterion_score, "split": r.split,
                     "labels": dict(r.labels or {}), "metadata": dict(r.metadata or {})})
    return rows


def compile_criterion(criterion: str | CriterionSpec, *, model: Any = None, prompts: str | None = None,
                      base_dir: str | os.PathLike | None = None) -> Compiled:
    """Scored, split prompt rows for a criterion (text, spec path or ``CriterionSpec``)."""
    spec = criterion if isinstance(criterion, CriterionSpec) else load_criterion(criterion)
    source = prompts or spec.prompts or spec.dataset
    if spec.kind in ("semantic", "contrast"):
        raise UsageError(f"criterion kind {spec.kind!r} is not compiled by this version yet "
                         "(labelled and next_token are)")
    if source is None:
        raise UsageError(f"a {spec.kind} criterion needs prompts (the spec's 'prompts' or --prompts)")
    path = Path(source)
    if not path.is_absolute() and base_dir is not None and not path.exists():
        path = Path(base_dir) / path
    rows = _prompt_rows(path)
    if spec.kind == "labelled":
        missing = [r["prompt_id"] for r in rows if r["criterion_score"] is None]
        if missing:
            raise InputError(path, f"{len(missing)} prompts have no criterion_score (first: {missing[0]!r}); a "
                                   "labelled criterion needs one on every prompt", field="criterion_score")
        score_kind, target_ids = "label", []
    else:
        from interp_lab.models.load import LoadedModel, load_model

        lm = model if isinstance(model, LoadedModel) else load_model(str(model or "smollm2-135m"))
        target_ids = target_token_ids(lm.tokenizer, list(spec.targets))
        scores = next_token_mass(lm, [r["text"] for r in rows], target_ids)
        for r, s in zip(rows, scores):
            r["criterion_score"] = round(float(s), 6)
            r["metadata"]["score_kind"] = "next_token_mass"
            r["metadata"]["model"] = lm.name
        score_kind = "next_token_mass"
    need = np.array([r["split"] is None for r in rows])
    if need.any():
        codes = split_codes(np.array([r["prompt_id"] for r in rows], dtype=object)[need], dict(spec.splits))
        for r, c in zip((r for r, n in zip(rows, need) if n), codes):
            r["split"] = SPLITS[c]
    compiled = Compiled(spec, rows, score_kind, target_ids)
    held = compiled.counts["heldout"]
    if held < spec.min_heldout:
        raise InputError(path, f"only {held} held-out prompts; the criterion asks for min_heldout "
                               f"{spec.min_heldout} (add prompts or lower min_heldout)", field="min_heldout")
    return compiled
