"""``export-hf-contrast`` and ``contrast()``: contrast directions per layer, the best one steered (strength
calibrated) and projected out on held-out prompts with controls, the directions saved beside the records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from interp_lab.api.interventions import model_option, run_claims, summarize, write_records
from interp_lab.api.registry import command, keyword_function
from interp_lab.errors import UsageError
from interp_lab.interventions.settings import (
    DEFAULT_KINDS,
    InterventionSettings,
    kinds_option,
    strengths_option,
)
from interp_lab.providers.hf import setup
from interp_lab.schemas.command import Progress, option


@dataclass(frozen=True)
class ContrastSettings(InterventionSettings):
    """``InterventionSettings`` as ``export-hf-contrast`` writes them: the steering strengths are its
    ``--strength-sweep``, the kinds are ``contrast``'s own ``kinds``, side prompts and batch size keep their
    defaults. Any ``InterventionSettings`` may be given to ``contrast()``."""

    kinds: tuple[str, ...] = option(DEFAULT_KINDS, cli=False)
    strengths: tuple[float, ...] = strengths_option(flag="--strengths", deprecated=("--strength-sweep",),
                                                    param="strength_sweep")
    side_prompts: int = option(64, cli=False)
    batch_size: int = option(64, cli=False)


@dataclass(kw_only=True)
class ContrastOptions:
    """``contrast``'s options: where the directions are fitted, which is tested, how, and where they go."""

    model: Any = model_option()
    criterion: str = option(help="Criterion spec file (or text).")
    prompts: str | None = option(None, "Prompt set (else the criterion spec's).", flag="--prompts",
                                 deprecated=("--dataset",), param="dataset")
    layers: str | None = option("all", "all, middle, or a list / ranges.")
    methods: tuple[str, ...] = option(("mean_difference", "logistic_probe"), cli=False)  # the directions fitted
    method: Literal["mean_difference", "logistic_probe"] = option(
        "mean_difference", "Which direction is tested: mean_difference (D0) or logistic_probe (D1).")
    settings: ContrastSettings | InterventionSettings = option(default_factory=ContrastSettings)
    kinds: tuple[str, ...] = kinds_option(("steer", "ablate"))
    side_prompts: str | None = option(None, cli=False)  # the unrelated prompts' set (default lee)
    records_out: Path | None = option(None, "Activation records of the directions.")
    interventions_out: Path | None = option(None, "Intervention records.")
    features_out: Path | None = option(None, "Feature rows with the vectors.")
    out_dir: Path | None = option(None, "Directory for all of them (default names).", flag="--out", param="out")
    run: bool = option(True, cli=False)  # False: fit and save the directions, intervene on none


@dataclass
class ContrastResult:
    """The directions fitted, the one tested and what its interventions found."""

    directions: list[Any]  # interventions.contrast.Direction, per layer and method
    best: Any  # the Direction tested: the method's highest calibration AUROC
    run: Any  # interventions.run.InterventionRun, or None when not run
    evidence: dict[str, dict[str, Any]]  # the best direction's causal entries per kind (``summarize``)
    paths: dict[str, Path] = field(default_factory=dict)  # directions, records, features, interventions written


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


def contrast(o: ContrastOptions, progress: Progress) -> ContrastResult:
    """Contrast directions per layer, the best one steered (calibrated strength) and projected out on
    held-out prompts with controls; directions saved as safetensors and feature rows."""
    from interp_lab.harvest.records import parse_layers
    from interp_lab.interventions.contrast import best_direction, fit_directions, save_directions, split_acts
    from interp_lab.interventions.features import DirectionSpace, Target
    from interp_lab.interventions.run import run_interventions

    settings = o.settings
    s = setup(o.model, o.criterion, prompts=o.prompts, side_prompts=o.side_prompts, n_side=settings.side_prompts,
              say=progress)
    chosen = parse_layers(o.layers, s.lm.n_layers)
    progress(f"last-token activations at {len(chosen)} layers", 0, None)
    acts, positive = split_acts(s.lm, s.compiled.rows, chosen, settings.batch_size)
    dirs = fit_directions(acts, positive, o.methods)
    best = best_direction(dirs, o.method)
    ran = None
    evidence: dict[str, dict[str, Any]] = {}
    paths: dict[str, Path] = {}
    if o.run:
        target = Target(DirectionSpace(best.hook, best.layer, best.vector[None], [best.feature_id]), 0)
        ran = run_interventions(s.lm, s.compiled.rows, [target], s.scorer, s.unrelated,
                                criterion=s.compiled.spec.criterion, settings=settings.replace(kinds=tuple(o.kinds)),
                                progress=progress)
        evidence = summarize(ran.records, s.compiled, settings.seed, run_claims(ran), ran.strengths)
    meta = {"model": s.lm.name, "revision": s.lm.revision or "", "criterion": s.compiled.spec.criterion,
            "best": best.feature_id}
    base = Path(o.out_dir) if o.out_dir is not None else None
    dest = {"directions": base / "directions.safetensors" if base else None,
            "records": o.records_out or (base / "contrast-records.jsonl" if base else None),
            "interventions": o.interventions_out or (base / "contrast-interventions.jsonl" if base else None),
            "features": o.features_out or (base / "contrast-features.jsonl" if base else None)}
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


# the Python API's contrast() may keep everything in memory; the command writes at least one file
run_contrast = contrast
contrast = keyword_function(ContrastOptions, run_contrast, ("model", "criterion"))


@command("export-hf-contrast", options=ContrastOptions, result=ContrastResult, group="inspect", log=True,
         help="Contrast directions per layer; the best steered (strength calibrated) and projected out, with "
              "controls.")
def export_hf_contrast(o: ContrastOptions, progress: Progress) -> ContrastResult:
    if not any((o.records_out, o.interventions_out, o.features_out, o.out_dir)):
        raise UsageError("give --out or at least one of --records-out, --interventions-out, --features-out")
    return run_contrast(o, progress)
