"""Renderers of lens, train-lens and the export-*-records commands (probes prints where it wrote, the default)."""

from __future__ import annotations

import typer

from interp_lab.cli import render
from interp_lab.cli.generate import renders


@renders("lens")
def lens(res, options, json_out: bool) -> None:
    if res.table is None:
        render.lens_kl(res.kl)
    else:
        render.lens_table(res.table)
    for note in res.notes:
        render.note(note)
    if res.paths and res.table is not None:  # lens_kl.json, when written, is not announced (as before)
        render.written(res.paths)


@renders("train-lens")
def train_lens(res, options, json_out: bool) -> None:
    render.lens_kl(res.heldout_kl)
    typer.echo(f"wrote {res.path}")


@renders("export-nnsight-records")
@renders("export-transformerlens-records")
@renders("export-hf-records")
def export_hf_records(res, options, json_out: bool) -> None:
    typer.echo(f"wrote {res.out} ({res.rows} records; hooks {', '.join(res.hooks)}; {res.pooling} pooling)")
