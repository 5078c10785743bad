"""The provider seam: what ``inspect`` asks a provider for, and the two things a provider may answer.

``provide(request, progress)`` returns either ``Evidence`` (activation records, a feature dump, intervention
records, imported features: the ranker and the causal test read them as they are) or a ``ModelPlan`` (the
model's own forward passes through ``providers.hf``: the hf pipeline computes the evidence, tests the
candidates with interventions and controls; ``sae`` / ``saelens`` / ``scope`` plan it with an SAE).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from interp_lab.providers.options import ProviderOptions


@dataclass
class Request:
    """Everything ``inspect`` was given that a provider may use."""

    backend: str
    model: str | None
    criterion: str  # the criterion's text
    criterion_arg: str  # as given: the text or a criterion spec file
    seed: int = 0
    top_k: int = 10
    records: Path | None = None
    features: Path | None = None
    interventions: Path | None = None
    allow_intervention_criterion_mismatch: bool = False
    synthetic: dict[str, Any] | None = None
    hf: Any = None  # providers.hf.HFOptions
    options: ProviderOptions = field(default_factory=ProviderOptions)

    @property
    def extra(self) -> dict[str, str]:
        """``--provider-option KEY=VALUE`` pairs, for third-party providers."""
        return self.options.extra()


@dataclass
class Evidence:
    """Everything an inspection reads, with the messages it collects on the way."""

    backend: str
    inputs: list[Any] = field(default_factory=list)  # io.inputs.InputInfo
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    matrix: Any = None  # io.records.RecordMatrix: activation records (or synthetic ones)
    table: Any = None  # evidence.causal.InterventionTable
    dump: Any = None  # providers.features.FeatureDump
    rank_on: Any = None  # the RecordMatrix association is measured on
    planted: dict[str, str] = field(default_factory=dict)
    synthetic_params: dict[str, Any] | None = None
    imported: list[dict[str, Any]] | None = None  # partial cards of imported features (providers.imported)
    model: str | None = None  # the model the evidence names, when the request gave none


@dataclass
class ModelPlan:
    """Run the hf pipeline: ``pipeline`` ``hf`` (the options' units) or ``sae`` (the SAE's latents only),
    with ``hf`` options (``hf.sae`` the SAE checkpoint directory); ``selected`` latent ids are the only
    candidates and are tested whatever their rank; ``provenance`` is added to every card's; ``cards`` are
    what the source says of a feature (an imported label, explanations), added to its card."""

    pipeline: Literal["hf", "sae"]
    hf: Any  # providers.hf.HFOptions
    selected: tuple[str, ...] = ()
    provenance: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    cards: dict[str, dict[str, Any]] = field(default_factory=dict)  # feature_id -> fields from the source
    inputs: list[Any] = field(default_factory=list)  # io.inputs.InputInfo of what the source read


class FeatureProvider(Protocol):
    """What an entry point of the group ``interp_lab.providers`` names."""

    name: str
    source: str  # what the evidence is, in a few words
    needs: str  # what must be installed or set

    def check(self, request: Request) -> None:
        """Raise ``interp_lab.errors.UsageError`` (one line: what to install, set or give) before any work."""

    def provide(self, request: Request, progress: Any) -> Evidence | ModelPlan: ...
