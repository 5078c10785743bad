"""report.md and report.html render every card, escape untrusted text, stay self-contained and never crash."""

import copy
import html as htmllib
import json
import re
from pathlib import Path

import msgspec
import pytest

from interp_lab.api import inspect
from interp_lab.report import _format as fmt
from interp_lab.report.html import render_html
from interp_lab.report.markdown import render_markdown

DATA = Path(__file__).parent / "data"
BANNER = "SYNTHETIC EVIDENCE — planted ground truth, measures no model"
EVIL = "<script>alert('x')</script>"


def load(name: str) -> dict:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def causal_sample():
    """A real report: synthetic planted data with causal evidence and random controls."""
    return load("synthetic_causal_report.json")


@pytest.fixture(scope="module")
def token_sample():
    """A real report: token-level records with context windows."""
    return load("token_records_report.json")


@pytest.fixture(scope="module")
def synthetic_report():
    return inspect("synthetic/planted", "positive", backend="synthetic", bootstrap=100,
                   synthetic={"n_prompts": 1500, "n_features": 300}).report


@pytest.fixture(scope="module")
def token_report(tmp_path_factory):
    rows = []
    words = ["The", " bridge", " is", " 240", " m", " long", " and", " 3", " km", " wide"]
    for p in range(120):
        for i, w in enumerate(words):
            nxt_unit = i + 1 < len(words) and words[i + 1] in (" m", " km")
            feats = [{"feature_id": "L3:F1", "activation": 2.0 if nxt_unit else 0.1 * (p % 3)}]
            if not nxt_unit and (p + i) % 4 == 0:
                feats.append({"feature_id": "L3:F2", "activation": 0.5,
                              "label": "<script>alert(1)</script> & co"})
            rows.append({"prompt_id": f"d{p}", "token_index": i, "text": "".join(words),
                         "criterion_score": float(nxt_unit), "features": feats,
                         "metadata": {"token": w}})
    path = tmp_path_factory.mktemp("tok") / "tokens.jsonl"
    path.write_bytes(b"".join(msgspec.json.encode(r) + b"\n" for r in rows))
    return inspect("m", "the next token is a unit", records=path, top_k=2, bootstrap=100).report


# --- the two stored samples ------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["synthetic_causal_report.json", "token_records_report.json"])
def test_samples_show_every_card_and_the_criterion(name):
    rep = load(name)
    md, page = render_markdown(rep), render_html(rep)
    assert rep["criterion"] in md and htmllib.escape(rep["criterion"]) in page
    assert md.startswith("# ") and rep["model"] in md.splitlines()[0]
    for card in rep["cards"]:
        assert card["feature_id"] in md and card["feature_id"] in page
        assert f'href="#card-{card["feature_id"]}"' in page and f'id="card-{card["feature_id"]}"' in page
    assert page.count('<section class="card"') == len(rep["cards"])


def test_synthetic_banner_only_on_the_synthetic_sample(causal_sample, token_sample):
    assert BANNER in render_markdown(causal_sample) and BANNER in render_html(causal_sample)
    assert "class='banner'" in render_html(causal_sample)
    assert BANNER not in render_markdown(token_sample) and BANNER not in render_html(token_sample)
    assert "class='banner'" not in render_html(token_sample)


def test_warnings_inputs_splits_and_settings(causal_sample, token_sample):
    md = render_markdown(causal_sample)
    assert causal_sample["warnings"][0].split(":")[0] in md and "## Inputs" in md and "## Splits" in md
    assert "| discovery | 50.0% | 2,524 | 2,524 |" in md
    assert "## Planted ground truth" in md and "| `L6:F6604` | loud_decoy | 11 |" in md
    assert "**Selection rule**" in md and "**Causal rule**" in md and "| association | 0.4 |" in md
    tok = render_markdown(token_sample)
    assert "`ca1ec605d71b…`" in tok and "4,800" in tok
    page = render_html(token_sample)
    assert "<details class='panel'><summary><b>How this report was computed" in page
    assert 'title="ca1ec605d71b7c38a3bc269e17a5248045880e60bd75b67cfdd9c2e0fe44bb75"' in page


def test_summary_table_and_card_sections(causal_sample):
    md = render_markdown(causal_sample)
    row = next(line for line in md.splitlines() if line.startswith("| 1 | `L1:F1539`"))
    assert "+0.610 [0.575, 0.640]" in row and "AUROC 0.805" in row and "ablate +0.123 (strong)" in row
    assert "**Association**" in md and "Adjusted for token_count: partial r +0.440 [0.408, 0.472]" in md
    assert "— **confounded**" in md and "**Specificity" in md and "**Stability" in md
    # a v2 report (before the calibrated test): its fields in the new table, the test's columns empty
    assert ("| ablate | +0.123 [0.115, 0.130] | — | 145 | 24 (random_feature) | -4.91e-4 | +0.00482, 95th percentile "
            "| 100.0% | — | — | — |") in md
    assert "no: confidence interval includes zero" in md and "Side effects: 0.00784" in md
    assert "Flags: **causal_direction_differs**" in md


def test_causal_controls_are_drawn(causal_sample):
    page = render_html(causal_sample)
    assert page.count('aria-label="24 controls') == 5  # one strip per card with an intervention kind
    assert "strong_causal ✓" in page and "not strong" in page and "placebo" in page
    assert "(off scale)" in page  # the strong features lie far beyond the controls


def test_token_contexts_are_highlighted(token_sample):
    md = render_markdown(token_sample)
    assert "1. … The 12 240 3 runs 3 the km **240** mill kg … — act 2.00 · score 0 · heldout · u256" in md
    page = render_html(token_sample)
    assert 'class="tok focus"' in page and "rgba(37,99,235," in page and "rgba(234,88,12," in page
    assert '<span class="tok focus" style="background:rgba(37,99,235,0.70);color:#fff" ' \
           'title="activation 2.00">240</span>' in page


def test_fingerprints_are_summarized_not_dumped(causal_sample):
    page = render_html(causal_sample)
    act = causal_sample["cards"][0]["fingerprint"]["activation"]
    assert "256 entries" in page and "<details><summary>Fingerprint" in page
    blocks = re.findall(r"<details><summary>Fingerprint.*?</details>", page, re.S)
    assert len(blocks) == len(causal_sample["cards"]) and all(b.count("<code>") <= 8 for b in blocks)
    largest = sorted(act, key=lambda k: -abs(act[k]))
    assert f"<code>{largest[0]}</code>" in blocks[0] and f"<code>{largest[-1]}</code>" not in blocks[0]
    line = next(ln for ln in render_markdown(causal_sample).splitlines() if ln.startswith("Fingerprint"))
    assert f"(largest: {largest[0]} " in line and line.count("syn-") == 4


def test_malicious_labels_and_texts_are_escaped(token_sample, causal_sample):
    for sample in (token_sample, causal_sample):
        rep = copy.deepcopy(sample)
        evil = copy.deepcopy(rep["cards"][0])
        evil.update(feature_id='L0:"><img src=x onerror=alert(1)>', rank=99, label=EVIL, flags=[EVIL])
        evil["examples"][0]["text"] = "</div>" + EVIL
        for tok in evil["examples"][0].get("context") or []:
            tok["token"] = EVIL
        rep["cards"].append(evil)
        rep["criterion"] = EVIL
        rep["warnings"] = [EVIL]
        page = render_html(rep)
        assert "<script" not in page and "<img" not in page and "</div><script" not in page
        assert htmllib.escape(EVIL) in page and "&lt;img src=x onerror=alert(1)&gt;" in page
        assert 'id="card-L0:-img-src-x-onerror-alert-1-"' in page
        md = render_markdown(rep)
        assert "<script" not in md.replace("\\<script", "") and "\\<script>alert('x')\\</script>" in md


def test_html_is_self_contained(causal_sample, token_sample):
    for rep in (causal_sample, token_sample):
        page = render_html(rep)
        assert not re.search(r"https?://", page) and "<script" not in page.lower()
        assert "<link" not in page and "@import" not in page and "url(" not in page and "<img" not in page
        assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")


def test_deterministic(causal_sample, token_sample):
    for rep in (causal_sample, token_sample):
        assert render_html(rep) == render_html(copy.deepcopy(rep))
        assert render_markdown(rep) == render_markdown(copy.deepcopy(rep))


# --- robustness --------------------------------------------------------------------------------------

def test_minimal_and_malformed_reports_do_not_crash():
    minimal = {"criterion": "c", "cards": [{"feature_id": "a", "rank": 1, "evidence_tier": "discovery_only"}]}
    assert "`a`" in render_markdown(minimal) and 'id="card-a"' in render_html(minimal)
    for rep in ({}, {"cards": None}, {"cards": [{}]}, {"cards": ["not a card", None]}):
        assert render_markdown(rep) and render_html(rep)
    weird = {"criterion": None, "synthetic": True, "warnings": "not a list", "inputs": [None, {"rows": "many"}],
             "splits": {"association": {"counts": {"discovery": None}}}, "settings": {"importance": []},
             "summary": {"tiers": None}, "planted": {"x": "decoy"},
             "cards": [{"feature_id": "x", "rank": None, "evidence_tier": "weird", "direction": "sideways",
                        "flags": None, "association": {"heldout": {"effect": "nan?", "effect_ci": [None, 1]},
                                                       "adjusted": {"covariates": None}},
                        "causal": {"ablate": {"controls": {"effects": [None, 0.1]}, "mean_effect": 0.5},
                                   "junk": None},
                        "examples": [None, {"context": [None, {"token": None, "activation": None}]},
                                     {"token": "t", "token_index": 3}],
                        "fingerprint": {"activation": [1, 2, "x"], "decoder": None},
                        "importance_components": {"causal": None}, "specificity": {}, "stability": {"score": 1}}]}
    md, page = render_markdown(weird), render_html(weird)
    assert BANNER in md and BANNER in page and "`x`" in md


def test_feature_dump_cards_show_the_reported_effect():
    rep = {"criterion": "the criterion", "backend": "features", "notes": ["ranked by the causal_effects"],
           "cards": [{"feature_id": "b", "rank": 1, "importance": 0.5, "importance_components": {"reported_causal": 0.5},
                      "evidence_tier": "discovery_only", "direction": "suppresses", "flags": [], "label": None,
                      "association": None, "causal": None, "reported_causal_effect": -0.5,
                      "examples": [{"text": "an <i>example</i>"}], "fingerprint": {"causal": {"criterion": -0.5}}}]}
    md, page = render_markdown(rep), render_html(rep)
    assert "Reported causal effect (from the feature dump; no interval, no controls): -0.500" in md
    assert "an \\<i>example\\</i>" in md and "an &lt;i&gt;example&lt;/i&gt;" in page
    assert "reported -0.500" in page


def test_number_formatting():
    assert [fmt.num(x) for x in (0.610005, 1.998, 2476, 1245.0, 0.000895, -0.00842, 0.0)] == \
           ["0.610", "2.00", "2,476", "1,245", "8.95e-4", "-0.00842", "0"]
    assert fmt.signed(0.123) == "+0.123" and fmt.signed(-0.5) == "-0.500" and fmt.signed(None) == fmt.MISSING
    assert [fmt.pval(p) for p in (0.0, 1e-300, 3.2e-7, 0.0293284, 0.4417)] == \
           ["≤ 1e-300", "≤ 1e-300", "3.20e-7", "0.0293", "0.442"]
    assert fmt.with_ci(0.61, [0.575338, 0.640429]) == "+0.610 [0.575, 0.640]" and fmt.pct(0.15101) == "15.1%"


# --- reports made by inspect ---------------------------------------------------------------------------

def test_inspect_reports_render(synthetic_report, token_report):
    for rep in (synthetic_report, token_report):
        md, page = render_markdown(rep), render_html(rep)
        assert rep["criterion"] in md and rep["criterion"] in page
        for card in rep["cards"]:
            assert card["feature_id"] in md and f'id="card-{card["feature_id"]}"' in page
    assert BANNER in render_html(synthetic_report) and BANNER not in render_html(token_report)
    assert "The bridge is **240** m long" in render_markdown(token_report)
    md = render_markdown(synthetic_report)
    assert "| kind | mean effect [95% CI] | of baseline |" in md and "| p (test) | q | paired bound |" in md
    assert "**yes**" in md


def test_the_calibrated_test_is_shown_on_cards_and_in_settings(synthetic_report):
    """A v3 entry: p (which test), q, paired bound, effect / baseline, the claim; the rule with its measured size
    and power; a contrast direction's two control families (label-permuted refits drawn in blue)."""
    rep = copy.deepcopy(synthetic_report)
    card = next(c for c in rep["cards"] if c["evidence_tier"] == "causal")
    k = card["causal"]["ablate"]
    md, page = render_markdown(rep), render_html(rep)
    row = next(ln for ln in md.splitlines() if ln.startswith("| ablate | " + fmt.with_ci(k["mean_effect"], k["ci"])))
    assert f"| {fmt.pval(k['p_value'])} (predictive t) | {fmt.pval(k['q_value'])} | " in row
    assert f"{fmt.pct(k['effect_over_baseline'])} of {fmt.num(k['baseline_mean'])}" in row
    assert f"- `ablate`: tested one-sided: {card['direction']} (from discovery)" in md
    assert "**Causal rule**: strong_causal when" in md and "**Measured**: measured on 450 synthetic reports" in md
    assert "94.7% at 4 control-SDs" in md and r"size 1.0% \[0.9%, 1.2%\] of 22,200 null tests" in md
    assert "<b>Measured</b>" in page and f"q {fmt.pval(k['q_value'])} · paired bound" in page
    # a contrast direction with both families, KL and dose-response
    k["controls"]["families"]["permuted_label"] = {
        "n": 2, "types": ["permuted_label"], "effects": [0.05, 0.06], "p_value": 0.2, "test": "robust_t",
        "excess_kurtosis": 4.2, "paired_lower_bound": -0.01, "matched_on": "permuted discovery labels"}
    k["controls"]["effects"] = sorted(k["controls"]["effects"] + [0.05, 0.06])
    k["dose_response"] = [{"strength": 0.5, "gain": 0.1, "kl": 0.4, "controls_gain_median": -0.01,
                           "controls_kl_median": 0.38}]
    k["kl_budget"] = 1.0
    md, page = render_markdown(rep), render_html(rep)
    assert "permuted_label controls: 2 (permuted_label; permuted discovery labels), p 0.200 (robust t; excess " \
           "kurtosis 4.20), paired bound -0.0100" in md
    assert "dose-response on calibration prompts (strength: gain, KL; controls' median): 0.500: +0.100, KL 0.400 " \
           "(-0.0100, KL 0.380)" in md and "KL budget 1.00 nats" in md
    strip = page[page.index(f'id="card-{card["feature_id"]}"'):]
    strip = strip[strip.index(f'aria-label="{len(k["controls"]["effects"])} controls'):]
    strip = strip[:strip.index("</svg>")]
    assert strip.count('fill="#2456c5"') == 2  # the two label-permuted controls


def test_inspect_labels_are_escaped(token_report):
    rep = copy.deepcopy(token_report)
    rep["cards"][0]["label"] = "<img src=x onerror=alert(1)>"
    rep["cards"][0]["examples"][0]["text"] = "</div><script>evil()</script>"
    page = render_html(rep)
    assert "<script>" not in page and "<img" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
