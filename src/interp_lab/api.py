"""The Python API: ``inspect()`` (and, as later issues land, ``compare()``, ``harvest()`` ...).

Every CLI command is one call here plus argument parsing and rendering.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from interp_lab.errors import UsageError
from interp_lab.evidence.cards import build_cards
from interp_lab.evidence.causal import (
    CausalSettings,
    InterventionTable,
    causal_evidence,
    interventions_from_dicts,
    load_interventions,
)
from interp_lab.evidence.examples import ExampleFinder, activation_signatures
from interp_lab.evidence.rank import AssociationResult, RankSettings, rank_associations
from interp_lab.io.records import RecordMatrix, read_records
from interp_lab.providers import resolve_backend
from interp_lab.report.build import InputInfo, build_report, layer_of
from interp_lab.report.write import write_report

StageProgress = Callable[..., None]


@dataclass
class InspectResult:
    """What ``inspect()`` returns: the report, its cards and where they were written."""

    report: dict[str, Any]
    paths: dict[str, Path] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def cards(self) -> list[dict[str, Any]]:
        return self.report["cards"]

    @property
    def report_path(self) -> Path | None:
        return self.paths.get("json")


def inspect(
    model: str | None = None,
    criterion: str | None = None,
    *,
    backend: str | None = None,
    records: str | os.PathLike | None = None,
    features: str | os.PathLike | None = None,
    interventions: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    top_k: int = 10,
    seed: int = 0,
    bootstrap: int = 500,
    allow_intervention_criterion_mismatch: bool = False,
    synthetic: dict[str, Any] | None = None,
    formats: tuple[str, ...] = ("json", "md", "html"),
    progress: StageProgress | None = None,
) -> InspectResult:
    """Rank the features that carry ``criterion`` and write a report.

    ``backend`` is ``records`` (activation records), ``features`` (a feature
    dump), or ``synthetic`` (planted ground truth, alias ``toy``); without
    it, ``records`` implies records and ``features`` implies features.
    With ``out``, writes report.json / report.md / report.html and a
    manifest.json there (all or nothing). ``progress(stage, done, total)``
    hears about each stage (``total`` None when unknown).
    """
    say = progress or (lambda stage, done=0, total=None: None)
    if not criterion:
        raise UsageError("--criterion is required")
    from interp_lab.io.specs import load_criterion

    spec = load_criterion(str(criterion))
    criterion_spec = None
    if spec.criterion != criterion:  # read from a spec file: the report names the criterion itself
        criterion_spec = {"file": Path(criterion).name, "kind": spec.kind}
        criterion = spec.criterion
    if top_k < 1:
        raise UsageError("--top-k must be at least 1")
    backend = resolve_backend(backend, records=records, features=features, model=model)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    rank_settings = RankSettings(top_k=top_k, seed=seed, bootstrap=bootstrap)
    causal_settings = CausalSettings(seed=seed, allow_criterion_mismatch=allow_intervention_criterion_mismatch)
    inputs: list[InputInfo] = []
    warnings: list[str] = []
    notes: list[str] = []
    planted: dict[str, str] = {}
    matrix: RecordMatrix | None = None
    table: InterventionTable | None = None
    dump = None
    synthetic_params = None

    if backend == "synthetic":
        from interp_lab.providers.synthetic import SyntheticSpec, generate

        spec = SyntheticSpec(**{"seed": seed, **(synthetic or {})})
        if model:
            spec = SyntheticSpec(**{**spec.as_dict(), "model": model})
        ev = generate(spec)
        matrix, planted = ev.records, ev.planted
        synthetic_params = spec.as_dict()
        inputs.append(InputInfo.synthetic(synthetic_params))
        if interventions is None and ev.interventions:
            table = interventions_from_dicts(ev.interventions, criterion, name="synthetic interventions")
        warnings.append("SYNTHETIC EVIDENCE: generated with planted ground truth by interp_lab.providers.synthetic; "
                        "it measures no model")
    if records is not None:
        matrix = read_records(records, progress=lambda d, t: say("reading records", d, t))
        matrix.path = Path(records).name  # the report names inputs without their directories
        inputs.append(InputInfo.file("records", records, rows=matrix.n_rows))
    if features is not None:
        from interp_lab.providers.features import load_dump

        dump = load_dump(features)
        dump.path = Path(features).name
        inputs.append(InputInfo.file("features", features, rows=len(dump.rows)))
    if interventions is not None:
        table = load_interventions(interventions, criterion, allow_mismatch=allow_intervention_criterion_mismatch)
        table.path = Path(interventions).name
        inputs.append(InputInfo.file("interventions", interventions, rows=table.rows_read))
    timings["load"] = time.perf_counter() - t0

    # ---- association: records (or signatures of a dump against the records' scores)
    rank_on = matrix
    if backend == "features" and dump is not None:
        rank_on = None
        if matrix is not None:
            from interp_lab.providers.features import signature_matrix

            rank_on, sig_notes = signature_matrix(dump, matrix)
            notes.extend(sig_notes)
    assoc: AssociationResult | None = None
    features_out: dict[str, dict[str, Any]] = {}
    available_heldout = None
    t1 = time.perf_counter()
    if rank_on is not None:
        say("ranking features", 0, None)
        force = []
        if table is not None:
            col_of = {f: i for i, f in enumerate(rank_on.feature_ids.tolist())}
            force = sorted({col_of[f] for f in _tested_features(table) if f in col_of})
        assoc = rank_associations(rank_on, rank_settings, force)
        available_heldout = assoc.split_counts["heldout"]["prompts"]
        finder = ExampleFinder(rank_on, assoc.splits)
        sigs = activation_signatures(rank_on, assoc.candidates, rank_settings.signature_probes)
        for c in assoc.candidates:
            fid = str(rank_on.feature_ids[c])
            entry: dict[str, Any] = {
                "assoc": assoc.evidence[c],
                "label": rank_on.feature_labels.get(fid),
                "layer": rank_on.feature_layers.get(fid, layer_of(fid)),
                "examples": finder.top(c, rank_settings.examples),
                "fingerprint": {"activation": sigs[c]},
                "provenance": _provenance(backend, rank_on, planted.get(fid)),
            }
            if fid in rank_on.feature_decoders:
                entry["fingerprint"]["decoder"] = {
                    "vector": rank_on.feature_decoders[fid],
                    "basis": {"model": (rank_on.models or [model])[0], "hooks": rank_on.hooks,
                              "layer": entry["layer"]},
                }
            features_out[fid] = entry
        if backend == "features":
            notes.append("association measured from the dump's activation signatures against the criterion scores "
                         "of the same probe prompts in the records")
    timings["rank"] = time.perf_counter() - t1

    # ---- causal evidence
    t2 = time.perf_counter()
    if table is not None:
        say("causal evidence", 0, None)
        causal = causal_evidence(table, causal_settings, available_heldout)
        for fid, ev in causal.items():
            entry = features_out.setdefault(fid, {"layer": layer_of(fid), "provenance": {"source": backend}})
            entry["causal"] = ev
        if table.rows_other_criterion:
            warnings.append(f"{table.rows_other_criterion} of {table.rows_read} intervention rows name another "
                            "criterion and were left out (allow_intervention_criterion_mismatch to use them)")
    timings["causal"] = time.perf_counter() - t2

    # ---- feature dump fields
    if dump is not None:
        from interp_lab.providers.features import card_fields

        reported = {f: card_fields(r, criterion) for f, r in dump.rows.items()}
        with_effect = [f for f, r in reported.items() if r["reported_causal"] is not None]
        for fid in list(features_out):
            if fid in reported:
                base = reported[fid]
                entry = features_out[fid]
                entry.setdefault("label", base["label"])
                entry["label"] = entry.get("label") or base["label"]
                entry["examples"] = entry.get("examples") or base["examples"]
                entry["fingerprint"] = {**base["fingerprint"], **entry.get("fingerprint", {})}
                entry["reported_causal"] = base["reported_causal"]
                entry["provenance"] = {**base["provenance"], **entry.get("provenance", {})}
        if not features_out:
            pool = sorted(with_effect, key=lambda f: (-abs(reported[f]["reported_causal"]), f))[:top_k]
            if pool:
                notes.append("ranked by the causal_effects the dump reports for this criterion (no intervals: "
                             "discovery-only evidence)")
            else:
                pool = list(reported)[:top_k]
                warnings.append("no evidence about this criterion in the inputs (no records to compare signatures "
                                "with, no causal_effects for it, no interventions): the cards are unranked")
            for fid in pool:
                features_out[fid] = {**reported[fid], "provenance": {**reported[fid]["provenance"]}}
        if dump.duplicates_dropped:
            notes.append(f"{dump.duplicates_dropped} exact duplicate feature rows dropped")

    cards = build_cards(features_out)
    if criterion_spec is not None:
        notes.append(f"criterion read from {criterion_spec['file']} (kind {criterion_spec['kind']})")
    labelled = (matrix.sources if matrix is not None else []) + (table.sources if table is not None else [])
    is_synthetic = backend == "synthetic" or "synthetic" in labelled
    if is_synthetic and backend != "synthetic":
        warnings.insert(0, "SYNTHETIC EVIDENCE: the input rows say metadata.source = synthetic; "
                           "they measure no model")
    if matrix is not None:
        if model and matrix.models and model not in matrix.models:
            warnings.append(f"records name model(s) {', '.join(matrix.models)}, not {model!r}")
        if matrix.duplicates_dropped:
            notes.append(f"{matrix.duplicates_dropped} exact duplicate record rows dropped")
    report = build_report(
        model=model or (matrix.models[0] if matrix is not None and matrix.models else None),
        criterion=criterion,
        backend=backend,
        inputs=inputs,
        assoc=assoc,
        table=table,
        cards=cards,
        rank_settings=rank_settings,
        causal_settings=causal_settings,
        warnings=warnings,
        notes=notes,
        synthetic=is_synthetic,
        synthetic_params=synthetic_params,
        planted=planted,
        rank_on=rank_on,
    )
    timings["total"] = time.perf_counter() - t0
    result = InspectResult(report=report, timings=timings)
    if out is not None:
        say("writing the report", 0, None)
        result.paths = write_report(report, out, formats, inputs=inputs, timings=timings)
    return result


def _tested_features(table: InterventionTable) -> set[str]:
    ctl = np.array([c is not None for c in table.control_type], dtype=bool)
    return set(table.feature_id[~ctl].tolist())


def _provenance(backend: str, m: RecordMatrix, role: str | None) -> dict[str, Any]:
    prov: dict[str, Any] = {
        "source": backend,
        "evidence": m.path,
        "rows": "candidates chosen on discovery rows; reported numbers from held-out rows",
        "models": m.models,
        "hooks": m.hooks,
        "record_sources": m.sources,
    }
    if backend == "synthetic":
        prov["synthetic"] = True
        if role:
            prov["planted_role"] = role
    return prov
