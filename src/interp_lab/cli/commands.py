"""Command definitions: each parses options, calls one API function and renders the result."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from interp_lab import defaults
from interp_lab.cli import render

KINDS_HELP = "Comma list of ablate, mean_ablate, clamp_up, clamp_down, steer, patch."
STRENGTHS_HELP = "Steering strengths tried on calibration prompts (units: median activation norm at the hook)."
KL_BUDGET_HELP = ("Steering: the largest mean next-token KL (nats) on unrelated prompts the chosen strength may cost "
                  "(the grid is extended downwards when its smallest strength costs more).")


def register(app: typer.Typer) -> None:
    app.command("intervene")(intervene_cmd)
    app.command("export-hf-interventions")(export_hf_interventions_cmd)
    app.command("export-hf-contrast")(export_hf_contrast_cmd)
    app.command("steer")(steer_cmd)
    app.command("calibrate-causal")(calibrate_causal_cmd)


def calibrate_causal_cmd(
    reports: list[Path] = typer.Argument(..., help="Report directories: report.json with interventions.jsonl.gz "
                                                   "beside it (several: their control tests pooled)."),
    json_out: bool = typer.Option(False, "--json", help="Print the calibration (per report and card x kind) as JSON."),
    seed: int = typer.Option(0, "--seed", help="Seed of the prompt resamples and of the interval."),
) -> None:
    """How often strong_causal calls a report's own controls strong (leave-one-out false-positive rate)."""
    from interp_lab.api import calibrate_causal

    res = calibrate_causal(reports, seed=seed)
    if json_out:
        _print_json(res.as_dict())
    else:
        render.calibration(res)


def _print_json(obj) -> None:
    import msgspec

    sys.stdout.buffer.write(msgspec.json.format(msgspec.json.encode(obj), indent=2) + b"\n")


def _kinds(text: str) -> tuple[str, ...]:
    return tuple(k.strip() for k in text.split(",") if k.strip())


def _settings(kinds: str, n_controls: int, strengths: str, side_prompts: int, batch_size: int, seed: int,
              kl_budget: float = defaults.KL_BUDGET):
    from interp_lab.errors import UsageError
    from interp_lab.interventions.settings import InterventionSettings

    try:
        values = tuple(float(x) for x in strengths.split(",") if x.strip())
    except ValueError:
        raise UsageError(f"--strengths: {strengths!r} is not a comma list of numbers") from None
    if not 0 < kl_budget < float("inf"):
        raise UsageError(f"--kl-budget: {kl_budget:g} is not a positive number of nats")
    return InterventionSettings(kinds=tuple(dict.fromkeys(_kinds(kinds))),
                                n_controls=n_controls, strengths=values, side_prompts=side_prompts,
                                batch_size=batch_size, seed=seed, kl_budget=kl_budget)


def intervene_cmd(
    criterion: str = typer.Option(..., "--criterion", help="Criterion spec file (or text: semantic)."),
    model: str = typer.Option(defaults.MODEL, "--model", help="Registered name, local directory or HF id."),
    features: str = typer.Option("", "--features", help="Comma list of feature ids (L12:N1043, L10:R5, L9:D0, "
                                                        "L15:F2210 with --sae)."),
    sae: Optional[Path] = typer.Option(None, "--sae", help="SAE checkpoint whose latents the F ids name."),
    report: Optional[Path] = typer.Option(None, "--report", help="Take features from a report's cards "
                                                                 "(directions.safetensors beside it is read)."),
    top_k: Optional[int] = typer.Option(None, "--top-k", min=1, help="With --report: its first k cards."),
    directions: Optional[Path] = typer.Option(None, "--directions", help="directions.safetensors for D features."),
    prompts: Optional[str] = typer.Option(None, "--prompts", help="Prompt set (overrides the spec's)."),
    kinds: str = typer.Option(",".join(("ablate", "mean_ablate", "steer")), "--kinds", help=KINDS_HELP),
    n_controls: int = typer.Option(defaults.CONTROLS, "--controls", min=1, help="Random controls per feature and kind."),
    strengths: str = typer.Option(defaults.STRENGTHS_TEXT, "--strengths", help=STRENGTHS_HELP),
    kl_budget: float = typer.Option(defaults.KL_BUDGET, "--kl-budget", min=0.0, help=KL_BUDGET_HELP),
    side_prompts: int = typer.Option(64, "--side-prompts", min=0, help="Unrelated prompts for side effects."),
    side_dataset: Optional[str] = typer.Option(None, "--side-dataset", help="Where they come from (default lee)."),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    seed: int = typer.Option(0, "--seed"),
    out: Path = typer.Option(..., "--out", help="Intervention records (JSONL) for inspect --interventions."),
) -> None:
    """Ablate, steer, clamp or patch features on held-out prompts, with controls (evidence.md rule 7)."""
    from interp_lab.api import intervene

    settings = _settings(kinds, n_controls, strengths, side_prompts, batch_size, seed, kl_budget)
    ids = [f.strip() for f in features.split(",") if f.strip()]
    with render.StageProgress(log=True) as progress:
        res = intervene(model, criterion, features=ids, report=str(report) if report else None, top_k=top_k,
                        directions=str(directions) if directions else None, prompts=prompts,
                        side_prompts=side_dataset, settings=settings, out=out, sae=sae, progress=progress)
    render.causal_summary(res.evidence, res.run.strengths)
    render.written(res.paths)


def export_hf_interventions_cmd(
    model: str = typer.Option(defaults.MODEL, "--model"),
    report: Path = typer.Option(..., "--report", help="report.json whose top cards are tested."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Prompt set (else the criterion spec's)."),
    criterion: str = typer.Option(..., "--criterion", help="Criterion spec file (or text)."),
    top_k: int = typer.Option(10, "--top-k", min=1),
    kinds: str = typer.Option("ablate,mean_ablate", "--kinds", help=KINDS_HELP),
    n_controls: int = typer.Option(defaults.CONTROLS, "--controls", min=1),
    out: Path = typer.Option(..., "--out", help="Intervention records (JSONL)."),
) -> None:
    """Ablation records for a report's top features, with controls (the 0.2 command)."""
    from interp_lab.api import intervene

    settings = _settings(kinds, n_controls, defaults.STRENGTHS_TEXT, 64, 64, 0)
    with render.StageProgress(log=True) as progress:
        res = intervene(model, criterion, report=str(report), top_k=top_k, prompts=dataset, settings=settings,
                        out=out, progress=progress)
    render.causal_summary(res.evidence, res.run.strengths)
    render.written(res.paths)


def export_hf_contrast_cmd(
    model: str = typer.Option(defaults.MODEL, "--model"),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Prompt set (else the criterion spec's)."),
    criterion: str = typer.Option(..., "--criterion", help="Criterion spec file (or text)."),
    layers: str = typer.Option("all", "--layers", help="all, middle, or a list / ranges."),
    method: str = typer.Option("mean_difference", "--method", help="Which direction is tested: mean_difference "
                                                                   "(D0) or logistic_probe (D1)."),
    strength_sweep: str = typer.Option(defaults.STRENGTHS_TEXT, "--strength-sweep", help=STRENGTHS_HELP),
    kl_budget: float = typer.Option(defaults.KL_BUDGET, "--kl-budget", min=0.0, help=KL_BUDGET_HELP),
    kinds: str = typer.Option("steer,ablate", "--kinds", help=KINDS_HELP),
    n_controls: int = typer.Option(defaults.CONTROLS, "--controls", min=1),
    records_out: Optional[Path] = typer.Option(None, "--records-out", help="Activation records of the directions."),
    interventions_out: Optional[Path] = typer.Option(None, "--interventions-out", help="Intervention records."),
    features_out: Optional[Path] = typer.Option(None, "--features-out", help="Feature rows with the vectors."),
    out: Optional[Path] = typer.Option(None, "--out", help="Directory for all of them (default names)."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Contrast directions per layer; the best steered (strength calibrated) and projected out, with controls."""
    from interp_lab.api import contrast

    if not any((records_out, interventions_out, features_out, out)):
        from interp_lab.errors import UsageError

        raise UsageError("give --out or at least one of --records-out, --interventions-out, --features-out")
    settings = _settings(kinds, n_controls, strength_sweep, 64, 64, seed, kl_budget)
    with render.StageProgress(log=True) as progress:
        res = contrast(model, criterion, prompts=dataset, layers=layers, method=method, kinds=settings.kinds,
                       settings=settings, out_dir=out, records_out=records_out, interventions_out=interventions_out,
                       features_out=features_out, progress=progress)
    render.directions_table(res.directions, res.best)
    render.causal_summary(res.evidence, res.run.strengths if res.run else {})
    render.written(res.paths)


def steer_cmd(
    prompt: str = typer.Option(..., "--prompt"),
    model: str = typer.Option(defaults.MODEL, "--model"),
    feature: Optional[str] = typer.Option(None, "--feature", help="A neuron, residual dimension or (with --sae) "
                                                                  "SAE latent (L12:N1043, L15:F2210)."),
    sae: Optional[Path] = typer.Option(None, "--sae", help="SAE checkpoint whose latents the F ids name."),
    direction: Optional[str] = typer.Option(None, "--direction", help="directions.safetensors[:FEATURE_ID]."),
    strength: float = typer.Option(1.0, "--strength", help="Units: the median activation norm at the hook."),
    tokens: int = typer.Option(20, "--tokens", min=1, help="Greedy tokens to generate."),
    top: int = typer.Option(10, "--top", min=1, help="Top next tokens shown."),
) -> None:
    """Baseline vs steered continuation, and the top next tokens with their probabilities."""
    from interp_lab.api import steer

    render.steer(steer(model, prompt, feature=feature, direction=direction, strength=strength, tokens=tokens,
                       top=top, sae=sae))
