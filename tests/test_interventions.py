"""Interventions on SmolLM2: cached prefixes compute what the plain model computes, edits do what they say,
controls are matched as evidence.md rule 7 asks (on the realised edit; steering controls on side-effect KL;
label-permuted refits for contrast directions), steering stays within its side-effect budget, and a
contrast direction is causal on held-out prompts."""

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from interp_lab.criteria.scorers import NextTokenMass  # noqa: E402
from interp_lab.interventions import controls as ctl  # noqa: E402
from interp_lab.interventions.batches import PromptSet, scores  # noqa: E402
from interp_lab.interventions.features import BasisSpace, DirectionSpace, Target  # noqa: E402
from interp_lab.interventions.plan import EditPlan, set_edit  # noqa: E402
from interp_lab.interventions.run import Experiment, Prompts  # noqa: E402
from interp_lab.interventions.settings import InterventionSettings  # noqa: E402
from interp_lab.models.hooked import Edit, run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
UNITS = ROOT / "examples" / "units"
pytestmark = pytest.mark.realmodel


def units_rows(n_each: int | None = None):
    rows = [json.loads(line) for line in (UNITS / "prompts.jsonl").read_text().splitlines()]
    if n_each is None:
        return rows
    pos = [r for r in rows if r["labels"]["expected"] == "unit"][:n_each]
    neg = [r for r in rows if r["labels"]["expected"] == "non_unit"][:n_each]
    return pos + neg


def test_cached_prefix_batches_compute_what_the_model_computes(smollm2):
    lm = smollm2
    texts = ["The bridge is 240", "Hi", "In 1990 the population of the town was 12", "x",
             "The war ended in 1945 after six"]
    ps = PromptSet(lm, texts, batch_size=3)  # several batches, left padding, one-token prompts
    lp = ps.next_token_logprobs()
    hook = "blocks.7.hook_mlp_out"
    edited = ps.next_token_logprobs(lambda b: [Edit(hook, "zero")])
    for i, t in enumerate(texts):
        enc = lm.tokenizer(t, return_tensors="pt")
        T = enc["input_ids"].shape[1]
        with torch.inference_mode():
            ref = torch.log_softmax(lm.model(**enc).logits[0, -1].float(), -1)
        torch.testing.assert_close(lp[i], ref, atol=2e-4, rtol=0)
        ref_e = run(lm.model, dict(enc), edits=[Edit(hook, "zero", positions=[T - 1])]).logits[0, -1]
        torch.testing.assert_close(edited[i], torch.log_softmax(ref_e.float(), -1), atol=2e-4, rtol=0)
    acts = ps.last_token_acts(["blocks.3.hook_resid_post"])["blocks.3.hook_resid_post"]
    enc = lm.tokenizer(texts[2], return_tensors="pt")
    ref = run(lm.model, dict(enc), ["blocks.3.hook_resid_post"], positions=[-1], logits=False)
    np.testing.assert_allclose(acts[2], ref.acts["blocks.3.hook_resid_post"][0, 0].numpy(), atol=1e-4)
    # greedy continuation and continuation log-probabilities over the cache equal the plain model's
    b = next(b for b in ps.batches if 0 in b.rows)
    row = int(np.flatnonzero(b.rows == 0)[0])
    got = ps.greedy(b, 5)[row]
    enc = lm.tokenizer(texts[0], return_tensors="pt")
    with torch.inference_mode():
        want = lm.model.generate(**enc, max_new_tokens=5, do_sample=False)[0, enc["input_ids"].shape[1]:]
    assert got == want.tolist()
    cont = lm.tokenizer(" metres long", add_special_tokens=False)["input_ids"]
    lp_cont = ps.continuation_logprob(b, [cont] * b.size)[row]
    full = torch.tensor([enc["input_ids"][0].tolist() + cont])
    with torch.inference_mode():
        lf = torch.log_softmax(lm.model(full).logits[0].float(), -1)
    T = enc["input_ids"].shape[1]
    manual = sum(lf[T - 1 + k, c] for k, c in enumerate(cont))
    assert abs(float(lp_cont) - float(manual)) < 1e-3
    # the cache is back to the prefix after every step: the same call gives the same answer
    torch.testing.assert_close(ps.next_token_logprobs(), lp)


def test_feature_edits_set_what_they_say():
    x = torch.randn(4, 3, 16)
    basis = BasisSpace("blocks.0.hook_resid_post", 0, "R", 16)
    out = set_edit(basis, 5, 2.5)(x)
    torch.testing.assert_close(out[..., 5], torch.full((4, 3), 2.5))  # x + (2.5 - x): rounding, not exact
    assert torch.equal(out[..., :5], x[..., :5]) and torch.equal(out[..., 6:], x[..., 6:])
    d = DirectionSpace("blocks.0.hook_resid_post", 0, np.random.default_rng(0).normal(size=(1, 16)), ["L0:D0"])
    out = set_edit(d, 0, torch.tensor([0.0, 1.0, -1.0, 3.0]))(x)  # per-row values (patching)
    proj = d.values(out, [0])[..., 0]
    torch.testing.assert_close(proj, torch.tensor([0.0, 1.0, -1.0, 3.0])[:, None].expand(4, 3))
    resid = out - proj[..., None] * d.write([0])[0]
    torch.testing.assert_close(resid, x - d.values(x, [0]) * d.write([0])[0])  # the orthogonal part is kept


@pytest.fixture(scope="module")
def small_experiment(smollm2):
    rows = units_rows(60)
    from interp_lab.criteria.compile import target_token_ids
    from interp_lab.io.specs import load_criterion

    spec = load_criterion(str(UNITS / "criterion.yaml"))
    ids = target_token_ids(smollm2.tokenizer, list(spec.targets))
    pset = PromptSet(smollm2, [r["text"] for r in rows], 64)
    mass = scores(pset, NextTokenMass(ids))
    splits = ["discovery", "calibration", "heldout"]
    for i, (r, s) in enumerate(zip(rows, mass)):
        r["criterion_score"], r["split"] = float(s), splits[i % 3]
    hooks = ["blocks.20.mlp.hook_post", "blocks.20.hook_resid_post"]
    side = ["The committee met on", "She opened the door and", "Rain is expected over the",
            "The museum was founded by", "After the election the party"]
    ex = Experiment(smollm2, Prompts(rows), NextTokenMass(ids), side, InterventionSettings(), hooks, criterion="units")
    return ex


@pytest.fixture(scope="module")
def contrast_target(small_experiment):
    ex = small_experiment
    x, p = ex.ref_stats.acts["blocks.20.hook_resid_post"], ex.ref_stats.positive
    return Target(DirectionSpace("blocks.20.hook_resid_post", 20, (x[p].mean(0) - x[~p].mean(0))[None],
                                 ["L20:D0"]), 0)


def test_unit_controls_are_matched_on_the_realised_edit(small_experiment):
    """Neurons' controls: other neurons whose edit RMS (|change| x the down-projection column's norm) on
    discovery prompts is within the recorded tolerance; the one with the largest edit has no such peers
    within 25%, so its sampler widens and says so, and still returns 20."""
    ex = small_experiment
    neurons = BasisSpace("blocks.20.mlp.hook_post", 20, "N", 1536)
    rms = ex.ref_stats.edit_rms(neurons, "mean_ablate")
    down = ex.lm.model.model.layers[20].mlp.down_proj.weight.detach().float().norm(dim=0).numpy()
    v = ex.ref_stats.values(neurons)
    np.testing.assert_allclose(rms, v.std(0) * down, rtol=1e-4)
    loudest = int(np.argmax(rms))
    for j in (17, loudest):
        plans = ex.controls(Target(neurons, j), "mean_ablate", None)
        assert len(plans) == 20 and j not in {c.index for c in plans}
        assert {c.control_type for c in plans} == {"random_feature"}  # no placebo, no permuted family
        tol = plans[0].match_tolerance
        assert all(ctl.within(rms[c.index] / rms[j], tol) for c in plans)
        assert plans[0].tolerance_widened == (tol != 0.25) and "edit RMS within" in plans[0].matched_on
    assert plans[0].tolerance_widened  # the loudest neuron's


def test_records_carry_the_realised_edit_and_the_class(small_experiment, contrast_target):
    """edit_norm is the change the edit really makes to the residual stream at the last prompt token
    (read back from the model), positive the held-out prompt's class; and a zero edit (the software
    self-check the placebo was) leaves every score as it is."""
    from interp_lab.interventions.features import write_norms

    ex, d = small_experiment, contrast_target
    neurons = BasisSpace("blocks.20.mlp.hook_post", 20, "N", 1536)
    plans = [EditPlan("L20:N17", neurons, 17, "mean_ablate"), EditPlan("L20:D0", d.space, 0, "ablate")]
    for plan in plans:
        recs = ex.records(plan, None)
        assert len(recs) == len(ex.held)
        for r, row in zip(recs, ex.held_rows):
            assert r["metadata"]["positive"] == (row["criterion_score"] > ex.cut)
        value = ex._value(plan, "held")
        for k in (0, 5):
            enc = ex.lm.tokenizer(ex.held.texts[k], return_tensors="pt")
            T = enc["input_ids"].shape[1]
            read = "blocks.20.hook_resid_post"
            edit = Edit(plan.space.hook, "apply", set_edit(plan.space, plan.index, value), positions=[T - 1])
            clean = run(ex.lm.model, dict(enc), [read], positions=[-1], logits=False).acts[read][0, 0]
            edited = run(ex.lm.model, dict(enc), [read], [edit], positions=[-1], logits=False).acts[read][0, 0]
            assert abs(float((edited - clean).norm()) - recs[k]["metadata"]["edit_norm"]) < 1e-3 * max(
                1.0, recs[k]["metadata"]["edit_norm"])
    assert write_norms(ex.lm, d.space)[0] == pytest.approx(1.0)
    zero = ex.records(EditPlan("L20:D0", d.space, 0, "steer", 0.0), None)
    assert all(r["intervention_score"] == r["baseline_score"] and r["metadata"]["edit_norm"] == 0 for r in zero)
    assert all(r["side_effect_score"] == 0 for r in zero if r["side_effect_score"] is not None)


def test_direction_controls_random_and_label_permuted(small_experiment, contrast_target):
    """A contrast direction's projection-out controls: random directions drawn from the activation
    distribution (inside the span of the centred discovery activations, never isotropic) whose removed
    projection has an RMS within tolerance of the feature's; and 20 refits of the same method (D0 difference
    of means, D1 logistic probe) on permuted discovery labels, unit norm, that separate the real classes
    far less than the feature does."""
    from interp_lab.evidence.stats import auroc
    from interp_lab.interventions.contrast import logistic_probe

    ex, d = small_experiment, contrast_target
    x, pos = ex.ref_stats.acts["blocks.20.hook_resid_post"], ex.ref_stats.positive
    probe = logistic_probe(x, pos)
    d1 = Target(DirectionSpace("blocks.20.hook_resid_post", 20, probe[None], ["L20:D1"]), 0)
    _, _, basis = np.linalg.svd(x - x.mean(0), full_matrices=False)
    for target in (d, d1):
        plans = ex.controls(target, "ablate", None)
        rnd = [c for c in plans if c.control_type == "random_direction"]
        perm = [c for c in plans if c.control_type == "permuted_label"]
        assert len(rnd) == 20 and len(perm) == 20
        mine = ex.ref_stats.edit_rms(target.space, "ablate")[0]
        vecs = np.stack([c.space.write([c.index])[0].numpy() for c in rnd])
        assert ctl.within(ex.ref_stats.direction_rms("blocks.20.hook_resid_post", "ablate", vecs) / mine,
                          rnd[0].match_tolerance).all()
        outside = vecs - (vecs @ basis.T) @ basis
        assert np.abs(outside).max() < 1e-3
        pv = np.stack([c.space.write([c.index])[0].numpy() for c in perm])
        np.testing.assert_allclose(np.linalg.norm(pv, axis=1), 1.0, atol=1e-5)
        # on held-out prompts the real direction separates the classes better than most refits; but fitted on
        # 40 discovery prompts in 576 dimensions a permuted-label refit leans on the top principal directions,
        # which carry the class too: measured here, D0 |AUROC - 0.5| 0.395 against refits' 0.07-0.44 (median
        # 0.22). That reach is why a contrast direction must beat this family, not only random directions.
        xh = ex.held_acts["blocks.20.hook_resid_post"]
        own = abs(auroc(xh @ target.space.vectors[0], ex.held_positive) - 0.5)
        placebo = np.array([abs(auroc(xh @ v, ex.held_positive) - 0.5) for v in pv])
        assert own > 0.3 and np.median(placebo) < own and (placebo < own).mean() >= 0.75
        assert np.abs(pv @ target.space.vectors[0] / np.linalg.norm(target.space.vectors[0])).max() < 0.95
        assert "permuted discovery labels" in perm[0].matched_on
    assert ex.controls(d, "steer", 0.5)[-1].control_type == "permuted_label"


def test_steering_under_the_budget_with_kl_matched_controls(small_experiment, contrast_target):
    """The chosen strength's calibration KL is within the budget (the best gain among those that are);
    steering controls are steered at strengths whose side-effect KL is within 25% of the feature's, linked
    to its strength by for_strength; a budget no strength meets extends the grid downwards and is said."""
    ex, d = small_experiment, contrast_target
    strength, info = ex.calibrate(d)
    dose = {r["strength"]: r for r in info["dose_response"]}
    assert info["within_budget"] and dose[strength]["kl"] <= info["kl_budget"] == 1.0
    fits = [r for r in dose.values() if r["kl"] <= 1.0]
    assert dose[strength]["gain"] == max(r["gain"] for r in fits) > 0
    assert {0.25, 0.5, 1.0, 2.0, 4.0} <= set(dose) and all(r["controls_kl_median"] is not None for r in fits)
    feature = ex.records(EditPlan("L20:D0", d.space, 0, "steer", strength), None)
    kl_f = np.mean([r["side_effect_score"] for r in feature if r["side_effect_score"] is not None])
    assert kl_f == pytest.approx(dose[strength]["kl"], rel=1e-5)
    plans = ex.controls(d, "steer", strength)
    rnd = [c for c in plans if c.control_type == "random_direction"]
    assert len(rnd) == 20 and all(c.for_strength == strength for c in plans)
    for c in rnd:
        recs = ex.records(c, "L20:D0")
        kl_c = np.mean([r["side_effect_score"] for r in recs if r["side_effect_score"] is not None])
        assert 0.75 <= kl_c / kl_f <= 1.25 and not c.tolerance_widened
        meta = recs[0]["metadata"]
        assert meta["for_strength"] == strength and meta["control_for"] == "L20:D0"
        assert meta["edit_norm"] == pytest.approx(c.strength * ex.ref_stats.median_norm[c.space.hook], rel=1e-5)
    tight = ex.settings
    try:
        ex.settings = tight.replace(kl_budget=1e-9)
        s_tight, info_tight = ex.calibrate(d)
    finally:
        ex.settings = tight
    tried = [r["strength"] for r in info_tight["dose_response"]]
    assert info_tight["within_budget"] is False and s_tight == min(tried) == 0.25 / 16
    assert all(r["kl"] > 1e-9 for r in info_tight["dose_response"])


@pytest.fixture(scope="module")
def contrast_run(smollm2, tmp_path_factory):
    from interp_lab.api import contrast

    out = tmp_path_factory.mktemp("contrast")
    res = contrast(smollm2, str(UNITS / "criterion.yaml"), out_dir=out)
    return res, out


@pytest.mark.slow
def test_contrast_direction_is_causal_on_held_out_prompts(contrast_run):
    res, out = contrast_run
    fid = res.best.feature_id
    assert fid.endswith(":D0") and res.best.auroc["heldout"] > 0.8
    kinds = res.evidence[fid]["kinds"]
    steer, ablate = kinds["steer"], kinds["ablate"]
    # steering at the strength chosen under the 1-nat budget beats the 95th percentile of 20 random directions
    # steered to the same side-effect KL and of 20 refits on permuted labels (the higher of the two families)
    sweep = res.run.strengths[fid]
    chosen = next(r for r in sweep["dose_response"] if r["strength"] == sweep["chosen"])
    assert sweep["within_budget"] and chosen["kl"] <= sweep["kl_budget"] == 1.0 and chosen["gain"] > 0
    fam = steer["controls"]["families"]
    assert fam["random"]["n"] == 20 and fam["random"]["types"] == ["random_direction"]
    assert fam["permuted_label"]["n"] == 20 and steer["controls"]["n"] == 40
    assert steer["controls"]["threshold"] == max(f["threshold"] for f in fam.values())
    assert steer["mean_effect"] > steer["controls"]["threshold"] and steer["strong_causal"]
    assert steer["n"] >= 100 and steer["strength"] == sweep["chosen"]
    assert steer["side_effect"]["mean"] <= 1.0
    # projecting the direction out lowers the held-out score (a drop: positive promotion effect), CI > 0
    assert ablate["ci"][0] > 0 and ablate["n"] >= 100
    assert ablate["strong_causal"]
    recs = res.run.records
    assert all(isinstance(r["metadata"]["edit_norm"], float) and isinstance(r["metadata"]["positive"], bool)
               for r in recs)
    assert not any(r["metadata"].get("control_type") == "placebo" for r in recs)
    by = {}
    for r in recs:
        m = r["metadata"]
        by.setdefault((r["feature_id"], r["intervention"], m.get("control_type")), []).append(r)
    # the second family: D0 refitted on permuted discovery labels, 20 per kind
    perm_ids = {(r["intervention"], r["feature_id"]) for r in recs
                if r["metadata"].get("control_type") == "permuted_label"}
    assert sum(k == "steer" for k, _ in perm_ids) == 20 and sum(k == "ablate" for k, _ in perm_ids) == 20
    kl_f = np.mean([r["side_effect_score"] for r in by[(fid, "steer", None)] if r["side_effect_score"] is not None])
    for (_, kind, ctype), rows in by.items():
        if kind == "steer" and ctype == "random_direction":
            kl_c = np.mean([r["side_effect_score"] for r in rows if r["side_effect_score"] is not None])
            assert 0.75 <= kl_c / kl_f <= 1.25 and rows[0]["metadata"]["for_strength"] == sweep["chosen"]
        if kind == "ablate" and ctype == "random_direction":
            rms_c = np.sqrt(np.mean([r["metadata"]["edit_norm"] ** 2 for r in rows]))
            assert rows[0]["metadata"]["match_tolerance"] == 0.25  # matched on discovery: held-out RMS near it
            rms_f = np.sqrt(np.mean([r["metadata"]["edit_norm"] ** 2 for r in by[(fid, "ablate", None)]]))
            assert 0.6 < rms_c / rms_f < 1.6


@pytest.mark.slow
def test_contrast_outputs_validate_and_feed_inspect(contrast_run, cli, tmp_path):
    res, out = contrast_run
    from interp_lab.interventions.contrast import load_directions
    from interp_lab.io.jsonl import read_jsonl
    from interp_lab.schemas.records import InterventionRecord

    recs = list(read_jsonl(out / "contrast-interventions.jsonl", InterventionRecord))
    assert len(recs) == len(res.run.records) and all(r.split == "heldout" for _, r in recs)
    dirs = load_directions(out / "directions.safetensors")
    assert res.best.feature_id in dirs and len(dirs) == 2 * 30
    np.testing.assert_allclose(np.linalg.norm(dirs[res.best.feature_id][1]), 1.0, atol=1e-5)
    feats = [json.loads(line) for line in (out / "contrast-features.jsonl").read_text().splitlines()]
    assert len(feats[0]["decoder_signature"]) == 576
    code, _, err = cli("inspect", "--criterion", UNITS / "criterion.yaml", "--model", "smollm2-135m",
                       "--records", out / "contrast-records.jsonl", "--interventions",
                       out / "contrast-interventions.jsonl", "--out", tmp_path / "rep")
    assert code == 0, err
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    card = next(c for c in report["cards"] if c["feature_id"] == res.best.feature_id)
    assert card["evidence_tier"] == "causal" and card["causal"]["steer"]["strong_causal"]


@pytest.mark.slow
def test_the_summary_prints_the_verdict_inspect_records(contrast_run, tmp_path):
    """export-hf-contrast and intervene print evidence.causal's verdict with the criterion's held-out prompts
    as every prompt available, as inspect does from the records of the same prompts. The contrast run's
    records cut to 60 held-out prompts: every one used, fewer than 100; the summary said "held-out n = 60 <
    100", inspect "strong_causal"."""
    from interp_lab.api import inspect
    from interp_lab.api.interventions import summarize
    from interp_lab.criteria.compile import Compiled
    from interp_lab.io.specs import load_criterion

    res, out = contrast_run
    recs = [json.loads(line) for line in (out / "contrast-records.jsonl").read_text().splitlines()]
    held = set(sorted(r["prompt_id"] for r in recs if r["split"] == "heldout")[:60])
    recs = [r for r in recs if r["split"] != "heldout" or r["prompt_id"] in held]
    ivs = [json.loads(line) for line in (out / "contrast-interventions.jsonl").read_text().splitlines()]
    ivs = [r for r in ivs if r["prompt_id"] in held]
    for name, rows in (("records", recs), ("interventions", ivs)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = load_criterion(str(UNITS / "criterion.yaml"))
    compiled = Compiled(spec, [{k: r[k] for k in ("prompt_id", "text", "criterion_score", "split")} for r in recs],
                        "next_token_mass")
    # tested in the direction the run fixed on discovery prompts, as inspect tests it in the ranker's
    summary = summarize(ivs, compiled, claims={res.best.feature_id: 1})[res.best.feature_id]["kinds"]
    report = inspect("smollm2-135m", str(UNITS / "criterion.yaml"), records=tmp_path / "records.jsonl",
                     interventions=tmp_path / "interventions.jsonl").report
    recorded = next(c for c in report["cards"] if c["feature_id"] == res.best.feature_id)["causal"]
    assert set(summary) == set(recorded) == {"steer", "ablate"}
    for kind, k in summary.items():
        assert k["n"] == recorded[kind]["n"] == 60 and k["n_is_all_available"]
        assert (k["strong_causal"], k["reasons"]) == (recorded[kind]["strong_causal"], recorded[kind]["reasons"])
    assert summary["steer"]["strong_causal"]


def test_intervene_and_steer_commands(smollm2, cli, tmp_path):
    rows = units_rows(45)
    p = tmp_path / "p.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = tmp_path / "c.yaml"
    spec.write_text((UNITS / "criterion.yaml").read_text().replace("min_heldout: 100", "min_heldout: 10")
                    .replace("prompts: examples/units/prompts.jsonl", f"prompts: {p}"))
    code, out, err = cli("intervene", "--criterion", spec, "--features", "L20:N100,L20:R7",
                         "--kinds", "mean_ablate,clamp_up", "--controls", "3", "--out", tmp_path / "iv.jsonl")
    assert code == 0, err
    got = [json.loads(line) for line in (tmp_path / "iv.jsonl").read_text().splitlines()]
    kinds = {(r["feature_id"], r["intervention"]) for r in got if not r["metadata"].get("control_type")}
    assert kinds == {("L20:N100", "mean_ablate"), ("L20:N100", "clamp_up"), ("L20:R7", "mean_ablate"),
                     ("L20:R7", "clamp_up")}
    assert "L20:N100" in out and "clamp_up" in out
    code, out, err = cli("steer", "--feature", "L20:R7", "--strength", "3", "--prompt", "The bridge is 240",
                         "--tokens", "6")
    assert code == 0, err
    assert "baseline:" in out and "steered:" in out and "median norm" in out
    code, _, err = cli("intervene", "--criterion", spec, "--features", "L99:N1", "--out", tmp_path / "x.jsonl")
    assert code == 2 and "layers 0..29" in err and not (tmp_path / "x.jsonl").exists()


def test_replaying_clean_blocks_below_an_edit_gives_the_full_run(smollm2):
    from interp_lab.interventions.batches import PromptSet

    texts = ["The bridge is 240", "In 1990 the population of the town was 12", "The war ended in 1945 after six"]
    ps = PromptSet(smollm2, texts, batch_size=2)
    for hook in ("blocks.20.hook_resid_post", "blocks.11.mlp.hook_post", "blocks.4.hook_attn_out",
                 "blocks.9.hook_resid_mid", "blocks.0.hook_resid_pre"):
        e = [Edit(hook, "apply", lambda v: v * 0.5 + 1.0)]
        try:
            PromptSet.replay = False
            full = ps.next_token_logprobs(lambda b, e=e: e)
        finally:
            PromptSet.replay = True
        replayed = ps.next_token_logprobs(lambda b, e=e: e)
        torch.testing.assert_close(replayed, full, rtol=0, atol=1e-5)
        assert not torch.allclose(full, ps.next_token_logprobs(), atol=1e-3)  # the edit did something
