"""Intervention kinds and settings (no torch here, so the API and CLI can declare them at import)."""

from __future__ import annotations

from dataclasses import dataclass

from interp_lab import defaults
from interp_lab.errors import UsageError

KINDS = ("ablate", "mean_ablate", "clamp_up", "clamp_down", "steer", "patch")
DEFAULT_KINDS = ("ablate", "mean_ablate", "steer")


@dataclass(frozen=True)
class InterventionSettings:
    kinds: tuple[str, ...] = DEFAULT_KINDS
    n_controls: int = defaults.CONTROLS  # evidence.md rule 7: at least 20
    strengths: tuple[float, ...] = defaults.STRENGTHS  # steering, in units of the median activation norm at the hook
    side_prompts: int = 64  # unrelated prompts for side effects (KL of next-token distributions)
    batch_size: int = 64
    # unit and direction controls: realised edit RMS within this of the feature's (ratio in [1/1.25, 1.25]),
    # widened step by step when the space holds too few; an effect grows about linearly with a small edit,
    # so 25% moves a control's expected effect far less than controls differ from one another
    match_tolerance: float = 0.25
    kl_tolerance: float = 0.25  # steering controls: mean side-effect KL within this of the feature's
    kl_budget: float = defaults.KL_BUDGET  # steering: mean next-token KL (nats) on unrelated prompts the strength may cost
    dose_controls: int = 5  # steering controls whose median gain and KL are measured at every strength tried
    seed: int = 0

    def __post_init__(self) -> None:
        bad = [k for k in self.kinds if k not in KINDS]
        if bad:
            raise UsageError(f"unknown intervention kind(s) {bad} (use {', '.join(KINDS)})")
        if not self.kinds:
            raise UsageError("no intervention kinds given")
        if self.n_controls < 1:
            raise UsageError("n_controls must be at least 1 (evidence.md asks for 20)")
        if not self.strengths or any(s <= 0 for s in self.strengths):
            raise UsageError("steering strengths must be positive numbers")
        for name in ("match_tolerance", "kl_tolerance", "kl_budget"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value > 0 and value != float("inf")):
                raise UsageError(f"{name} must be a positive number, not {value!r}")
        if self.dose_controls < 0:
            raise UsageError("dose_controls must be 0 or more")

    def replace(self, **changes) -> InterventionSettings:
        return InterventionSettings(**{**self.__dict__, **changes})
