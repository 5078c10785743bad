"""One edit of one feature (a target or a control), and the edit functions it becomes at its hook."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import torch

from interp_lab.interventions.features import FeatureSpace


@dataclass
class EditPlan:
    """One edit of one feature (target or control): what runs and how its records are labelled."""

    feature_id: str
    space: FeatureSpace
    index: int
    kind: str
    strength: float | None = None
    control_type: str | None = None
    matched_on: str | None = None
    match_tolerance: float | None = None
    tolerance_widened: bool | None = None
    for_strength: float | None = None  # steering controls: the target strength they are matched to

    def key(self) -> tuple:
        return (self.space.hook, self.feature_id, self.kind, self.strength)


def set_edit(space: FeatureSpace, index: int, value: torch.Tensor | float) -> Callable:
    """Move the activation along the feature's write vector so that the feature reads ``value`` (a number,
    or one per row [B])."""
    w = space.write([index])[0]

    def f(view: torch.Tensor) -> torch.Tensor:
        cur = space.values(view, [index])[..., 0]
        v = value[:, None] if isinstance(value, torch.Tensor) else value
        return view + (v - cur)[..., None] * w.to(view.dtype)

    return f


def add_edit(vector: torch.Tensor) -> Callable:
    return lambda view: view + vector.to(view.dtype)


def short(feature_id: str) -> str:
    return hashlib.sha256(feature_id.encode()).hexdigest()[:6]


def seed_of(seed: int, name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "little")
