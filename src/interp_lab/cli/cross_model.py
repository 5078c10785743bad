"""Renderers of the cross-model commands: match, transfer, export-attribution-graph."""

from __future__ import annotations

from pathlib import Path

import typer

from interp_lab.cli import render
from interp_lab.cli.generate import renders


@renders("match")
def match(res, options, json_out: bool) -> None:
    render.document(res.matches, res.paths, json_out, render.matches_table)


@renders("export-attribution-graph")
def export_attribution_graph(paths, options, json_out: bool) -> None:
    render.written(paths)


@renders("transfer")
def transfer(doc, options, json_out: bool) -> None:
    s = doc["summary"]
    typer.echo(f"{s['transfer']} of {s['tested']} matched pairs transfer ({s['do_not_transfer']} do not; "
               f"base rate {s['base_rate']})")
    render.written({k: Path(v) for k, v in doc.get("paths", {}).items()})


@renders("transfer-table")
def transfer_table(doc, options, json_out: bool) -> None:
    t = doc["summary"]["total"]
    typer.echo(f"{t['transfer']} of {t['tested']} tests of matched pairs transfer ({t['do_not_transfer']} do not)")
    render.written({"json": options.out / "table.json", "md": options.out / "table.md"})
