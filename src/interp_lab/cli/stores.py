"""Renderers of the commands about models and activation stores: models, store, harvest, probes,
export-hf-records, lens, train-lens."""

from __future__ import annotations

import dataclasses

import typer

from interp_lab.cli import render
from interp_lab.cli.generate import before, renders, shows

shows("store summary", "store diff", "models info")  # JSON on stdout
shows("store list", table=render.store_list)
shows("store search", "store top", table=render.contexts)
shows("models list", table=render.models_table)


@renders("store encode")
def _store_encode(res, o, json_out: bool) -> None:
    info = res.info
    typer.echo(f"{info['nonzero']:,} non-zero latents over {info['rows']:,} rows "
               f"({info['nonzero'] / max(info['rows'], 1):.1f} per row); wrote {res.paths['latents']}")
    if res.records is not None:
        typer.echo(f"{res.records:,} activation records; wrote {res.paths['records']}")


@renders("store tag")
def _store_tag(res, o, json_out: bool) -> None:
    from interp_lab.report._format import printable

    typer.echo(printable(", ".join(res)) or "(no tags)")  # tags come from store.json


@before("store remove")
def _confirm_remove(o):
    """The API deletes only with ``yes``: without --yes the command line asks for it."""
    if not o.yes and not typer.confirm(f"delete {o.path}?"):
        raise typer.Abort()
    return dataclasses.replace(o, yes=True)


@renders("models pull")
def _models_pull(res, o, json_out: bool) -> None:
    typer.echo(f"{res.name}: {res.path} (revision {res.revision})")

@renders("harvest")
def harvest(res, o, json_out: bool) -> None:
    resumed = f", resumed at batch {res.resumed_from_batch}" if res.resumed_from_batch else ""
    engine = f" (engine {res.manifest.engine})" if res.manifest.engine != "hooks" else ""
    typer.echo(f"{o.out}: {res.rows:,} tokens x {len(res.manifest.hooks)} hooks in {len(res.manifest.shards)} "
               f"shards; {res.tokens_per_s:,.0f} tokens/s over {res.batches_run} batches{resumed}{engine}")
