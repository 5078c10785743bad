"""Causal transfer of matched features (api.transfer) and the run-config steps around it."""

from __future__ import annotations

import json

import pytest
from conftest import EXAMPLES

from interp_lab.api.transfer import transfer, transfer_table
from interp_lab.errors import InputError
from interp_lab.evidence.transfer import best_kind, family, top_pairs, verdict

UNITS = EXAMPLES / "reports" / "units"
WAR = EXAMPLES / "reports" / "war"


def kind(effect, strong, ci=None):
    return {"mean_effect": effect, "strong_causal": strong, "ci": ci or [effect - 0.01, effect + 0.01],
            "controls": {"threshold": 0.01, "n": 20}, "reasons": [] if strong else ["within controls"]}


def test_kinds_and_verdicts():
    assert family("ablate") == family("mean_ablate") == "remove" and family("steer") == "add"
    causal = {"ablate": kind(0.05, False), "steer": kind(-0.02, True), "mean_ablate": kind(0.3, False)}
    assert best_kind(causal)[0] == "steer"  # strong_causal first
    assert best_kind(causal, "remove")[0] == "mean_ablate"  # then the largest |effect|
    assert best_kind({}, "add") is None
    assert verdict(kind(0.1, True), kind(0.2, True)) == (True, "strong_causal with the same sign")
    assert verdict(kind(0.1, True), kind(-0.2, True))[0] is False
    ok, why = verdict(kind(0.1, True), kind(0.2, False))
    assert not ok and "within controls" in why
    assert verdict(kind(0.1, True), None)[0] is False


def test_top_pairs_prefers_one_to_one_then_unused_features():
    m = [{"left_feature": a, "right_feature": b, "score": s, "one_to_one": o}
         for a, b, s, o in [("a", "x", 0.9, False), ("a", "y", 0.8, True), ("b", "x", 0.7, True),
                            ("c", "x", 0.95, False), ("c", "z", 0.5, False), ("d", "w", 0.6, False)]]
    got = [(p["left_feature"], p["right_feature"]) for p in top_pairs({"matches": m}, 4)]
    assert got == [("a", "y"), ("b", "x"), ("d", "w"), ("c", "z")]


@pytest.fixture(scope="module")
def self_matches(tmp_path_factory):
    """The units report matched against itself by activation signatures: every card pairs with itself."""
    from interp_lab.api.match import compare

    out = tmp_path_factory.mktemp("self") / "matches.json"
    compare(UNITS, UNITS, out, weights={"activation": 1.0}, null_pairs=2000)
    return out


def test_transfer_to_itself_reads_the_report(self_matches, tmp_path):
    rep = json.loads((UNITS / "report.json").read_text())
    # every card (they all match themselves at similarity 1, so a top 5 would be the first five ids)
    doc = transfer(self_matches, UNITS, UNITS, out=tmp_path / "t", top=len(rep["cards"]))
    assert doc["right"]["same_criterion"] and doc["ran_here"] is None
    assert [p["left_feature"] for p in doc["pairs"]] == [p["right_feature"] for p in doc["pairs"]]
    cards = {c["feature_id"]: c for c in rep["cards"]}
    for p in doc["pairs"]:  # a feature transfers to itself exactly when its strongest kind is strong_causal
        k, ev = best_kind(cards[p["left_feature"]]["causal"])
        assert p["source"]["kind"] == p["target"]["kind"] == k
        assert p["transfers"] is (True if ev["strong_causal"] else None)  # a non-causal source is not tested
        assert p["target"]["controls_p95"] == ev["controls"]["threshold"]
    s = doc["summary"]
    strong = sum(best_kind(c["causal"])[1]["strong_causal"] for c in rep["cards"] if c.get("causal"))
    assert s["pairs"] == len(rep["cards"]) and s["tested"] == s["transfer"] == strong >= 1
    assert s["do_not_transfer"] == 0
    assert 0 < s["base_rate"] <= 1
    assert (tmp_path / "t" / "transfer.json").exists() and "| criterion |" in (tmp_path / "t" / "transfer.md").read_text()
    table = transfer_table([tmp_path / "t" / "transfer.json"], tmp_path / "table")
    assert table["summary"]["total"]["tested"] == s["tested"]
    assert (tmp_path / "table" / "table.md").read_text().count(" → ") >= 6
    twice = transfer_table([tmp_path / "t" / "transfer.json"] * 2, tmp_path / "table2")  # the same tests twice
    assert twice["summary"]["total"]["tested"] == 2 * s["tested"]
    assert twice["summary"]["distinct_pairs"] == {"tested": s["tested"], "transfer": s["transfer"], "one_way": 0,
                                                  "do_not_transfer": 0}
    assert f"{s['tested']} distinct pairs" in (tmp_path / "table2" / "table.md").read_text()


def test_distinct_pairs_count_a_pair_tested_both_ways_once():
    from interp_lab.evidence.transfer import distinct_pairs

    def doc(left, right, pairs):
        return {"criterion": "c", "left": {"model": left}, "right": {"model": right},
                "pairs": [{"left_feature": a, "right_feature": b, "transfers": t} for a, b, t in pairs]}

    there = doc("s", "g", [("A", "X", True), ("B", "Y", True), ("C", "Z", False), ("D", "W", None)])
    back = doc("g", "s", [("X", "A", True), ("Y", "B", False), ("Z", "C", False), ("W", "D", True)])
    # A-X both ways; B-Y one way; C-Z neither; D-W tested only from g (its s side was not causal)
    assert distinct_pairs([there, back]) == {"tested": 4, "transfer": 2, "one_way": 1, "do_not_transfer": 1}
    other_model = doc("s", "q", [("A", "X", False)])  # the same feature ids in another model pair are another pair
    assert distinct_pairs([there, other_model])["tested"] == 4


def test_transfer_bad_input(tmp_path, self_matches):
    with pytest.raises(InputError, match="file not found"):
        transfer(tmp_path / "nope.json", UNITS, UNITS)
    (tmp_path / "m.json").write_text('{"schema_version": "interp-lab.matches.v2"}')
    with pytest.raises(InputError, match="not a matches.json"):
        transfer(tmp_path / "m.json", UNITS, UNITS)
    with pytest.raises(InputError, match="no card"):  # left report without the matched left features
        transfer(self_matches, WAR, UNITS)
    with pytest.raises(InputError, match="not a transfer.json"):
        transfer_table([tmp_path / "m.json"], tmp_path / "x")


def test_run_config_match_transfer_table_resume(tmp_path, cli):
    cfg = tmp_path / "study.yaml"
    cfg.write_text(f"""steps:
  - name: match
    command: match
    left: {UNITS}/report.json
    right: {UNITS}/report.json
    weights: {{activation: 1.0}}
    null_pairs: 2000
    out: {tmp_path}/m/units.json
  - name: transfer
    command: transfer
    matches: "{{steps.match.out}}"
    left: {UNITS}/report.json
    right: {UNITS}/report.json
    top: 3
    out: {tmp_path}/t
  - name: table
    command: transfer-table
    transfers: ["{{steps.transfer.out}}/transfer.json"]
    out: {tmp_path}/table
""")
    code, out, err = cli("run", cfg, "--out", tmp_path / "manifest.json")
    assert code == 0, err
    first = json.loads((tmp_path / "manifest.json").read_text())
    assert [s["status"] for s in first["steps"]] == ["ok", "ok", "ok"]
    assert {o["file"].rsplit("/", 1)[1] for o in first["steps"][0]["outputs"]} == {"units.json", "units.md", "units.html"}
    code, out, err = cli("run", cfg, "--out", tmp_path / "manifest.json")
    assert code == 0 and [s["status"] for s in json.loads((tmp_path / "manifest.json").read_text())["steps"]] == \
        ["cached"] * 3
    (tmp_path / "m" / "units.md").unlink()  # a missing output reruns that step and the ones reading it
    code, out, err = cli("run", cfg, "--out", tmp_path / "manifest.json")
    steps = json.loads((tmp_path / "manifest.json").read_text())["steps"]
    assert code == 0 and steps[0]["status"] == "ok" and (tmp_path / "m" / "units.md").exists()


@pytest.mark.realmodel
@pytest.mark.slow
def test_transfer_runs_interventions_when_the_right_report_has_none(tmp_path, smollm2):
    """Units cards matched into the war report (same model, another criterion): the matched war features
    were never tested on the unit criterion, so their edits run here, with controls."""
    from interp_lab.api.match import compare

    m = tmp_path / "matches.json"
    compare(UNITS, WAR, m, weights={"text": 1.0}, null_pairs=2000, text_embeddings=True)
    doc = transfer(m, UNITS, WAR, top=1, criterion=str(EXAMPLES / "units" / "criterion.yaml"), model=smollm2)
    assert doc["ran_here"] is not None and not doc["right"]["same_criterion"]
    (p,) = doc["pairs"]
    t = p["target"]
    assert t is not None and t["controls_n"] in (20, 40) and t["n"] >= 100  # 40: a direction's two families and t["ci"][0] <= t["mean_effect"] <= t["ci"][1]
    if p["source"]["strong_causal"]:
        assert p["transfers"] == (t["strong_causal"] and (t["mean_effect"] > 0) == (p["source"]["mean_effect"] > 0))
    else:
        assert p["transfers"] is None
