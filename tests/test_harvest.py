"""Harvest into a store on the real default model: contents, size, resume after kill -9, byte-identical end."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from interp_lab.harvest.run import harvest  # noqa: E402
from interp_lab.models.hooked import run  # noqa: E402
from interp_lab.store.reader import Store  # noqa: E402

pytestmark = [pytest.mark.realmodel, pytest.mark.slow]
HOOKS = "blocks.0.hook_resid_post,blocks.5.hook_resid_post,blocks.3.hook_mlp_out,blocks.2.mlp.hook_post"


@pytest.fixture(scope="module")
def lm(smollm2):
    return smollm2


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    p = tmp_path_factory.mktemp("p") / "prompts.jsonl"
    rows = [{"prompt_id": f"u{i}", "text": f"The bridge is {100 + i} metres long and the road is {i} km",
             "criterion_score": float(i % 2), "labels": {"topic": "engineering" if i % 3 else "travel"},
             "metadata": {"source": "test"}} for i in range(24)]
    p.write_bytes(b"".join(msgspec.json.encode(r) + b"\n" for r in rows))
    return p


def test_store_contents_match_a_direct_forward(lm, prompts, tmp_path):
    res = harvest(lm, str(prompts), HOOKS, tmp_path / "s", context_length=32, batch_size=5, shard_tokens=64)
    st = Store(tmp_path / "s")
    m = st.manifest
    assert m.complete and m.rows == res.rows and len(m.shards) > 1 and m.revision == lm.revision
    tok = st.tokens().to_pydict()
    assert tok["row"] == list(range(m.rows))
    assert set(tok["label.topic"]) == {"engineering", "travel"} and set(tok["meta.source"]) == {"test"}
    # the tokens of prompt u7, in order, are the tokenizer's, with their character spans
    rows7 = [i for i, p in enumerate(tok["prompt_id"]) if p == "u7"]
    text7 = "The bridge is 107 metres long and the road is 7 km"
    ids = lm.tokenizer(text7)["input_ids"]
    assert [tok["token_id"][i] for i in rows7] == ids and tok["criterion_score"][rows7[0]] == 1.0
    assert "".join(tok["token_str"][i] for i in rows7 if tok["char_end"][i] > tok["char_start"][i]) == \
        text7[tok["char_start"][rows7[0]]:]
    direct = run(lm.model, {"input_ids": torch.tensor([ids])}, HOOKS.split(","), logits=False).acts
    for hook in HOOKS.split(","):
        stored = st.acts(hook, np.array(rows7)).astype(np.float32)
        np.testing.assert_allclose(stored, direct[hook][0].numpy(), rtol=2e-2, atol=2e-2)
        assert st.shard(hook, 0).dtype == np.float16


def test_about_two_bytes_per_scalar(lm, prompts, tmp_path):
    harvest(lm, str(prompts), HOOKS, tmp_path / "s", context_length=32, batch_size=8, shard_tokens=10_000)
    st = Store(tmp_path / "s")
    scalars = st.rows * sum(st.manifest.d.values())
    acts_bytes = sum(f.stat().st_size for f in (tmp_path / "s" / "acts").rglob("*.safetensors"))
    assert 2 * scalars <= acts_bytes <= 2 * scalars + 256 * len(st.hooks) * len(st.manifest.shards)


def test_resume_after_kill_is_byte_identical(tmp_path):
    args = dict(dataset="lee", hooks="blocks.*.hook_resid_post", max_tokens=3000, context_length=64, batch_size=4,
                shard_tokens=256)
    code = ("import sys; from interp_lab.harvest.run import harvest; "
            f"harvest('smollm2-135m', out=sys.argv[1], **{args!r})")
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    subprocess.run([sys.executable, "-c", code, str(whole)], check=True, capture_output=True)
    proc = subprocess.Popen([sys.executable, "-c", code, str(cut)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    manifest = cut / "manifest.json"
    deadline = time.time() + 300
    while time.time() < deadline:
        if manifest.exists():
            m = json.loads(manifest.read_text() or "{}")
            if len(m.get("shards", [])) >= 2:
                break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    m = json.loads(manifest.read_text())
    assert not m["complete"] and 2 <= len(m["shards"]) < json.loads((whole / "manifest.json").read_text())[
        "shards"].__len__()
    subprocess.run([sys.executable, "-c", code, str(cut)], check=True, capture_output=True)
    files = sorted(p.relative_to(whole) for p in whole.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(cut) for p in cut.rglob("*") if p.is_file())
    for rel in files:
        assert (whole / rel).read_bytes() == (cut / rel).read_bytes(), rel
    before = {rel: (whole / rel).read_bytes() for rel in files}
    subprocess.run([sys.executable, "-c", code, str(whole)], check=True, capture_output=True)  # already complete
    assert {rel: (whole / rel).read_bytes() for rel in files} == before


def test_other_settings_refuse_to_resume(lm, prompts, tmp_path, cli):
    harvest(lm, str(prompts), "blocks.0.hook_resid_post", tmp_path / "s", context_length=32, batch_size=5)
    with pytest.raises(Exception, match="other settings"):
        harvest(lm, str(prompts), "blocks.1.hook_resid_post", tmp_path / "s", context_length=32, batch_size=5)
    code, out, _ = cli("harvest", "--dataset", prompts, "--out", tmp_path / "s", "--hooks", "blocks.1.hook_resid_post",
                       "--context-length", "32", "--batch-size", "5", "--overwrite")
    assert code == 0 and "tokens x 1 hooks" in out
    assert Path(tmp_path / "s" / "acts" / "blocks.1.hook_resid_post").is_dir()
    assert not (tmp_path / "s" / "acts" / "blocks.0.hook_resid_post").exists()


def test_export_hf_records_pooling_and_ids(lm, prompts, tmp_path, cli):
    from interp_lab.harvest.records import export_records
    from interp_lab.io.records import read_records

    info = export_records(lm, str(prompts), tmp_path / "r.jsonl", layers="4,6", kind="residual", pooling="last")
    m = read_records(tmp_path / "r.jsonl")
    assert info["rows"] == 24 and m.n_rows == 24 and m.n_features == 2 * 576
    assert m.feature_ids[0] == "L4:R0" and m.feature_ids[-1] == "L6:R575"
    ids = lm.tokenizer(m.text(3))["input_ids"]
    direct = run(lm.model, {"input_ids": torch.tensor([ids])}, ["blocks.6.hook_resid_post"], logits=False).acts
    row = m.X.tocsr()
    cols, vals = row.major_slice(3)
    got = dict(zip(m.feature_ids[cols], vals))
    np.testing.assert_allclose([got[f"L6:R{j}"] for j in range(576)], direct["blocks.6.hook_resid_post"][0, -1],
                               rtol=1e-4, atol=1e-4)
    assert m.scores[3] == 1.0
    code, out, _ = cli("export-hf-records", "--dataset", prompts, "--out", tmp_path / "n.parquet", "--layers", "2",
                       "--kind", "neurons", "--pooling", "max", "--top-k-features", "16")
    n = read_records(tmp_path / "n.parquet")
    assert code == 0 and n.n_rows == 24 and all(f.startswith("L2:N") for f in n.feature_ids)
    assert (np.diff(n.X.tocsr().indptr) == 16).all()


def test_corpora_and_text_files():
    from interp_lab.io.datasets import iter_documents

    lee = list(iter_documents("lee"))
    wiki = list(iter_documents("enwiki"))
    assert len(lee) == 300 and lee[0].prompt_id == "lee-0" and lee[0].labels == {"corpus": "lee"}
    assert len(wiki) == 106 and wiki[0].labels["title"] == "Anarchism" and "'''" not in wiki[0].text
    both = list(iter_documents("lee+enwiki"))
    assert len(both) == 406 and [d.doc_id for d in both] == list(range(406))


def test_text_file_documents(tmp_path):
    from interp_lab.io.datasets import iter_documents

    p = tmp_path / "docs.txt"
    p.write_text("first document\n\nsecond document\n")
    docs = list(iter_documents(str(p)))
    assert [d.text for d in docs] == ["first document", "second document"]
    assert docs[0].prompt_id.startswith("t-") and docs[0].prompt_id != docs[1].prompt_id


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_store_dtypes(lm, prompts, tmp_path, dtype):
    harvest(lm, str(prompts), "blocks.4.hook_resid_post", tmp_path / dtype, context_length=32, batch_size=8,
            dtype=dtype)
    st = Store(tmp_path / dtype)
    a = st.acts("blocks.4.hook_resid_post")
    assert st.tokens(["prompt_id"]).column(0)[0].as_py() == "u0"
    ids = lm.tokenizer("The bridge is 100 metres long and the road is 0 km")["input_ids"]
    direct = run(lm.model, {"input_ids": torch.tensor([ids])}, ["blocks.4.hook_resid_post"], logits=False).acts
    ref = direct["blocks.4.hook_resid_post"][0].numpy()
    assert a.dtype == np.float32 and a.shape[1] == 576
    tol = 1e-5 if dtype == "float32" else 2e-2
    np.testing.assert_allclose(a[: len(ids)], ref, rtol=tol, atol=tol * 5)
    per_scalar = sum(f.stat().st_size for f in (tmp_path / dtype / "acts").rglob("*.safetensors")) / a.size
    assert per_scalar == pytest.approx(2 if dtype == "bfloat16" else 4, rel=0.01)


@pytest.mark.parametrize("dtype", ["float16", "float32", "bfloat16"])
def test_shard_files_are_what_safetensors_writes(tmp_path, dtype):
    """Shards are written block by block (no concatenated copy) and hashed on the way; the bytes are the
    ones safetensors writes for the concatenated tensor."""
    from safetensors.torch import load_file, save_file

    from interp_lab.io.hashing import sha256_file
    from interp_lab.store.writer import write_safetensors

    g = torch.Generator().manual_seed(0)
    blocks = [torch.randn(r, 24, generator=g).to(getattr(torch, dtype)) for r in (5, 1, 17)]
    given = blocks if dtype == "bfloat16" else [b.numpy() for b in blocks]
    sha = write_safetensors(tmp_path / "ours.safetensors", "acts", given)
    save_file({"acts": torch.cat(blocks)}, str(tmp_path / "theirs.safetensors"))
    assert (tmp_path / "ours.safetensors").read_bytes() == (tmp_path / "theirs.safetensors").read_bytes()
    assert sha == sha256_file(tmp_path / "ours.safetensors")
    assert torch.equal(load_file(str(tmp_path / "ours.safetensors"))["acts"], torch.cat(blocks))


def test_one_harvest_at_a_time_and_a_killed_ones_lock_does_not_block_the_resume(lm, tmp_path):
    """Two real processes: the second harvest into a store fails at once (exit 2, one line naming the store
    and the first's pid) even with --overwrite, the first goes on; after kill -9 the resume completes."""
    store = tmp_path / "s"
    opts = ["--dataset", "lee", "--hooks", "blocks.3.hook_resid_post", "--max-tokens", "1000", "--context-length",
            "64", "--batch-size", "4", "--shard-tokens", "128"]
    cmd = [sys.executable, "-m", "interp_lab", "harvest", "--out", str(store), *opts]
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        lock, manifest = store / ".lock", store / "manifest.json"
        deadline = time.time() + 120
        while time.time() < deadline and first.poll() is None and not manifest.exists() and not (
                lock.exists() and lock.read_text().strip() == str(first.pid)):
            time.sleep(0.01)
        assert lock.exists() and lock.read_text().strip() == str(first.pid)  # taken before the model loads
        second = subprocess.run([*cmd, "--overwrite"], capture_output=True, text=True, timeout=120)
        assert first.poll() is None  # the first was still running when the second gave up
        assert second.returncode == 2, second.stderr
        assert second.stderr.strip() == (f"interp-lab: error: {store} is being written by another process (pid "
                                         f"{first.pid}); wait for it to finish or stop it, then run again (a "
                                         "stopped harvest resumes)")
        def shards():
            return json.loads(manifest.read_text()).get("shards", []) if manifest.exists() else []

        while time.time() < deadline and first.poll() is None and len(shards()) < 2:
            time.sleep(0.02)  # the first goes on writing shards: let it write two, then kill it
    finally:
        if first.poll() is None:
            os.kill(first.pid, signal.SIGKILL)
        first.wait()
    assert first.returncode == -signal.SIGKILL
    m = json.loads(manifest.read_text())
    assert not m["complete"] and len(m["shards"]) >= 2 and lock.read_text().strip() == str(first.pid)  # stale
    res = harvest(lm, "lee", "blocks.3.hook_resid_post", store, max_tokens=1000, context_length=64, batch_size=4,
                  shard_tokens=128)
    assert res.resumed_from_batch > 0 and res.manifest.complete and res.rows == 1000
    assert Store(store).acts("blocks.3.hook_resid_post").shape == (1000, 576)
    assert not lock.exists()  # released and removed
