"""Renderers of the commands about models and activation stores: models, store, harvest, probes,
export-hf-records, lens, train-lens."""

from __future__ import annotations

import typer

from interp_lab.cli.generate import renders


@renders("harvest")
def harvest(res, o, json_out: bool) -> None:
    resumed = f", resumed at batch {res.resumed_from_batch}" if res.resumed_from_batch else ""
    typer.echo(f"{o.out}: {res.rows:,} tokens x {len(res.manifest.hooks)} hooks in {len(res.manifest.shards)} "
               f"shards; {res.tokens_per_s:,.0f} tokens/s over {res.batches_run} batches{resumed}")
