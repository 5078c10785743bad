"""Interventions: cached prefixes + replayed clean blocks against a plain forward per edit.

Same model (SmolLM2-135M, float32), same prompts (the unit criterion's held-out split),
same edits (a residual direction projected out at a late and a middle layer, and a
neuron mean-ablated, each at the last prompt token), in one run:

- baseline 1: what a notebook does, one full forward with logits per batch and edit
  (right padding, the edit at each prompt's last token);
- baseline 2: the same forward without the lm_head over every position (the final norm
  read at the last token, then the unembedding there only): the best a plain forward does;
- interp-lab: ``PromptSet`` (prefixes computed once, then one token per prompt per edit,
  blocks below the edited one replayed from the clean run).

Prints edits/s for both, the ratio, and the largest difference of the scores (they must agree).

    python benchmarks/interventions.py [--edits 8] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from interp_lab.interventions.scorers import NextTokenMass, scores

from interp_lab.criteria.compile import target_token_ids
from interp_lab.harvest.run import pad_right
from interp_lab.interventions.batches import PromptSet
from interp_lab.io.specs import load_criterion
from interp_lab.models.hooked import Edit, run
from interp_lab.models.load import load_model

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--edits", type=int, default=4, help="edits per hook (different random directions)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--prompts", type=int, default=300)
    a = ap.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    lm = load_model("smollm2-135m")
    spec = load_criterion(str(ROOT / "examples" / "units" / "criterion.yaml"))
    rows = [json.loads(x) for x in (ROOT / "examples" / "units" / "prompts.jsonl").read_text().splitlines()]
    texts = [r["text"] for r in rows][: a.prompts]
    target = torch.tensor(target_token_ids(lm.tokenizer, list(spec.targets)))
    rng = np.random.default_rng(0)
    hooks = ["blocks.25.hook_resid_post", "blocks.12.hook_resid_post"]
    edits = []
    for h in hooks:
        for _ in range(a.edits):
            u = torch.tensor(rng.normal(size=576), dtype=torch.float32)
            edits.append((h, u / u.norm()))
    print(f"interventions benchmark: smollm2-135m, {len(texts)} prompts, {len(edits)} edits "
          f"({a.edits} per hook at {', '.join(hooks)}), batch {a.batch_size}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")

    # baselines: a forward per batch and edit, the edit at each prompt's last token (right padding)
    enc = [lm.tokenizer(t)["input_ids"] for t in texts]
    pad = lm.tokenizer.pad_token_id or 0
    unembed = lm.model.get_output_embeddings()

    def with_logits(ids, mask, last, e):
        logits = run(lm.model, {"input_ids": ids, "attention_mask": mask}, edits=[e]).logits
        return torch.softmax(logits[torch.arange(len(last)), last].float(), -1)

    def last_token_unembedding(ids, mask, last, e):
        res = run(lm.model, {"input_ids": ids, "attention_mask": mask}, ["ln_final.hook_normalized"], [e],
                  positions=last, logits=False)
        with torch.inference_mode():
            return torch.softmax(unembed(res.acts["ln_final.hook_normalized"]).float(), -1)

    def baseline(probs):
        t0 = time.perf_counter()
        got = []
        for h, u in edits:
            out = []
            for i in range(0, len(enc), a.batch_size):
                ids, mask = pad_right(enc[i: i + a.batch_size], pad)
                last = mask.sum(1) - 1
                out.append(probs(ids, mask, last, Edit(h, "project_out", u, positions=last))[:, target].sum(-1))
            got.append(torch.cat(out).numpy())
        return got, time.perf_counter() - t0

    base, t_base = baseline(with_logits)
    base2, t_base2 = baseline(last_token_unembedding)

    t0 = time.perf_counter()
    ps = PromptSet(lm, texts, a.batch_size)
    t_prefix = time.perf_counter() - t0
    scorer = NextTokenMass(target.tolist())
    ours = [scores(ps, scorer, lambda b, h=h, u=u: [Edit(h, "project_out", u)]) for h, u in edits]
    t_ours = time.perf_counter() - t0
    diff = max(float(np.abs(x - y).max()) for x, y in zip(base + base2, ours + ours))
    n = len(edits)
    print(f"plain forward with logits per edit        {n / t_base:7.2f} edits/s   ({t_base:6.1f} s)")
    print(f"plain forward, unembedding last token     {n / t_base2:7.2f} edits/s   ({t_base2:6.1f} s)")
    print(f"interp-lab (prefixes + replay)            {n / t_ours:7.2f} edits/s   ({t_ours:6.1f} s, of which "
          f"prefixes {t_prefix:.1f} s, once)")
    print(f"ratio to the plain forward with logits {t_base / t_ours:.1f}x, to the last-token one "
          f"{t_base2 / t_ours:.1f}x; largest score difference {diff:.2e}")


if __name__ == "__main__":
    main()
