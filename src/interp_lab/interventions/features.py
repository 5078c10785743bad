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

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from interp_lab.errors import UsageError

FEATURE_ID = re.compile(r"^L(\d+):([NRDF])(\d+)$")
HOOK_OF_KIND = {"N": "mlp.hook_post", "R": "hook_resid_post", "D": "hook_resid_post", "F": "hook_resid_post"}


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
        return f"L{self.layer}:{self.kind}{i}"


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


def random_directions(hook: str, layer: int, d: int, n: int, seed: int, prefix: str) -> DirectionSpace:
    """``n`` random unit directions (Gaussian, normalized), named ``{prefix}{k}``."""
    v = np.random.default_rng(seed).normal(size=(n, d))
    return DirectionSpace(hook, layer, v, [f"{prefix}{k}" for k in range(n)], kind="D")


def matched_directions(hook: str, layer: int, x_ref: np.ndarray, target_std: float, n: int, seed: int,
                       factor: float, prefix: str, max_tries: int = 20000) -> DirectionSpace | None:
    """Up to ``n`` random unit directions whose projection of ``x_ref`` [m, d] has a standard deviation
    within ``factor`` of ``target_std``: random mixtures of an isotropic direction and a random combination
    of the centred activations (the latter varies as much as the data does), kept when they match."""
    rng = np.random.default_rng(seed)
    xc = x_ref - x_ref.mean(0)
    got: list[np.ndarray] = []
    for _ in range(max_tries // 256):
        g = rng.normal(size=(256, x_ref.shape[1]))
        h = rng.normal(size=(256, len(x_ref))) @ xc
        a = rng.uniform(size=(256, 1))
        v = a * g / np.linalg.norm(g, axis=1, keepdims=True) + (1 - a) * h / np.linalg.norm(h, axis=1, keepdims=True)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        sd = (x_ref @ v.T).std(0)
        got.extend(v[(sd >= target_std / factor) & (sd <= target_std * factor)])
        if len(got) >= n:
            break
    if not got:
        return None
    return DirectionSpace(hook, layer, np.array(got[:n]), [f"{prefix}{k}" for k in range(min(n, len(got)))])


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


def parse_feature_id(fid: str) -> tuple[int, str, int]:
    m = FEATURE_ID.match(fid.strip())
    if not m:
        raise UsageError(f"feature id {fid!r} is not L<layer>:<N|R|D|F><index> (architecture.md)")
    return int(m.group(1)), m.group(2), int(m.group(3))


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
