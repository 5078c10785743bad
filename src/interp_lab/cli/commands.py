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
    app.command("probes")(probes_cmd)
    app.command("export-hf-records")(export_hf_records_cmd)
    app.command("lens")(lens_cmd)
    app.command("compile-criterion")(compile_criterion_cmd)
    app.command("intervene")(intervene_cmd)
    app.command("export-hf-interventions")(export_hf_interventions_cmd)
    app.command("export-hf-contrast")(export_hf_contrast_cmd)
    app.command("steer")(steer_cmd)
    app.command("train-lens")(train_lens_cmd)
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


def probes_cmd(
    out: Path = typer.Option(..., "--out", help="Probe set to write (prompt JSONL)."),
    dataset: str = typer.Option("lee+enwiki", "--dataset", help="Corpus (lee, enwiki, lee+enwiki) or a text / "
                                                                 "prompt file whose documents are split."),
    n: int = typer.Option(2400, "--n", min=1, help="Sentences, shared equally between the corpora."),
    min_chars: int = typer.Option(60, "--min-chars", min=1),
    max_chars: int = typer.Option(320, "--max-chars", min=1),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Build a probe set: corpus sentences whose word spans key activation signatures across models."""
    from interp_lab.harvest.probes import make_probe_set, write_probe_set

    rows = make_probe_set(dataset, n, min_chars=min_chars, max_chars=max_chars, seed=seed)
    render.written({"probes": write_probe_set(rows, out)})


def export_hf_records_cmd(
    model: str = typer.Option(defaults.MODEL, "--model", help="Registered name, local directory or HF id."),
    dataset: str = typer.Option(..., "--dataset", help="Prompt JSONL (criterion_score, split, labels carried over), "
                                                       "a text file, or lee / enwiki."),
    out: Path = typer.Option(..., "--out", help="Activation records: .jsonl[.gz|.zst] or .parquet."),
    layers: str = typer.Option("middle", "--layers", help="all, middle, or a list / ranges: 6 or 3-9,12."),
    kind: str = typer.Option("residual", "--kind", help="residual (L{i}:R{dim}) or neurons (L{i}:N{index})."),
    pooling: str = typer.Option("mean", "--pooling", help="mean, max or last over each prompt's tokens."),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    context_length: int = typer.Option(256, "--context-length", min=2),
    top_k_features: Optional[int] = typer.Option(None, "--top-k-features", min=1,
                                                 help="Keep the k largest |activations| per layer and row."),
) -> None:
    """Export pooled activation records of residual dimensions or MLP neurons from a Hugging Face model."""
    from interp_lab.harvest.records import export_records

    info = export_records(model, dataset, out, layers=layers, kind=kind, pooling=pooling, batch_size=batch_size,
                          context_length=context_length, top_k_features=top_k_features)
    typer.echo(f"wrote {info['out']} ({info['rows']} records; hooks {', '.join(info['hooks'])}; {info['pooling']} pooling)")


def _load_with_progress(model: str):
    from interp_lab.models.load import load_model

    return load_model(model, say=render.say)


def lens_cmd(
    model: str = typer.Option(defaults.MODEL, "--model"),
    prompt: Optional[str] = typer.Option(None, "--prompt", help="One prompt: per-layer table at its last token "
                                                               "and a layer x position plot."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Documents: mean KL to the final distribution "
                                                                  "per layer, logit lens vs tuned lens."),
    layers: str = typer.Option("all", "--layers", help="all, middle, or a list / ranges."),
    metric: str = typer.Option("prob", "--metric", help="prob (of the first --tokens) or logit_diff (A - B)."),
    tokens: str = typer.Option("", "--tokens", help="Comma list of single tokens, e.g. ' metres, m'."),
    tuned: Optional[Path] = typer.Option(None, "--tuned", help="A tuned lens saved by train-lens."),
    out: Optional[Path] = typer.Option(None, "--out", help="Directory for lens.json and the plots (PNG, HTML)."),
    max_docs: int = typer.Option(40, "--max-docs", min=1, help="Documents used with --dataset."),
) -> None:
    """Logit lens (or tuned lens): what each layer predicts."""
    import json

    from interp_lab.errors import UsageError
    from interp_lab.harvest.records import parse_layers
    from interp_lab.models.lens import TunedLens, check_metric, evaluate, lens_table, middle_layers

    # every option is checked before the model loads
    if (prompt is None) == (dataset is None):
        raise UsageError("give exactly one of --prompt and --dataset")
    toks = [t for t in tokens.split(",") if t] if tokens else []
    if prompt is not None:
        if not toks:
            raise UsageError("--tokens is needed with --prompt (the token(s) the metric is about)")
        check_metric(metric, len(toks))
    if layers not in ("all", "middle", ""):
        parse_layers(layers, 1 << 30)  # the syntax now, the range once the model is known
    lens = TunedLens.load(tuned) if tuned else None
    texts = None
    if dataset is not None:
        from interp_lab.io.datasets import iter_documents

        texts = [d.text for _, d in zip(range(max_docs), iter_documents(dataset))]
        if not texts:
            raise UsageError(f"--dataset {dataset}: no documents")
    lm = _load_with_progress(model)
    if lens is not None and lens.model_name and lens.model_name != lm.name:
        raise UsageError(f"--tuned {tuned}: a lens trained on {lens.model_name}, not {lm.name}")
    chosen = middle_layers(lm.n_layers) if layers == "middle" else parse_layers(layers, lm.n_layers)
    if prompt is not None:
        table = lens_table(lm, prompt, chosen, tuned=lens, metric=metric, tokens=toks)
        render.lens_table(table)
        if out is not None:
            from interp_lab.io.atomic import write_bytes_atomic
            from interp_lab.io.figures import missing_note
            from interp_lab.report.plots import heatmap_html, heatmap_png

            values = [r["metric"] for r in table["rows"]]
            title = f"{table['lens']} lens, {metric} of {', '.join(repr(t) for t in toks)}: {prompt}"
            labels = [f"L{r['layer']}" for r in table["rows"]]
            written = {"json": out / "lens.json", "html": out / "lens.html"}
            heatmap_html(values, labels, table["tokens"], title, written["html"])
            if heatmap_png(values, labels, table["tokens"], title, out / "lens.png", required=False):
                written["png"] = out / "lens.png"
            else:
                render.note(missing_note("lens.png"))
            write_bytes_atomic(written["json"], json.dumps(table, indent=1).encode())
            render.written(written)
        return
    res = evaluate(lm, texts, chosen, lens)
    render.lens_kl(res)
    if out is not None:
        from interp_lab.io.atomic import write_bytes_atomic

        write_bytes_atomic(out / "lens_kl.json", json.dumps({str(k): v for k, v in res.items()}, indent=1).encode())


def train_lens_cmd(
    model: str = typer.Option(defaults.MODEL, "--model"),
    dataset: str = typer.Option("lee", "--dataset", help="Training documents (prompt JSONL, text file, lee, enwiki)."),
    out: Path = typer.Option(..., "--out", help="Directory for lens.safetensors + lens.json."),
    layers: str = typer.Option("all", "--layers"),
    steps: int = typer.Option(100, "--steps", min=0, help="KL steps per layer after the least-squares start."),
    max_docs: int = typer.Option(60, "--max-docs", min=1),
    heldout_docs: int = typer.Option(30, "--heldout-docs", min=1, help="Documents after the training ones, for "
                                                                      "the KL table written with the lens."),
    context_length: int = typer.Option(128, "--context-length", min=2),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Train a tuned lens (per-layer affine translators) against the final logits with KL."""
    from interp_lab.harvest.records import parse_layers
    from interp_lab.io.datasets import iter_documents
    from interp_lab.models.lens import evaluate, train_tuned_lens

    lm = _load_with_progress(model)
    chosen = [i for i in parse_layers(layers, lm.n_layers) if i < lm.n_layers - 1]
    docs = [d.text for d in iter_documents(dataset)]
    train, held = docs[:max_docs], docs[max_docs: max_docs + heldout_docs]
    lens = train_tuned_lens(lm, train, chosen, steps=steps, context=context_length, seed=seed,
                            log=render.say)
    metrics = evaluate(lm, held, chosen, lens, context=context_length) if held else {}
    lens.save(out, {"heldout_kl": {str(k): v for k, v in metrics.items()}, "train_docs": len(train),
                    "heldout_docs": len(held), "steps": steps, "dataset": dataset})
    render.lens_kl(metrics)
    typer.echo(f"wrote {out}")


def _print_json(obj) -> None:
    import msgspec

    sys.stdout.buffer.write(msgspec.json.format(msgspec.json.encode(obj), indent=2) + b"\n")


def compile_criterion_cmd(
    criterion: str = typer.Option(..., "--criterion", help="A criterion spec (YAML / JSON) or the criterion text."),
    model: str = typer.Option(defaults.MODEL, "--model", help="The model that scores next_token criteria."),
    prompts: Optional[str] = typer.Option(None, "--prompts", help="Prompt set (overrides the spec's)."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Corpus of a semantic criterion (default "
                                                                  "lee+enwiki)."),
    out: Path = typer.Option(..., "--out", help="Scored, split prompt set (JSONL)."),
) -> None:
    """Compile a criterion into a scored, split prompt set (labelled, next_token, semantic, contrast)."""
    from interp_lab.criteria.compile import compile_criterion

    c = compile_criterion(criterion, model=model, prompts=prompts, dataset=dataset)
    n = c.write(out)
    counts = ", ".join(f"{k} {v}" for k, v in c.counts.items())
    typer.echo(f"wrote {out}: {n} prompts from {c.source} scored by {c.score_kind} ({counts})")
    from interp_lab.report._format import printable

    rest = {k: v for k, v in c.info.items() if k != "splits"}
    if rest:
        typer.echo(printable(", ".join(f"{k} {v}" for k, v in rest.items())))  # words of the vocabulary
    sp = c.info.get("splits")
    if sp:
        per = "; ".join(f"{s} {sp['groups'][s]} groups ({sp['positives'][s]} positive, {sp['negatives'][s]} "
                        f"negative)" for s in sp["groups"])
        strat = f"; stratified by {sp['stratified_by']}" + (f", class {sp['class']}" if sp.get("class") else "")
        typer.echo(printable(f"splits ({sp['method']}: {sp['by']}{strat}): {per}"
                             + (f"; {sp['note']}" if sp.get("note") else "")))


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
