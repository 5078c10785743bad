"""Causal evidence: signed effects, controls, held-out n, and strong_causal exactly as evidence.md rule 7."""

import msgspec
import numpy as np
import pytest

from interp_lab.api import inspect
from interp_lab.evidence.causal import CausalSettings, causal_evidence, interventions_from_dicts


def rows_for(fid, effect, n, kind="ablate", rng=None, control=None, control_for=None, split="heldout",
             noise=0.02, strength=None):
    rng = rng or np.random.default_rng(0)
    sign = -1 if kind in ("ablate", "zero", "clamp_down") else 1
    out = []
    for i in range(n):
        base = 0.5
        delta = sign * (effect + rng.normal(0, noise))
        meta = {}
        if control:
            meta = {"control_type": control, "control_for": control_for}
        out.append({"feature_id": fid, "intervention": kind, "prompt_id": f"q{i}", "split": split,
                    "baseline_score": base, "intervention_score": base + delta, "metadata": meta,
                    "side_effect_score": 0.01, **({"strength": strength} if strength is not None else {})})
    return out


def controls(n_controls, n, kind="ablate", rng=None, control_for="*", control="random_feature", strength=None):
    rng = rng or np.random.default_rng(1)
    out = []
    for k in range(n_controls):
        out += rows_for(f"L1:F{1000 + k}", 0.0, n, kind, rng, control, control_for, strength=strength)
    return out


def evidence(rows, **kw):
    t = interventions_from_dicts(rows, None, "test")
    return causal_evidence(t, CausalSettings(**kw))


def test_promoter_suppressor_and_null_with_controls():
    rng = np.random.default_rng(3)
    rows = (rows_for("L1:F1", 0.10, 120, rng=rng) + rows_for("L1:F2", -0.08, 120, rng=rng)
            + rows_for("L1:F3", 0.0, 120, rng=rng) + controls(24, 120, rng=rng)
            + rows_for("placebo", 0.0, 120, rng=rng, control="placebo", control_for="*"))
    ev = evidence(rows)
    p, s, z = ev["L1:F1"]["kinds"]["ablate"], ev["L1:F2"]["kinds"]["ablate"], ev["L1:F3"]["kinds"]["ablate"]
    assert p["strong_causal"] and p["direction"] == "promotes" and p["mean_effect"] == pytest.approx(0.10, abs=0.01)
    assert s["strong_causal"] and s["direction"] == "suppresses" and s["mean_effect"] < 0  # sign kept
    assert s["controls"]["threshold_is"].startswith("5th percentile")
    assert not z["strong_causal"]
    assert p["controls"]["n"] == 24 and p["placebo"]["n"] == 120 and p["n"] == 120
    assert set(ev) == {"L1:F1", "L1:F2", "L1:F3"}  # controls are not features under test


def test_too_few_prompts_or_controls_is_not_strong():
    rng = np.random.default_rng(0)
    few = evidence(rows_for("L1:F1", 0.1, 60, rng=rng) + controls(24, 60, rng=rng))["L1:F1"]["kinds"]["ablate"]
    assert not few["strong_causal"] and "held-out n = 60 < 100" in few["reasons"]
    ok_all = causal_evidence(interventions_from_dicts(rows_for("L1:F1", 0.1, 60, rng=rng) + controls(24, 60, rng=rng),
                                                      None, "t"), CausalSettings(), available_heldout=60)
    assert ok_all["L1:F1"]["kinds"]["ablate"]["strong_causal"]
    assert ok_all["L1:F1"]["kinds"]["ablate"]["n_is_all_available"]
    noctl = evidence(rows_for("L1:F1", 0.1, 150, rng=rng) + controls(5, 150, rng=rng))["L1:F1"]["kinds"]["ablate"]
    assert not noctl["strong_causal"] and "5 random controls < 20" in noctl["reasons"]


def test_controls_for_another_feature_do_not_count():
    rng = np.random.default_rng(0)
    rows = rows_for("L1:F1", 0.1, 150, rng=rng) + controls(24, 150, rng=rng, control_for="L1:F9")
    k = evidence(rows)["L1:F1"]["kinds"]["ablate"]
    assert k["controls"]["n"] == 0 and not k["strong_causal"]


def test_effect_must_beat_the_controls_not_just_zero():
    rng = np.random.default_rng(0)
    # the machinery itself moves every feature by +0.05: a feature at +0.05 is no better than its controls
    rows = rows_for("L1:F1", 0.05, 150, rng=rng)
    for k in range(24):
        rows += rows_for(f"L1:F{2000 + k}", 0.05 + 0.01 * rng.normal(), 150, rng=rng, control="random_feature",
                         control_for="*")
    k = evidence(rows)["L1:F1"]["kinds"]["ablate"]
    assert k["ci"][0] > 0 and not k["strong_causal"]
    assert any("does not exceed the controls" in r for r in k["reasons"]) or k["controls"]["fraction_exceeded"] < 0.95


def test_rise_kinds_and_direction_down():
    rng = np.random.default_rng(0)
    steer = rows_for("L1:F1", 0.2, 150, kind="steer", rng=rng, strength=2.0)
    ctl = controls(24, 150, kind="steer", rng=rng, control="random_direction", strength=2.0)
    k = evidence(steer + ctl)["L1:F1"]["kinds"]["steer"]
    assert k["mean_effect"] > 0 and k["strong_causal"] and k["strength"] == 2.0
    clamp = rows_for("L1:F2", 0.2, 10, kind="clamp", rng=rng)
    for r in clamp:
        r["metadata"] = {"direction": "down"}
    k = evidence(clamp)["L1:F2"]["kinds"]["clamp"]
    assert k["mean_effect"] < 0  # clamping down and seeing a rise means the feature suppresses


def test_a_strength_sweep_is_reported_per_strength():
    rng = np.random.default_rng(0)
    rows = rows_for("L1:F1", 0.1, 30, kind="steer", rng=rng, strength=1.0) + \
        rows_for("L1:F1", 0.3, 30, kind="steer", rng=rng, strength=4.0)
    kinds = evidence(rows)["L1:F1"]["kinds"]
    assert set(kinds) == {"steer@1", "steer@4"}
    assert kinds["steer@4"]["mean_effect"] > kinds["steer@1"]["mean_effect"]


def test_only_heldout_rows_make_the_claim():
    rng = np.random.default_rng(0)
    rows = rows_for("L1:F1", 0.5, 150, rng=rng, split="discovery") + rows_for("L1:F1", 0.0, 150, rng=rng)
    rows += controls(24, 150, rng=rng)
    k = evidence(rows)["L1:F1"]["kinds"]["ablate"]
    assert abs(k["mean_effect"]) < 0.01 and not k["strong_causal"]


def test_causal_tier_in_a_report_from_files(tmp_path, synthetic_files):
    rep = inspect("synthetic/planted", "positive", records=synthetic_files["records"],
                  interventions=synthetic_files["interventions"], bootstrap=200).report
    assert rep["synthetic"] is True  # synthetic rows stay labelled through files
    planted = synthetic_files["planted"]
    by_role = {planted[c["feature_id"]]: c for c in rep["cards"] if c["feature_id"] in planted}
    assert by_role["dense_promoter"]["evidence_tier"] == "causal"
    assert by_role["dense_promoter"]["causal"]["ablate"]["strong_causal"]
    assert by_role["suppressor"]["direction"] == "suppresses"
    assert by_role["loud_decoy"]["evidence_tier"] != "causal"
    assert rep["cards"][0]["evidence_tier"] == "causal"


def test_intervention_rows_for_another_criterion_are_left_out(tmp_path):
    rows = rows_for("L1:F1", 0.1, 10) + [{**r, "criterion": "something else"} for r in rows_for("L1:F2", 0.1, 10)]
    p = tmp_path / "iv.jsonl"
    p.write_bytes(b"".join(msgspec.json.encode(r) + b"\n" for r in rows))
    from interp_lab.evidence.causal import load_interventions

    t = load_interventions(p, "My criterion.")
    assert t.rows_other_criterion == 10 and set(t.feature_id) == {"L1:F1"}
    t = load_interventions(p, "my criterion", allow_mismatch=True)
    assert t.rows_other_criterion == 0 and len(t.feature_id) == 20


def test_small_effects_keep_their_precision_and_their_scale():
    """A next-token mass moving by 3e-6 on a baseline of 2e-4 is reported to significant digits, with the
    baseline beside it (rounding to decimal places would print 0 for both)."""
    rows = rows_for("L1:F1", 3e-6, 150, noise=1e-7) + controls(20, 150)
    for r in rows:
        r["intervention_score"] += 2e-4 - r["baseline_score"]
        r["baseline_score"] = 2e-4
    k = evidence(rows)["L1:F1"]["kinds"]["ablate"]
    assert k["mean_effect"] == pytest.approx(3e-6, rel=0.01) and k["ci"][0] > 0
    assert k["baseline_mean"] == pytest.approx(2e-4)


def test_controls_written_the_02_way_serve_every_feature_and_the_report_says_so(tmp_path, cli):
    """The 0.2 README's controls: metadata.control_type and no control_for. They count for every feature of
    the same kind and strength, exactly as control_for "*" does, and the report says they were read so."""
    from conftest import EXAMPLES

    rows = [msgspec.json.decode(line) for line in (EXAMPLES / "interventions.jsonl").read_bytes().splitlines()]
    old = [{**r, "metadata": {k: v for k, v in r["metadata"].items() if k != "control_for"}} for r in rows]
    n_old = sum(1 for r in old if r["metadata"].get("control_type"))
    assert n_old == 6000 and not any("control_for" in r["metadata"] for r in old)
    paths = {}
    for name, rs in (("star", rows), ("v02", old)):
        paths[name] = tmp_path / f"{name}.jsonl"
        paths[name].write_bytes(b"".join(msgspec.json.encode(r) + b"\n" for r in rs))
    star = inspect(None, "c", records=EXAMPLES / "activation_records.jsonl", interventions=paths["star"]).report
    v02 = inspect(None, "c", records=EXAMPLES / "activation_records.jsonl", interventions=paths["v02"],
                  out=tmp_path / "report").report
    causal = [(c["feature_id"], c["causal"]) for c in star["cards"] if c.get("causal")]
    assert causal and [c["feature_id"] for c in v02["cards"]] == [c["feature_id"] for c in star["cards"]]
    by_id = {c["feature_id"]: c for c in v02["cards"]}
    for fid, entry in causal:
        for key, k in entry.items():  # a card's causal block: one entry per intervention kind
            got = by_id[fid]["causal"][key]
            assert got["controls"]["n"] == k["controls"]["n"] > 0  # was 0: the controls were dropped
            assert got["controls"]["without_control_for"] == k["controls"]["n"]
            assert got["strong_causal"] == k["strong_causal"] and got["placebo"] == k["placebo"]
            assert "without_control_for" not in k["controls"]
    note = (f"{n_old} control rows of v02.jsonl give metadata.control_type without control_for (the 0.2 form): "
            "each was counted as a control for every tested feature of its intervention kind and strength")
    assert note in v02["notes"] and not any("control_for" in n for n in star["notes"])
    assert note in (tmp_path / "report" / "report.md").read_text()
