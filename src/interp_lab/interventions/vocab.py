"""Output-side fingerprints: the tokens a feature's write vector promotes and suppresses through the
model's final norm and unembedding (a logit lens of the direction), as token strings, so that two
models with different vocabularies can be compared by string (formats.md ``fingerprint.vocab``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from interp_lab.interventions.features import Target, residual_writes

METHOD = ("the write vector in residual space (a neuron's: its column of the MLP's output projection) through "
          "the final norm and the unembedding; the top tokens by logit, decoded one by one")


def residual_write(lm, target: Target) -> torch.Tensor | None:
    """The target's write vector in residual-stream space, or None where it has none (a hook the
    residual stream does not add directly)."""
    w = residual_writes(lm, target.space, [target.index])
    return None if w is None else w[0]


@torch.no_grad()
def vocab_signatures(lm, targets: Sequence[Target], top: int = 10) -> dict[str, dict[str, Any]]:
    """{feature_id: {"promoted": [token strings], "suppressed": [...]}} for the targets that write into
    the residual stream; best first."""
    from interp_lab.models.lens import decode

    ids, vecs = [], []
    for t in targets:
        v = residual_write(lm, t)
        if v is not None and float(v.norm()) > 0:
            ids.append(t.feature_id)
            vecs.append(v / v.norm())
    if not vecs:
        return {}
    dtype = next(lm.model.parameters()).dtype
    logits = decode(lm.model, torch.stack(vecs).to(dtype)).float()
    up, down = logits.topk(top, dim=-1).indices, (-logits).topk(top, dim=-1).indices
    tok = lm.tokenizer

    def strings(row: torch.Tensor) -> list[str]:
        return [tok.decode([int(i)]) for i in row]

    return {fid: {"promoted": strings(up[k]), "suppressed": strings(down[k])} for k, fid in enumerate(ids)}
