"""TopK (Gao et al. 2024, "Scaling and evaluating sparse autoencoders"): the k largest pre-activations
of each token pass through a ReLU, the rest are zero; AuxK keeps latents from dying.

encode: z = ReLU(TopK((x - b_dec) @ W_enc + b_enc)); the same maths and names as SAE Lens's ``topk``.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from interp_lab.sae.base import SparseCoder, register, top_k
from interp_lab.sae.kernels import Selection


@register
class TopKSAE(SparseCoder):
    architecture = "topk"
    uses_auxk = True
    selects = True

    def activate(self, pre: Tensor) -> Tensor:
        return top_k(pre, self.cfg.k)

    def select(self, pre: Tensor) -> tuple[Selection, Tensor]:
        vals, idx = pre.topk(self.cfg.k, dim=-1, sorted=False)
        return Selection.per_token(idx), vals.reshape(-1)

    def saelens_architecture(self) -> tuple[str, dict[str, Any]]:
        if self.cfg.transcoder:
            raise ValueError("SAE Lens has no TopK transcoder: train a batchtopk one (saved as a JumpReLU "
                             "transcoder) to get a checkpoint SAE Lens loads")
        return "topk", {"k": self.cfg.k, "rescale_acts_by_decoder_norm": False}
