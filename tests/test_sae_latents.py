"""SAE latents as features: encoded into the store (latents/<sae_id>/ Parquet, DuckDB queries) and ranked
by ``inspect --backend sae`` on the real model, with interventions and controls on the latents."""

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sae_common import HOOK  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def topk_dir(sae_store, tmp_path_factory):
    """A small TopK SAE (2x width, k 16) of the store's layer-15 residual stream."""
    from interp_lab.api.sae import train_sae
    from interp_lab.sae.config import TrainConfig

    out = tmp_path_factory.mktemp("latents") / "topk-sae"
    return train_sae(out=out, store=sae_store.root, hook=HOOK, ce_tokens=0,
                     config=TrainConfig(expansion_factor=2, k=16, tokens=30_000, seed=2)).path


def test_store_encode_writes_the_sae_latents_and_duckdb_reads_them(sae_store, topk_dir, tmp_path, cli):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from interp_lab.sae.space import latent_space
    from interp_lab.sae.store_latents import encode_store
    from interp_lab.store.latents import latent_frequencies, stored_latents, top_latent
    from interp_lab.store.queries import summary

    out = encode_store(sae_store, topk_dir, sae_id="topk-test", batch_size=5000)
    info = json.loads((out / "info.json").read_text())
    assert info["rows"] == sae_store.rows and info["d_sae"] == 1152 and info["hook"] == HOOK
    table = pa.concat_tables([pq.read_table(p) for p in sorted(out.glob("part-*.parquet"))])
    assert table.num_rows == info["nonzero"]
    rows, lat, val = (table.column(c).to_numpy() for c in ("row", "latent", "value"))
    assert (np.diff(rows) >= 0).all() and (val > 0).all()
    per_row = np.bincount(rows, minlength=sae_store.rows)
    assert per_row.max() <= 16 and per_row.mean() > 15  # TopK k 16: at most 16, nearly always 16

    # the stored values are the SAE's own encoding of the stored activations
    space = latent_space(topk_dir)
    sample = np.arange(0, sae_store.rows, 997)
    z = space.values(torch.from_numpy(sae_store.acts(HOOK, sample).astype(np.float32)), range(space.size)).numpy()
    dense = np.zeros_like(z)
    hit = np.isin(rows, sample)
    dense[np.searchsorted(sample, rows[hit]), lat[hit]] = val[hit]
    np.testing.assert_allclose(dense, z, rtol=1e-5, atol=1e-6)

    # top contexts of a latent: highest values first, never position 0, values as stored
    freq = latent_frequencies(sae_store, "topk-test")
    latent = int(np.argsort(freq)[len(freq) // 2])  # a latent of median frequency
    top = top_latent(sae_store, "topk-test", latent, k=10)
    assert len(top) == 10 and all(t["position"] > 0 for t in top)
    got = [t["activation"] for t in top]
    assert got == sorted(got, reverse=True)
    first = sae_store.tokens(["position"]).column("position").to_numpy() == 0
    mine = val[(lat == latent) & ~first[rows]]
    assert got[0] == pytest.approx(float(mine.max())) and got[-1] == pytest.approx(float(np.sort(mine)[-10]))
    assert freq[latent] == pytest.approx(((lat == latent) & ~first[rows]).sum() / (~first).sum())

    assert [i["sae_id"] for i in stored_latents(sae_store)] == ["topk-test"]
    assert summary(sae_store)["latents"][0]["sae_id"] == "topk-test"

    # the CLI: encode under the default id (directory name + weights hash), then query it
    code, text, err = cli("store", "encode", sae_store.root, "--sae", topk_dir, "--records-out", tmp_path / "r.jsonl")
    assert code == 0, err
    default_id = f"topk-sae-{space.fingerprint[:8]}"
    assert (sae_store.root / "latents" / default_id / "info.json").is_file() and "non-zero latents" in text
    recs = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert len(recs) == len(set(sae_store.tokens(["prompt_id"]).column("prompt_id").to_pylist()))
    assert recs[0]["metadata"]["sae"] == default_id
    assert all(f["feature_id"].startswith("L15:F") for f in recs[0]["features"])
    code, _, err = cli("store", "encode", sae_store.root, "--sae", topk_dir, "--records-out", tmp_path / "s.jsonl",
                       "--records-pooling", "median")
    assert code == 2 and "--records-pooling" in err and not (tmp_path / "s.jsonl").exists()
    code, text, err = cli("store", "top", sae_store.root, "--latents", default_id, "--channel", str(latent),
                          "--k", "3")
    assert code == 0, err
    assert top[0]["token"] in text
    code, _, err = cli("store", "top", sae_store.root, "--latents", "nope", "--channel", "1")
    assert code == 2 and "no latents 'nope'" in err and default_id in err
    code, _, err = cli("store", "encode", sae_store.root, "--sae", topk_dir, "--sae-id", "a/b")
    assert code == 2 and "--sae-id" in err
    # a missing checkpoint is refused and nothing is left behind
    code, _, err = cli("store", "encode", sae_store.root, "--sae", topk_dir.parent / "missing")
    assert code != 0
    for d in (sae_store.root / "latents").iterdir():
        if d.name not in ("topk-test", default_id):
            pytest.fail(f"left behind: {d}")


def test_export_neuronpedia_writes_latents_with_their_windows_density_and_histogram(sae_store, topk_dir, tmp_path,
                                                                                   cli):
    """``export-neuronpedia --store``: each latent's top activations with the stored value of every token of
    the window, its density and value histogram over the store; ``--neuronpedia-json`` reads it back."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from interp_lab.providers.neuronpedia import load_features
    from interp_lab.sae.store_latents import encode_store
    from interp_lab.store.latents import latent_frequencies, top_latent

    out = encode_store(sae_store, topk_dir, sae_id="np-export", batch_size=5000)
    table = pa.concat_tables([pq.read_table(p) for p in sorted(out.glob("part-*.parquet"))])
    rows, lat, val = (table.column(c).to_numpy() for c in ("row", "latent", "value"))
    freq = latent_frequencies(sae_store, "np-export")
    picks = [int(np.argmax(freq)), int(np.argsort(freq)[len(freq) // 2])]
    code, text, err = cli("export-neuronpedia", "--store", sae_store.root, "--latents", "np-export",
                          "--feature-indexes", ",".join(map(str, picks)), "--top-k", "5", "--out", tmp_path / "np")
    assert code == 0, err
    first = sae_store.tokens(["position"]).column("position").to_numpy() == 0
    for latent in picks:
        doc = json.loads((tmp_path / "np" / f"{sae_store.manifest.model}@15-np-export@{latent}.json").read_text())
        assert (doc["layer"], doc["index"], doc["hookName"]) == ("15-np-export", str(latent), HOOK)
        top = top_latent(sae_store, "np-export", latent, k=5, window=12)
        assert [a["maxValue"] for a in doc["activations"]] == [t["activation"] for t in top]
        stored = dict(zip(rows[lat == latent].tolist(), val[lat == latent].tolist()))
        for a, t in zip(doc["activations"], top):
            k = a["maxValueTokenIndex"]
            assert a["values"][k] == a["maxValue"] and a["tokens"][k] == t["token"]
            start = t["row"] - k  # the window's values are the stored ones (absent: 0)
            assert a["values"] == pytest.approx([stored.get(start + j, 0.0) for j in range(len(a["tokens"]))])
        assert doc["frac_nonzero"] == pytest.approx(freq[latent])
        assert sum(doc["freq_hist_data_bar_heights"]) == ((lat == latent) & ~first[rows]).sum()
        assert doc["explanations"] == [] and doc["pos_str"] == []
    back = load_features(json_dir=tmp_path / "np")
    assert sorted(f.feature_id for f in back) == sorted(f"L15:F{i}" for i in picks)
    assert all(len(f.card["examples"]) == 5 for f in back)
    code, _, err = cli("export-neuronpedia", "--store", sae_store.root, "--latents", "np-export",
                       "--feature-indexes", "99999", "--out", tmp_path / "np2")
    assert code == 2 and "has 1152 latents" in err and not (tmp_path / "np2").exists()


def _small_units_spec(tmp_path: Path, n: int = 40) -> Path:
    units = ROOT / "examples" / "units"
    rows = [json.loads(line) for line in (units / "prompts.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r["labels"]["expected"] == "unit"][:n] + \
        [r for r in rows if r["labels"]["expected"] == "non_unit"][:n]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = tmp_path / "c.yaml"
    spec.write_text((units / "criterion.yaml").read_text().replace("min_heldout: 100", "min_heldout: 10")
                    .replace("prompts: examples/units/prompts.jsonl", f"prompts: {tmp_path / 'p.jsonl'}"))
    return spec


@pytest.mark.slow
def test_inspect_backend_sae_ranks_and_tests_latents(smollm2, topk_dir, tmp_path):
    from interp_lab.api import inspect
    from interp_lab.providers.hf import HFOptions

    spec = _small_units_spec(tmp_path)
    hf = HFOptions(sae=str(topk_dir), n_controls=4, strengths=(1.0, 2.0), side_prompts=8, contexts="lee",
                   contexts_max_tokens=4000, contexts_cards=1)
    res = inspect(smollm2, str(spec), backend="sae", hf=hf, top_k=3, out=tmp_path / "report", bootstrap=100)
    rep = res.report
    assert rep["backend"] == "sae"
    assert res.cards and all(c["feature_id"].startswith("L15:F") for c in res.cards)
    sae_in = [i for i in rep["inputs"] if i["role"] == "sae"]
    assert sae_in and sae_in[0]["name"] == "topk-sae" and len(sae_in[0]["sha256"]) == 64
    assert rep["settings"]["pipeline"]["units"] == "F"
    top = res.cards[0]
    assert top["fingerprint"]["decoder"]["basis"]["hooks"] == [HOOK]
    assert len(top["fingerprint"]["decoder"]["vector"]) == 576
    assert top["corpus_contexts"]["contexts"]  # scanned through the SAE's encoder
    # every tested latent was ablated and steered, with random latents of matched frequency as controls
    import gzip

    recs = [json.loads(line) for line in gzip.open(tmp_path / "report" / "interventions.jsonl.gz", "rt")]
    tested = {(r["feature_id"], r["intervention"]) for r in recs if not r["metadata"].get("control_type")}
    assert {k for _, k in tested} == {"ablate", "steer"}
    controls = [r for r in recs if r["metadata"].get("control_type") == "random_feature"]
    assert controls and all(r["feature_id"].startswith("L15:F") for r in controls)
    assert "causal" in top

    # --backend hf with --sae: the latents join the layer's units
    hf2 = HFOptions(sae=str(topk_dir), layers="15", units="R", n_controls=2, strengths=(1.0,), side_prompts=4,
                    contexts=None)
    res2 = inspect(smollm2, str(spec), hf=hf2, top_k=4, bootstrap=100)
    assert res2.report["settings"]["pipeline"]["units"] == "RF"
    kinds = {c["feature_id"].split(":")[1][0] for c in res2.cards}
    assert kinds <= {"R", "F"}


def test_backend_sae_needs_an_sae_and_a_model(cli, tmp_path):
    code, _, err = cli("inspect", "--criterion", "x", "--backend", "sae")
    assert code == 2 and "--backend sae needs --model" in err
    code, _, err = cli("inspect", "--criterion", "x", "--backend", "sae", "--model", "smollm2-135m")
    assert code == 2 and "--backend sae needs --sae" in err


QUALITY_SAE = ROOT / "examples" / "sae-l15" / "checkpoint"


@pytest.mark.slow
@pytest.mark.realmodel
def test_the_quality_sae_has_a_unit_latent_and_its_ablations_face_matched_controls(smollm2, tmp_path):
    """The committed layer-15 SAE (examples/sae-l15): its metrics meet the issue's bar, and on the unit
    criterion ``inspect --backend sae`` (candidates by association and by top activations in turn) finds a
    latent whose top 20 contexts over every position of lee + enwiki are followed by a unit for at least
    10; every card's zero-ablation is tested on held-out prompts against 20 latents matched on the realised
    edit, and its verdict is the calibrated rule's. (The corpus scan takes minutes; it is cached.)

    Against controls matched on firing frequency (before issue 21) the best card's ablation was strong.
    Matched on the size of the edit it is not: measured on 2026-12-03, the five cards move the unit mass
    by at most 2.7% of its baseline (L15:F1763: +0.0070 [0.0043, 0.0099], p 0.036, BH q 0.18 over the 5
    tests, paired lower bound -0.0028), and the unit latent L15:F3093 (18 of 20 contexts before a unit) by
    0.2%. Removing one layer-15 latent barely changes the next token here; the test checks the machinery
    and the verdicts, not a strong result the evidence does not give."""
    from interp_lab.api import inspect
    from interp_lab.providers.hf import HFOptions

    m = json.loads((QUALITY_SAE / "metrics.json").read_text())
    assert m["heldout"]["fvu"] <= 0.2 and m["heldout"]["l0"] <= 64 and m["heldout"]["dead_fraction"] < 0.05
    assert m["spliced"]["ce_loss_recovered"] >= 0.85

    hf = HFOptions(sae=str(QUALITY_SAE), latent_kinds=("ablate",), contexts="lee+enwiki", contexts_cards=5)
    res = inspect(smollm2, str(ROOT / "examples" / "units" / "criterion.yaml"), backend="sae", hf=hf, top_k=5)
    assert res.report["settings"]["ranking"]["select_by"] == "both"
    assert {c["association"]["selected_by"] for c in res.cards} == {"association", "top_activations"}
    scanned = [c for c in res.cards if c.get("corpus_contexts")]
    assert len(scanned) == 5 and all(c["corpus_contexts"]["contexts"] for c in scanned)
    assert scanned[0]["corpus_contexts"]["tokens_scanned"] > 700_000  # every position of both corpora
    hits = {c["feature_id"]: c["corpus_contexts"]["next_token_in_targets"] for c in scanned}
    assert max(hits.values()) >= 10, hits
    top = res.cards[0]
    assert top["feature_id"].startswith("L15:F")
    assert len(res.cards) == 5
    for card in res.cards:
        ablate = card["causal"]["ablate"]
        fam = ablate["controls"]["families"]["random"]
        assert ablate["split"] == "heldout" and ablate["n"] >= 100 and ablate["controls"]["n"] == fam["n"] == 20
        assert fam["matched_on"].startswith("edit RMS within") and fam["types"] == ["random_feature"]
        assert ablate["edit_rms"]["feature"] > 0 and ablate["edit_rms"]["controls_median"] > 0
        # the verdict is the rule's: BH over the report's 5 tests, the paired bound, the discovery direction
        claim = 1 if card["direction"] == "promotes" else -1
        rule = ablate["q_value"] < 0.05 and ablate["paired_lower_bound"] > 0 and claim * ablate["mean_effect"] > 0
        assert ablate["strong_causal"] == rule and ablate["q_value"] >= ablate["p_value"], ablate
