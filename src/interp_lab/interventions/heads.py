"""Attention heads as intervention targets: zero- or mean-ablating heads through ``attn.hook_z``.

A head's slice of ``hook_z`` (its output before the output projection) is all
that head adds to the residual stream, so setting it to zero (``ablate``)
removes the head, and setting it to its mean over reference prompts
(``mean_ablate``) removes what it does differently on each prompt. These are
TransformerLens's ``hook_z`` ablations (tested equal to them). The edits run
wherever an ``Edit`` runs: ``models.hooked.run`` over whole prompts, or a
``PromptSet`` from the last prompt token on, as every other intervention does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from interp_lab.errors import UsageError
from interp_lab.interventions.batches import PromptSet, scores
from interp_lab.models.hooked import Edit, Positions

HEAD_KINDS = ("ablate", "mean_ablate")


def head_hook(layer: int) -> str:
    return f"blocks.{layer}.attn.hook_z"


def head_edit(layer: int, heads: Sequence[int], kind: str = "ablate", mean: torch.Tensor | None = None,
              positions: Positions = None) -> Edit:
    """The edit setting ``heads`` of ``layer`` to zero (``ablate``) or to ``mean`` (``mean_ablate``: each
    head's mean, [n_heads, d_head] as ``head_means`` gives it, or [len(heads), d_head])."""
    heads = [int(h) for h in heads]
    if not heads:
        raise UsageError("name at least one head to ablate")
    if kind == "ablate":
        return Edit(head_hook(layer), "zero", positions=positions, heads=heads)
    if kind == "mean_ablate":
        if mean is None:
            raise UsageError("mean_ablate of a head needs its mean (interventions.heads.head_means)")
        m = torch.as_tensor(mean)
        if m.dim() != 2:
            raise UsageError(f"a head mean is [heads, d_head], got {tuple(m.shape)}")
        if m.shape[0] != len(heads):
            m = m[heads]
        return Edit(head_hook(layer), "replace", m, positions=positions, heads=heads)
    raise UsageError(f"unknown head intervention {kind!r} (use {', '.join(HEAD_KINDS)})")


def head_means(ps: PromptSet, layer: int) -> torch.Tensor:
    """[n_heads, d_head] each head's mean ``hook_z`` at the last token of the prompts of ``ps`` (the value
    ``mean_ablate`` sets, as every set-edit takes its value from discovery prompts)."""
    hook = head_hook(layer)
    acts = ps.last_token_acts([hook])[hook]  # [n, n_heads * d_head]
    n_heads = int(ps.lm.model.config.num_attention_heads)
    return torch.from_numpy(acts.mean(0)).unflatten(-1, (n_heads, -1))


def head_scores(ps: PromptSet, scorer, layer: int, kind: str = "ablate", means: torch.Tensor | None = None
                ) -> np.ndarray:
    """[n_heads, n_prompts] ``scorer``'s score of each prompt of ``ps`` with each head of ``layer`` ablated
    alone, from the last prompt token on (compare with ``interventions.batches.scores(ps, scorer)``)."""
    n_heads = int(ps.lm.model.config.num_attention_heads)
    return np.stack([scores(ps, scorer, lambda b, h=h: [head_edit(layer, [h], kind, means)])
                     for h in range(n_heads)])
