"""``calibrate-causal`` and ``calibrate_causal()``: how often the causal rule calls a report's own controls
strong (leave-one-out)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interp_lab.api.registry import command
from interp_lab.errors import InputError, UsageError
from interp_lab.schemas.command import Progress, option

INTERVENTION_FILES = ("interventions.jsonl.gz", "interventions.jsonl.zst", "interventions.jsonl")


@dataclass(kw_only=True)
class CalibrateOptions:
    """``calibrate-causal``'s options: the reports, and the seed of the resamples."""

    reports: list[Path] = option(help="Report directories: report.json with interventions.jsonl.gz beside it "
                                      "(several: their control tests pooled).", argument=True)  # or one, in the API
    seed: int = option(0, "Seed of the prompt resamples and of the interval.")
    interval_resamples: int = option(2000, cli=False)


@dataclass
class CalibrationResult:
    """The false-positive rate of ``strong_causal`` measured on one or more reports' controls."""

    reports: list[str]
    tests: int  # control tests judged
    strong: int  # of them called strong
    rate: float
    ci: tuple[float, float]  # 95%, cluster bootstrap over card x kind entries (of every report)
    entries: int  # clusters (card x kind entries contributing controls)
    by_report: list[dict[str, Any]] = field(default_factory=list)
    by_entry: list[dict[str, Any]] = field(default_factory=list)
    excluded: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    method: str = ""

    def line(self) -> str:
        lo, hi = self.ci
        return f"false-positive rate: {self.rate:.3f} (95% CI [{lo:.3f}, {hi:.3f}]) over {self.tests} control tests"

    def as_dict(self) -> dict[str, Any]:
        return {"reports": self.reports, "false_positive_rate": self.rate, "ci": list(self.ci), "tests": self.tests,
                "strong": self.strong, "entries": self.entries, "method": self.method, "by_report": self.by_report,
                "by_entry": self.by_entry, "excluded": self.excluded, "notes": self.notes}


def _claims(report: dict[str, Any]) -> dict[str, int]:
    """Each card's discovery direction: the one its causal entries were tested in (0.4 reports), else the
    card's direction when it comes from the association (earlier reports)."""
    from interp_lab.evidence.causal import claim_of

    out: dict[str, int] = {}
    for card in report.get("cards", []):
        fid = card["feature_id"]
        stated = {claim_of(k.get("claimed_direction")) for k in (card.get("causal") or {}).values()
                  if isinstance(k, dict) and "claimed_direction" in k}
        stated.discard(None)
        if len(stated) == 1:
            out[fid] = stated.pop()
        elif card.get("association") is not None and claim_of(card.get("direction")) is not None:
            out[fid] = claim_of(card["direction"])
    return out


def _one_report(report: str | os.PathLike, seed: int):
    """(report path, run, control tests, notes) of one report directory or report.json."""
    from interp_lab.api.match import _read_report, _report_file
    from interp_lab.evidence.causal import CausalSettings, evaluate, load_interventions
    from interp_lab.evidence.causal_calibration import control_tests

    path = _report_file(Path(report))
    if not path.exists():
        raise InputError(str(path), "file not found (calibrate-causal reads REPORT_DIR/report.json)")
    rep = _read_report(path)
    records = next((path.parent / n for n in INTERVENTION_FILES if (path.parent / n).exists()), None)
    if records is None:
        raise InputError(str(path.parent / INTERVENTION_FILES[0]),
                         "file not found (calibrate-causal reads the intervention records beside report.json)")
    known = CausalSettings.__dataclass_fields__
    given = {k: v for k, v in ((rep.get("settings") or {}).get("causal") or {}).items() if k in known}
    settings = CausalSettings(**{**given, "seed": seed})
    table = load_interventions(records, rep["criterion"], allow_mismatch=settings.allow_criterion_mismatch)
    counts = ((rep.get("splits") or {}).get("association") or {}).get("counts") or {}
    available = (counts.get("heldout") or {}).get("prompts")
    run = evaluate(table, settings, available, _claims(rep))
    notes = []
    two_sided = sum(1 for e in run.entries if e.claim is None)
    if two_sided:
        notes.append(f"{path}: {two_sided} entries have no discovery direction in the report; their controls "
                     "were tested two-sided")
    if table.controls_without_target:
        notes.append(f"{path}: {table.controls_without_target} control rows name no control_for (the 0.2 form): "
                     "each counted for every feature of its kind and strength")
    return str(path), run, control_tests(run), notes


@command("calibrate-causal", options=CalibrateOptions, result=CalibrationResult, group="inspect", json=True,
         positional=("reports",),
         help="How often strong_causal calls a report's own controls strong (leave-one-out false-positive rate).")
def calibrate_causal(o: CalibrateOptions, progress: Progress) -> CalibrationResult:
    """Leave-one-out: each control of each card x kind judged by the report's causal rule as if it were the
    feature (``evidence.causal_calibration``). ``reports``: one or more report directories (or their
    report.json) with the intervention records beside them (``interventions.jsonl.gz``, as ``inspect
    --backend hf`` writes); each report keeps its own Benjamini-Hochberg family, the rate pools them."""
    import numpy as np

    from interp_lab.evidence.causal_calibration import cluster_interval

    seed, resamples = o.seed, o.interval_resamples
    items = [o.reports] if isinstance(o.reports, (str, os.PathLike)) else list(o.reports)
    if not items:
        raise UsageError("name at least one report directory")
    strong, cluster, by_report, by_entry, excluded, notes, paths = [], [], [], [], [], [], []
    offset = 0
    for item in items:
        path, run, tests, more = _one_report(item, seed)
        paths.append(path)
        notes += more
        strong.append(tests.strong)
        cluster.append(tests.entry + offset)
        offset += len(run.entries)
        rate = float(tests.strong.mean()) if tests.n else float("nan")
        by_report.append({"report": path, "tests": tests.n, "strong": int(tests.strong.sum()), "rate": rate})
        excluded += [{"report": path, **x} for x in tests.excluded]
        for i in np.unique(tests.entry):
            e = run.entries[int(i)]
            mine = tests.entry == i
            by_entry.append({"report": path, "feature_id": e.feature_id, "key": e.key,
                             "claimed_direction": e.result["claimed_direction"], "tests": int(mine.sum()),
                             "strong": int(tests.strong[mine].sum()),
                             "strong_controls": sorted(str(c) for c in tests.control_id[mine & tests.strong]),
                             "entry_p_value": e.result["p_value"]})
    hits, groups = np.concatenate(strong), np.concatenate(cluster)
    lo, hi = cluster_interval(hits, groups, resamples, seed)
    st_text = ("leave-one-out: each control judged as the feature against the other controls of its family (and "
               "the other family in full for a contrast direction), in its card's discovery direction, its p-value "
               "replacing its card's in its report's Benjamini-Hochberg family; strong by (a) q < alpha, (b) paired "
               "lower bound > 0, (c) n >= min_n or all available, and the claimed sign (no side-effect budget); 95% "
               f"interval from {resamples} cluster-bootstrap resamples of the card x kind entries")
    return CalibrationResult(
        reports=paths, tests=len(hits), strong=int(hits.sum()), rate=float(hits.mean()) if len(hits) else float("nan"),
        ci=(lo, hi), entries=len(by_entry), by_report=by_report, by_entry=by_entry, excluded=excluded, notes=notes,
        method=st_text)
