"""Renderers of the commands that find and test features on a model: inspect, compile-criterion, intervene,
steer, export-hf-interventions, export-hf-contrast, calibrate-causal."""

from __future__ import annotations

from interp_lab.cli import render
from interp_lab.cli.generate import renders


@renders("inspect")
def inspect(res, options, json_out: bool) -> None:
    render.document(res.report, res.paths, json_out, render.cards_table)
