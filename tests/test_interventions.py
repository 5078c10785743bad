"""Interventions on SmolLM2: cached prefixes compute what the plain model computes, edits do what they say,
controls are matched as evidence.md rule 7 asks, and a contrast direction is causal on held-out prompts."""

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from interp_lab.interventions.batches import PromptSet  # noqa: E402
from interp_lab.interventions.features import BasisSpace, DirectionSpace, Target, matched_directions  # noqa: E402
from interp_lab.interventions.run import EditPlan, Experiment, Prompts, _set_edit  # noqa: E402
from interp_lab.interventions.scorers import NextTokenMass, scores  # noqa: E402
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
    out = _set_edit(basis, 5, 2.5)(x)
    assert torch.all(out[..., 5] == 2.5)
    assert torch.equal(out[..., :5], x[..., :5]) and torch.equal(out[..., 6:], x[..., 6:])
    d = DirectionSpace("blocks.0.hook_resid_post", 0, np.random.default_rng(0).normal(size=(1, 16)), ["L0:D0"])
    out = _set_edit(d, 0, torch.tensor([0.0, 1.0, -1.0, 3.0]))(x)  # per-row values (patching)
    proj = d.values(out, [0])[..., 0]
    torch.testing.assert_close(proj, torch.tensor([0.0, 1.0, -1.0, 3.0])[:, None].expand(4, 3))
    resid = out - proj[..., None] * d.write([0])[0]
    torch.testing.assert_close(resid, x - d.values(x, [0]) * d.write([0])[0])  # the orthogonal part is kept
    ref = np.random.default_rng(1).normal(size=(200, 16)) * np.linspace(0.1, 5, 16)
    m = matched_directions("h", 0, ref, 2.0, 20, seed=0, factor=2.0, prefix="c")
    sd = (ref @ m.vectors.T).std(0)
    assert m.size == 20 and np.all((sd >= 1.0) & (sd <= 4.0))


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
    side = ["The committee met on", "She opened the door and", "Rain is expected over the"]
    ex = Experiment(smollm2, Prompts(rows), NextTokenMass(ids), side, InterventionSettings(), hooks, criterion="units")
    return ex


def test_controls_are_matched_and_the_placebo_changes_nothing(small_experiment):
    ex = small_experiment
    neurons = BasisSpace("blocks.20.mlp.hook_post", 20, "N", 1536)
    t = Target(neurons, 17)
    ctl = ex.controls(t, "mean_ablate", None)
    randoms = [c for c in ctl if c.control_type == "random_feature"]
    spread = ex.ref_stats.spread(neurons)
    assert len(randoms) == 20 and 17 not in {c.index for c in randoms}
    assert all(spread[17] / 2 <= spread[c.index] <= spread[17] * 2 for c in randoms)
    steer = [c for c in ex.controls(t, "steer", 1.0) if c.control_type == "random_direction"]
    assert len(steer) == 20 and all(c.strength == 1.0 for c in steer)
    vec = ex.ref_stats.acts["blocks.20.hook_resid_post"]
    u = vec[ex.ref_stats.positive].mean(0) - vec[~ex.ref_stats.positive].mean(0)
    d = Target(DirectionSpace("blocks.20.hook_resid_post", 20, u[None], ["L20:D0"]), 0)
    dctl = [c for c in ex.controls(d, "ablate", None) if c.control_type == "random_direction"]
    mine = ex.ref_stats.spread(d.space)[0]
    assert len(dctl) == 20
    assert all(mine / 2 <= ex.ref_stats.spread(c.space)[c.index] <= mine * 2 for c in dctl)
    placebo = next(c for c in ctl if c.control_type == "placebo")
    recs = ex.records(placebo, "L20:N17")
    assert all(r["intervention_score"] == r["baseline_score"] for r in recs)
    assert all(r["metadata"]["control_for"] == "L20:N17" and r["side_effect_score"] is not None
               for r in recs[:3])
    # a real edit moves scores, and patching only touches held-out negatives
    moved = ex.records(EditPlan("L20:D0", d.space, 0, "ablate"), None)
    assert any(r["intervention_score"] != r["baseline_score"] for r in moved)
    patched = ex.records(EditPlan("L20:D0", d.space, 0, "patch"), None)
    held = {r["prompt_id"]: r for r in ex.held_rows}
    assert patched and all(held[r["prompt_id"]]["criterion_score"] <= ex.cut for r in patched)
    assert all(r["metadata"]["patched_from"] in ex.ref.prompt_ids for r in patched)


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
    # steering at the calibrated strength beats the 95th percentile of 20 norm-matched random directions
    assert steer["controls"]["n"] == 20 and steer["controls"]["types"] == ["random_direction"]
    assert steer["mean_effect"] > steer["controls"]["threshold"] and steer["strong_causal"]
    assert steer["n"] >= 100 and steer["strength"] == res.run.strengths[fid]["chosen"]
    # projecting the direction out lowers the held-out score (a drop: positive promotion effect), CI > 0
    assert ablate["ci"][0] > 0 and ablate["n"] >= 100
    # controls: the placebo changes nothing; random directions (projection spread matched) move the score
    # far less than the contrast direction does
    for k in (steer, ablate):
        assert k["placebo"]["ci"][0] <= 0 <= k["placebo"]["ci"][1]
    assert max(abs(e) for e in ablate["controls"]["effects"]) < ablate["mean_effect"]
    assert ablate["strong_causal"]


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
