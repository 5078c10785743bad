"""Assemble ``report.json`` (``interp-lab.inspection_report.v3``).

The report holds no timestamps, absolute paths or host names (they go to
the manifest), so the same inputs and seed give the same bytes wherever
``--out`` points.
"""

from __future__ import annotations

from typing import Any

from interp_lab._version import __version__
from interp_lab.evidence.cards import IMPORTANCE_DOC, TIERS
from interp_lab.evidence.causal import CausalSettings, InterventionTable, causal_rule
from interp_lab.evidence.causal_synthetic import MEASURED
from interp_lab.evidence.rank import AssociationResult, RankSettings
from interp_lab.evidence.splits import SCHEMES
from interp_lab.io.inputs import InputInfo
from interp_lab.io.records import RecordMatrix
from interp_lab.schemas.records import INSPECTION_REPORT


def build_report(
    *,
    model: str | None,
    criterion: str,
    backend: str,
    inputs: list[InputInfo],
    assoc: AssociationResult | None,
    table: InterventionTable | None,
    cards: list[dict[str, Any]],
    rank_settings: RankSettings,
    causal_settings: CausalSettings,
    warnings: list[str],
    notes: list[str],
    synthetic: bool,
    synthetic_params: dict[str, Any] | None,
    planted: dict[str, str],
    rank_on: RecordMatrix | None,
    pipeline: dict[str, Any] | None = None,
) -> dict[str, Any]:
    splits: dict[str, Any] = {}
    if assoc is not None:
        splits["association"] = {
            "source": assoc.split_source,
            "scheme": SCHEMES["rank"] if assoc.split_source != "given" else "as given in the records",
            "counts": assoc.split_counts,
            "rule": "candidates chosen on discovery rows; every reported number and the importance from held-out rows",
        }
    if table is not None:
        counts: dict[str, int] = {}
        for code, name in enumerate(("discovery", "calibration", "heldout")):
            counts[name] = int((table.split == code).sum())
        splits["interventions"] = {"source": table.split_source, "rows": counts}
    tiers = {t: sum(1 for c in cards if c["evidence_tier"] == t) for t in TIERS}
    if not tiers["imported"]:  # a tier only imported features have
        del tiers["imported"]
    summary: dict[str, Any] = {"cards": len(cards), "tiers": tiers}
    if assoc is not None:
        summary.update({
            "features_tested": assoc.n_tested,
            "significant_on_discovery": assoc.n_significant,
            "criterion_type": "binary" if assoc.binary else "graded",
            "statistic": assoc.statistic,
        })
    if table is not None:
        summary["intervention_rows"] = table.n
    token_rows = rank_on is not None and bool((rank_on.token_index >= 0).any())
    settings: dict[str, Any] = {
        "ranking": rank_settings.as_dict(),
        "causal": causal_settings.as_dict(),
        "importance": IMPORTANCE_DOC,
        "selection": _selection_text(rank_settings),
        "association": {
            "binary": "AUROC (Mann-Whitney with ties; absent = 0 counted), Somers' D = 2*AUROC-1 as the effect, "
                      "standardized mean difference (pooled SD), point-biserial r",
            "graded": "Spearman rho (ties midranked; absent = 0 counted) as the effect, Pearson r",
            "intervals": f"{rank_settings.bootstrap} bootstrap resamples of held-out rows "
                         "(whole prompts for token rows), percentile 95% intervals",
            "p_values": "normal approximation of Mann-Whitney U with tie correction (binary); t approximation "
                        "of Spearman rho (graded); reported to 4 significant digits, floored at 1e-300"
                        + ("; they treat token rows as independent, so they are optimistic for token-level "
                           "records (the bootstrap intervals resample whole prompts and are not)"
                           if token_rows else ""),
        },
        "causal_rule": causal_rule(causal_settings, MEASURED),
    }
    if pipeline is not None:
        settings["pipeline"] = pipeline
    report: dict[str, Any] = {
        "schema_version": INSPECTION_REPORT,
        "model": model,
        "criterion": criterion,
        "backend": backend,
        "synthetic": synthetic,
        "created_with": {"package": "interp-lab", "version": __version__},
        "inputs": [i.for_report() for i in inputs],
        "evidence_sources": sorted({i.role for i in inputs}),
        "splits": splits,
        "settings": settings,
        "summary": summary,
        "warnings": warnings,
        "notes": notes,
        "cards": cards,
    }
    if synthetic_params is not None:
        report["planted"] = dict(sorted(planted.items()))
    if rank_on is not None:
        report["provenance"] = {"models_in_evidence": rank_on.models, "hooks": rank_on.hooks,
                                "record_sources": rank_on.sources, "reader": rank_on.reader}
    return report


def _selection_text(rs: RankSettings) -> str:
    """How the cards were chosen, in words, for ``settings.selection``."""
    gate = f"features with discovery q < {rs.alpha} (Benjamini-Hochberg over all features tested) first, then "
    assoc = gate + "by |effect| on discovery rows"
    top = (gate + f"by how far the mean score of their {rs.top_activations} highest-activating discovery rows is "
           "from the rows' mean (q from a z test against as many rows drawn at random)")
    how = {"association": assoc, "top_activations": top,
           "both": f"in turn from two orders: {assoc}; and {top}"}[rs.select_by]
    return how + "; the top_k become cards, plus every feature with intervention evidence"

