"""Size and power of the causal rule (evidence.md rule 7) on planted reports.

The design is ``interp_lab.evidence.causal_synthetic.PlantedDesign`` (issue 21): 20 controls per test, 300
prompts, control effects drawn from Student's t with 3 degrees of freedom, per-prompt noise SD =
sqrt(300) x the between-control SD, reports of 14 tests with 0, 1 and 4 planted effects, Benjamini-
Hochberg within each report. One control-SD is the population SD of a control's observed mean effect.

For each planted size (in control-SDs) it prints the share of null tests called strong_causal (the size;
null tests of every report type, so BH sees the planted effects beside them) and of planted tests (the
power), with 95% Wilson intervals; then the same with the planted features carrying a control-like t draw
of their own on top (a harder alternative). ``--json`` prints the block that ``causal_synthetic.MEASURED`` holds (the
table then goes to stderr).

    python benchmarks/causal_calibration.py [--reports 150] [--seed 0] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from interp_lab.evidence.causal_synthetic import PlantedDesign, measure

ROOT = Path(__file__).resolve().parents[1]
DELTAS = (2.0, 3.0, 4.0, 6.0)


def _commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reports", type=int, default=150, help="reports of each type (0, 1, 4 planted)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print the MEASURED block as JSON")
    args = ap.parse_args()
    design = PlantedDesign()
    t0 = time.perf_counter()
    rows = {}
    for own in (False, True):
        d = replace(design, own_draw=own)
        for k, delta in enumerate(DELTAS):
            m = measure(delta, args.reports, d, seed=args.seed + 1000 * own + k)
            rows[(own, delta)] = m
            lo, hi = m.size_ci
            plo, phi = m.power_ci
            print(f"{'own draw' if own else 'exact   '}  delta {delta:g} control-SDs: size {m.size:.4f} "
                  f"[{lo:.4f}, {hi:.4f}] over {m.null_tests} null tests; power {m.power:.3f} [{plo:.3f}, "
                  f"{phi:.3f}] over {m.planted_tests} planted tests", flush=True,
                  file=sys.stderr if args.json else None)
    null_n = sum(m.null_tests for (own, _), m in rows.items() if not own)
    null_k = sum(m.null_strong for (own, _), m in rows.items() if not own)
    from interp_lab.evidence.causal_synthetic import wilson

    lo, hi = wilson(null_k, null_n)
    measured = {
        "design": (f"{args.reports * len(design.planted_per_report)} synthetic reports per planted size of "
                   f"{design.tests} tests ({', '.join(map(str, design.planted_per_report))} planted), "
                   f"{design.controls} controls with t({design.df:g}) effects, {design.prompts} prompts, noise SD "
                   f"sqrt({design.prompts}) x the between-control SD; one control-SD = the SD of a control's "
                   "observed mean effect"),
        "size": {"rate": round(null_k / null_n, 5), "ci": [round(lo, 5), round(hi, 5)], "tests": null_n},
        "power": {f"{delta:g}": {"rate": round(rows[(False, delta)].power, 4),
                                 "ci": [round(x, 4) for x in rows[(False, delta)].power_ci],
                                 "tests": rows[(False, delta)].planted_tests} for delta in DELTAS},
        "power_with_own_draw": {f"{delta:g}": round(rows[(True, delta)].power, 4) for delta in DELTAS},
        "by": "benchmarks/causal_calibration.py",
        "commit": _commit(),
    }
    print(f"size over all {null_n} null tests (exact alternatives): {null_k / null_n:.4f} [{lo:.4f}, {hi:.4f}]; "
          f"{time.perf_counter() - t0:.0f} s", file=sys.stderr if args.json else None)
    if args.json:
        print(json.dumps(measured, indent=1))


if __name__ == "__main__":
    main()
