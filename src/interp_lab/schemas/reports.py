"""Typed views of the JSON documents interp-lab writes: reports, matches, run manifests.

Writers build plain dicts (so the bytes are canonical); readers validate
with these structs, so a later step (``match``, the server, a config step)
gets one clear error for a file that is not what it claims to be.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal, Optional

import msgspec

from interp_lab.errors import InputError
from interp_lab.schemas.records import INSPECTION_REPORTS_READ, MATCHES, RUN_MANIFEST

# imported: a feature another tool published (Neuronpedia, Goodfire), not measured here: no held-out or causal claim
Tier = Literal["causal", "held_out", "discovery_only", "imported"]
Direction = Literal["promotes", "suppresses"]


class CausalEntry(msgspec.Struct, frozen=True):
    """One intervention kind's held-out causal evidence on a card (docs/FORMATS.md, "A card's causal"; how
    each number is computed: docs/EVIDENCE.md). v2 reports lack the calibrated test's fields (None)."""

    kind: Optional[str] = None  # ablate, mean_ablate, steer, clamp_up, clamp_down, patch
    strength: Optional[float] = None  # steering strength (units: median activation norm at the hook)
    split: Optional[str] = None  # the prompts measured: heldout
    n: Optional[int] = None  # prompts measured
    mean_effect: Optional[float] = None  # signed: positive promotes the criterion
    ci: Optional[list[Optional[float]]] = None  # bootstrap 95% interval of mean_effect
    claimed_direction: Optional[str] = None  # promotes / suppresses (from discovery), None: two-sided
    test: Optional[str] = None  # predictive_t or robust_t: the family test that decided
    p_value: Optional[float] = None  # against the controls' mean effects, in the claimed direction
    q_value: Optional[float] = None  # Benjamini-Hochberg over every card x kind of the report
    paired_lower_bound: Optional[float] = None  # one-sided 95% bound of effect - controls' 95th percentile
    strong_causal: bool = False  # every rule of settings.causal_rule holds
    reasons: list[str] = []  # every rule that failed
    small_effect: Optional[bool] = None  # below 5% of the baseline score (shown, not gating)
    kl: Optional[float] = None  # mean next-token KL on unrelated prompts (nats): the side effect
    controls: dict[str, Any] = {}  # n, threshold (their 95th percentile), families {random, permuted_label}


class Card(msgspec.Struct, frozen=True):
    """One feature of a report (docs/FORMATS.md, "Inspection report"); the blocks not typed here stay plain
    objects."""

    feature_id: str  # L{layer}:{kind}{index}: N neuron, R residual dimension, D direction, F SAE latent
    rank: int  # 1 = first; ordered by evidence tier, then unconfounded, then importance
    evidence_tier: Tier = "discovery_only"  # causal > held_out > discovery_only > imported
    importance: float = 0.0  # weighted mean of association, causal, stability and specificity in [0, 1]
    direction: Optional[Direction] = None  # what the feature does to the criterion, from discovery rows
    flags: list[str] = []  # e.g. causal_direction_differs, small_effect, confounded
    label: Optional[str] = None
    layer: Optional[int] = None
    association: Optional[dict[str, Any]] = None  # discovery, heldout (effect, ci, auroc, p, q ...), adjusted
    specificity: Optional[dict[str, Any]] = None
    stability: Optional[dict[str, Any]] = None
    causal: Optional[dict[str, CausalEntry]] = None  # by intervention kind (kind@strength for a sweep)
    side_effects: Optional[dict[str, Any]] = None
    examples: list[dict[str, Any]] = []  # top-activating held-out rows
    corpus_contexts: Optional[dict[str, Any]] = None  # top contexts in a corpus scan (top cards)
    fingerprint: dict[str, Any] = {}  # activation, decoder, vocab, text signatures (what match compares)
    provenance: dict[str, Any] = {}  # source, model, hook, how the feature was selected
    text_match: Optional[dict[str, Any]] = None  # tier imported: its descriptions' similarity to the criterion
    neuronpedia: Optional[dict[str, Any]] = None  # what Neuronpedia says of the feature: explanations, logits ...


class InspectionReport(msgspec.Struct, frozen=True):
    """report.json (``inspect``): what ``InspectResult.typed`` and ``read_report`` give."""

    criterion: str  # the criterion text (a spec file's criterion)
    cards: list[Card]  # ranked features
    schema_version: Optional[str] = None  # interp-lab.inspection_report.v3 (v2 read too)
    model: Optional[str] = None
    backend: Optional[str] = None  # hf, sae, saelens, scope, neuronpedia, goodfire, records, features, synthetic
    synthetic: bool = False  # True: planted data, measures no model
    inputs: list[dict[str, Any]] = []  # role, file name, sha256, rows
    settings: dict[str, Any] = {}  # every knob, the importance formula, the selection and causal rules
    summary: dict[str, Any] = {}
    warnings: list[str] = []
    notes: list[str] = []

    def __post_init__(self) -> None:
        if self.schema_version is not None and self.schema_version not in INSPECTION_REPORTS_READ:
            raise ValueError(f"@schema_version: unknown schema_version {self.schema_version!r} "
                             f"(this reader knows {', '.join(map(repr, INSPECTION_REPORTS_READ))})")


class Match(msgspec.Struct, frozen=True):
    """One candidate pair of matches.json (docs/FORMATS.md, "Matches")."""

    left_feature: str
    right_feature: str
    score: float  # weighted mean of the component similarities
    components: dict[str, float] = {}  # similarity per fingerprint part (activation, decoder, vocab, text)
    p_value: Optional[float] = None  # under the permutation null of random pairs
    rank_left: Optional[int] = None  # this right feature's rank among the left feature's candidates
    rank_right: Optional[int] = None
    one_to_one: bool = False  # in the one-to-one assignment and beyond the null's 1 - alpha quantile
    component_p_values: dict[str, float] = {}
    p_value_best_of: Optional[float] = None  # p of being the best of the left feature's candidates by chance
    left_label: Optional[str] = None
    right_label: Optional[str] = None


class MatchesFile(msgspec.Struct, frozen=True):
    """matches.json (``match``): what ``MatchResult.typed`` gives."""

    schema_version: Literal["interp-lab.matches.v2"]
    left: dict[str, Any]
    right: dict[str, Any]
    method: dict[str, Any]
    matches: list[Match]
    summary: dict[str, Any] = {}


class RunStep(msgspec.Struct, frozen=True):
    name: str
    command: str
    status: Literal["ok", "cached", "failed"]
    options: dict[str, Any] = {}
    inputs: list[dict[str, Any]] = []
    outputs: list[dict[str, Any]] = []


class RunManifest(msgspec.Struct, frozen=True):
    schema_version: Literal["interp-lab.run.v1"]
    tool: dict[str, Any]
    status: Literal["ok", "failed", "running"]
    steps: list[RunStep]
    config: dict[str, Any] = {}


Sha256 = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]  # a hex sha256 digest


class ManifestFile(msgspec.Struct, frozen=True):
    """An output of a command's manifest: the file (relative to the manifest), its sha256 and size."""

    file: str
    sha256: Sha256
    bytes: Optional[int] = None


class ManifestInput(msgspec.Struct, frozen=True):
    """An input of a command's manifest: its role (model, criterion, prompts, records ...), where it was (relative to
    the manifest, or ``<cache>/...``), its sha256 and rows; ``params`` for a model (name, source, revision ...)."""

    role: str
    path: Optional[str] = None
    sha256: Optional[Sha256] = None
    rows: Optional[int] = None
    params: dict[str, Any] = {}


class Tool(msgspec.Struct, frozen=True):
    name: str
    version: str


class InspectManifest(msgspec.Struct, frozen=True):
    """manifest.json beside a report (``io.manifest.inspect_manifest``): versions, inputs and outputs with hashes."""

    schema_version: Literal["interp-lab.run.v1"]
    tool: Tool  # interp-lab and its version
    command: str  # inspect
    outputs: list[ManifestFile]
    inputs: list[ManifestInput] = []
    python: Optional[str] = None
    packages: dict[str, str] = {}  # the versions of the libraries that decide the numbers
    created: Optional[str] = None
    seed: Optional[int] = None


class SAEManifest(msgspec.Struct, frozen=True):
    """manifest.json of an SAE checkpoint (``train-sae``; docs/FORMATS.md "SAE checkpoint"), the fields read back."""

    schema_version: Literal["interp-lab.sae.v1"]
    architecture: str
    hooks: list[str]
    model: Optional[str] = None
    revision: Optional[str] = None  # the model's (for a registered model, its GGUF's sha256)
    dataset: Optional[str] = None
    dataset_hash: Optional[str] = None
    tokens_seen: Optional[int] = None
    sae_config: dict[str, Any] = {}
    train_config: dict[str, Any] = {}


_KINDS = {**{v: InspectionReport for v in INSPECTION_REPORTS_READ}, MATCHES: MatchesFile, RUN_MANIFEST: RunManifest}


def read_document(path: str | os.PathLike, kind: type[msgspec.Struct] = InspectionReport) -> Any:
    """Read and validate one JSON document (a report, matches file or run manifest)."""
    from interp_lab.io.jsonl import DECODE_ERRORS, validation_error

    try:
        raw = open(path, "rb").read()
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    try:
        return msgspec.json.decode(raw, type=kind)
    except DECODE_ERRORS as exc:
        err = validation_error(path, 0, exc, raw)
        err.line = None  # a whole-document format: the field path says where
        raise err from None


def read_report(path: str | os.PathLike) -> InspectionReport:
    return read_document(path, InspectionReport)
