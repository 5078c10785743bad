"""Regenerate the SYNTHETIC example evidence in this folder (planted ground truth, labelled as such).

    python examples/generate_synthetic_examples.py

Writes activation_records.jsonl, interventions.jsonl and features.jsonl.
Every row says ``metadata.source = "synthetic"`` (or ``source: synthetic``)
and every report built from them is marked SYNTHETIC. They exist to try the
commands without a model; real-model evidence comes from ``interp-lab
harvest`` / ``inspect --model``.
"""

from pathlib import Path

import numpy as np

from interp_lab.io.jsonl import write_jsonl
from interp_lab.io.records import record_rows
from interp_lab.providers.synthetic import SyntheticSpec, generate

HERE = Path(__file__).parent


def main() -> None:
    ev = generate(SyntheticSpec(n_prompts=1200, n_features=120, seed=7, intervention_prompts=240, controls=24))
    m = ev.records
    write_jsonl(HERE / "activation_records.jsonl", record_rows(m))
    write_jsonl(HERE / "interventions.jsonl", ev.interventions)
    # a feature dump: signatures keyed by probe prompt_id on the first 300 prompts, labels, reported effects
    dense = m.X.tocsc().dense_rows(np.arange(300))  # [300 probes, features]
    probes = [str(p) for p in m.prompt_ids[:300]]
    rng = np.random.default_rng(7)
    rows = []
    for j in range(0, m.n_features, 3):
        fid = str(m.feature_ids[j])
        col = dense[:, j]
        role = ev.planted.get(fid)
        rows.append({
            "schema_version": "interp-lab.feature.v1", "feature_id": fid, "model": "synthetic/planted",
            "layer": int(fid[1:].split(":")[0]), "label": f"planted {role.replace('_', ' ')}" if role else None,
            "examples": [m.text(int(r)) for r in np.argsort(-col, kind="stable")[:3]],
            "activation_signature": {p: round(float(v), 4) for p, v in zip(probes, col)},
            "decoder_signature": [round(float(x), 4) for x in rng.normal(size=8)],
            "source": "synthetic",
        })
    write_jsonl(HERE / "features.jsonl", rows)


if __name__ == "__main__":
    main()
