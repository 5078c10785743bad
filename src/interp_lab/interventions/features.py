"""What an intervention edits: MLP neurons, residual dimensions, directions and SAE latents.

Every feature is read from one hook point and writes back along one vector:
a neuron or residual dimension is a basis vector of its hook (``L{i}:N{j}``
on ``mlp.hook_post``, ``L{i}:R{j}`` on ``hook_resid_post``), a direction its
unit vector (``L{i}:D{j}``), an SAE latent its encoder output and decoder row
(``L{i}:F{j}``; the SAE issue supplies that space through ``FeatureSpace``).
Setting a feature to a value moves the activation along its write vector by
the difference, so whatever the feature does not explain (an SAE's
reconstruction error included) is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from interp_lab.errors import UsageError
from interp_lab.schemas.feature_id import HOOK_OF_KIND, format_id, parse_feature_id


class FeatureSpace(Protocol):
    """Features read from one hook: ``values`` [..., d] -> [..., k] and the write vector of each."""

    hook: str
    layer: int
    kind: str  # N | R | D | F
    size: int
    dense: bool  # dense units are matched on activation spread, sparse ones on firing frequency

    def values(self, x: torch.Tensor, idx: Sequence[int]) -> torch.Tensor: ...

    def write(self, idx: Sequence[int]) -> torch.Tensor: ...

    def feature_id(self, i: int) -> str: ...


@dataclass
class BasisSpace:
    """The channels of a hook: MLP neurons (N) or residual dimensions (R)."""

    hook: str
    layer: int
    kind: str
    size: int
    dense: bool = True

    def values(self, x: torch.Tensor, idx: Sequence[int]) -> torch.Tensor:
        return x[..., list(idx)]

    def write(self, idx: Sequence[int]) -> torch.Tensor:
        w = torch.zeros(len(idx), self.size)
        w[torch.arange(len(idx)), torch.as_tensor(list(idx))] = 1.0
        return w

    def feature_id(self, i: int) -> str:
        return format_id(self.layer, self.kind, i)


@dataclass
class DirectionSpace:
    """Unit directions at a hook (rows of ``vectors`` [k, d]); ``names`` are their feature ids."""

    hook: str
    layer: int
    vectors: np.ndarray
    names: list[str]
    kind: str = "D"
    dense: bool = True

    def __post_init__(self) -> None:
        v = np.asarray(self.vectors, dtype=np.float32)
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        if (norms == 0).any():
            raise UsageError(f"a direction at {self.hook} is the zero vector")
        self.vectors = v / norms
        self._t = torch.from_numpy(self.vectors)

    @property
    def size(self) -> int:
        return len(self.vectors)

    def values(self, x: torch.Tensor, idx: Sequence[int]) -> torch.Tensor:
        return x @ self._t[list(idx)].to(x.dtype).T

    def write(self, idx: Sequence[int]) -> torch.Tensor:
        return self._t[list(idx)]

    def feature_id(self, i: int) -> str:
        return self.names[i]


RESIDUAL_KINDS = ("hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out", "hook_mlp_out")


def residual_writes(lm, space: FeatureSpace, idx: Sequence[int]) -> torch.Tensor | None:
    """[k, d_model] the write vectors of features ``idx`` in residual-stream space (a neuron's: its column
    of the MLP's output projection; a direction in ``attn.hook_z``, per token n_heads * d_head: through
    attention's output projection), or None where the hook does not add into the residual stream linearly."""
    from interp_lab.models.hooks import family_of, get_module

    w = space.write(idx).float()
    if space.hook.endswith(RESIDUAL_KINDS):
        return w
    fam = family_of(lm.model)
    proj = {"mlp.hook_post": fam.neurons, "attn.hook_z": fam.attn_o}.get(space.hook.split(".", 2)[-1])
    if proj is None:
        return None
    module = get_module(lm.model, f"{fam.layers}.{space.layer}.{proj}")
    weight = module.weight.detach().float()
    # nn.Linear is [out, in]; GPT-2's Conv1D is [in, out] (and square for attention's c_proj)
    return w @ (weight.T if hasattr(module, "in_features") else weight)


def write_norms(lm, space: FeatureSpace) -> np.ndarray:
    """[size] the L2 norm of each feature's write vector in residual-stream space (in the hook's own space
    where it does not write the residual stream directly): the size of the change that moving the feature
    by 1 makes to the residual stream at that position."""
    idx = range(space.size)
    w = residual_writes(lm, space, idx)
    return (space.write(idx).float() if w is None else w).norm(dim=1).numpy().astype(np.float64)


@dataclass(frozen=True)
class Target:
    """One feature of a space."""

    space: FeatureSpace
    index: int

    @property
    def feature_id(self) -> str:
        return self.space.feature_id(self.index)

    @property
    def hook(self) -> str:
        return self.space.hook


def resolve_targets(lm, feature_ids: Sequence[str], directions: dict[str, tuple[str, np.ndarray]] | None = None,
                    latent_spaces: dict[int, FeatureSpace] | None = None) -> list[Target]:
    """Targets for feature ids on a loaded model.

    ``directions``: ``{feature_id: (hook, vector)}`` for ``D`` features (saved beside the report that found
    them); ``latent_spaces``: ``{layer: space}`` for ``F`` features (an SAE's latents).
    """
    from interp_lab.models.hooked import hook_widths

    out: list[Target] = []
    spaces: dict[tuple[str, str], FeatureSpace] = {}
    for fid in feature_ids:
        layer, kind, index = parse_feature_id(fid)
        if layer >= lm.n_layers:
            raise UsageError(f"{fid}: the model has layers 0..{lm.n_layers - 1}")
        if kind in "NR":
            hook = f"blocks.{layer}.{HOOK_OF_KIND[kind]}"
            key = (hook, kind)
            if key not in spaces:
                spaces[key] = BasisSpace(hook, layer, kind, hook_widths(lm, [hook])[hook])
            if index >= spaces[key].size:
                raise UsageError(f"{fid}: {hook} has {spaces[key].size} channels")
            out.append(Target(spaces[key], index))
        elif kind == "D":
            if not directions or fid not in directions:
                raise UsageError(f"{fid} is a direction: give its vector (a directions file saved beside the "
                                 "report, or --direction)")
            hook, vec = directions[fid]
            out.append(Target(DirectionSpace(hook, layer, np.asarray(vec)[None], [fid]), 0))
        else:
            space = (latent_spaces or {}).get(layer)
            if space is None:
                raise UsageError(f"{fid} is an SAE latent: give the SAE it belongs to (--sae)")
            out.append(Target(space, index))
    return out
