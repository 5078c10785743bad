"""Renderers of the commands that find and test features on a model: inspect, compile-criterion, intervene,
steer, export-hf-interventions, export-hf-contrast, calibrate-causal."""

from __future__ import annotations

import sys

from interp_lab.cli import render
from interp_lab.cli.generate import renders


@renders("inspect")
def inspect(res, options, json_out: bool) -> None:
    if json_out:
        from interp_lab.report.write import report_bytes

        sys.stdout.buffer.write(report_bytes(res.report))
        return
    render.cards_table(res.report)
    render.written(res.paths)
