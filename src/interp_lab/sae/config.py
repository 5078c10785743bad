"""Training configuration and presets, and a checkpoint's file names (no torch here: the CLI and the API read
them before training)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

ARCHITECTURES = ("topk", "batchtopk", "jumprelu", "relu")
# a checkpoint's weights (checkpoint.py), named here so that what only looks at a checkpoint needs no torch
WEIGHTS = "sae_weights.safetensors"  # SAE Lens's layout, which interp-lab writes
SPARSIFY_WEIGHTS = "sae.safetensors"  # EleutherAI sparsify's
ALIASES = {"standard": "relu"}  # SAE Lens's name for ReLU + L1

# tokens to harvest per training token: a tenth of documents is held out, and each window's first position
HELDOUT_MARGIN = 1.15


@dataclass(frozen=True)
class TrainConfig:
    architecture: str = "topk"
    expansion_factor: int = 8
    latent_dim: int | None = None
    """d_sae; default expansion_factor x d_in."""
    k: int = 32
    tokens: int | None = 200_000
    """Training tokens (passing over the data again if needed); with ``epochs`` too, the smaller."""
    epochs: float | None = None
    """Passes over the store's training rows."""
    batch_size: int = 1024
    """Tokens per step. On 200k tokens, 1024 (196 steps) reaches held-out FVU 0.26 where 4096 (49 steps)
    stops at 0.34 in the same time (docs/SAE.md)."""
    lr: float = 2e-3
    """Adam. 2e-3 is what short CPU runs need: the width-scaled 2e-4 / sqrt(d_sae / 16384) of Gao et al. is
    made for billions of tokens and leaves FVU far higher after 200k (docs/SAE.md has the sweep)."""
    lr_decay: float = 0.2
    """The learning rate falls linearly to zero over this final fraction of the run."""
    sparsity_warmup: float = 0.1
    """relu / jumprelu: the sparsity weight rises linearly from 0 over this first fraction of the run, so
    latents learn something before the penalty can switch them off."""
    l1_coef: float | None = None
    """relu's L1 weight (None: SAEConfig's default)."""
    l0_coef: float | None = None
    """jumprelu's L0 weight (None: SAEConfig's default)."""
    dead_after_tokens: int = 50_000
    """A latent silent for this many tokens counts as dead (for AuxK and the progress line)."""
    bf16: bool = True
    """topk / batchtopk: the encoder matmul in bfloat16 where the CPU has bf16 instructions (AVX512-BF16,
    AMX), float32 elsewhere: half its time, the same held-out FVU (200k tokens, mean of three seeds: 0.075
    against 0.079, 0.2685 against 0.2687 without the outliers; docs/SAE.md). ``train-sae --float32``
    switches it off."""
    keep_outliers: bool | None = None
    """Train on the few tokens above 10x the median norm too (second-position attention sinks, all along one
    direction). None: kept for TopK autoencoders, left out otherwise. Kept, a TopK SAE reaches held-out FVU
    0.052 over every token after one pass over lee + enwiki where leaving them out gives 0.30 after three;
    but they take BatchTopK's shared top-k slots, dominate ReLU's L1 and the transcoders' targets, and on
    a 40k-token run raise held-out FVU from under 0.5 to 0.51 (batchtopk), 0.80 (relu) and above 1 (the
    batchtopk transcoder; docs/SAE.md). Each window's first position is always left out."""
    seed: int = 0

    def __post_init__(self) -> None:
        from interp_lab.errors import UsageError

        arch = ALIASES.get(self.architecture, self.architecture)
        if arch not in ARCHITECTURES:
            raise UsageError(f"unknown architecture {self.architecture!r} ({', '.join(ARCHITECTURES)})")
        object.__setattr__(self, "architecture", arch)
        if self.tokens is None and self.epochs is None:
            raise UsageError("give a number of training tokens or of epochs")

    def resolved(self, hook_out: str | None) -> TrainConfig:
        """This configuration with ``keep_outliers`` decided (None: kept for a TopK autoencoder only)."""
        if self.keep_outliers is not None:
            return self
        return replace(self, keep_outliers=self.architecture == "topk" and hook_out is None)

    def sae_config(self, d_in: int, d_out: int | None):
        """The SAEConfig of a coder from d_in to d_out (None: an autoencoder)."""
        from interp_lab.sae.base import SAEConfig

        kw = {k: v for k, v in (("l1_coef", self.l1_coef), ("l0_coef", self.l0_coef)) if v is not None}
        return SAEConfig(architecture=self.architecture, d_in=d_in, d_sae=self.latent_dim or self.expansion_factor * d_in,
                         d_out=d_out, k=self.k, **kw)


PRESETS = {
    # quick local exploration: a narrow SAE on 50k tokens (a minute on a laptop CPU)
    "minimal": TrainConfig(expansion_factor=4, k=16, tokens=50_000, batch_size=512),
    # the defaults (8x, k 32, 200k tokens in batches of 1024); raise --tokens / --epochs for more
    "production": TrainConfig(),
}


def with_overrides(base: TrainConfig, **kw: Any) -> TrainConfig:
    """``base`` with the keys that are not None replaced (how CLI flags override a preset)."""
    return replace(base, **{k: v for k, v in kw.items() if v is not None})
