"""Labels, model and criterion names from files are shown as written and never executed: in the terminal
(rich markup and ANSI escapes are not interpreted, `[/]` does not crash the command) and in every Markdown
file (report.md, matches.md, transfer.md, table.md render in a CommonMark viewer with HTML on to text, no
tag, no extra table cell, no control character)."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = ["<img src=x onerror=alert(1)>", "[/]", "[bold red]x", "\x1b[31mred\x1b[0m", "a|b", "two\nlines"]
SHOWN = ["<img src=x onerror=alert(1)>", "[/]", "[bold red]x", "[31mred[0m", "a|b", "two"]  # as the reader sees
CRITERION = "<img src=x onerror=alert(1)> [/] a|b"
MODEL = "[bold red]m\x1b[2J"
CM = MarkdownIt("commonmark", {"html": True}).enable("table")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def assert_inert(md: str, *shown: str) -> str:
    """``md`` renders to HTML with no raw tag and no control character, its tables keep their columns,
    and each of ``shown`` appears as text. Returns the HTML."""
    assert not CONTROL.search(md)
    tokens = CM.parse(md)
    kinds = {t.type for t in tokens} | {c.type for t in tokens for c in (t.children or [])}
    assert not kinds & {"html_inline", "html_block"}, kinds
    page = CM.render(md)
    assert "<img" not in page and "<script" not in page
    for table in re.findall(r"<table>.*?</table>", page, re.S):
        head = len(re.findall(r"<th[ >]", table))
        rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]
        assert rows and all(len(re.findall(r"<td[ >]", r)) == head for r in rows)
    from html import unescape

    text = unescape(re.sub(r"<[^>]+>", "", page))
    for s in shown:
        assert s in text, s
    return page


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """Six features, each labelled with a hostile string; L1:F0 carries the criterion."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(400):
        score = float(i % 2)
        feats = [{"feature_id": f"L1:F{j}", "activation": round(float(rng.normal() + (2 * score if j == 0 else 0)), 4),
                  "label": HOSTILE[j]} for j in range(len(HOSTILE))]
        rows.append({"prompt_id": f"p{i}", "text": f"prompt {i}", "criterion_score": score, "features": feats})
    path = tmp_path_factory.mktemp("hostile") / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def reports(records, tmp_path_factory):
    from interp_lab.cli.main import main

    out = tmp_path_factory.mktemp("reports")
    for side in ("a", "b"):
        assert main(["inspect", "--records", str(records), "--criterion", CRITERION, "--model", MODEL,
                     "--top-k", "6", "--bootstrap", "100", "--out", str(out / side)]) == 0
    return out / "a", out / "b"


def test_inspect_shows_hostile_labels_as_written(records, tmp_path, cli):
    code, out, err = cli("inspect", "--records", records, "--criterion", CRITERION, "--model", MODEL, "--top-k", "6",
                         "--bootstrap", "100", "--out", tmp_path / "r")
    assert code == 0, err
    assert "\x1b" not in out + err and "internal error" not in err
    flat = re.sub(r"[│┃\s]+", " ", out)  # rich folds long cells over lines
    for s in ("[/]", "[bold red]x", "[31mred[0m", "a|b", "<img src=x onerror=alert(1)>", "[bold red]m[2J"):
        assert s in flat, s
    md = (tmp_path / "r" / "report.md").read_text()
    assert_inert(md, *SHOWN, "[bold red]m[2J")


def test_match_renders_hostile_labels_inert(reports, tmp_path, cli):
    a, b = reports
    code, out, err = cli("match", "--left", a, "--right", b, "--out", tmp_path / "m" / "matches.json",
                         "--null-pairs", "200")
    assert code == 0, err
    assert "\x1b" not in out + err and "[/]" in out and "[bold red]x" in out
    assert_inert((tmp_path / "m" / "matches.md").read_text(), *SHOWN, "[bold red]m[2J")


def test_transfer_and_table_render_hostile_names_inert(tmp_path):
    from interp_lab.api.transfer import transfer_table
    from interp_lab.report.transfer import render_markdown

    doc = json.loads((ROOT / "examples" / "cross-model" / "transfer" / "war" / "transfer.json").read_text())
    doc["criterion"] = CRITERION
    doc["left"]["model"], doc["right"]["model"] = MODEL, "<script>alert(1)</script>"
    doc["method"].update({s: s for s in HOSTILE})
    for i, e in enumerate(doc["pairs"]):
        e["left_feature"], e["why"] = HOSTILE[i % len(HOSTILE)], HOSTILE[-1 - i % len(HOSTILE)]
        if e.get("source"):
            e["source"]["kind"] = "<b>steer</b>"
    assert_inert(render_markdown(doc), CRITERION, "[bold red]m[2J", "<script>alert(1)</script>", "<b>steer</b>",
                 *SHOWN)
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "transfer.json").write_text(json.dumps(doc))
    transfer_table([tmp_path / "t" / "transfer.json"], tmp_path / "table")
    assert_inert((tmp_path / "table" / "table.md").read_text(), CRITERION, "<script>alert(1)</script>", *SHOWN)
