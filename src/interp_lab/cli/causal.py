"""Renderers of the commands that find and test features on a model: inspect, compile-criterion, intervene,
steer, export-hf-interventions, export-hf-contrast, calibrate-causal, export-neuronpedia."""

from __future__ import annotations

import typer

from interp_lab.cli import render
from interp_lab.cli.generate import renders, shows


@renders("inspect")
def inspect(res, options, json_out: bool) -> None:
    render.document(res.report, res.paths, json_out, render.cards_table)


@renders("intervene")
@renders("export-hf-interventions")
def intervene(res, options, json_out: bool) -> None:
    render.causal_summary(res.evidence, res.run.strengths)
    render.written(res.paths)


@renders("export-hf-contrast")
def export_hf_contrast(res, options, json_out: bool) -> None:
    render.directions_table(res.directions, res.best)
    render.causal_summary(res.evidence, res.run.strengths if res.run else {})
    render.written(res.paths)


shows("steer", table=render.steer)
shows("calibrate-causal", table=render.calibration, as_json=lambda res: res.as_dict())


@renders("compile-criterion")
def compile_criterion(res, options, json_out: bool) -> None:
    from interp_lab.report._format import printable

    c = res.compiled
    counts = ", ".join(f"{k} {v}" for k, v in c.counts.items())
    typer.echo(f"wrote {options.out}: {res.prompts} prompts from {c.source} scored by {c.score_kind} ({counts})")
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


@renders("export-neuronpedia")
def export_neuronpedia(res, options, json_out: bool) -> None:
    for fid, why in res.skipped.items():
        render.note(f"{fid} not exported: {why}")
    from interp_lab.report._format import printable

    typer.echo(f"wrote {len(res.files)} Neuronpedia feature files to {printable(res.paths['out'])}")
