"""The main job on the real model: ``inspect --model smollm2-135m --criterion examples/units/criterion.yaml``."""

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("gensim")

ROOT = Path(__file__).resolve().parents[1]
UNITS = ROOT / "examples" / "units" / "criterion.yaml"
pytestmark = [pytest.mark.realmodel, pytest.mark.slow]


@pytest.fixture(scope="module")
def units_report(smollm2, tmp_path_factory):
    from interp_lab.api import inspect
    from interp_lab.providers.hf import HFOptions

    out = tmp_path_factory.mktemp("units")
    # the README's main job, plus the top card's contexts over every position of lee + enwiki
    res = inspect(smollm2, str(UNITS), out=out, hf=HFOptions(contexts="lee+enwiki", contexts_cards=1))
    return res, out


def test_top_card_is_strong_causal_on_held_out_prompts(units_report):
    res, out = units_report
    top = res.cards[0]
    assert top["evidence_tier"] == "causal"
    strong = [k for k in top["causal"].values() if k["strong_causal"]]
    assert strong and all(k["n"] >= 100 and k["split"] == "heldout" for k in strong)
    assert all(k["controls"]["n"] >= 20 and k["ci"][0] > 0 for k in strong if k["direction"] == "promotes")
    report = json.loads((out / "report.json").read_text())
    assert report["backend"] == "hf" and report["model"] == "smollm2-135m" and not report["synthetic"]
    assert report["settings"]["pipeline"]["prompts"]["heldout"] >= 100
    kinds = {c["feature_id"][c["feature_id"].index(":") + 1] for c in report["cards"]}
    assert {"N", "R"} & kinds and "D" in kinds  # units ranked on discovery and directions chosen on calibration
    manifest = json.loads((out / "manifest.json").read_text())
    model = next(i for i in manifest["inputs"] if i["role"] == "model")
    assert model["params"]["revision"] == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    for name in ("report.md", "report.html", "directions.safetensors", "prompts.jsonl", "interventions.jsonl.gz"):
        assert (out / name).stat().st_size > 0


def test_main_job_splits_by_document_adjusts_for_the_corpus_and_tests_directions_out_of_sample(units_report):
    from interp_lab.evidence.splits import prompt_groups

    res, out = units_report
    rows = [json.loads(line) for line in (out / "prompts.jsonl").read_text().splitlines()]
    groups = prompt_groups(rows)
    split_of = {}
    assert all(split_of.setdefault(g, r["split"]) == r["split"] for g, r in zip(groups.index, rows))
    report = json.loads((out / "report.json").read_text())
    splits = report["settings"]["pipeline"]["selection_info"]["splits"]
    assert splits["by"] == "metadata.doc" and splits["stratified_by"] == "class and source"
    assert abs(splits["positives"]["heldout"] - splits["negatives"]["heldout"]) <= 2
    cards = report["cards"]
    assert all(c["association"]["adjusted"]["covariates"] == ["prompt_tokens", "source"] for c in cards)
    directions = [c for c in cards if ":D" in c["feature_id"]]
    assert directions and all(c["stability"]["rows"] == "heldout" for c in directions)
    assert all(c["stability"]["rows"] == "discovery" for c in cards if ":D" not in c["feature_id"])


def test_top_card_fires_before_units_over_the_whole_corpus(units_report):
    res, _ = units_report
    cc = res.cards[0]["corpus_contexts"]
    assert cc["dataset"] == "lee+enwiki" and cc["tokens_scanned"] > 700_000 and len(cc["contexts"]) == 20
    assert cc["next_token_in_targets"] >= 10, [(c["left"], c["token"], c["next_token"]) for c in cc["contexts"]]


def test_cli_main_job_reuses_the_cached_work(units_report, cli, tmp_path):
    res, out = units_report
    code, stdout, err = cli("inspect", "--model", "smollm2-135m", "--criterion", UNITS, "--out", tmp_path / "again",
                            "--contexts", "lee+enwiki", "--contexts-cards", "1")
    assert code == 0, err
    again = json.loads((tmp_path / "again" / "report.json").read_text())
    assert (tmp_path / "again" / "report.json").read_bytes() == (out / "report.json").read_bytes()
    run = json.loads((tmp_path / "again" / "manifest.json").read_text())["run"]
    assert run["activations"] == "read from the cache" and run["intervention_runs"] == 0
    assert again["cards"][0]["feature_id"] in stdout
