"""ReLU + L1 (Bricken et al. 2023, "Towards Monosemanticity"): z = ReLU(pre), sparsity from an L1
penalty on the latents (the decoder rows are kept at unit norm, so the penalty cannot be dodged by
shrinking latents and growing rows). SAE Lens's ``standard`` (``transcoder`` for a transcoder).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from interp_lab.sae.base import SparseCoder, register


@register
class ReLUSAE(SparseCoder):
    architecture = "relu"
    revives_dead = True

    def activate(self, pre: Tensor) -> Tensor:
        return pre.relu()

    def sparsity(self, pre: Tensor, z: Tensor) -> Tensor:
        return self.cfg.l1_coef * z.sum(-1).mean()

    def saelens_architecture(self) -> tuple[str, dict[str, Any]]:
        return ("transcoder" if self.cfg.transcoder else "standard"), {}
