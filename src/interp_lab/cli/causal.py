"""Renderers of the commands that find and test features on a model: inspect, compile-criterion, intervene,
steer, export-hf-interventions, export-hf-contrast, calibrate-causal."""

from __future__ import annotations

from interp_lab.cli import render
from interp_lab.cli.generate import print_json, renders


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


@renders("steer")
def steer(res, options, json_out: bool) -> None:
    render.steer(res)


@renders("calibrate-causal")
def calibrate_causal(res, options, json_out: bool) -> None:
    if json_out:
        print_json(res.as_dict())
    else:
        render.calibration(res)
