"""Intervention kinds and settings (no torch here, so the API and CLI can declare them at import).

``InterventionSettings`` is an options group of the intervention commands (``intervene``, ``export-hf-contrast``
and ``export-hf-interventions``): each field says its flag, and the text the command line gives for it is
parsed once (``parse_kinds`` and ``positive_nats`` here, ``comma_list`` and ``comma_floats`` of
``schemas.command`` for every command)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from interp_lab import defaults
from interp_lab.errors import UsageError
from interp_lab.schemas.command import comma_floats, comma_list, option

KINDS = ("ablate", "mean_ablate", "clamp_up", "clamp_down", "steer", "patch")
DEFAULT_KINDS = ("ablate", "mean_ablate", "steer")
KINDS_HELP = "Comma list of " + ", ".join(KINDS) + "."


def parse_kinds(text: str) -> tuple[str, ...]:
    """A comma list of intervention kinds, each once in the order given (the settings check the names)."""
    return tuple(dict.fromkeys(comma_list(text)))


def positive_nats(value: float) -> float:
    if not 0 < value < float("inf"):
        raise ValueError(f"{value:g} is not a positive number of nats")
    return value


def kinds_option(default: tuple[str, ...] = DEFAULT_KINDS, help: str = KINDS_HELP, convert: Any = parse_kinds,
                 **flag: Any) -> Any:
    """An option of intervention kinds (``--kinds``, inspect's ``--neuron-kinds`` ...), a comma list on the
    command line."""
    return option(default, help, cli_type=str, cli_default=",".join(default), convert=convert, **flag)


def controls_option(help: str = "Random controls per feature and kind.", **flag: Any) -> Any:
    """The ``--controls`` option: random controls per feature and kind."""
    return option(defaults.CONTROLS, help, flag="--controls", min=1, **flag)


def strengths_option(help: str = defaults.STRENGTHS_HELP, **flag: Any) -> Any:
    """The steering strengths' option (``--strengths``), a comma list on the command line."""
    return option(defaults.STRENGTHS, help, cli_type=str, cli_default=defaults.STRENGTHS_TEXT, convert=comma_floats,
                  **flag)


@dataclass(frozen=True)
class InterventionSettings:
    kinds: tuple[str, ...] = kinds_option()
    n_controls: int = controls_option()  # evidence.md rule 7: at least 20
    strengths: tuple[float, ...] = strengths_option()  # steering, in units of the median activation norm at the hook
    side_prompts: int = option(64, "Unrelated prompts for side effects.", min=0)  # KL of next-token distributions
    batch_size: int = option(64, min=1)
    # unit and direction controls: realised edit RMS within this of the feature's (ratio in [1/1.25, 1.25]),
    # widened step by step when the space holds too few; an effect grows about linearly with a small edit,
    # so 25% moves a control's expected effect far less than controls differ from one another
    match_tolerance: float = option(0.25, cli=False)
    kl_tolerance: float = option(0.25, cli=False)  # steering controls: mean side-effect KL within this of the feature's
    # steering: mean next-token KL (nats) on unrelated prompts the strength may cost
    kl_budget: float = option(defaults.KL_BUDGET, defaults.KL_BUDGET_HELP, min=0.0, convert=positive_nats)
    dose_controls: int = option(5, cli=False)  # steering controls whose median gain and KL are measured at every strength
    seed: int = option(0)

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
