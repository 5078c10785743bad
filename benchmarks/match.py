"""Benchmark: matching 16,384 x 16,384 features by 512-d activation signatures.

Prints the time of the top-10 search (evidence.match.top_k: block matrix products and argpartition)
and of the one-to-one assignment on the top-10 candidate graph (scipy's LAPJVsp), the peak resident
memory, and, as the baseline measured in the same run, the naive search (the whole similarity
matrix of a slice of left rows, then a full sort of each row), scaled to all rows; the ratio is the
naive time over ours. The right side is a noisy, shuffled copy of the left (noise of 10% of each
signature's norm), so the top-1 identity rate is printed too.

With ``--old DIR`` (interp-lab 3.1.0 unpacked, e.g. ``pip download --no-deps interp-lab==3.1.0`` and
unzip; it has our distribution name, so it runs in a subprocess with only that directory on its path)
the previous generation's ``match_feature_cards`` (a Python loop over every pair) is timed on the
first ``--old-rows`` left features against all right ones and scaled to every row.

    python benchmarks/match.py [--n 16384] [--dim 512] [--k 10] [--old /tmp/old310/x]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

from interp_lab.evidence.fingerprint import FeatureSet, prepare
from interp_lab.evidence.match import one_to_one, permutation_null, top_k


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=16384)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--naive-rows", type=int, default=1024, help="left rows the naive baseline is timed on")
    ap.add_argument("--old", help="directory holding interp-lab 3.1.0's interp_lab package")
    ap.add_argument("--old-rows", type=int, default=4, help="left rows 3.1.0 is timed on")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n, d = args.n, args.dim
    acts = (rng.gamma(0.5, 1.0, (n, d)) * (rng.random((n, d)) < 0.3)).astype(np.float32)
    perm = rng.permutation(n)
    noisy = acts[perm] + rng.normal(size=(n, d)).astype(np.float32) * 0.1 \
        * np.linalg.norm(acts[perm], axis=1, keepdims=True) / np.sqrt(d)
    keys = [f"p{i}" for i in range(d)]
    left = FeatureSet([f"l{i}" for i in range(n)], activation={k: acts[:, j] for j, k in enumerate(keys)})
    right = FeatureSet([f"r{i}" for i in range(n)], activation={k: noisy[:, j] for j, k in enumerate(keys)})
    del acts, noisy
    print(f"{n:,} x {n:,} features, {d}-d activation signatures, top-{args.k}; peak before {peak_mib():,.0f} MiB")

    t = time.perf_counter()
    p = prepare(left, right)
    t_prep = time.perf_counter() - t
    t = time.perf_counter()
    tk = top_k(p, args.k)
    t_top = time.perf_counter() - t
    t = time.perf_counter()
    null = permutation_null(p, 20_000)
    t_null = time.perf_counter() - t
    t = time.perf_counter()
    assign = one_to_one(tk, n, float(np.quantile(null.scores, 0.95)))
    t_assign = time.perf_counter() - t
    truth = np.argsort(perm)
    print(f"prepare {t_prep:.2f} s; top-{args.k} {t_top:.2f} s; null (20,000 pairs) {t_null:.2f} s; "
          f"one-to-one {t_assign:.2f} s; peak {peak_mib():,.0f} MiB")
    print(f"top-1 identity {np.mean(tk.index[:, 0] == truth):.4f}, one-to-one identity {np.mean(assign == truth):.4f}")

    rows = min(args.naive_rows, n)
    t = time.perf_counter()
    s = p.left["activation"][:rows] @ p.right["activation"].T
    naive = np.argsort(-s, axis=1)[:, : args.k]
    t_naive = (time.perf_counter() - t) * n / rows
    assert np.array_equal(naive[:, 0], tk.index[:rows, 0])
    print(f"naive (whole matrix, full sort of each row), {rows:,} rows scaled to {n:,}: {t_naive:.2f} s")
    print(f"speed ratio naive / interp-lab top-{args.k}: {t_naive / t_top:.2f}x")
    if args.old:
        t_old = old_match(args.old, p.left["activation"][: args.old_rows], p.right["activation"], args.k) \
            * n / args.old_rows
        print(f"interp-lab 3.1.0 match_feature_cards, {args.old_rows} rows x {n:,} scaled to {n:,}: "
              f"{t_old:,.0f} s ({t_old / 3600:.1f} h)")
        print(f"speed ratio 3.1.0 / interp-lab top-{args.k}: {t_old / t_top:,.0f}x")
    print(f"goals: top-{args.k} under 15 s: {'yes' if t_top < 15 else 'NO'}; "
          f"one-to-one under 30 s: {'yes' if t_assign < 30 else 'NO'}")


OLD = """
import json, sys, time
from interp_lab.matching import match_feature_cards
from interp_lab.schema import FeatureCard, FeatureFingerprint
data = json.load(open(sys.argv[1]))
def card(i, v, side):
    fp = FeatureFingerprint(feature_id=f"{side}{i}", model=side, layer=0, text="", text_vector=[],
                            activation_signature=v, decoder_signature=[], causal_vector=[])
    return FeatureCard(feature_id=f"{side}{i}", model=side, layer=0, label="", explanation="", importance=0.0,
                       association=0.0, specificity=0.0, causal_effect=0.0, stability=0.0, examples=[],
                       source="bench", fingerprint=fp)
left = [card(i, v, "l") for i, v in enumerate(data["left"])]
right = [card(i, v, "r") for i, v in enumerate(data["right"])]
t = time.perf_counter()
for c in left:  # top-k per left feature, as ours computes
    match_feature_cards([c], right, top_k=data["k"])
print(time.perf_counter() - t)
"""


def old_match(old_dir: str, left, right, k: int) -> float:
    """Seconds interp-lab 3.1.0 takes for these left rows against every right one (its own process)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump({"left": left.tolist(), "right": right.tolist(), "k": k}, fh)
    try:
        env = {**os.environ, "PYTHONPATH": old_dir}
        out = subprocess.run([sys.executable, "-c", OLD, fh.name], env=env, check=True, capture_output=True,
                             text=True, cwd=tempfile.gettempdir())
        return float(out.stdout.strip().splitlines()[-1])
    finally:
        os.unlink(fh.name)


if __name__ == "__main__":
    main()
