"""``inspect()``: rank the features that carry a criterion and write the report."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from interp_lab.api.registry import command
from interp_lab.errors import UsageError
from interp_lab.evidence.cards import build_cards
from interp_lab.evidence.causal import (
    CausalSettings,
    InterventionTable,
    causal_evidence,
    claim_of,
)
from interp_lab.evidence.examples import ExampleFinder, activation_signatures
from interp_lab.evidence.rank import AssociationResult, RankSettings, rank_associations
from interp_lab.io.records import RecordMatrix
from interp_lab.providers import get_provider, resolve_backend
from interp_lab.providers.base import Evidence, ModelPlan, Request
from interp_lab.providers.hf import HFOptions
from interp_lab.providers.options import ProviderOptions
from interp_lab.report.build import build_report
from interp_lab.report.write import write_report
from interp_lab.schemas.command import Progress, option
from interp_lab.schemas.feature_id import layer_of, sort_key

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

    @property
    def typed(self):
        """The report as a validated ``schemas.reports.InspectionReport`` (attributes with documented types:
        ``res.typed.cards[0].causal["ablate"].q_value``); ``report`` is the same as plain JSON data."""
        import msgspec

        from interp_lab.schemas.reports import InspectionReport

        return msgspec.convert(self.report, InspectionReport)


@dataclass(kw_only=True)
class InspectOptions:
    """The options of ``inspect`` (the command line's flags; a run config's ``inspect`` step; ``inspect()``'s
    keywords)."""

    model: str | None = option(None, "Model id the evidence comes from.")
    criterion: str | None = option(None, "The criterion, in words (or a criterion spec file).", required=True)
    # not a choice: an unknown backend gets the one line that names the known ones and those of later versions
    backend: str | None = option(None, "hf | sae | saelens | scope | neuronpedia | goodfire | records | features | "
                                       "synthetic (alias toy), or a provider a package registers (`interp-lab "
                                       "providers` lists them). Default: implied by --records/--features, else hf "
                                       "with --model.")
    records: Path | None = option(None, "Activation records (.jsonl[.gz|.zst] or .parquet).")
    features: Path | None = option(None, "Feature dump JSONL.")
    interventions: Path | None = option(None, "Intervention records JSONL.")
    out: Path | None = option(None, "Directory for report.json, report.md, report.html.")
    top_k: int = option(10, "Candidates chosen on the discovery split.", min=1)
    seed: int = option(0, "Seed for resampling (and synthetic data).")
    bootstrap: int = option(500, "Bootstrap resamples for held-out intervals.", min=50)
    select_by: Literal["association", "top_activations", "both"] | None = option(
        None, "How candidates are chosen on discovery rows (the effect over every row, or the mean score of each "
              "feature's 20 highest-activating rows; both: in turn). Default: both for --backend sae, else "
              "association.")
    allow_intervention_criterion_mismatch: bool = option(
        False, "Use intervention rows whose criterion text differs from --criterion.")
    synthetic: dict[str, Any] | None = option(None, "synthetic: n_prompts, n_features, seed, intervention_prompts.",
                                              cli=False)
    formats: tuple[str, ...] = option(("json", "md", "html"), "Report files written in --out.", cli=False)
    hf: HFOptions | None = option(None, "hf / sae: what the model's own evidence computes.")
    provider: ProviderOptions | None = option(None, "neuronpedia / saelens / scope / goodfire / a package's provider: "
                                                    "where the features come from.")


def _logs(o: InspectOptions) -> bool:
    """A log line per stage when the evidence comes from the model (the long runs)."""
    return o.records is None and o.features is None and o.backend in (None, "hf", "sae", "saelens", "scope")


@command("inspect", options=InspectOptions, result=InspectResult, group="inspect", step=True, json=True, log=_logs,
         positional=("model", "criterion"),
         help="Rank and explain the features that carry a criterion (with --model alone: on the model itself).")
def inspect(o: InspectOptions, progress: Progress) -> InspectResult:
    """Rank the features that carry ``criterion`` and write a report.

    ``backend`` is ``records`` (activation records), ``features`` (a feature
    dump), or ``synthetic`` (planted ground truth, alias ``toy``); without
    it, ``records`` implies records and ``features`` implies features.
    ``hf`` (the default when ``model`` is given and no evidence file is)
    compiles the criterion, reads the model's neurons, residual dimensions
    and contrast directions, ranks them and tests the candidates with
    interventions and controls; its options are ``hf=providers.hf.HFOptions``
    (``HFOptions(sae=DIR)`` adds an SAE's latents to the candidates). ``sae`` does
    the same with the SAE's latents as the only candidates.
    ``select_by`` (``evidence.rank.RankSettings``): how candidates are chosen on discovery rows;
    default ``both`` (association and top activations in turn) for ``sae``, ``association`` otherwise.
    With ``out``, writes report.json / report.md / report.html and a
    manifest.json there (all or nothing). ``progress(stage, done, total)``
    hears about each stage (``total`` None when unknown).
    """
    model, criterion, backend, out, top_k, seed = o.model, o.criterion, o.backend, o.out, o.top_k, o.seed
    records, features, interventions, select_by = o.records, o.features, o.interventions, o.select_by
    allow_intervention_criterion_mismatch, hf = o.allow_intervention_criterion_mismatch, o.hf
    bootstrap, synthetic, formats = o.bootstrap, o.synthetic, o.formats
    say = progress
    if not criterion:
        raise UsageError("--criterion is required")
    from interp_lab.io.specs import load_criterion

    criterion_arg = str(criterion)
    spec = load_criterion(criterion_arg)
    criterion_spec = None
    if spec.criterion != criterion:  # read from a spec file: the report names the criterion itself
        criterion_spec = {"file": Path(criterion).name, "kind": spec.kind}
        criterion = spec.criterion
    if top_k < 1:
        raise UsageError("--top-k must be at least 1")
    backend = resolve_backend(backend, records=records, features=features, model=model)
    provider = get_provider(backend)
    request = Request(backend=backend, model=model, criterion=criterion, criterion_arg=criterion_arg, seed=seed,
                      top_k=top_k, records=records, features=features, interventions=interventions,
                      allow_intervention_criterion_mismatch=allow_intervention_criterion_mismatch,
                      synthetic=synthetic, hf=hf, options=o.provider or ProviderOptions())
    if hasattr(provider, "check"):
        provider.check(request)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    got = provider.provide(request, say)
    plan = got if isinstance(got, ModelPlan) else None
    run_hf = None
    if plan is not None:
        from interp_lab.api import hf as hf_api

        ev, run_hf = hf_api.collect_evidence(model, criterion_arg, HFOptions.from_value(plan.hf), seed, say,
                                             plan.pipeline)
        ev.backend = backend
        ev.inputs += plan.inputs
        ev.notes += plan.notes
        model = run_hf.lm.name
    elif isinstance(got, Evidence):
        ev = got
        model = model or ev.model
    else:
        raise UsageError(f"backend {backend!r}: its provider returned {type(got).__name__}, not Evidence or ModelPlan")
    rank_settings = RankSettings(top_k=top_k, seed=seed, bootstrap=bootstrap,
                                 select_by=select_by or ("both" if run_hf and run_hf.backend == "sae" else
                                                         "association"))
    causal_settings = CausalSettings(seed=seed, allow_criterion_mismatch=allow_intervention_criterion_mismatch)
    timings["load"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    force, selectable = (), None
    if run_hf is not None:
        force, selectable = list(run_hf.candidates.forced), run_hf.candidates.selectable()
        if plan.selected:  # the features the user named: the only candidates, tested whatever their rank
            ids = run_hf.candidates.matrix.feature_ids.tolist()
            missing = sorted(set(plan.selected) - set(ids), key=sort_key)
            if missing:
                ev.warnings.append(f"{len(missing)} selected features never fire on the criterion's prompts and "
                                   f"have no card: {', '.join(missing[:20])}")
            force = [f for f in dict.fromkeys(plan.selected) if f in set(ids)]
            selectable = np.isin(np.asarray(ids, dtype=object), force)
    assoc, features_out = _rank(ev, model, rank_settings, say, force=force, selectable=selectable)
    if plan is not None:
        for fid, entry in features_out.items():
            entry["provenance"].update(plan.provenance)
            if fid in plan.cards:
                entry["label"] = entry.get("label") or plan.cards[fid].get("label")
                entry["neuronpedia"] = plan.cards[fid].get("neuronpedia")
    for card in ev.imported or ():
        features_out.setdefault(card["feature_id"], card)
    timings["rank"] = time.perf_counter() - t1

    # the direction of each claim is the ranker's, fixed on discovery rows before any test (steering strengths
    # are calibrated in it, and the held-out test is one-sided in it)
    claims = {fid: claim_of(f["assoc"]["direction"]) for fid, f in features_out.items() if f.get("assoc")}
    claims = {fid: c for fid, c in claims.items() if c is not None}
    if run_hf is not None:
        tested = [str(ev.rank_on.feature_ids[c]) for c in assoc.candidates]
        ev.table = hf_api.run_validation(run_hf, tested, say, claims)
    t2 = time.perf_counter()
    if ev.table is not None:
        say("causal evidence", 0, None)
        available = None if assoc is None else assoc.split_counts["heldout"]["prompts"]
        strengths = run_hf.run.strengths if run_hf is not None and run_hf.run is not None else {}
        budgets = {float(i["kl_budget"]) for i in strengths.values() if isinstance(i, dict) and "kl_budget" in i}
        if len(budgets) == 1:  # the budget the steering strengths were calibrated under
            causal_settings = replace(causal_settings, kl_budget=budgets.pop())
        for fid, causal in causal_evidence(ev.table, causal_settings, available, claims=claims,
                                           strengths=strengths).items():
            entry = features_out.setdefault(fid, {"layer": layer_of(fid), "provenance": {"source": backend}})
            entry["causal"] = causal
        if ev.table.controls_without_target:
            ev.notes.append(f"{ev.table.controls_without_target} control rows of {ev.table.path} give "
                            "metadata.control_type without control_for (the 0.2 form): each was counted as a "
                            "control for every tested feature of its intervention kind and strength")
        if ev.table.rows_other_criterion:
            ev.warnings.append(f"{ev.table.rows_other_criterion} of {ev.table.rows_read} intervention rows name "
                               "another criterion and were left out (allow_intervention_criterion_mismatch to "
                               "use them)")
    timings["causal"] = time.perf_counter() - t2
    if ev.dump is not None:
        _merge_dump(ev, features_out, criterion, top_k)

    cards = build_cards(features_out)
    if run_hf is not None:
        hf_api.add_contexts(run_hf, cards, say)
        hf_api.add_vocab(run_hf, cards)
        hf_api.add_probe_signatures(run_hf, cards, say)
        timings.update({f"hf_{k}": v for k, v in run_hf.timings.items()})
    if criterion_spec is not None:
        ev.notes.append(f"criterion read from {criterion_spec['file']} (kind {criterion_spec['kind']})")
    m = ev.matrix
    labelled = (m.sources if m is not None else []) + (ev.table.sources if ev.table is not None else [])
    is_synthetic = backend == "synthetic" or "synthetic" in labelled
    if is_synthetic and backend != "synthetic":
        ev.warnings.insert(0, "SYNTHETIC EVIDENCE: the input rows say metadata.source = synthetic; "
                              "they measure no model")
    if m is not None:
        if model and m.models and model not in m.models:
            ev.warnings.append(f"records name model(s) {', '.join(m.models)}, not {model!r}")
        if m.duplicates_dropped:
            ev.notes.append(f"{m.duplicates_dropped} exact duplicate record rows dropped")
    report = build_report(
        model=model or (m.models[0] if m is not None and m.models else None),
        criterion=criterion,
        backend=backend,
        inputs=ev.inputs,
        assoc=assoc,
        table=ev.table,
        cards=cards,
        rank_settings=rank_settings,
        causal_settings=causal_settings,
        warnings=ev.warnings,
        notes=ev.notes,
        synthetic=is_synthetic,
        synthetic_params=ev.synthetic_params,
        planted=ev.planted,
        rank_on=ev.rank_on,
        pipeline=hf_api.pipeline_settings(run_hf) if run_hf else None,
    )
    timings["total"] = time.perf_counter() - t0
    result = InspectResult(report=report, timings=timings)
    if out is not None:
        say("writing the report", 0, None)
        result.paths = write_report(report, out, formats, inputs=ev.inputs, timings=timings,
                                    extra=hf_api.extra_files(run_hf) if run_hf else None,
                                    run_info=hf_api.run_info(run_hf, out) if run_hf else None)
    return result


def _rank(ev: Evidence, model: str | None, settings: RankSettings, say: StageProgress, force: Any = (),
          selectable: np.ndarray | None = None) -> tuple[AssociationResult | None, dict[str, dict[str, Any]]]:
    """Association for every feature; card fields (evidence, examples, fingerprint) for the candidates
    (the top_k among ``selectable`` columns, every feature with intervention evidence, the ids in ``force``)."""
    m = ev.rank_on
    if m is None:
        return None, {}
    say("ranking features", 0, None)
    wanted = set(force) | (_tested_features(ev.table) if ev.table is not None else set())
    cols: list[int] = []
    if wanted:
        col_of = {f: i for i, f in enumerate(m.feature_ids.tolist())}
        cols = sorted({col_of[f] for f in wanted if f in col_of})
    assoc = rank_associations(m, settings, cols, selectable,
                              forced_by="calibration (contrast direction)" if force else "interventions")
    finder = ExampleFinder(m, assoc.splits)
    sigs = activation_signatures(m, assoc.candidates, settings.signature_probes)
    out: dict[str, dict[str, Any]] = {}
    for c in assoc.candidates:
        fid = str(m.feature_ids[c])
        entry: dict[str, Any] = {
            "assoc": assoc.evidence[c],
            "label": m.feature_labels.get(fid),
            "layer": m.feature_layers.get(fid, layer_of(fid)),
            "examples": finder.top(c, settings.examples),
            "fingerprint": {"activation": sigs[c]},
            "provenance": _provenance(ev.backend, m, fid, ev.planted.get(fid)),
        }
        if fid in m.feature_decoders:
            entry["fingerprint"]["decoder"] = {
                "vector": m.feature_decoders[fid],
                "basis": {"model": (m.models or [model])[0], "hooks": m.hooks, "layer": entry["layer"]},
            }
        out[fid] = entry
    if ev.backend == "features":
        ev.notes.append("association measured from the dump's activation signatures against the criterion "
                        "scores of the same probe prompts in the records")
    return assoc, out


def _merge_dump(ev: Evidence, features_out: dict[str, dict[str, Any]], criterion: str, top_k: int) -> None:
    """Add a feature dump's labels, examples and fingerprints; rank it alone when nothing else did."""
    from interp_lab.providers.features import card_fields

    reported = {f: card_fields(r, criterion) for f, r in ev.dump.rows.items()}
    for fid, entry in features_out.items():
        base = reported.get(fid)
        if base is None:
            continue
        entry["label"] = entry.get("label") or base["label"]
        entry["examples"] = entry.get("examples") or base["examples"]
        entry["fingerprint"] = {**base["fingerprint"], **entry.get("fingerprint", {})}
        entry["reported_causal"] = base["reported_causal"]
        entry["provenance"] = {**base["provenance"], **entry.get("provenance", {})}
    if not features_out:
        with_effect = [f for f, r in reported.items() if r["reported_causal"] is not None]
        pool = sorted(with_effect, key=lambda f: (-abs(reported[f]["reported_causal"]), f))[:top_k]
        if pool:
            ev.notes.append("ranked by the causal_effects the dump reports for this criterion (no intervals: "
                            "discovery-only evidence)")
        else:
            pool = list(reported)[:top_k]
            ev.warnings.append("no evidence about this criterion in the inputs (no records to compare signatures "
                               "with, no causal_effects for it, no interventions): the cards are unranked")
        for fid in pool:
            features_out[fid] = dict(reported[fid])
    if ev.dump.duplicates_dropped:
        ev.notes.append(f"{ev.dump.duplicates_dropped} exact duplicate feature rows dropped")


def _tested_features(table: InterventionTable) -> set[str]:
    ctl = np.array([c is not None for c in table.control_type], dtype=bool)
    return set(table.feature_id[~ctl].tolist())


def _provenance(backend: str, m: RecordMatrix, fid: str, role: str | None) -> dict[str, Any]:
    hook = m.feature_hooks.get(fid)
    prov: dict[str, Any] = {
        "source": backend,
        "evidence": m.path,
        "rows": "candidates chosen on discovery rows; reported numbers from held-out rows",
        "models": m.models,
        "hooks": [hook] if hook else m.hooks,
        "record_sources": m.sources,
    }
    if backend == "synthetic":
        prov["synthetic"] = True
        if role:
            prov["planted_role"] = role
    return prov
