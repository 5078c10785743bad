"""``interp-lab demo``: inspect on SYNTHETIC planted data and check what was recovered."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interp_lab.api import inspect
from interp_lab.io.jsonl import write_jsonl
from interp_lab.io.records import record_rows
from interp_lab.providers.synthetic import SyntheticSpec, generate

DEMO_CRITERION = "the prompt is positive (synthetic planted criterion)"


@dataclass
class DemoResult:
    report: dict[str, Any]
    checks: list[str]
    passed: bool
    paths: dict[str, Path] = field(default_factory=dict)


def planted_checks(report: dict[str, Any]) -> tuple[list[str], bool]:
    """Compare the report's cards with the planted roles (evidence.md's recovery criteria)."""
    where = {c["feature_id"]: c for c in report["cards"]}
    lines, ok = [], True
    for fid, role in report.get("planted", {}).items():
        card = where.get(fid)
        rank = card["rank"] if card else None
        if role in ("dense_promoter", "sparse_promoter"):
            good = rank is not None and rank <= 10 and card["direction"] == "promotes"
            want = "in the top 10, promotes"
        elif role == "suppressor":
            good = card is not None and card["direction"] == "suppresses"
            want = "reported as suppresses"
        elif role == "loud_decoy":
            good = rank is None or rank > 5
            want = "not in the top 5"
        else:  # confounded decoy: flagged and out of the top 5 when the covariate is given
            good = rank is None or (rank > 5 and "confounded" in card["flags"])
            want = "flagged confounded and out of the top 5 (or not a card)"
        ok &= good
        got = f"rank {rank}" if rank else "not a card"
        if card:
            got += f", {card['direction']}, tier {card['evidence_tier']}" + (
                f", flags {','.join(card['flags'])}" if card["flags"] else "")
        lines.append(f"{'PASS' if good else 'FAIL'} {role:17s} {fid:10s} want {want}; got {got}")
    return lines, ok


def run_demo(out: str | os.PathLike, *, seed: int = 0, n_prompts: int = 5000, n_features: int = 2000) -> DemoResult:
    spec = SyntheticSpec(n_prompts=n_prompts, n_features=n_features, seed=seed)
    out = Path(out)
    ev = generate(spec)
    evidence = out / "evidence"
    write_jsonl(evidence / "synthetic_records.jsonl.gz", record_rows(ev.records))
    write_jsonl(evidence / "synthetic_interventions.jsonl", ev.interventions)
    result = inspect("synthetic/planted", DEMO_CRITERION, backend="synthetic", out=out, seed=seed,
                     synthetic={"n_prompts": n_prompts, "n_features": n_features})
    checks, passed = planted_checks(result.report)
    paths = {"records": evidence / "synthetic_records.jsonl.gz",
             "interventions": evidence / "synthetic_interventions.jsonl", **result.paths}
    return DemoResult(report=result.report, checks=checks, passed=passed, paths=paths)
