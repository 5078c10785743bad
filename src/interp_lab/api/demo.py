"""``interp-lab demo``: inspect on SYNTHETIC planted data and check what was recovered."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interp_lab.api.inspect import inspect
from interp_lab.api.registry import command
from interp_lab.io.jsonl import write_jsonl
from interp_lab.io.records import record_rows
from interp_lab.providers.synthetic import SyntheticSpec, generate
from interp_lab.schemas.command import Progress, option

DEMO_CRITERION = "the prompt is positive (synthetic planted criterion)"


@dataclass(kw_only=True)
class DemoOptions:
    """Where the demo writes, and the size and seed of its synthetic data."""

    out: Path = option(Path("reports/demo"), "Directory for the demo evidence and report.")
    seed: int = option(0)
    n_prompts: int = option(5000, "Synthetic prompts.", flag="--n-prompts", deprecated=("--prompts",),
                            param="prompts", min=200)
    n_features: int = option(2000, "Synthetic features (5 planted).", flag="--n-features", deprecated=("--features",),
                             min=50)


@dataclass
class DemoResult:
    """The report of ``inspect`` on the synthetic evidence, one PASS/FAIL line per planted feature
    (``planted_checks``), whether all passed, and the files written (evidence, then the report's)."""

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


@command("demo", options=DemoOptions, result=DemoResult, group="utilities", positional=("out",),
         help="Run inspect on SYNTHETIC data with planted ground truth, and check what it recovered.")
def demo(o: DemoOptions, progress: Progress) -> DemoResult:
    ev = generate(SyntheticSpec(n_prompts=o.n_prompts, n_features=o.n_features, seed=o.seed))
    evidence = Path(o.out) / "evidence"
    paths = {"records": evidence / "synthetic_records.jsonl.gz",
             "interventions": evidence / "synthetic_interventions.jsonl"}
    write_jsonl(paths["records"], record_rows(ev.records))
    write_jsonl(paths["interventions"], ev.interventions)
    result = inspect("synthetic/planted", DEMO_CRITERION, backend="synthetic", out=o.out, seed=o.seed,
                     synthetic={"n_prompts": o.n_prompts, "n_features": o.n_features}, progress=progress)
    checks, passed = planted_checks(result.report)
    return DemoResult(report=result.report, checks=checks, passed=passed, paths={**paths, **result.paths})
