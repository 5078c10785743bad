"""report.md as a CommonMark renderer shows it: focus tokens in bold with their spaces (not ``** is**``),
fingerprints summarised (not 576-number vectors), the committed example reports likewise; and the paths
metrics.json and manifests record are relative to them, never the writing machine's absolute paths."""

import json
import re
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from interp_lab.report.html import render_html
from interp_lab.report.markdown import render_markdown

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
CM = MarkdownIt("commonmark", {"html": True}).enable("table")


def html_text(md: str) -> str:
    return CM.render(md)


def _card(tokens: list[tuple[str, bool]], left: str, token: str, right: str) -> dict:
    return {"rank": 1, "feature_id": "L3:F1", "evidence_tier": "held_out", "importance": 0.5,
            "examples": [{"prompt_id": "p1", "context": [{"token": t, "focus": f} for t, f in tokens]}],
            "corpus_contexts": {"dataset": "lee", "hook": "blocks.3.hook_resid_post", "tokens_scanned": 100,
                                "contexts": [{"value": 2.0, "left": left, "token": token, "right": right,
                                              "next_token": " m", "doc": "lee-1"}]}}


@pytest.mark.parametrize("tokens, left, token, right, shown", [
    ([("Work", False), (" is", True), (" continuing", False)], "Work", " is", " continuing",
     "Work <strong>is</strong> continuing"),
    ([(" 1", False), ("0", True), ("-year", False)], "an unprecedented 1", "0", "-year",
     "1<strong>0</strong>-year"),
    ([(" 2", False), (".", True), ("5", False)], " about 2", ".", "5 km", "2<code>.</code>5"),
    ([(" the", False), (" (", True), ("UN", False)], " the", " (", "UN)", "the <code>(</code>UN"),
    ([(" x", False), (" <b>", True), (" y", False)], " x", " <b>", " y", "x <strong>&lt;b&gt;</strong> y"),
], ids=["leading-space", "inside-a-number", "dot-between-digits", "bracket-before-a-letter", "html"])
def test_focus_tokens_are_bold_where_commonmark_renders_it(tokens, left, token, right, shown):
    md = render_markdown({"criterion": "c", "cards": [_card(tokens, left, token, right)]})
    page = html_text(md)
    assert "**" not in page and "<b>" not in page  # every marker rendered, no raw tag
    assert page.count(shown) == 2, page  # the example and the corpus context


def test_fingerprints_are_summarised_in_a_line(tmp_path):
    vec = [0.01 * ((i * 37) % 101 - 50) for i in range(576)]
    hooks = [f"blocks.{i}.hook_resid_post" for i in range(30)] + [f"blocks.{i}.mlp.hook_post" for i in range(30)]
    fp = {"activation": {f"p{i}": float(i % 7 - 3) for i in range(300)},
          "decoder": {"basis": {"model": "smollm2-135m", "hooks": hooks, "layer": 15}, "vector": vec},
          "vocab": {"promoted": [" km", " m", " miles", " feet"], "suppressed": ["a", "b"]}}
    card = {"rank": 1, "feature_id": "L15:D0", "fingerprint": fp}
    rep = {"criterion": "c", "cards": [card]}
    line = next(ln for ln in render_markdown(rep).splitlines() if ln.startswith("Fingerprint"))
    assert len(line) < 500, line
    assert "576 numbers, norm" in line and "300 entries, from -3.00 to 3.00" in line and "report.json" in line
    assert "60 items" not in line and "blocks.29.mlp.hook_post" not in line and f"{vec[5]:.6g}" not in line
    assert "(largest: p0 -3.00, p6 3.00, p7 -3.00, p13 3.00)" in line  # the largest magnitudes, ties in order
    page = render_html(rep)
    assert "576 numbers, norm" in page and "blocks.29.mlp.hook_post" not in page and f"{vec[5]:.6g}" not in page


REPORTS = sorted(EXAMPLES.rglob("report.md"))


@pytest.mark.parametrize("path", REPORTS, ids=[str(p.parent.relative_to(EXAMPLES)) for p in REPORTS])
def test_committed_reports_render_and_stay_readable(path):
    md = path.read_text(encoding="utf-8")
    page = html_text(md)
    assert "**" not in page and "<strong>" in page
    fingerprints = [ln for ln in md.splitlines() if ln.startswith("Fingerprint")]
    assert fingerprints and max(map(len, fingerprints)) < 1000
    assert not re.search(r"(-?\d+\.\d+, ){20}", md)  # no dumped vector anywhere
    assert sum(map(len, fingerprints)) < 0.15 * len(md)


ABSOLUTE = re.compile(r'"(/(tmp|root|home|Users|var|private|work)/|[A-Za-z]:\\\\)')


def test_committed_json_names_no_absolute_path():
    found = [f"{p.relative_to(ROOT)}: {m.group(0)}" for p in sorted(EXAMPLES.rglob("*.json"))
             for m in [ABSOLUTE.search(p.read_text(encoding="utf-8"))] if m]
    assert found == []


def test_sae_metrics_and_manifest_record_paths_relative_to_themselves(tmp_path, cli):
    """train-sae writes the checkpoint's metrics.json and manifest.json with paths relative to the checkpoint
    (the store it made in the cache as <cache>/...), eval-sae --out elsewhere relative to that file; the
    0.2 summary relative to itself."""
    pytest.importorskip("torch")
    records = EXAMPLES / "activation_records.jsonl"
    code, _, err = cli("train-sae", "--records", records, "--expansion-factor", "1", "--top-k", "4", "--epochs", "1",
                       "--ce-tokens", "0", "--out", tmp_path / "run" / "sae.json")
    assert code == 0, err
    ckpt = tmp_path / "run" / "sae"
    docs = {n: json.loads((ckpt / n).read_text()) for n in ("metrics.json", "manifest.json")}
    summary = json.loads((tmp_path / "run" / "sae.json").read_text())
    for text in [*(json.dumps(d) for d in docs.values()), json.dumps(summary)]:
        assert str(tmp_path) not in text and not ABSOLUTE.search(text)
    assert docs["metrics.json"]["sae"] == "." and summary["checkpoint"] == summary["sae"] == "sae"
    store = docs["manifest.json"]["store"]
    assert store.startswith("<cache>/stores/records-") and docs["metrics.json"]["store"] == store
    from interp_lab.io.paths import resolve_recorded
    from interp_lab.store.reader import Store

    assert Store(resolve_recorded(store, ckpt)).rows == 1200

    code, _, err = cli("eval-sae", "--sae", ckpt, "--store", resolve_recorded(store, ckpt), "--ce-tokens", "0",
                       "--out", tmp_path / "elsewhere" / "m.json")
    assert code == 0, err
    m = json.loads((tmp_path / "elsewhere" / "m.json").read_text())
    assert m["sae"] == "../run/sae" and (tmp_path / "elsewhere" / m["sae"]).resolve() == ckpt.resolve()
