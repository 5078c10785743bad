"""The unit-of-measurement prompt set is real text, and criteria compile into scored, split prompts."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from interp_lab.criteria.compile import compile_criterion
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
    from interp_lab.harvest.datasets import iter_documents

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
    with pytest.raises(Exception, match="not compiled by this version yet"):
        compile_criterion("the text is about war")


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
