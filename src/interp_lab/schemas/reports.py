"""Typed views of the JSON documents interp-lab writes: reports, matches, run manifests.

Writers build plain dicts (so the bytes are canonical); readers validate
with these structs, so a later step (``match``, the server, a config step)
gets one clear error for a file that is not what it claims to be.
"""

from __future__ import annotations

import os
from typing import Any, Literal, Optional

import msgspec

from interp_lab.errors import InputError
from interp_lab.schemas.records import INSPECTION_REPORTS_READ, MATCHES, RUN_MANIFEST

Tier = Literal["causal", "held_out", "discovery_only"]
Direction = Literal["promotes", "suppresses"]


class Card(msgspec.Struct, frozen=True):
    """One feature of a report (formats.md); nested blocks stay plain objects."""

    feature_id: str
    rank: int
    evidence_tier: Tier = "discovery_only"
    importance: float = 0.0
    direction: Optional[Direction] = None
    flags: list[str] = []
    label: Optional[str] = None
    layer: Optional[int] = None
    association: Optional[dict[str, Any]] = None
    specificity: Optional[dict[str, Any]] = None
    stability: Optional[dict[str, Any]] = None
    causal: Optional[dict[str, Any]] = None
    side_effects: Optional[dict[str, Any]] = None
    examples: list[dict[str, Any]] = []
    corpus_contexts: Optional[dict[str, Any]] = None
    fingerprint: dict[str, Any] = {}
    provenance: dict[str, Any] = {}


class InspectionReport(msgspec.Struct, frozen=True):
    criterion: str
    cards: list[Card]
    schema_version: Optional[str] = None
    model: Optional[str] = None
    backend: Optional[str] = None
    synthetic: bool = False
    inputs: list[dict[str, Any]] = []
    settings: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    warnings: list[str] = []
    notes: list[str] = []

    def __post_init__(self) -> None:
        if self.schema_version is not None and self.schema_version not in INSPECTION_REPORTS_READ:
            raise ValueError(f"@schema_version: unknown schema_version {self.schema_version!r} "
                             f"(this reader knows {', '.join(map(repr, INSPECTION_REPORTS_READ))})")


class Match(msgspec.Struct, frozen=True):
    left_feature: str
    right_feature: str
    score: float
    components: dict[str, float] = {}
    p_value: Optional[float] = None
    rank_left: Optional[int] = None
    rank_right: Optional[int] = None
    one_to_one: bool = False
    component_p_values: dict[str, float] = {}
    p_value_best_of: Optional[float] = None
    left_label: Optional[str] = None
    right_label: Optional[str] = None


class MatchesFile(msgspec.Struct, frozen=True):
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
