"""Benchmark: rank sparse activation records end to end with ``interp-lab inspect``.

Generates sparse records (default 50,000 prompts x 16,384 features, 64 active
per row, a few features planted to carry the criterion) as JSONL and
Parquet, times ``interp-lab inspect`` on each in a fresh process (imports
included), and prints rows/s and peak RSS. With ``--old-venv`` it runs
interp-lab 3.1.0 from that venv on the same JSONL file and prints the ratio.
``--large 500000`` repeats the run at 500,000 rows to show memory stays
bounded (peak RSS against 2 x the sparse matrix + 500 MB).

    python benchmarks/rank_records.py --old-venv /path/to/venv-with-interp-lab-3.1.0
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def generate(path: Path, rows: int, features: int, active: int, seed: int = 0) -> None:
    """Write sparse JSONL records; 32 'signal' features fire more often on positive rows."""
    rng = np.random.default_rng(seed)
    names = [f'{{"feature_id":"L12:F{j}","activation":' for j in range(features)]
    signal = rng.choice(features, 32, replace=False)
    block = 5000
    with open(path, "w", buffering=1 << 22) as fh:
        for start in range(0, rows, block):
            n = min(block, rows - start)
            y = rng.random(n) < 0.5
            cols = np.argsort(rng.random((n, features)), axis=1)[:, :active] if features <= 4096 else \
                rng.integers(0, features, size=(n, active * 2))
            vals = np.round(rng.exponential(size=(n, active)) + 0.01, 4)
            for i in range(n):
                c = list(dict.fromkeys(cols[i].tolist()))[:active]
                if y[i] and rng.random() < 0.6:  # plant a signal feature on most positives
                    s = int(signal[rng.integers(0, len(signal))])
                    if s not in c:
                        c[-1] = s
                body = ",".join(f"{names[j]}{v}}}" for j, v in zip(c, vals[i].tolist()))
                fh.write(f'{{"model":"bench","prompt_id":"p{start + i}","text":"prompt {start + i}","criterion_score":'
                         f'{1.0 if y[i] else 0.0},"features":[{body}]}}\n')


def timed(cmd: list[str]) -> tuple[float, float, int]:
    """Run a command; return (seconds, peak RSS in MB, exit code)."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t
    err = proc.stderr.read().decode() if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        print(f"  command failed ({proc.returncode}): {' '.join(cmd)}\n{err[-2000:]}", file=sys.stderr)
    return seconds, usage.ru_maxrss / 1024.0, proc.returncode


def ours(records: Path, out: Path) -> list[str]:
    exe = shutil.which("interp-lab") or f"{sys.executable} -m interp_lab"
    return [*exe.split(), "inspect", "--model", "bench", "--criterion", "c", "--records", str(records),
            "--out", str(out), "--top-k", "10"]


def old(venv: Path, records: Path, out: Path) -> list[str]:
    return [str(venv / "bin" / "interp-lab"), "inspect", "--model", "bench", "--criterion", "c",
            "--backend", "records", "--records", str(records), "--out", str(out), "--top-k", "10"]


def sparse_mb(rows: int, active: int) -> float:
    """float32 values + int32 indices + int32 row pointers of the CSR matrix."""
    return (rows * active * 8 + (rows + 1) * 4) / 1e6


def run_size(rows: int, features: int, active: int, work: Path, old_venv: Path | None, repeats: int) -> None:
    jsonl = work / f"records-{rows}.jsonl"
    parquet = work / f"records-{rows}.parquet"
    t = time.perf_counter()
    generate(jsonl, rows, features, active)
    print(f"\n== {rows:,} rows x {features:,} features, {active} active per row "
          f"({jsonl.stat().st_size / 1e6:.0f} MB JSONL, generated in {time.perf_counter() - t:.1f} s)")
    subprocess.run([sys.executable, "-m", "interp_lab", "convert-records", str(jsonl), str(parquet)], check=True,
                   stdout=subprocess.DEVNULL)
    bound = 2 * sparse_mb(rows, active) + 500
    results = {}
    for label, cmd in (("interp-lab (JSONL)", ours(jsonl, work / "out-jsonl")),
                       ("interp-lab (Parquet)", ours(parquet, work / "out-parquet"))):
        best = min((timed(cmd) for _ in range(repeats)), key=lambda r: r[0])
        results[label] = best
        print(f"{label:24s} {best[0]:7.2f} s  {rows / best[0]:>10,.0f} rows/s  peak RSS {best[1]:7.0f} MB "
              f"(bound 2 x sparse {sparse_mb(rows, active):.0f} MB + 500 = {bound:.0f} MB: "
              f"{'within' if best[1] < bound else 'OVER'})")
    if old_venv is not None:
        sec, rss, code = timed(old(old_venv, jsonl, work / "out-old"))
        if code == 0:
            print(f"{'interp-lab 3.1.0 (JSONL)':24s} {sec:7.2f} s  {rows / sec:>10,.0f} rows/s  peak RSS {rss:7.0f} MB")
            print(f"ratio (3.1.0 time / ours): JSONL {sec / results['interp-lab (JSONL)'][0]:.1f}x, "
                  f"Parquet {sec / results['interp-lab (Parquet)'][0]:.1f}x")
    for p in (jsonl, parquet):
        p.unlink(missing_ok=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--features", type=int, default=16_384)
    ap.add_argument("--active", type=int, default=64)
    ap.add_argument("--old-venv", type=Path, default=None, help="venv with interp-lab 3.1.0 installed")
    ap.add_argument("--large", type=int, default=0, help="also run at this many rows (e.g. 500000)")
    ap.add_argument("--repeats", type=int, default=2, help="runs per measurement (the fastest is shown)")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="interp-lab-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"interp-lab rank_records benchmark; python {sys.version.split()[0]}; {os.cpu_count()} cores; work {work}")
    run_size(args.rows, args.features, args.active, work, args.old_venv, args.repeats)
    if args.large:
        run_size(args.large, args.features, args.active, work, None, 1)


if __name__ == "__main__":
    main()
