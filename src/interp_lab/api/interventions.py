"""The intervention workflows behind ``intervene``, ``export-hf-interventions``, ``export-hf-contrast`` and
``steer``: compile the criterion, choose the features, run the edits with controls, write the files."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from interp_lab.errors import InputError, UsageError
from interp_lab.interventions.settings import InterventionSettings
from interp_lab.providers.hf import Setup, load, setup

Progress = Callable[..., None]


def features_from_report(report: str | os.PathLike, top_k: int | None) -> tuple[list[str], dict, dict[str, int]]:
    """The report's card ids in rank order (the first ``top_k``), the directions saved beside it, and each
    card's discovery direction (+1 promotes, -1 suppresses; cards whose direction comes from association)."""
    from interp_lab.evidence.causal import claim_of
    from interp_lab.interventions.contrast import load_directions

    p = Path(report)
    try:
        data = json.loads(p.read_bytes())
    except FileNotFoundError:
        raise InputError(p, "no such report") from None
    except ValueError as exc:
        raise InputError(p, f"not a JSON report ({exc})") from None
    cards = data.get("cards") if isinstance(data, dict) else None
    if not isinstance(cards, list):
        raise InputError(p, "a report needs a 'cards' list", field="cards")
    ids = [c["feature_id"] for c in cards if isinstance(c, dict) and "feature_id" in c]
    claims = {c["feature_id"]: claim_of(c.get("direction")) for c in cards
              if isinstance(c, dict) and "feature_id" in c and c.get("association") is not None}
    beside = p.parent / "directions.safetensors"
    return (ids[:top_k] if top_k else ids, (load_directions(beside) if beside.exists() else {}),
            {f: c for f, c in claims.items() if c is not None})


def write_records(records: Sequence[dict[str, Any]], out: str | os.PathLike) -> int:
    from interp_lab.io.jsonl import write_jsonl

    return write_jsonl(out, records)


def run_claims(run: Any) -> dict[str, int]:
    """The direction a run fixed for each steered feature before testing it (from discovery prompts): its
    steering calibrations' ``claimed_direction`` (an InterventionRun keeps no other claims)."""
    from interp_lab.evidence.causal import claim_of

    got = {f: claim_of(i.get("claimed_direction")) for f, i in (run.strengths or {}).items() if isinstance(i, dict)}
    return {f: c for f, c in got.items() if c is not None}


def summarize(records: Sequence[dict[str, Any]], compiled: Any, seed: int = 0,
              claims: dict[str, int] | None = None, strengths: dict[str, Any] | None = None
              ) -> dict[str, dict[str, Any]]:
    """Causal evidence per feature and kind for what was just run on the ``compiled`` criterion's prompts, with
    the verdicts ``inspect`` records for these records (``evidence.causal`` with its settings; the criterion's
    held-out prompts are every one available, as the records of the same prompts tell inspect). ``claims``:
    each feature's discovery direction (+1 / -1; a feature without one is tested two-sided, and its entries
    say so); ``strengths``: the run's steering calibrations (dose-response, KL budget)."""
    from interp_lab.evidence.causal import CausalSettings, causal_evidence, interventions_from_dicts

    table = interventions_from_dicts(list(records), compiled.spec.criterion, name="interventions")
    return causal_evidence(table, CausalSettings(seed=seed), len(compiled.split("heldout")), claims=claims,
                           strengths=strengths)


@dataclass
class InterveneResult:
    run: Any  # interventions.run.InterventionRun
    evidence: dict[str, dict[str, Any]]
    paths: dict[str, Path] = field(default_factory=dict)
    setup: Setup | None = None


def intervene(model: Any, criterion: str, *, features: Sequence[str] = (), report: str | None = None,
              top_k: int | None = None, directions: str | None = None, prompts: str | None = None,
              side_prompts: str | None = None, settings: InterventionSettings = InterventionSettings(),
              out: str | os.PathLike | None = None, sae: str | os.PathLike | None = None,
              progress: Progress | None = None, claims_for: dict[str, int] | None = None) -> InterveneResult:
    """Run the settings' intervention kinds, with controls, on features named or taken from a report.
    ``sae``: the checkpoint whose latents the ``L{layer}:F{i}`` ids name. Each feature is tested in the
    direction ``claims_for`` gives it (+1 promotes, -1 suppresses), else its report card's, else the one
    the run finds on discovery prompts, else two-sided."""
    from interp_lab.interventions.contrast import load_directions
    from interp_lab.interventions.features import resolve_targets
    from interp_lab.interventions.run import run_interventions

    ids = list(features)
    dirs: dict = {}
    claims: dict[str, int] = {}
    if report is not None:
        from_report, dirs, claims = features_from_report(report, top_k)
        ids += [f for f in from_report if f not in ids]
    if directions is not None:
        dirs = {**dirs, **load_directions(directions)}
    if not ids:
        raise UsageError("name the features to intervene on (--features, or --report with its cards)")
    lm = load(model, progress)
    targets = resolve_targets(lm, ids, dirs, _latents(sae))  # bad ids fail before the criterion is compiled
    s = setup(lm, criterion, prompts=prompts, side_prompts=side_prompts, n_side=settings.side_prompts,
              say=progress)
    given = {**claims, **dict(claims_for or {})}  # steering is calibrated in these directions too
    run = run_interventions(s.lm, s.compiled.rows, targets, s.scorer, s.unrelated, criterion=s.compiled.spec.criterion,
                            settings=settings, progress=progress, claims=given)
    claims = {**run_claims(run), **given}
    result = InterveneResult(run, summarize(run.records, s.compiled, settings.seed, claims, run.strengths), setup=s)
    if out is not None:
        write_records(run.records, out)
        result.paths["interventions"] = Path(out)
    return result


def _latents(sae: str | os.PathLike | None) -> dict[int, Any] | None:
    if sae is None:
        return None
    from interp_lab.sae.space import latent_space

    space = latent_space(sae)
    return {space.layer: space}


@dataclass
class ContrastResult:
    directions: list[Any]
    best: Any
    run: Any
    evidence: dict[str, dict[str, Any]]
    paths: dict[str, Path] = field(default_factory=dict)


def direction_records(compiled, acts: dict[int, dict[str, np.ndarray]], directions: Sequence[Any], model: str
                      ) -> list[dict[str, Any]]:
    """Activation records (formats.md) of the directions: each prompt's projection at its last token."""
    by_split = {s: compiled.split(s) for s in ("discovery", "calibration", "heldout")}
    out = []
    for split, rows in by_split.items():
        if not rows:
            continue
        proj = {d.feature_id: acts[d.layer][split] @ d.vector for d in directions}
        for i, r in enumerate(rows):
            out.append({"schema_version": "interp-lab.activation_record.v1", "model": model,
                        "prompt_id": r["prompt_id"], "text": r["text"], "token_index": None,
                        "criterion_score": r["criterion_score"], "split": split,
                        "features": {f: round(float(v[i]), 6) for f, v in proj.items()},
                        "metadata": {"source": "contrast", "hook": "hook_resid_post (last token)",
                                     "labels": r.get("labels") or {}}})
    return out


def contrast(model: Any, criterion: str, *, prompts: str | None = None, layers: str | None = "all",
             methods: Sequence[str] = ("mean_difference", "logistic_probe"), method: str = "mean_difference",
             kinds: Sequence[str] = ("steer", "ablate"), side_prompts: str | None = None,
             settings: InterventionSettings = InterventionSettings(), out_dir: str | os.PathLike | None = None,
             records_out: str | os.PathLike | None = None, interventions_out: str | os.PathLike | None = None,
             features_out: str | os.PathLike | None = None, run: bool = True,
             progress: Progress | None = None) -> ContrastResult:
    """Contrast directions per layer, the best one steered (calibrated strength) and projected out on
    held-out prompts with controls; directions saved as safetensors and feature rows."""
    from interp_lab.harvest.records import parse_layers
    from interp_lab.interventions.contrast import best_direction, fit_directions, save_directions, split_acts
    from interp_lab.interventions.features import DirectionSpace, Target
    from interp_lab.interventions.run import run_interventions

    say = progress or (lambda stage, done=0, total=None: None)
    s = setup(model, criterion, prompts=prompts, side_prompts=side_prompts, n_side=settings.side_prompts, say=say)
    chosen = parse_layers(layers, s.lm.n_layers)
    say(f"last-token activations at {len(chosen)} layers", 0, None)
    acts, positive = split_acts(s.lm, s.compiled.rows, chosen, settings.batch_size)
    dirs = fit_directions(acts, positive, methods)
    best = best_direction(dirs, method)
    ran = None
    evidence: dict[str, dict[str, Any]] = {}
    paths: dict[str, Path] = {}
    if run:
        target = Target(DirectionSpace(best.hook, best.layer, best.vector[None], [best.feature_id]), 0)
        ran = run_interventions(s.lm, s.compiled.rows, [target], s.scorer, s.unrelated,
                                criterion=s.compiled.spec.criterion,
                                settings=settings.replace(kinds=tuple(kinds)),
                                progress=say)
        evidence = summarize(ran.records, s.compiled, settings.seed, run_claims(ran), ran.strengths)
    meta = {"model": s.lm.name, "revision": s.lm.revision or "", "criterion": s.compiled.spec.criterion,
            "best": best.feature_id}
    base = Path(out_dir) if out_dir is not None else None
    dest = {"directions": base / "directions.safetensors" if base else None,
            "records": records_out or (base / "contrast-records.jsonl" if base else None),
            "interventions": interventions_out or (base / "contrast-interventions.jsonl" if base else None),
            "features": features_out or (base / "contrast-features.jsonl" if base else None)}
    if dest["directions"] is None and any(dest[k] for k in ("records", "interventions", "features")):
        first = next(Path(dest[k]) for k in ("records", "interventions", "features") if dest[k])
        dest["directions"] = first.parent / "directions.safetensors"
    if dest["directions"]:
        paths["directions"] = save_directions(dirs, dest["directions"], meta)
    if dest["records"]:
        paths["records"] = Path(dest["records"])
        write_records(direction_records(s.compiled, acts, dirs, s.lm.name), paths["records"])
    if dest["features"]:
        paths["features"] = Path(dest["features"])
        write_records([d.feature_row(s.lm.name, {"best": d is best}) for d in dirs], paths["features"])
    if dest["interventions"] and ran is not None:
        paths["interventions"] = Path(dest["interventions"])
        write_records(ran.records, paths["interventions"])
    return ContrastResult(dirs, best, ran, evidence, paths)


@dataclass
class SteerResult:
    prompt: str
    hook: str
    feature: str
    strength: float
    unit: float  # the median activation norm at the hook over the prompt's tokens (first excluded)
    baseline: str
    steered: str
    baseline_top: list[tuple[str, float]]
    steered_top: list[tuple[str, float]]


def steer(model: Any, prompt: str, *, feature: str | None = None, direction: str | None = None,
          strength: float = 1.0, tokens: int = 20, top: int = 10, sae: str | os.PathLike | None = None) -> SteerResult:
    """Greedy continuation of ``prompt`` with and without a feature's write vector (or a saved direction)
    added from the last prompt token on, at ``strength`` x the median activation norm at its hook."""
    import torch

    from interp_lab.interventions.batches import PromptSet
    from interp_lab.interventions.contrast import load_directions
    from interp_lab.interventions.features import resolve_targets
    from interp_lab.models.hooked import Edit, run

    if (feature is None) == (direction is None):
        raise UsageError("give exactly one of --feature and --direction")
    lm = load(model)
    if direction is not None:
        file, _, key = direction.partition(":") if not Path(direction).exists() else (direction, "", "")
        dirs = load_directions(file)
        key = key or (next(iter(dirs)) if len(dirs) == 1 else "")
        if key not in dirs:
            raise UsageError(f"{file} holds {', '.join(dirs)}: name one as {file}:KEY")
        target = resolve_targets(lm, [key], dirs)[0]
    else:
        target = resolve_targets(lm, [feature], latent_spaces=_latents(sae))[0]
    enc = lm.tokenizer([prompt], return_tensors="pt")
    acts = run(lm.model, dict(enc), [target.hook], logits=False).acts[target.hook][0].float()
    norms = acts.norm(dim=-1)
    unit = float((norms[1:] if len(norms) > 1 else norms).median())
    w = target.space.write([target.index])[0]
    vec = w / w.norm() * (strength * unit)
    edits = [Edit(target.hook, "apply", lambda v: v + vec.to(v.dtype))]
    ps = PromptSet(lm, [prompt], 1)
    b = ps.batches[0]
    out = {}
    for name, e in (("baseline", []), ("steered", edits)):
        ids = ps.greedy(b, tokens, e)[0]
        lp = ps.next_token_logprobs(lambda _b, e=e: e)[0]
        p, i = torch.topk(lp.exp(), top)
        out[name] = (lm.tokenizer.decode(ids, skip_special_tokens=True),
                     [(lm.tokenizer.decode([int(t)]), round(float(q), 6)) for q, t in zip(p, i)])
    return SteerResult(prompt, target.hook, target.feature_id, strength, unit, out["baseline"][0],
                       out["steered"][0], out["baseline"][1], out["steered"][1])
