"""Probe sets and activation signatures keyed by character span (harvest.probes), on both real models."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import EXAMPLES

from interp_lab.errors import InputError
from interp_lab.harvest.probes import locate, make_probe_set, read_probe_set, sentences, word_spans

PROBES = EXAMPLES / "cross-model" / "probes.jsonl"


def test_sentences_and_word_spans():
    text = 'He ran 5 km. "It rained," she said! Then (at 3 p.m.) they left.  The end'
    spans = sentences(text)
    assert [text[a:b] for a, b in spans] == ["He ran 5 km.", '"It rained," she said!', "Then (at 3 p.m.) they left.",
                                            "The end"]
    words = word_spans("The soldiers' 3rd-rate rifles don't fire.", None)
    assert [w for w in ("The soldiers' 3rd-rate rifles don't fire."[a:b] for a, b in words)] == \
        ["soldiers", "3rd", "rate", "rifles", "don't", "fire"]  # the first word is left out
    picked = word_spans(" ".join(f"w{i}" for i in range(30)), 4)
    assert len(picked) == 4 and picked[0] == (3, 5) and picked[-1][1] == len(" ".join(f"w{i}" for i in range(30)))


def test_committed_probe_set_is_reproducible_and_verbatim(tmp_path):
    from interp_lab.io.datasets import iter_documents

    rows = make_probe_set("lee+enwiki", 2400)
    committed = [json.loads(line) for line in PROBES.read_text().splitlines()]
    assert rows == committed and len(rows) >= 2000
    assert {r["metadata"]["corpus"] for r in rows} == {"lee", "enwiki"}
    assert sum(r["metadata"]["corpus"] == "lee" for r in rows) == 1200
    docs = {d.prompt_id: d.text for d in iter_documents("lee+enwiki")}
    for r in rows[::50]:  # each probe is a verbatim sentence of its document
        m = r["metadata"]
        assert docs[m["document"]][m["start"]: m["end"]] == r["text"]
    assert len({r["prompt_id"] for r in rows}) == len(rows)
    assert make_probe_set("lee+enwiki", 2400, seed=1) != rows  # the seed chooses other sentences


def test_probe_set_bad_input(tmp_path):
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"prompt_id": "a", "text": "one two three"}\n{"text": "no id here"}\n')
    with pytest.raises(InputError) as e:
        read_probe_set(bad)
    assert "line 2" in str(e.value) and "prompt_id" in str(e.value)
    bad.write_text('{"prompt_id": "a", "text": "x y"}\n{"prompt_id": "a", "text": "x y z"}\n')
    with pytest.raises(InputError, match="duplicate prompt_id"):
        read_probe_set(bad)


def test_probes_api_and_cli_write_the_same_set(tmp_path, cli):
    """interp_lab.probe_set (the registry's keyword function) writes what ``interp-lab probes`` writes."""
    import interp_lab

    text = tmp_path / "docs.txt"
    text.write_text("".join(f"Document {i} says that the quiet river runs past the old mill every single morning. "
                            f"Then the miller number {i} opens the heavy doors and counts the sacks of grain.\n"
                            for i in range(20)))
    res = interp_lab.probe_set(out=tmp_path / "api.jsonl", dataset=str(text), n=12, seed=3)
    assert res.probes == 12 and res.paths == {"probes": tmp_path / "api.jsonl"}
    code, out, err = cli("probes", "--out", tmp_path / "cli.jsonl", "--dataset", text, "--n", "12", "--seed", "3")
    assert code == 0, err
    assert out.strip() == f"wrote {tmp_path / 'cli.jsonl'}"
    assert (tmp_path / "cli.jsonl").read_bytes() == (tmp_path / "api.jsonl").read_bytes()
    assert len(read_probe_set(tmp_path / "cli.jsonl")) == 12


@pytest.mark.realmodel
def test_both_tokenizers_read_the_same_keys(smollm2, gemma3):
    probes = read_probe_set(PROBES)
    a, b = locate(smollm2.tokenizer, probes, 4), locate(gemma3.tokenizer, probes, 4)
    assert a.keys == b.keys and len(a.keys) >= 4 * 2000
    # on both tokenizers every word ends at a token end here, and that token is the word's last piece
    assert a.exact == len(a.keys) and b.exact == len(b.keys)
    for loc, tok in ((a, smollm2.tokenizer), (b, gemma3.tokenizer)):
        for j in range(0, len(loc.keys), 997):
            pid, span = loc.keys[j].split("@")
            start, end = map(int, span.split("-"))
            text = probes[int(loc.probe[j])][1]
            piece = tok.decode([loc.ids[int(loc.probe[j])][int(loc.token[j])]]).strip()
            assert piece and text[start:end].endswith(piece)


@pytest.mark.realmodel
def test_signatures_equal_the_hidden_states(smollm2, tmp_path, monkeypatch):
    """A residual dimension's signature is the model's own hidden state at the word's last token; the
    cached hook activations give the same values."""
    import torch

    from interp_lab.harvest.probes import probe_signatures
    from interp_lab.interventions.features import resolve_targets

    monkeypatch.setenv("INTERP_LAB_CACHE", str(tmp_path / "cache"))
    small = tmp_path / "probes.jsonl"
    small.write_text("".join(line + "\n" for line in PROBES.read_text().splitlines()[:40]))
    targets = resolve_targets(smollm2, ["L7:R11", "L20:R300"], {}, None)
    sigs, info = probe_signatures(smollm2, small, targets, per_probe=3)
    again, _ = probe_signatures(smollm2, small, targets, per_probe=3)
    assert sigs == again and info["probes"] == 40 and 100 <= info["keys"] <= 120
    pid, text = read_probe_set(small)[5]
    with torch.no_grad():
        enc = smollm2.tokenizer(text, return_offsets_mapping=True, return_tensors="pt")
        hs = smollm2.model(input_ids=enc["input_ids"], output_hidden_states=True).hidden_states
    offs = enc["offset_mapping"][0].tolist()
    for a, b in word_spans(text, 3):
        t = max(i for i, (s, e) in enumerate(offs) if s < b and e > s)
        for fid, layer, dim in (("L7:R11", 7, 11), ("L20:R300", 20, 300)):
            want = float(hs[layer + 1][0, t, dim])
            got = sigs[fid].get(f"{pid}@{a}-{b}")
            assert got is not None and np.isclose(got, want, rtol=2e-3, atol=2e-3 * max(1, abs(want))), (fid, a, b)


def test_inspect_refuses_a_bad_probe_set_before_loading_the_model(tmp_path, cli):
    bad = tmp_path / "probes.jsonl"
    bad.write_text('{"prompt_id": "a", "text": "one two three"}\n{"text": "no id"}\n')
    out = tmp_path / "report"
    code, stdout, err = cli("inspect", "--model", "no-such-model", "--criterion", "the text is about sport",
                            "--probes", bad, "--out", out)
    assert code == 2 and "line 2" in err and "prompt_id" in err and "Traceback" not in err
    assert not out.exists()
    code, stdout, err = cli("inspect", "--model", "no-such-model", "--criterion", "x", "--probes",
                            tmp_path / "missing.jsonl", "--out", out)
    assert code == 2 and "missing.jsonl" in err and not out.exists()
