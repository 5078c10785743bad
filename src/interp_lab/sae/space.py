"""An SAE's latents as a feature space of the interventions engine (``interventions.features``):
a latent is read through the SAE's encoder and written along its decoder row, so ablating, clamping or
steering it changes only its own contribution and the SAE's reconstruction error stays in the activation.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from interp_lab.errors import UsageError
from interp_lab.sae.base import SparseCoder
from interp_lab.schemas.feature_id import format_id


@dataclass
class LatentSpace:
    sae: SparseCoder
    hook: str
    layer: int
    sae_id: str
    kind: str = "F"
    dense: bool = False  # latents are matched to controls on firing frequency
    fingerprint: str = ""  # sha256 of the checkpoint's weights: cached results of another SAE never match

    @property
    def size(self) -> int:
        return self.sae.cfg.d_sae

    @torch.no_grad()
    def values(self, x: torch.Tensor, idx: Sequence[int]) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1]).float()
        z = self.sae.encode(flat)[:, list(idx)]
        return z.reshape(*x.shape[:-1], len(idx)).to(x.dtype)

    def write(self, idx: Sequence[int]) -> torch.Tensor:
        return self.sae.W_dec.detach()[list(idx)].float()

    def feature_id(self, i: int) -> str:
        return format_id(self.layer, "F", i)


def latent_space(path: str | os.PathLike, hook: str | None = None) -> LatentSpace:
    """The latents of the checkpoint at ``path`` (hook from its cfg.json metadata unless given)."""
    from interp_lab.sae.checkpoint import _read_cfg, load_sae, read_metadata
    from interp_lab.sae.records import layer_of

    root = Path(path)
    sae = load_sae(root)
    cfg_path, cfg = _read_cfg(root)
    if sae.cfg.transcoder:
        raise UsageError(f"{root}: a transcoder's latents read one hook and write another; interventions take SAEs")
    hook = hook or read_metadata(cfg).get("hook_name")
    if not hook:
        raise UsageError(f"{cfg_path}: no metadata.hook_name; give the hook")
    layer = layer_of(hook)
    if layer is None:
        raise UsageError(f"{cfg_path}: hook {hook!r} is not a layer's hook (blocks.<i>.*)")
    from interp_lab.io.hashing import sha256_file
    from interp_lab.sae.config import SPARSIFY_WEIGHTS, WEIGHTS

    weights = next((root / n for n in (WEIGHTS, SPARSIFY_WEIGHTS) if (root / n).is_file()), None)
    return LatentSpace(sae, hook, layer, str(root), fingerprint=sha256_file(weights) if weights else "")
