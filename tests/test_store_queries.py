"""Store queries on a real harvested store: summary, list, search, top, diff, plot, tag, rename, remove."""

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from interp_lab.harvest.run import harvest  # noqa: E402
from interp_lab.store import queries as q  # noqa: E402
from interp_lab.store.reader import Store  # noqa: E402

pytestmark = [pytest.mark.realmodel, pytest.mark.slow]
HOOK = "blocks.6.hook_resid_post"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("stores")
    p = root / "prompts.jsonl"
    rows = [{"prompt_id": f"w{i}", "text": f"The army fought a long war near the river in {1800 + i}.",
             "labels": {"topic": "war"}} for i in range(12)]
    rows += [{"prompt_id": f"s{i}", "text": f"The team won the football match {i} to nil in the final.",
              "labels": {"topic": "sport"}} for i in range(12)]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    harvest("smollm2-135m", str(p), f"{HOOK},blocks.2.mlp.hook_post", root / "s1", context_length=32,
            batch_size=6, shard_tokens=100)
    return Store(root / "s1")


def test_summary_and_list(store):
    s = q.summary(store)
    assert s["model"] == "smollm2-135m" and s["tokens"] == store.rows and s["labels"]["label.topic"]["war"] > 0
    assert [r["path"] for r in q.list_stores(store.root.parent, model="smollm2-135m")] == [str(store.root)]
    assert q.list_stores(store.root.parent, model="gpt2") == []


def test_search_by_token_and_regex(store):
    hits = q.search(store, token="war")
    assert len(hits) == 12 and all(h["token"].strip() == "war" for h in hits)
    focus = [c for c in hits[0]["context"] if c["focus"]]
    assert focus[0]["token"].strip() == "war" and len(hits[0]["context"]) > 3
    assert {h["prompt_id"][0] for h in hits} == {"w"}
    assert len(q.search(store, regex=r"^ (football|match)$")) == 24


def test_top_matches_a_brute_force_scan(store):
    values = store.acts(HOOK)[:, 17].astype(np.float32)
    pos = store.tokens(["position"]).column(0).to_numpy()
    values[pos == 0] = -np.inf
    best = np.argsort(-values, kind="stable")[:5]
    got = q.top(store, HOOK, 17, k=5)
    assert [g["row"] for g in got] == best.tolist()
    assert got[0]["activation"] == pytest.approx(float(values[best[0]]))


def test_diff_between_labelled_subsets(store):
    d = q.diff(store, HOOK, where_a="label.topic=war", where_b="label.topic=sport")
    acts = store.acts(HOOK).astype(np.float64)
    topic = np.array(store.tokens(["label.topic"]).column(0).to_pylist())
    np.testing.assert_allclose(d.mean_diff, acts[topic == "war"].mean(0) - acts[topic == "sport"].mean(0),
                               rtol=1e-6, atol=1e-6)
    assert (d.mean_diff_ci[0] <= d.mean_diff).all() and (d.mean_diff <= d.mean_diff_ci[1]).all()
    assert d.top(3)[0]["channel"] == int(np.argmax(np.abs(d.mean_diff)))
    with pytest.raises(Exception, match="COLUMN=VALUE"):
        q.diff(store, HOOK, where_a="topic", where_b="x=y")


def test_plot_tag_rename_remove(store, tmp_path, cli):
    png = q.trace_png(store, HOOK, 3, 0, tmp_path / "trace.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert q.tag(store, ["demo", "war"]) == ["demo", "war"] and q.tag(store, remove=["demo"]) == ["war"]
    q.rename(store, "war vs sport")
    assert q.list_stores(store.root.parent, tag_filter="war")[0]["name"] == "war vs sport"
    code, out, _ = cli("store", "top", store.root, "--hook", HOOK, "--channel", "3", "--k", "2")
    assert code == 0 and out.count("row ") == 2
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(store.root, copy)
    code, _, _ = cli("store", "remove", copy, "--yes")
    assert code == 0 and not copy.exists()
    code, _, err = cli("store", "remove", tmp_path, "--yes")
    assert code == 2 and "not an activation store" in err
