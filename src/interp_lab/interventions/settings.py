"""Intervention kinds and settings (no torch here, so the API and CLI can declare them at import)."""

from __future__ import annotations

from dataclasses import dataclass

from interp_lab.errors import UsageError

KINDS = ("ablate", "mean_ablate", "clamp_up", "clamp_down", "steer", "patch")
DEFAULT_KINDS = ("ablate", "mean_ablate", "steer")
STRENGTHS = (0.25, 0.5, 1.0, 2.0, 4.0)


@dataclass(frozen=True)
class InterventionSettings:
    kinds: tuple[str, ...] = DEFAULT_KINDS
    n_controls: int = 20  # evidence.md rule 7: at least 20
    strengths: tuple[float, ...] = STRENGTHS  # steering, in units of the median activation norm at the hook
    side_prompts: int = 64  # unrelated prompts for side effects (KL of next-token distributions)
    batch_size: int = 64
    match_factor: float = 2.0  # controls matched on spread / firing frequency within this factor
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
        if self.match_factor <= 1:
            raise UsageError("match_factor must be above 1")

    def replace(self, **changes) -> InterventionSettings:
        return InterventionSettings(**{**self.__dict__, **changes})
