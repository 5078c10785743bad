"""``train-sae`` and ``eval-sae``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from interp_lab.cli import render


def train_sae_cmd(
    out: Path = typer.Option(..., "--out", help="Checkpoint directory (SAE Lens layout); a path ending in .json "
                                                "puts the directory beside it and the metrics summary in it."),
    store: Optional[Path] = typer.Option(None, "--store", help="Activation store to train on."),
    records: Optional[Path] = typer.Option(None, "--records", help="Or: activation records (JSONL/Parquet) whose "
                                                                   "feature vectors of one layer are the data."),
    hook: Optional[str] = typer.Option(None, "--hook", help="Hook to encode (default blocks.{layer}.hook_resid_post)."),
    hook_out: Optional[str] = typer.Option(None, "--hook-out", help="Train a transcoder from --hook to this hook."),
    layer: Optional[int] = typer.Option(None, "--layer", min=0, help="Layer whose resid_post is encoded."),
    hf_model: Optional[str] = typer.Option(None, "--hf-model", "--model",
                                           help="Without --store: harvest from this model (registered name, local "
                                                "directory or HF id) first."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Without --store: prompt JSONL, text file, lee, "
                                                                  "enwiki or lee+enwiki."),
    preset: str = typer.Option("production", "--preset", help="minimal (4x, k 16, 50k tokens) or production (8x, "
                                                              "k 32, 200k tokens); flags override it."),
    architecture: Optional[str] = typer.Option(None, "--architecture", help="topk, batchtopk, jumprelu or relu."),
    latent_dim: Optional[int] = typer.Option(None, "--latent-dim", min=1, help="Number of latents."),
    expansion_factor: Optional[int] = typer.Option(None, "--expansion-factor", min=1,
                                                   help="Latents per input dimension (without --latent-dim)."),
    top_k: Optional[int] = typer.Option(None, "--top-k", "-k", min=1, help="Active latents per token (topk, batchtopk)."),
    tokens: Optional[int] = typer.Option(None, "--tokens", min=1, help="Training tokens."),
    epochs: Optional[float] = typer.Option(None, "--epochs", min=0.001,
                                           help="Passes over the training rows (with --tokens, the smaller)."),
    max_records: Optional[int] = typer.Option(None, "--max-records", min=1,
                                              help="With --records: a deterministic sample of this many records; "
                                                   "otherwise at most this many training tokens."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1),
    lr: Optional[float] = typer.Option(None, "--lr", min=0.0),
    l1_coef: Optional[float] = typer.Option(None, "--l1-coef", min=0.0, help="relu: L1 weight."),
    l0_coef: Optional[float] = typer.Option(None, "--l0-coef", min=0.0, help="jumprelu: L0 weight."),
    seed: Optional[int] = typer.Option(None, "--seed"),
    keep_outliers: Optional[bool] = typer.Option(None, "--keep-outliers/--drop-outliers",
                                                 help="Train on the tokens above 10x the median norm or leave them "
                                                      "out (default: kept for TopK SAEs, left out otherwise)."),
    float32: bool = typer.Option(False, "--float32", help="topk / batchtopk: the encoder matmul in float32 even "
                                                          "where the CPU has bf16 instructions (slower; runs on 1 "
                                                          "and N processes then agree to float rounding)."),
    checkpoint_every: int = typer.Option(25, "--checkpoint-every", min=0,
                                         help="Save the training state every this many steps (0: never)."),
    fresh: bool = typer.Option(False, "--fresh", help="Ignore a saved training state and start over."),
    ce_tokens: int = typer.Option(8192, "--ce-tokens", min=0,
                                  help="Held-out tokens for CE-loss recovered and KL (0: skip, no model load)."),
    records_out: Optional[Path] = typer.Option(None, "--records-out",
                                               help="Write activation records of the latents (a row per document)."),
    records_pooling: str = typer.Option("max", "--records-pooling", help="max or mean over a document's tokens."),
    causal_out: Optional[Path] = typer.Option(None, "--causal-out",
                                              help="Write intervention records of the latents most associated with "
                                                   "--criterion (ablated and steered with controls)."),
    criterion: Optional[str] = typer.Option(None, "--criterion", help="Criterion spec file or text (--causal-out)."),
    causal_features: int = typer.Option(5, "--causal-features", min=1, help="Latents tested for --causal-out."),
) -> None:
    """Train a sparse autoencoder (or transcoder) on stored activations; resumes after an interruption.
    Under torchrun (torchrun --nproc_per_node N -m interp_lab train-sae ...) the N processes share each batch."""
    from interp_lab.api.sae import train_sae_step
    from interp_lab.errors import UsageError

    sample = max_records if records is not None else None
    if tokens is not None and max_records is not None and sample is None:
        raise UsageError("--tokens and --max-records mean the same thing without --records; give one")
    tokens = tokens or (None if sample else max_records)
    log = not sys.stderr.isatty()
    state = {"next_log": 0.0}

    with render.StageProgress(log=True) as progress:
        def on_step(rec: dict) -> None:
            total = rec["budget"]
            note = f"FVU {rec['fvu']:.3f}  L0 {rec['l0']:.1f}  dead {rec['dead_fraction']:.1%}"
            progress("training tokens", rec["tokens"], total, note=note)
            if log and total and rec["tokens"] >= state["next_log"]:
                print(f"  {rec['tokens']:>10,} tokens  {note}", file=sys.stderr, flush=True)
                state["next_log"] += total / 10

        res = train_sae_step(out=out, store=store, records=records, max_records=sample, hook=hook, hook_out=hook_out,
                             model=hf_model, dataset=dataset, layer=layer, preset=preset, architecture=architecture,
                             latent_dim=latent_dim, expansion_factor=expansion_factor, top_k=top_k, tokens=tokens,
                             epochs=epochs, batch_size=batch_size, lr=lr, l1_coef=l1_coef, l0_coef=l0_coef, seed=seed,
                             keep_outliers=keep_outliers, bf16=False if float32 else None,
                             checkpoint_every=checkpoint_every,
                             resume=not fresh, ce_tokens=ce_tokens,
                             records_out=records_out, records_pooling=records_pooling, causal_out=causal_out,
                             criterion=criterion, causal_features=causal_features, on_step=on_step, progress=progress,
                             say=render.say)
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


def eval_sae_cmd(
    sae: Path = typer.Option(..., "--sae", help="Checkpoint directory (interp-lab, SAE Lens or sparsify)."),
    store: Path = typer.Option(..., "--store", help="Store whose held-out documents are evaluated on."),
    hook: Optional[str] = typer.Option(None, "--hook", help="Default: the checkpoint's metadata.hook_name."),
    hook_out: Optional[str] = typer.Option(None, "--hook-out", help="A transcoder's output hook."),
    model: Optional[str] = typer.Option(None, "--model", help="Model to splice into (default: the store's)."),
    out: Optional[Path] = typer.Option(None, "--out", help="metrics.json path (default: inside --sae)."),
    ce_tokens: int = typer.Option(8192, "--ce-tokens", min=0, help="Held-out tokens for CE and KL (0: skip)."),
) -> None:
    """Evaluate an SAE on held-out documents: FVU, MSE, L0, dead/dense, CE-loss recovered, KL, density PNG."""
    from interp_lab.api.sae import eval_sae

    m = eval_sae(sae, store=store, hook=hook, hook_out=hook_out, model=model, out=out, ce_tokens=ce_tokens,
                 say=render.say)
    typer.echo(f"wrote {out or sae / 'metrics.json'}")
    typer.echo(_metrics_line(m))
