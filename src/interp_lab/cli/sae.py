"""Renderers of ``train-sae`` and ``eval-sae``."""

from __future__ import annotations

import typer

from interp_lab.cli.generate import renders


@renders("train-sae")
def train_sae(res, o, json_out: bool) -> None:
    if res.rank != 0:
        return  # torchrun: rank 0 reports
    resumed = f" (resumed at {res.resumed_at:,})" if res.resumed_at else ""
    procs = f" on {res.world_size} processes" if res.world_size > 1 else ""
    typer.echo(f"{res.path}: {res.metrics['architecture']} SAE on {', '.join(res.hooks)}, "
               f"{res.tokens_seen:,} tokens{resumed} in {res.seconds:.0f} s{procs}")
    typer.echo(_metrics_line(res.metrics))
    if "records" in res.metrics:
        r = res.metrics["records"]
        typer.echo(f"wrote {r['path']} ({r['rows']:,} records, {r['pooling']} over each document's tokens)")
    if "interventions" in res.metrics:
        r = res.metrics["interventions"]
        typer.echo(f"wrote {r['path']} ({r['rows']:,} intervention records on {', '.join(r['features'])})")


@renders("eval-sae")
def eval_sae(metrics, o, json_out: bool) -> None:
    typer.echo(f"wrote {o.out or o.sae / 'metrics.json'}")
    typer.echo(_metrics_line(metrics))


def _metrics_line(m: dict) -> str:
    h = m.get("heldout", {})
    parts = [f"held-out {h.get('tokens', 0):,} tokens: FVU {h.get('fvu', float('nan')):.3f} "
             f"({h.get('fvu_without_outliers', float('nan')):.3f} without {h.get('outlier_tokens', 0)} outliers)",
             f"L0 {h.get('l0', float('nan')):.1f}", f"dead {h.get('dead_fraction', 0):.2%}",
             f"dense {h.get('dense_fraction', 0):.2%}"]
    s = m.get("spliced")
    if s:
        parts.append(f"CE-loss recovered {s['ce_loss_recovered']:.3f} (CE clean {s['ce_clean']:.3f}, SAE {s['ce_sae']:.3f}, "
                     f"zero {s['ce_zero']:.3f}), KL {s['kl_sae']:.3f} nats over {s['tokens']:,} tokens")
    return "; ".join(parts)
