"""Benchmark: store query latencies on a store of at least 500k tokens x 1 hook.

Harvests ``blocks.0.hook_resid_post`` of SmolLM2 over lee + enwiki (the
forward stops after block 0, so this takes about a minute) unless --store
points at an existing store, then times, each in a fresh query call:
top contexts of a channel, a diff between two labelled subsets
(label.corpus=lee vs enwiki), a token search and the store summary. The
baseline, measured in the same run, answers the same top / diff questions
the way in-memory tools do: load every shard into one array first.

    python benchmarks/store_queries.py --tokens 500000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from interp_lab.store import queries as q
from interp_lab.store.reader import Store

HOOK = "blocks.0.hook_resid_post"


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=500_000)
    ap.add_argument("--store", type=Path, default=None, help="an existing store with blocks.0.hook_resid_post")
    ap.add_argument("--channel", type=int, default=100)
    args = ap.parse_args()
    path = args.store
    if path is None:
        from interp_lab.harvest.run import harvest

        path = Path(tempfile.mkdtemp(prefix="interp-lab-store-bench-")) / "store"
        t, res = timed(lambda: harvest("smollm2-135m", "lee+enwiki", HOOK, path, max_tokens=args.tokens,
                                       context_length=256, batch_size=16))
        print(f"harvested {res.rows:,} tokens x 1 hook in {t:.1f} s ({res.tokens_per_s:,.0f} tokens/s)")
    store = Store(path)
    m = store.manifest
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6
    print(f"store: {m.rows:,} tokens, hooks {m.hooks}, d {m.d[HOOK]}, {len(m.shards)} shards, {size:.0f} MB")
    rows = [
        ("top 20 contexts of one channel", lambda: q.top(store, HOOK, args.channel, k=20)),
        ("diff lee vs enwiki (mean + firing rate, CIs)",
         lambda: q.diff(store, HOOK, where_a="label.corpus=lee", where_b="label.corpus=enwiki")),
        ("search token ' war' (with contexts)", lambda: q.search(store, token="war", limit=50)),
        ("summary", lambda: q.summary(store)),
    ]
    ours = {}
    for label, fn in rows:
        ours[label], _ = timed(fn)
        print(f"{label:48s} {ours[label]:6.3f} s")

    def baseline_top():
        acts = np.concatenate([store.shard(HOOK, s.index) for s in m.shards]).astype(np.float32)
        pos = store.tokens(["position"]).column(0).to_numpy()
        v = np.where(pos == 0, -np.inf, acts[:, args.channel])
        return np.argsort(-v, kind="stable")[:20]

    def baseline_diff():
        acts = np.concatenate([store.shard(HOOK, s.index) for s in m.shards]).astype(np.float32)
        corpus = np.asarray(store.tokens(["label.corpus"]).column(0).to_pylist())
        a, b = acts[corpus == "lee"], acts[corpus == "enwiki"]
        return a.mean(0) - b.mean(0), (a > 0).mean(0) - (b > 0).mean(0)

    for label, fn in (("top 20 contexts of one channel", baseline_top),
                      ("diff lee vs enwiki (mean + firing rate, CIs)", baseline_diff)):
        t, _ = timed(fn)
        print(f"baseline (load the store into memory): {label:40s} {t:6.3f} s   ratio {t / ours[label]:5.1f}x")
    worst = max(ours[k] for k in ("top 20 contexts of one channel", "diff lee vs enwiki (mean + firing rate, CIs)"))
    print(f"top-context and diff under 2 s: {'yes' if worst < 2 else 'NO'} (slowest {worst:.3f} s)")


if __name__ == "__main__":
    main()
