"""``interp-lab train-sae`` / ``eval-sae`` end to end on SmolLM2 activations: kill -9 and resume reach the
weights of an uninterrupted run; eval-sae splices the SAE into the real model."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from sae_common import HOOK  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from interp_lab.cli.main import main  # noqa: E402

ARGS = ["--hook", HOOK, "--preset", "minimal", "--tokens", "120000", "--batch-size", "512", "--seed", "5",
        "--checkpoint-every", "4", "--ce-tokens", "0"]


def _cli(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "interp_lab", "train-sae", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_kill_9_mid_training_then_resume_gives_the_uninterrupted_weights(sae_store, tmp_path):
    store = str(sae_store.root)
    state = tmp_path / ".killed.training" / "train_state.safetensors"
    proc = _cli("--store", store, "--out", str(tmp_path / "killed"), *ARGS)
    deadline = time.time() + 300
    while not state.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # a few more steps past the first saved state, so the kill lands between two of them
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "training finished before it could be killed"
    assert state.exists() and not (tmp_path / "killed" / "sae_weights.safetensors").exists()

    resumed = _cli("--store", store, "--out", str(tmp_path / "killed"), *ARGS)
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert "resumed at" in out
    whole = _cli("--store", store, "--out", str(tmp_path / "whole"), *ARGS)
    out2, err2 = whole.communicate(timeout=600)
    assert whole.returncode == 0, err2
    assert "resumed" not in out2
    a = load_file(str(tmp_path / "killed" / "sae_weights.safetensors"))
    b = load_file(str(tmp_path / "whole" / "sae_weights.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert not state.parent.exists()  # the training state is removed once the checkpoint is written
    ma = json.loads((tmp_path / "killed" / "manifest.json").read_text())
    assert ma["resumed_at"] > 0 and ma["tokens_seen"] >= 120_000


@pytest.mark.slow
@pytest.mark.realmodel
def test_train_sae_then_eval_sae_on_the_model(sae_store, tmp_path, capsys):
    """The 0.2 form (--out *.json) trains, evaluates with the SAE spliced into SmolLM2, writes the summary."""
    out = tmp_path / "trained" / "sae.json"
    rc = main(["train-sae", "--store", str(sae_store.root), "--layer", "15", "--preset", "minimal",
               "--latent-dim", "1152", "--top-k", "24", "--ce-tokens", "2048", "--out", str(out),
               "--records-out", str(tmp_path / "records.jsonl")])
    assert rc == 0
    summary = json.loads(out.read_text())
    assert summary["checkpoint"] == "sae"  # relative to the summary, like every path it records
    ckpt = out.parent / summary["checkpoint"]
    assert (ckpt / "cfg.json").exists() and (ckpt / "density.png").exists()
    cfg = json.loads((ckpt / "cfg.json").read_text())
    assert cfg["d_sae"] == 1152 and cfg["k"] == 24 and cfg["metadata"]["hook_name"] == HOOK
    s = summary["spliced"]
    # CE with the SAE spliced in sits between the clean model and zero ablation, much nearer the clean one
    assert s["ce_clean"] < s["ce_sae"] < s["ce_zero"]
    assert 0.5 < s["ce_loss_recovered"] <= 1.0 and s["kl_sae"] < s["kl_zero"]
    assert s["tokens"] >= 1500
    h = summary["heldout"]
    assert h["l0"] <= 24 and h["fvu"] < 0.6 and 0 <= h["dead_fraction"] < 0.5

    # the latent records: a row per document, valid, with the layer's F ids, and the ranking reads them
    from interp_lab.io.records import read_records

    m = read_records(tmp_path / "records.jsonl")
    docs = set(sae_store.tokens(["prompt_id"]).column("prompt_id").to_pylist())
    assert m.n_rows == len(docs) and summary["records"]["rows"] == len(docs)
    assert all(f.startswith("L15:F") for f in m.feature_ids) and 100 < len(m.feature_ids) <= 1152

    # eval-sae on its own reproduces the reconstruction numbers and writes metrics.json where asked
    capsys.readouterr()
    rc = main(["eval-sae", "--sae", str(ckpt), "--store", str(sae_store.root), "--ce-tokens", "0",
               "--out", str(tmp_path / "m.json")])
    assert rc == 0
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["schema_version"] == "interp-lab.sae_metrics.v1" and "spliced" not in m
    assert m["heldout"]["fvu"] == pytest.approx(h["fvu"]) and m["heldout"]["l0"] == pytest.approx(h["l0"])
    assert "CE-loss" not in capsys.readouterr().out


def test_bad_train_sae_flags_exit_with_one_line(sae_store, tmp_path, capsys):
    rc = main(["train-sae", "--store", str(sae_store.root), "--hook", "blocks.99.hook_resid_post",
               "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert rc == 2 and "no hook 'blocks.99.hook_resid_post'" in err and len(err.strip().splitlines()) == 1
    rc = main(["train-sae", "--store", str(sae_store.root), "--layer", "15", "--architecture", "gated",
               "--out", str(tmp_path / "x")])
    assert rc == 2 and "unknown architecture 'gated'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
@pytest.mark.realmodel
def test_train_sae_from_activation_records(smollm2, tmp_path, capsys):
    """0.2's --records: an SAE on the pooled residual vectors of real prompts, sampled with --max-records."""
    from gensim.test.utils import datapath

    from interp_lab.harvest.records import export_records

    docs = tmp_path / "docs.txt"
    lines = [ln.strip() for ln in open(datapath("lee_background.cor"), encoding="utf-8") if ln.strip()]
    docs.write_text("\n".join(lines[:160]) + "\n")
    export_records(smollm2, str(docs), tmp_path / "records.jsonl", layers="15", pooling="mean", context_length=48)
    out = tmp_path / "sae"
    rc = main(["train-sae", "--records", str(tmp_path / "records.jsonl"), "--max-records", "120",
               "--expansion-factor", "2", "--top-k", "8", "--epochs", "30", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    cfg = json.loads((out / "cfg.json").read_text())
    assert cfg["d_in"] == 576 and cfg["d_sae"] == 1152 and cfg["metadata"]["hook_name"] == "records.L15"
    man = json.loads((out / "manifest.json").read_text())
    m = json.loads((out / "metrics.json").read_text())
    from interp_lab.io.paths import resolve_recorded
    from interp_lab.store.reader import Store

    assert man["store"].startswith("<cache>/stores/records-")  # a store made for the run, in the cache
    assert Store(resolve_recorded(man["store"], out)).rows == 120  # the sample
    assert 4 <= m["heldout"]["tokens"] <= 30  # a tenth of it held out, by prompt id
    assert m["heldout"]["fvu"] < 0.8 and "spliced" not in m


@pytest.mark.slow
@pytest.mark.realmodel
def test_sae_latents_are_intervened_on_with_controls(smollm2, sae_store, tmp_path, cli):
    """--causal-out's engine: the latents most associated with the unit criterion, ablated and steered on
    held-out prompts with frequency-matched random latents as controls; intervene / steer take --sae."""
    from interp_lab.api.sae import sae_interventions, train_sae
    from interp_lab.interventions.settings import InterventionSettings
    from interp_lab.sae.config import TrainConfig

    units = Path(__file__).resolve().parents[1] / "examples" / "units"
    rows = [json.loads(line) for line in (units / "prompts.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r["labels"]["expected"] == "unit"][:40] + \
        [r for r in rows if r["labels"]["expected"] == "non_unit"][:40]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = tmp_path / "c.yaml"
    spec.write_text((units / "criterion.yaml").read_text().replace("min_heldout: 100", "min_heldout: 10")
                    .replace("prompts: examples/units/prompts.jsonl", f"prompts: {tmp_path / 'p.jsonl'}"))
    sae = train_sae(out=tmp_path / "sae", store=sae_store.root, hook=HOOK, ce_tokens=0,
                    config=TrainConfig(expansion_factor=2, k=16, tokens=20_000)).path
    settings = InterventionSettings(kinds=("ablate", "steer"), n_controls=4, strengths=(1.0, 2.0), side_prompts=8)
    got = sae_interventions(sae, smollm2, str(spec), tmp_path / "iv.jsonl", top=2, settings=settings)
    assert len(got["features"]) == 2 and all(f.startswith("L15:F") for f in got["features"])
    recs = [json.loads(line) for line in (tmp_path / "iv.jsonl").read_text().splitlines()]
    tested = {(r["feature_id"], r["intervention"]) for r in recs if not r["metadata"].get("control_type")}
    assert tested == {(f, k) for f in got["features"] for k in ("ablate", "steer")}
    controls = [r for r in recs if r["metadata"].get("control_type") == "random_feature"]
    assert {r["metadata"]["control_for"] for r in controls} == set(got["features"])
    # drawn for each latent alone (docs/EVIDENCE.md): never the latent itself, possibly the other one tested
    assert all(r["feature_id"].startswith("L15:F") and r["feature_id"] != r["metadata"]["control_for"]
               for r in controls)
    assert set(got["evidence"]) == set(got["features"])

    code, out, err = cli("steer", "--sae", sae, "--feature", got["features"][0], "--strength", "4",
                         "--prompt", "The bridge is 240", "--tokens", "4")
    assert code == 0, err
    assert "baseline:" in out and "steered:" in out
    code, _, err = cli("steer", "--feature", "L15:F3", "--prompt", "x")
    assert code == 2 and "--sae" in err


@pytest.mark.slow
@pytest.mark.realmodel
def test_train_sae_harvests_when_given_a_model_and_dataset(smollm2, tmp_path, capsys):
    """The 0.2 form --hf-model --dataset: activations harvested into a cached store first, reused after."""
    args = ["train-sae", "--hf-model", "smollm2-135m", "--dataset", "lee", "--layer", "3", "--preset", "minimal",
            "--tokens", "6000", "--batch-size", "256", "--ce-tokens", "0"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0, capsys.readouterr().err
    man = json.loads((tmp_path / "a" / "manifest.json").read_text())
    from interp_lab.io.paths import resolve_recorded
    from interp_lab.store.reader import Store

    st = Store(resolve_recorded(man["store"], tmp_path / "a"))
    assert st.hooks == ["blocks.3.hook_resid_post"] and st.rows >= 6000 and man["tokens_seen"] >= 6000
    assert man["revision"] == smollm2.revision
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["store"] == man["store"]
    a = load_file(str(tmp_path / "a" / "sae_weights.safetensors"))
    b = load_file(str(tmp_path / "b" / "sae_weights.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)  # same data, same seed: the same SAE


def test_run_config_train_sae_step_caches(sae_store, tmp_path, cli):
    """A run config's train-sae step: the preset overridden by flat options; the rerun is cached."""
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"steps:\n  - name: sae\n    command: train-sae\n    store: {sae_store.root}\n    hook: {HOOK}\n"
                   f"    preset: minimal\n    tokens: 8000\n    top_k: 8\n    ce_tokens: 0\n    out: {tmp_path / 'sae'}\n"
                   f"manifest: {tmp_path / 'manifest.json'}\n")
    code, _, err = cli("run", cfg)
    assert code == 0, err
    c = json.loads((tmp_path / "sae" / "cfg.json").read_text())
    assert c["k"] == 8 and c["d_sae"] == 4 * 576
    first = json.loads((tmp_path / "manifest.json").read_text())["steps"][0]
    assert first["status"] == "ok" and any(o["file"].endswith("sae_weights.safetensors") for o in first["outputs"])
    code, _, err = cli("run", cfg)
    assert code == 0, err
    assert json.loads((tmp_path / "manifest.json").read_text())["steps"][0]["status"] == "cached"
