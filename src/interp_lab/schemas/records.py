"""Typed records for the JSONL formats of formats.md.

Each record is a frozen ``msgspec.Struct``: decoding validates types, and
``__post_init__`` checks what types cannot express (ranges, known names).
A check that fails raises ``ValueError("@field: what was expected")``;
``interp_lab.io.jsonl`` turns that into one line naming file, line and field.
"""

from __future__ import annotations

import math
from typing import Any, Literal, Optional, Union

import msgspec

ACTIVATION_RECORD = "interp-lab.activation_record.v1"
FEATURE_ROW = "interp-lab.feature.v1"
INTERVENTION_RECORD = "interp-lab.intervention_record.v1"
PROMPT_ROW = "interp-lab.prompt.v1"
INSPECTION_REPORT = "interp-lab.inspection_report.v3"
# reports this version reads: v3 adds the calibrated causal fields (p_value, q_value, ...) to v2's
INSPECTION_REPORTS_READ = ("interp-lab.inspection_report.v2", INSPECTION_REPORT)
MATCHES = "interp-lab.matches.v2"
RUN_MANIFEST = "interp-lab.run.v1"
SAE_MANIFEST = "interp-lab.sae.v1"  # manifest.json of an SAE checkpoint (train-sae)

SPLITS = ("discovery", "calibration", "heldout")
SplitName = Literal["discovery", "calibration", "heldout"]

# A fall in the criterion score under these edits means the feature promotes it.
DROP_KINDS = frozenset(
    {"ablate", "zero", "mean_ablate", "remove", "knockout", "suppress", "clamp_down"}
)
# A rise under these edits means the feature promotes it.
RISE_KINDS = frozenset({"amplify", "steer", "patch", "patch_in", "clamp_up", "clamp"})
CONTROL_TYPES = frozenset({"random_feature", "matched_frequency", "random_direction", "permuted_label", "placebo"})


def _bad(field: str, message: str) -> ValueError:
    return ValueError(f"@{field}: {message}")


def _check_finite(field: str, value: float | None) -> None:
    if value is not None and not math.isfinite(value):
        raise _bad(field, f"expected a finite number, got {value}")


def _check_unit(field: str, value: float | None) -> None:
    if value is not None and not (0.0 <= value <= 1.0):
        raise _bad(field, f"expected a number in [0, 1], got {value}")


def _check_version(value: str | None, expected: str) -> None:
    if value is not None and value != expected:
        raise _bad("schema_version", f"unknown schema_version {value!r} (this reader knows {expected!r})")


class FeatureEntry(msgspec.Struct, frozen=True):
    """One active feature on an activation record row."""

    feature_id: str
    activation: float
    layer: Optional[int] = None
    label: Optional[str] = None
    decoder_signature: Optional[list[float]] = None

    def __post_init__(self) -> None:
        _check_finite("activation", self.activation)
        if self.decoder_signature is not None and not all(map(math.isfinite, self.decoder_signature)):
            raise _bad("decoder_signature", "expected a list of finite numbers")
        if not self.feature_id:
            raise _bad("feature_id", "expected a non-empty string")


class ActivationRecord(msgspec.Struct, frozen=True):
    """One prompt or token position with its active features (absent = 0)."""

    features: Union[list[FeatureEntry], dict[str, float]]
    schema_version: Optional[str] = None
    model: Optional[str] = None
    prompt_id: Optional[Union[str, int]] = None
    text: Optional[str] = None
    token_index: Optional[int] = None
    criterion_score: Optional[float] = None
    split: Optional[SplitName] = None
    metadata: Optional[dict[str, Any]] = None

    def __post_init__(self) -> None:
        _check_version(self.schema_version, ACTIVATION_RECORD)
        _check_finite("criterion_score", self.criterion_score)
        _check_unit("criterion_score", self.criterion_score)
        if self.prompt_id is None and self.text is None:
            raise _bad("prompt_id", "a row needs a prompt_id (or a text to derive one from)")
        if self.token_index is not None and self.token_index < 0:
            raise _bad("token_index", f"expected an integer >= 0, got {self.token_index}")
        if isinstance(self.features, dict):
            for key, value in self.features.items():
                if not math.isfinite(value):
                    raise _bad(f"features.{key}", f"expected a finite number, got {value}")
        if self.metadata is not None:
            covariates = self.metadata.get("covariates")
            if covariates is not None:
                if not isinstance(covariates, dict):
                    raise _bad("metadata.covariates", "expected an object of name: number or string")
                for key, value in covariates.items():
                    if isinstance(value, bool) or value is None:
                        continue
                    if isinstance(value, float) and not math.isfinite(value):
                        raise _bad(f"metadata.covariates.{key}", f"expected a finite number, got {value}")
                    if not isinstance(value, (int, float, str)):
                        raise _bad(
                            f"metadata.covariates.{key}",
                            f"expected a number, string or boolean, got {type(value).__name__}",
                        )


class FeatureRow(msgspec.Struct, frozen=True):
    """One row of a feature dump (``interp-lab.feature.v1``)."""

    feature_id: str
    schema_version: Optional[str] = None
    model: Optional[str] = None
    layer: Optional[int] = None
    label: Optional[str] = None
    examples: list[str] = []
    activation_signature: Optional[Union[list[float], dict[str, float]]] = None
    signature_prompt_ids: Optional[list[str]] = None
    decoder_signature: Optional[list[float]] = None
    causal_effects: Optional[dict[str, float]] = None
    source: Optional[str] = None
    fingerprint: Optional[dict[str, Any]] = None

    def __post_init__(self) -> None:
        _check_version(self.schema_version, FEATURE_ROW)
        if not self.feature_id:
            raise _bad("feature_id", "expected a non-empty string")
        sig = self.activation_signature
        values = sig.values() if isinstance(sig, dict) else (sig or ())
        for value in values:
            _check_finite("activation_signature", value)
        for value in self.decoder_signature or ():
            _check_finite("decoder_signature", value)
        for key, value in (self.causal_effects or {}).items():
            _check_finite(f"causal_effects.{key}", value)
        if self.signature_prompt_ids is not None:
            if not isinstance(sig, list):
                raise _bad("signature_prompt_ids", "only meaningful with a list activation_signature")
            if len(self.signature_prompt_ids) != len(sig):
                raise _bad(
                    "signature_prompt_ids",
                    f"has {len(self.signature_prompt_ids)} ids for {len(sig)} signature values",
                )


class InterventionRecord(msgspec.Struct, frozen=True):
    """One intervention run on one prompt (``interp-lab.intervention_record.v1``)."""

    feature_id: str
    intervention: str
    baseline_score: float
    intervention_score: float
    schema_version: Optional[str] = None
    model: Optional[str] = None
    strength: Optional[float] = None
    criterion: Optional[str] = None
    prompt_id: Optional[Union[str, int]] = None
    split: Optional[SplitName] = None
    side_effect_score: Optional[float] = None
    metadata: Optional[dict[str, Any]] = None

    def __post_init__(self) -> None:
        _check_version(self.schema_version, INTERVENTION_RECORD)
        if self.intervention not in DROP_KINDS and self.intervention not in RISE_KINDS:
            known = ", ".join(sorted(DROP_KINDS | RISE_KINDS))
            raise _bad("intervention", f"unknown kind {self.intervention!r} (known: {known})")
        for name in ("baseline_score", "intervention_score", "side_effect_score", "strength"):
            _check_finite(name, getattr(self, name))
        meta = self.metadata or {}
        control = meta.get("control_type")
        if control is not None and control not in CONTROL_TYPES:
            raise _bad(
                "metadata.control_type",
                f"unknown control_type {control!r} (known: {', '.join(sorted(CONTROL_TYPES))})",
            )
        direction = meta.get("direction")
        if direction is not None and direction not in ("up", "down"):
            raise _bad("metadata.direction", f"expected 'up' or 'down', got {direction!r}")
        for name in ("edit_norm", "for_strength", "match_tolerance"):
            value = meta.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value) or value < 0):
                raise _bad(f"metadata.{name}", f"expected a finite number >= 0, got {value!r}")
        for name in ("positive", "tolerance_widened"):
            value = meta.get(name)
            if value is not None and not isinstance(value, bool):
                raise _bad(f"metadata.{name}", f"expected true or false, got {value!r}")

    @property
    def control_type(self) -> str | None:
        control = (self.metadata or {}).get("control_type")
        return "random_feature" if control == "matched_frequency" else control

    @property
    def control_for(self) -> str | None:
        value = (self.metadata or {}).get("control_for")
        return None if value is None else str(value)


def intervention_sign(kind: str, direction: str | None = None) -> int:
    """+1 when a rise in score means the feature promotes the criterion, -1 for a fall.

    ``clamp`` and ``patch`` are rise kinds unless ``metadata.direction`` is ``down``.
    """
    if direction == "down" and kind in ("clamp", "patch", "patch_in", "steer"):
        return -1
    if direction == "up" and kind in ("clamp_down",):
        return 1
    return -1 if kind in DROP_KINDS else 1


class PromptRow(msgspec.Struct, frozen=True):
    """One prompt of a prompt set; only ``text`` is required."""

    text: str
    prompt_id: Optional[Union[str, int]] = None
    criterion_score: Optional[float] = None
    split: Optional[SplitName] = None
    labels: Optional[dict[str, Any]] = None
    metadata: Optional[dict[str, Any]] = None
    schema_version: Optional[str] = None

    def __post_init__(self) -> None:
        _check_version(self.schema_version, PROMPT_ROW)
        _check_finite("criterion_score", self.criterion_score)
        _check_unit("criterion_score", self.criterion_score)


CriterionKind = Literal["next_token", "semantic", "labelled", "contrast"]


class CriterionSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A criterion spec file (YAML or JSON); a plain string means ``semantic``."""

    criterion: str
    kind: CriterionKind = "semantic"
    targets: list[str] = []
    prompts: Optional[str] = None
    corpus: Optional[str] = None
    dataset: Optional[str] = None
    examples: list[str] = []
    hard_negatives: bool = True
    splits: dict[str, float] = msgspec.field(
        default_factory=lambda: {"discovery": 0.4, "calibration": 0.2, "heldout": 0.4}
    )
    min_heldout: int = 100
    # semantic: passages of the corpus ranked by similarity to the criterion (and examples); the top
    # ``positive_fraction`` (at most max_prompts / 2) are positives, the next ``margin`` fraction is
    # left out, negatives come from the rest (the most similar of them are the hard negatives)
    positive_fraction: float = 0.1
    margin: float = 0.2
    max_prompts: int = 1000
    embedding_model: str = "all-MiniLM-L6-v2"
    continuation_tokens: int = 16  # greedy tokens whose similarity scores a semantic criterion under edits
    # how interventions measure a criterion without targets: "next_token" (the mass on the vocabulary words
    # most similar to the criterion, ``derived_targets`` of them) or "continuation" (MiniLM similarity of a
    # greedy continuation: closer to the meaning, ``continuation_tokens`` times the cost); auto = next_token
    measure: Literal["auto", "next_token", "continuation"] = "auto"
    derived_targets: int = 50

    def __post_init__(self) -> None:
        for name in ("positive_fraction", "margin"):
            if not 0 <= getattr(self, name) < 1:
                raise _bad(name, "expected a fraction in [0, 1)")
        if self.positive_fraction + self.margin >= 1:
            raise _bad("margin", "positive_fraction + margin must leave room for negatives (< 1)")
        if self.max_prompts < 2:
            raise _bad("max_prompts", "expected an integer >= 2")
        if self.continuation_tokens < 1:
            raise _bad("continuation_tokens", "expected an integer >= 1")
        if self.derived_targets < 1:
            raise _bad("derived_targets", "expected an integer >= 1")
        unknown = set(self.splits) - set(SPLITS)
        if unknown:
            raise _bad("splits", f"unknown split names {sorted(unknown)} (use {', '.join(SPLITS)})")
        total = sum(self.splits.values())
        if any(v < 0 for v in self.splits.values()) or not math.isclose(total, 1.0, abs_tol=1e-6):
            raise _bad("splits", f"fractions must be >= 0 and sum to 1, got {total}")
        if self.kind == "next_token" and not self.targets:
            raise _bad("targets", "a next_token criterion needs a non-empty targets list")
        if self.min_heldout < 0:
            raise _bad("min_heldout", "expected an integer >= 0")
