"""``interp-lab train-sae`` and ``eval-sae``: the registry commands over ``api/sae.py``.

train-sae's options are flat (a flag each, a run config's ``train-sae`` step the same names): the
``TrainConfig`` fields override the ``preset`` (None: the preset's; ``top_k`` is ``k``), the rest are
``train_sae``'s own.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

from interp_lab.api.registry import command
from interp_lab.api.sae import SAETrainResult, evaluate_sae, train_sae
from interp_lab.errors import UsageError
from interp_lab.io.datasets import DATASET_HELP, TEXT_COLUMN_HELP
from interp_lab.sae.config import TrainConfig
from interp_lab.schemas.command import Progress, option


@dataclass(kw_only=True)
class TrainSAEOptions:
    out: Path = option(help="Checkpoint directory (SAE Lens layout); a path ending in .json puts the directory "
                            "beside it and the metrics summary in it.")
    store: Path | None = option(None, "Activation store to train on.")
    records: Path | None = option(None, "Or: activation records (JSONL/Parquet) whose feature vectors of one layer "
                                        "are the data.")
    hook: str | None = option(None, "Hook to encode (default blocks.{layer}.hook_resid_post).")
    hook_out: str | None = option(None, "Train a transcoder from --hook to this hook.")
    layer: int | None = option(None, "Layer whose resid_post is encoded.", min=0)
    model: str | None = option(None, "Without --store: harvest from this model (registered name, local directory "
                                     "or HF id) first.", flag="--model", deprecated=("--hf-model",), param="hf_model")
    dataset: str | None = option(None, "Without --store, the documents to harvest: " + DATASET_HELP)
    text_column: str | None = option(None, TEXT_COLUMN_HELP)
    preset: Literal["minimal", "production"] = option(
        "production", "minimal: 4x, k 16, 50k tokens; production: 8x, k 32, 200k tokens; flags override it.")
    # not a choice: an unknown one gets the trainer's line naming the four (and said so since 0.3)
    architecture: str | None = option(None, "topk, batchtopk, jumprelu or relu (default: the preset's, topk).")
    latent_dim: int | None = option(None, "Number of latents.", min=1)
    expansion_factor: int | None = option(None, "Latents per input dimension (without --latent-dim).", min=1)
    top_k: int | None = option(None, "Active latents per token (topk, batchtopk): the k of a TopK SAE.", flag="--k",
                               aliases=("-k",), deprecated=("--top-k",), min=1)
    tokens: int | None = option(None, "Training tokens.", min=1)
    epochs: float | None = option(None, "Passes over the training rows (with --tokens, the smaller).", min=0.001)
    max_records: int | None = option(None, "With --records: a deterministic sample of this many records; otherwise "
                                           "at most this many training tokens.", min=1)
    batch_size: int | None = option(None, min=1)
    lr: float | None = option(None, min=0.0)
    lr_decay: float | None = option(None, "Final fraction of the run over which the learning rate falls to zero.",
                                    cli=False)
    sparsity_warmup: float | None = option(None, "relu / jumprelu: first fraction of the run over which the "
                                                 "sparsity weight rises.", cli=False)
    l1_coef: float | None = option(None, "relu: L1 weight.", min=0.0)
    l0_coef: float | None = option(None, "jumprelu: L0 weight.", min=0.0)
    dead_after_tokens: int | None = option(None, "A latent silent this long counts as dead.", cli=False)
    seed: int | None = option(None)
    keep_outliers: bool | None = option(None, "Train on the tokens above 10x the median norm or leave them out "
                                              "(default: kept for TopK SAEs, left out otherwise).",
                                        flag="--keep-outliers/--drop-outliers")
    bf16: bool | None = option(None, "topk / batchtopk: the encoder matmul in float32 even where the CPU has bf16 "
                                     "instructions (slower; runs on 1 and N processes then agree to float rounding).",
                               flag="--float32", param="float32", cli_type=bool, cli_default=False,
                               convert=lambda float32: False if float32 else None)
    checkpoint_every: int = option(25, "Save the training state every this many steps (0: never).", min=0)
    resume: bool = option(True, "Ignore a saved training state and start over.", flag="--fresh", param="fresh",
                          cli_type=bool, cli_default=False, convert=operator.not_)
    evaluate: bool = option(True, "Add held-out reconstruction metrics to metrics.json.", cli=False)
    ce_tokens: int = option(8192, "Held-out tokens for CE-loss recovered and KL (0: skip, no model load).", min=0)
    records_out: Path | None = option(None, "Write activation records of the latents (a row per document).")
    records_pooling: Literal["max", "mean"] = option("max", "Over a document's tokens.")
    causal_out: Path | None = option(None, "Write intervention records of the latents most associated with "
                                           "--criterion (ablated and steered with controls).")
    criterion: str | None = option(None, "Criterion spec file or text (--causal-out).")
    causal_features: int = option(5, "Latents tested for --causal-out.", min=1)


# the options that override the preset's TrainConfig, by the same names (``k`` is ``top_k``, the --k option)
CONFIG_FIELDS = tuple(f.name for f in fields(TrainConfig) if f.name != "k")


@command("train-sae", options=TrainSAEOptions, result=SAETrainResult, group="SAEs", step=True, log=True,
         help="Train a sparse autoencoder (or transcoder) on stored activations; resumes after an interruption. "
              "Under torchrun (torchrun --nproc_per_node N -m interp_lab train-sae ...) the N processes share each "
              "batch.")
def train_sae_step(o: TrainSAEOptions, progress: Progress) -> SAETrainResult:
    """``train_sae`` from flat options: the TrainConfig fields given (``top_k`` for ``k``) override the
    ``preset`` (``epochs`` without ``tokens`` sets the length alone); without ``records``, ``max_records``
    is the number of training tokens."""
    from interp_lab.sae.config import PRESETS, with_overrides

    if o.preset not in PRESETS:
        raise UsageError(f"unknown preset {o.preset!r} ({', '.join(PRESETS)})")
    tokens, sample = o.tokens, o.max_records if o.records is not None else None
    if o.records is None and o.max_records is not None:
        if tokens is not None:
            raise UsageError("--tokens and --max-records mean the same thing without --records; give one")
        tokens = o.max_records
    given = {k: getattr(o, k) for k in CONFIG_FIELDS} | {"k": o.top_k, "tokens": tokens}
    cfg = with_overrides(PRESETS[o.preset], **given)
    if o.epochs is not None and tokens is None:
        cfg = replace(cfg, tokens=None)  # the passes alone set the length

    def on_step(rec: dict) -> None:
        progress("training tokens", rec["tokens"], rec["budget"],
                 note=f"FVU {rec['fvu']:.3f}  L0 {rec['l0']:.1f}  dead {rec['dead_fraction']:.1%}")

    return train_sae(out=o.out, store=o.store, records=o.records, max_records=sample, hook=o.hook, hook_out=o.hook_out,
                     model=o.model, dataset=o.dataset, text_column=o.text_column, layer=o.layer, preset=o.preset, config=cfg,
                     checkpoint_every=o.checkpoint_every, resume=o.resume, evaluate=o.evaluate, ce_tokens=o.ce_tokens,
                     records_out=o.records_out, records_pooling=o.records_pooling, causal_out=o.causal_out,
                     criterion=o.criterion, causal_features=o.causal_features,
                     fit_batch=o.batch_size is None,  # a batch size given is kept
                     on_step=on_step, progress=progress, say=progress.say)


@dataclass(kw_only=True)
class EvalSAEOptions:
    sae: Path = option(help="Checkpoint directory (interp-lab, SAE Lens or sparsify).")
    store: Path = option(help="Store whose held-out documents are evaluated on.")
    hook: str | None = option(None, "Default: the checkpoint's metadata.hook_name.")
    hook_out: str | None = option(None, "A transcoder's output hook.")
    model: str | None = option(None, "Model to splice into (default: the store's).")
    out: Path | None = option(None, "metrics.json path (default: inside --sae).")
    ce_tokens: int = option(8192, "Held-out tokens for CE and KL (0: skip).", min=0)
    plot: bool = option(True, "Write the density histogram (density.png) beside metrics.json.", cli=False)


@command("eval-sae", options=EvalSAEOptions, result=dict[str, Any], group="SAEs", positional=("sae",), log=True,
         help="Evaluate an SAE on held-out documents: FVU, MSE, L0, dead/dense, CE-loss recovered, KL, density PNG.")
def eval_sae(o: EvalSAEOptions, progress: Progress) -> dict[str, Any]:
    """evidence.md's metrics of the checkpoint ``sae`` on the store's held-out documents, written to
    ``out`` (default ``sae/metrics.json``) with the density histogram beside it (``density.png``).
    ``model`` (default: the store's) is loaded to splice the SAE in; ``ce_tokens=0`` skips that."""
    return evaluate_sae(o.sae, store=o.store, hook=o.hook, hook_out=o.hook_out, model=o.model, out=o.out,
                        ce_tokens=o.ce_tokens, plot=o.plot, say=progress.say, progress=progress)
