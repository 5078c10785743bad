"""Renderers of the utility commands (version, doctor, validate, convert-records, demo, run)."""

from __future__ import annotations

import typer

from interp_lab.cli import render
from interp_lab.cli.generate import print_json, renders, shows


@renders("version")
def version(res, options, json_out: bool) -> None:
    if json_out:
        print_json(res)
        return
    libs = ", ".join(f"{k} {v}" for k, v in res.libraries.items() if v)
    typer.echo(f"interp-lab {res.interp_lab} (Python {res.python}; {libs})")


shows("run", table=render.run_summary)
shows("doctor", table=render.doctor)
shows("providers", table=render.providers)
shows("demo", table=render.demo)


@renders("validate")
def validate(res, options, json_out: bool) -> None:
    typer.echo(f"{res.path}: ok ({', '.join(f'{k} {v}' for k, v in res.summary.items())})")


@renders("convert-records")
def convert_records(res, options, json_out: bool) -> None:
    typer.echo(f"wrote {res.paths['parquet']} ({res.rows} rows, {res.features} features, "
               f"{res.nonzero} non-zero activations)")
