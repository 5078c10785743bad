"""Benchmark: harvest speed against the model's own forward, TransformerLens and nnsight, in one run.

On the same model and the same batches (gensim's lee corpus cut into windows):
  1. the backbone's bare forward (``model.model``, no lm_head),
  2. the full forward with logits,
  3. ``interp_lab.harvest`` writing every layer's resid_post to a store on disk, once per engine:
     ``--engine hooks`` (interp-lab's own hooks), ``transformerlens`` and ``nnsight``,
  4. TransformerLens ``run_with_cache`` on the same hook points (TransformerBridge), no store,
  5. an nnsight trace saving the same tensors, no store.
Prints tokens/s and each one's ratio to the bare forward, and for the harvests of the
other engines their ratio to the hooks engine's harvest. The TransformerLens and nnsight
rows are skipped with a note when their package is not installed. Every method runs once
per round, in turn, for ``--rounds`` rounds; ratios are per round, then the median.

    python benchmarks/harvest.py --tokens 8192 --batch-size 8 --context-length 128 --rounds 3
"""

from __future__ import annotations

import argparse
import copy
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from interp_lab.harvest.run import harvest, make_sequences, pad_right
from interp_lab.io.datasets import iter_documents
from interp_lab.models.engines import ENGINES, twin
from interp_lab.models.load import load_model


def batches_of(lm, docs, tokens: int, context: int, batch_size: int):
    seqs = make_sequences(lm.tokenizer, docs, context, tokens)
    pad = lm.tokenizer.pad_token_id or 0
    return [pad_right([s.ids for s in seqs[i: i + batch_size]], pad) for i in range(0, len(seqs), batch_size)]


def timed(fn, batches) -> float:
    fn(*batches[0])  # warm-up
    t = time.perf_counter()
    for ids, mask in batches:
        fn(ids, mask)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--tokens", type=int, default=8192)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--context-length", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3, help="every method once per round, in turn")
    args = ap.parse_args()
    lm = load_model(args.model)
    model, L = lm.model, lm.n_layers
    tmp = Path(tempfile.mkdtemp(prefix="interp-lab-harvest-bench-"))
    text = tmp / "docs.txt"  # lee, one document per line: every method sees the same windows and batches
    text.write_text("\n".join(d.text.replace("\n", " ") for d in iter_documents("lee")) + "\n")
    docs = list(iter_documents(str(text)))
    batches = batches_of(lm, docs, args.tokens, args.context_length, args.batch_size)
    n_tokens = sum(int(m.sum()) for _, m in batches)
    print(f"harvest benchmark: {args.model} ({L} layers), {n_tokens:,} tokens in {len(batches)} batches of "
          f"{args.batch_size} x <= {args.context_length}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    methods: dict[str, Callable[[], float]] = {}  # label -> seconds for all batches

    def forward(i, m):
        with torch.inference_mode():
            model.model(input_ids=i, attention_mask=m, use_cache=False)

    def full(i, m):
        with torch.inference_mode():
            return model(input_ids=i, attention_mask=m, use_cache=False).logits

    methods["bare backbone forward (model.model)"] = lambda: timed(forward, batches)
    methods["full forward with logits"] = lambda: timed(full, batches)
    store_mb: list[float] = []

    def harvest_with(engine: str) -> Callable[[], float]:
        def go() -> float:
            out = tmp / f"store-{engine}"
            res = harvest(lm, str(text), "blocks.*.hook_resid_post", out, max_tokens=args.tokens,
                          context_length=args.context_length, batch_size=args.batch_size, engine=engine)
            store_mb.append(sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 1e6)
            shutil.rmtree(out, ignore_errors=True)
            return res.rows / res.tokens_per_s  # the harvest's own clock: from its first batch to its last shard

        return go

    harvests: dict[str, str] = {}  # engine -> label
    for engine in ENGINES:
        try:
            harvest(lm, str(text), "blocks.*.hook_resid_post", tmp / "warm", max_tokens=args.batch_size * 16,
                    context_length=args.context_length, batch_size=args.batch_size, engine=engine, overwrite=True)
        except Exception as exc:  # not installed (one line naming the extra), or the engine refused the model
            print(f"harvest --engine {engine}: skipped ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})")
            continue
        harvests[engine] = f"interp-lab harvest --engine {engine}, all {L} resid_post to disk"
        methods[harvests[engine]] = harvest_with(engine)

    try:
        from transformer_lens.model_bridge import TransformerBridge

        # on a twin of the model (same weights): the bridge replaces modules, and the harvests above must run
        # on the model as loaded
        bridge = TransformerBridge.boot_transformers(lm.info.get("upstream", args.model), hf_model=twin(model),
                                                     tokenizer=copy.deepcopy(lm.tokenizer))
        tl_names = [n for n in bridge.hook_dict if n.endswith("hook_resid_post") or n.endswith("hook_out")]
        tl_names = [n for n in tl_names if n.startswith("blocks.") and n.count(".") == 2][:L]

        def tl_run(i, m):
            with torch.inference_mode():
                bridge.run_with_cache(i, attention_mask=m, names_filter=lambda n: n in tl_names)

        if len(tl_names) != L:
            raise RuntimeError(f"found {len(tl_names)} TransformerLens block-output hooks, expected {L}")
        methods[f"TransformerLens run_with_cache ({len(tl_names)} {tl_names[0].split('.')[-1]})"] = \
            lambda: timed(tl_run, batches)
    except Exception as exc:  # not installed, or the bridge refused the model
        print(f"TransformerLens: skipped ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})")

    try:
        import nnsight

        nn_model = nnsight.NNsight(twin(model))  # a twin: nnsight patches the forwards of what it wraps

        def nn_run(i, m):
            saved: list = []  # nnsight runs the with-block itself; results must go into an outer object
            with torch.inference_mode():
                with nn_model.trace(input_ids=i, attention_mask=m, use_cache=False):
                    for k in range(L):
                        saved.append(nnsight.save(nn_model.model.layers[k].output))
            if len(saved) != L:
                raise RuntimeError(f"nnsight saved {len(saved)} of {L} tensors")
            return saved

        methods["nnsight trace saving the same tensors"] = lambda: timed(nn_run, batches)
    except Exception as exc:
        print(f"nnsight: skipped ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})")

    # Rounds: every method once per round, in turn, so that a slow spell of the machine hits them alike;
    # each method's ratio is taken to the bare forward of the same round, then the median over rounds.
    seconds: dict[str, list[float]] = {k: [] for k in methods}
    for _ in range(args.rounds):
        for label, fn in methods.items():
            seconds[label].append(fn())
    shutil.rmtree(tmp, ignore_errors=True)

    bare = seconds["bare backbone forward (model.model)"]
    ours = seconds.get(harvests.get("hooks", ""))
    print(f"{args.rounds} rounds; tokens/s: median over rounds; ratio: median over rounds of the ratio to that "
          f"round's bare forward (per round in brackets), and for the harvests, to that round's hooks-engine harvest")
    for label, secs in seconds.items():
        ratios = [b / s for b, s in zip(bare, secs)]
        line = (f"{label:70s} {n_tokens / statistics.median(secs):9,.0f} tokens/s   ratio to bare forward "
                f"{statistics.median(ratios):5.2f}  [{', '.join(f'{r:.2f}' for r in ratios)}]")
        if ours is not None and label in harvests.values() and label != harvests["hooks"]:
            to_hooks = [h / s for h, s in zip(ours, secs)]
            line += f"   to hooks harvest {statistics.median(to_hooks):5.2f}  [{', '.join(f'{r:.2f}' for r in to_hooks)}]"
        print(line)
    print(f"store written: {store_mb[0]:.1f} MB for {n_tokens:,} tokens x {L} hooks")

if __name__ == "__main__":
    main()
