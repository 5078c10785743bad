"""report.md and report.html render every card, escape untrusted text and stay self-contained."""

import copy
import re

import msgspec
import pytest

from interp_lab.api import inspect
from interp_lab.report.html import render_html
from interp_lab.report.markdown import render_markdown


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


def test_every_card_and_the_criterion_appear(synthetic_report, token_report):
    for rep in (synthetic_report, token_report):
        md, html = render_markdown(rep), render_html(rep)
        assert rep["criterion"] in md and rep["criterion"] in html
        for card in rep["cards"]:
            assert card["feature_id"] in md and f"id='{card['feature_id']}'" in html


def test_synthetic_banner_only_when_synthetic(synthetic_report, token_report):
    assert "SYNTHETIC EVIDENCE" in render_html(synthetic_report)
    assert "SYNTHETIC EVIDENCE" in render_markdown(synthetic_report)
    assert "SYNTHETIC EVIDENCE" not in render_html(token_report)
    assert "SYNTHETIC EVIDENCE" not in render_markdown(token_report)


def test_token_contexts_are_highlighted(token_report):
    html = render_html(token_report)
    assert "class=\"tok focus\"" in html and "rgba(31,122,77," in html
    assert "The bridge is **240** m long" in render_markdown(token_report)


def test_causal_table_shows_controls_and_verdict(synthetic_report):
    html = render_html(synthetic_report)
    assert "strong_causal" in html and "random controls" in html and "placebo" in html
    md = render_markdown(synthetic_report)
    assert "| ablate | heldout |" in md and "**yes**" in md


def test_untrusted_text_is_escaped(token_report):
    rep = copy.deepcopy(token_report)
    rep["cards"][0]["label"] = "<img src=x onerror=alert(1)>"
    rep["cards"][0]["examples"][0]["text"] = "</div><script>evil()</script>"
    html = render_html(rep)
    assert "<script>" not in html and "<img" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_self_contained(synthetic_report):
    html = render_html(synthetic_report)
    assert not re.search(r"https?://", html) and "<script" not in html and "<link" not in html


def test_deterministic_and_robust_to_minimal_reports(synthetic_report):
    assert render_html(synthetic_report) == render_html(copy.deepcopy(synthetic_report))
    minimal = {"criterion": "c", "cards": [{"feature_id": "a", "rank": 1, "evidence_tier": "discovery_only"}]}
    assert "a" in render_html(minimal) and "a" in render_markdown(minimal)
