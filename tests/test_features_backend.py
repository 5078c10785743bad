"""Feature dumps are ranked on the evidence their rows carry, and the report says which."""

import msgspec
import numpy as np

from interp_lab.api import inspect


def write(path, rows):
    path.write_bytes(b"".join(msgspec.json.encode(r) + b"\n" for r in rows))
    return path


def probe_records(tmp_path, n=300):
    rng = np.random.default_rng(0)
    y = (rng.random(n) < 0.5).astype(float)
    rows = [{"prompt_id": f"probe-{i}", "text": f"probe {i}", "criterion_score": float(y[i]), "features": []}
            for i in range(n)]
    return write(tmp_path / "probes.jsonl", rows), y


def test_keyed_signatures_are_compared_with_probe_scores(tmp_path):
    rec, y = probe_records(tmp_path)
    rng = np.random.default_rng(1)
    good = {f"probe-{i}": float(y[i] + 0.3 * rng.normal()) for i in range(300)}
    noise = {f"probe-{i}": float(rng.normal()) for i in range(300)}
    # keys in another order, and a list signature keyed by signature_prompt_ids
    order = list(reversed(range(300)))
    dump = write(tmp_path / "features.jsonl", [
        {"feature_id": "L3:F1", "label": "noise", "activation_signature": noise},
        {"feature_id": "L3:F2", "label": "tracks the criterion",
         "activation_signature": [good[f"probe-{i}"] for i in order],
         "signature_prompt_ids": [f"probe-{i}" for i in order], "examples": ["an example"]},
        {"feature_id": "L3:F3", "activation_signature": [1.0, 2.0, 3.0]},  # positional: not comparable
    ])
    rep = inspect("m", "c", features=dump, records=rec, top_k=2, bootstrap=200).report
    assert rep["backend"] == "features"
    top = rep["cards"][0]
    assert top["feature_id"] == "L3:F2" and top["evidence_tier"] == "held_out" and top["label"] == "tracks the criterion"
    assert top["examples"][0]["prompt_id"].startswith("probe-")
    assert any("positional" in n for n in rep["notes"])
    assert any("activation signatures against the criterion scores" in n for n in rep["notes"])


def test_reported_causal_effects_rank_a_dump_alone(tmp_path):
    dump = write(tmp_path / "f.jsonl", [
        {"feature_id": "a", "causal_effects": {"The criterion": 0.1}},
        {"feature_id": "b", "causal_effects": {"criterion": -0.5}},  # the 0.2 key
        {"feature_id": "c", "causal_effects": {"something else": 0.9}},
    ])
    rep = inspect("m", "the criterion", features=dump).report
    assert [c["feature_id"] for c in rep["cards"]] == ["b", "a"]
    assert rep["cards"][0]["direction"] == "suppresses" and rep["cards"][0]["evidence_tier"] == "discovery_only"


def test_a_dump_without_evidence_says_so(tmp_path):
    dump = write(tmp_path / "f.jsonl", [{"feature_id": "a", "label": "x"}, {"feature_id": "b"}])
    rep = inspect("m", "c", features=dump).report
    assert any("no evidence about this criterion" in w for w in rep["warnings"])
    assert all(c["evidence_tier"] == "discovery_only" and c["importance"] == 0 for c in rep["cards"])


def test_interventions_alone_rank_a_dump(tmp_path):
    rng = np.random.default_rng(0)
    iv = []
    for fid, eff in (("a", 0.2), ("b", 0.0)):
        for i in range(150):
            iv.append({"feature_id": fid, "intervention": "ablate", "prompt_id": f"p{i}", "split": "heldout",
                       "baseline_score": 0.6, "intervention_score": 0.6 - eff - 0.02 * rng.normal()})
    for k in range(25):
        for i in range(150):
            iv.append({"feature_id": f"r{k}", "intervention": "ablate", "prompt_id": f"p{i}", "split": "heldout",
                       "baseline_score": 0.6, "intervention_score": 0.6 - 0.02 * rng.normal(),
                       "metadata": {"control_type": "matched_frequency", "control_for": "*"}})
    ivp = write(tmp_path / "iv.jsonl", iv)
    dump = write(tmp_path / "f.jsonl", [{"feature_id": "a", "label": "A"}, {"feature_id": "b", "label": "B"}])
    rep = inspect("m", "c", features=dump, interventions=ivp).report
    a = rep["cards"][0]
    assert a["feature_id"] == "a" and a["evidence_tier"] == "causal" and a["label"] == "A"
    assert a["causal"]["ablate"]["controls"]["types"] == ["matched_frequency"] or \
        a["causal"]["ablate"]["controls"]["n"] == 25
