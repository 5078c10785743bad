"""Benchmark: TopK SAE training, interp-lab against SAE Lens, in one run on the same stored activations.

Both train a TopK SAE (--width latents, --k per token) on --tokens training rows of a store
(default /tmp/l15-full, SmolLM2 layer 15 resid_post; harvested first when missing), fed the same
batches: interp_lab.sae.data.shuffled_batches over the store's training rows, inputs scaled to unit
mean squared norm, the few tokens above 10x the median norm kept as train_sae keeps them by default
(--drop-outliers leaves them out of both). Both start b_dec at the geometric median of the scaled
inputs (SAE Lens's zero start is more than a short CPU run recovers from) and use Adam at the same
learning rate, falling linearly to zero over the last 20% of the run:
  1. interp_lab.sae.train.train_sae (its defaults: sparse kernels, bf16 encoder matmul where the CPU
     has bf16 instructions),
  2. SAE Lens's SAETrainer with a TopKTrainingSAE (its defaults otherwise: decoder rows at norm 0.1,
     pre-activations rescaled by the decoder norm, AuxK weight 1, gradients clipped at norm 1; no
     wandb, no evals, no checkpoints), latents counted dead after the same 50k tokens as ours,
  3. with --dense, train_sae on its dense reference path (autograd through dense matmuls).
tokens/s is the training loop's, from the end of its first step (which fills the shuffle buffer) to
the end of the last. Held-out FVU (evidence.md: held-out documents, first positions excluded; with
and without the tokens above 10x the median norm), L0 and the dead fraction come from
interp_lab.sae.metrics.reconstruction_metrics on the same rows for every SAE, SAE Lens's loaded into
an interp-lab TopK SAE (its decoder norms and our input scale folded in, as its own save does).
Each trainer runs once per round, in turn; the ratio is per round, then the median. OpenMP threads
sleep rather than spin while they wait (OMP_WAIT_POLICY=PASSIVE unless set otherwise): on a machine
shared with other jobs, spinning made our training step eight times slower (SAE Lens's too, less).

    python benchmarks/sae_train.py --tokens 200000 --rounds 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from itertools import count
from pathlib import Path

# ruff: noqa: E402 (both are read once, when torch loads OpenMP and when tqdm is imported)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TQDM_DISABLE", "1")  # SAE Lens's progress bar

import numpy as np
import torch

from interp_lab.sae.base import SAEConfig, SparseCoder, geometric_median, make_sae
from interp_lab.sae.checkpoint import load_sae, save_sae
from interp_lab.sae.config import TrainConfig
from interp_lab.sae.data import shuffled_batches, split_rows
from interp_lab.sae.metrics import reconstruction_metrics
from interp_lab.sae.train import TrainResult, train_sae
from interp_lab.store.reader import Store

HOOK = "blocks.15.hook_resid_post"


def store_at(path: Path) -> Store:
    if not (path / "manifest.json").exists():
        from interp_lab.harvest.run import harvest

        t = time.perf_counter()
        harvest("smollm2-135m", "lee", HOOK, path, context_length=128, batch_size=16)
        print(f"harvested {path} in {time.perf_counter() - t:.0f} s")
    return Store(path)


def ours(st: Store, cfg: TrainConfig, dense: bool = False) -> tuple[dict, SparseCoder, TrainResult]:
    """train_sae (``dense``: with the SAE switched to its dense path); tokens/s from the per-step callback."""
    import interp_lab.sae.train as train_module

    marks: list[tuple[float, int]] = []
    make = train_module.make_sae
    if dense:
        def dense_sae(*a, **kw):
            sae = make(*a, **kw)
            sae.sparse_kernels = False
            return sae
        train_module.make_sae = dense_sae
    try:
        t0 = time.perf_counter()
        res = train_sae(st, HOOK, cfg, on_step=lambda r: marks.append((time.perf_counter(), r["tokens"])))
        wall = time.perf_counter() - t0
    finally:
        train_module.make_sae = make
    with tempfile.TemporaryDirectory() as d:
        sae = load_sae(save_sae(res.sae, Path(d) / "sae", scale_in=res.scale_in, metadata={"hook_name": HOOK}))
    (t1, n1), (tn, nn) = marks[0], marks[-1]
    return {"tokens/s": (nn - n1) / (tn - t1), "wall": wall}, sae, res


def saelens(st: Store, cfg: TrainConfig, scale: float, threshold: float, b_dec: torch.Tensor) -> tuple[dict, SparseCoder]:
    """SAE Lens's SAETrainer on the batches train_sae saw (same rows, order, outlier filter and scale)."""
    from sae_lens.config import LoggingConfig, SAETrainerConfig
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.training.sae_trainer import SAETrainer

    rows = split_rows(st).train
    asked: list[float] = []  # the trainer asks for a batch at the start of each step
    sizes: list[int] = []

    def batches() -> Iterator[torch.Tensor]:
        stream = (b for epoch in count() for b in shuffled_batches(st, HOOK, rows, cfg.batch_size, cfg.seed + epoch))
        while True:
            asked.append(time.perf_counter())
            t = torch.from_numpy(next(stream))
            t = (t if cfg.keep_outliers else t[t.norm(dim=1) <= threshold]) * scale
            sizes.append(len(t))
            yield t

    d_in = int(st.manifest.d[HOOK])
    width = cfg.latent_dim or cfg.expansion_factor * d_in
    torch.manual_seed(cfg.seed)
    sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d_in, d_sae=width, k=cfg.k))
    with torch.no_grad():
        sae.b_dec.copy_(b_dec)
    steps = cfg.tokens // cfg.batch_size
    trainer_cfg = SAETrainerConfig(
        total_training_samples=cfg.tokens, train_batch_size_samples=cfg.batch_size, lr=cfg.lr, lr_end=cfg.lr,
        lr_decay_steps=int(cfg.lr_decay * steps), dead_feature_window=cfg.dead_after_tokens // cfg.batch_size,
        logger=LoggingConfig(log_to_wandb=False))
    data = batches()
    t0 = time.perf_counter()
    SAETrainer(cfg=trainer_cfg, sae=sae, data_provider=data).fit()
    end = time.perf_counter()
    data.close()
    with torch.no_grad():
        state = {k: v.detach().clone() for k, v in sae.state_dict().items()}
        sae.process_state_dict_for_saving_inference(state)  # decoder norms folded into the weights
        mine = make_sae(SAEConfig("topk", d_in=d_in, d_sae=width, k=cfg.k))
        for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
            getattr(mine, name).copy_(state[name])
    with tempfile.TemporaryDirectory() as d:
        folded = load_sae(save_sae(mine, Path(d) / "sae", scale_in=scale, metadata={"hook_name": HOOK}))
    return {"tokens/s": sum(sizes[1:]) / (end - asked[1]), "wall": end - t0}, folded


def initial_b_dec(st: Store, cfg: TrainConfig, res: TrainResult) -> torch.Tensor:
    """b_dec as train_sae starts it: the geometric median of its 16k-row sample, scaled, outliers out."""
    rows = split_rows(st).train
    sample = np.sort(np.random.default_rng(cfg.seed).choice(rows, min(len(rows), 16384), replace=False))
    x = torch.from_numpy(st.acts(HOOK, sample).astype(np.float32))
    return geometric_median(x[x.norm(dim=1) <= res.outlier_threshold] * res.scale_in)


def line(name: str, speed: dict, m: dict) -> str:
    return (f"{name:40s} {speed['tokens/s']:8,.0f} tokens/s  wall {speed['wall']:6.1f} s   held-out FVU {m['fvu']:.4f}"
            f" (without outliers {m['fvu_without_outliers']:.4f})  L0 {m['l0']:5.1f}  dead {m['dead_fraction']:6.2%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, default=Path("/tmp/l15-full"), help="harvested (lee) when missing")
    ap.add_argument("--width", type=int, default=4608)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--tokens", type=int, default=200_000)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--rounds", type=int, default=1, help="each trainer once per round, in turn")
    ap.add_argument("--drop-outliers", action="store_true", help="train without the tokens above 10x the median norm")
    ap.add_argument("--dense", action="store_true", help="also train_sae on the dense reference path")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    st = store_at(args.store)
    held = split_rows(st).heldout
    cfg = TrainConfig(architecture="topk", latent_dim=args.width, k=args.k, tokens=args.tokens,
                      batch_size=args.batch_size, keep_outliers=not args.drop_outliers)
    print(f"store {args.store}: {st.manifest.rows:,} tokens; TopK {st.manifest.d[HOOK]} x {args.width}, k {args.k}, "
          f"{args.tokens:,} training tokens in batches of {args.batch_size}, lr {cfg.lr}, outliers "
          f"{'kept' if cfg.keep_outliers else 'left out'}; {args.threads} threads; "
          f"held-out {len(held):,} tokens")
    ratios, diffs = [], []  # diffs: (FVU, FVU without outliers), interp-lab minus SAE Lens
    for r in range(args.rounds):
        s_ours, sae_ours, res = ours(st, cfg)
        m_ours = reconstruction_metrics(sae_ours, st, HOOK, held)
        print(line(f"[{r + 1}] interp-lab train_sae", s_ours, m_ours), flush=True)
        s_lens, sae_lens_ = saelens(st, cfg, res.scale_in, res.outlier_threshold, initial_b_dec(st, cfg, res))
        m_lens = reconstruction_metrics(sae_lens_, st, HOOK, held)
        print(line(f"[{r + 1}] SAE Lens SAETrainer", s_lens, m_lens), flush=True)
        if args.dense:
            s_dense, sae_dense, _ = ours(st, cfg, dense=True)
            print(line(f"[{r + 1}] interp-lab, dense reference path", s_dense,
                       reconstruction_metrics(sae_dense, st, HOOK, held)), flush=True)
        ratios.append(s_ours["tokens/s"] / s_lens["tokens/s"])
        diffs.append(tuple(m_ours[f] - m_lens[f] for f in ("fvu", "fvu_without_outliers")))
    ratio = statistics.median(ratios)
    fvu, typical = (statistics.median(d[i] for d in diffs) for i in (0, 1))
    print(f"speed ratio interp-lab / SAE Lens: {ratio:.2f}x (per round: {', '.join(f'{x:.2f}' for x in ratios)}); "
          f"held-out FVU interp-lab - SAE Lens: {fvu:+.4f} ({typical:+.4f} without the outliers)")
    print(f"at least 2x at equal or better FVU: {'yes' if ratio >= 2 and fvu <= 0 else 'NO'} over every held-out "
          f"token, {'yes' if ratio >= 2 and typical <= 0 else 'NO'} without the outliers")

if __name__ == "__main__":
    main()
