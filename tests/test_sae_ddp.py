"""``torchrun --nproc_per_node 2 -m interp_lab train-sae``: two processes sharing each batch train the SAE
one process trains, up to float rounding; a worker killed mid-run is resumed under torchrun to the weights
of a run never stopped; one step of every architecture on shares equals the step on the whole batch."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from safetensors.torch import load_file  # noqa: E402

import interp_lab  # noqa: E402

pytestmark = pytest.mark.skipif(not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
                                reason="torch without gloo")

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
# --float32: with the bf16 encoder matmul, a pre-activation that the rounding of two processes' sums moves
# across a bf16 step can change which latents a token takes (ties at bf16 precision are common), and the
# runs drift apart beyond rounding (measured after 20 steps: held-out FVU 1.3e-5 apart, each step's FVU up
# to 1.3e-4, weights up to 4% of their largest entry)
ARGS = ["--layer", "15", "--preset", "minimal", "--expansion-factor", "2", "--top-k", "16", "--tokens", "10240",
        "--batch-size", "512", "--seed", "3", "--checkpoint-every", "4", "--ce-tokens", "0", "--float32"]
# Float rounding only (sums over two halves instead of one batch, one thread per process instead of two):
# measured on this run (20 steps) 1.9e-5 relative on W_dec, 6e-8 on a step's FVU, 2e-10 on the held-out
# FVU; an error in combining the shares (a local variance, a local top-k, gradients averaged instead of
# summed) shows as 1e-2 and more (tests/sae_ddp_step.py).
WEIGHTS_RTOL = 1e-3
FVU_ATOL = 1e-4


def _env() -> dict[str, str]:
    src = str(Path(interp_lab.__file__).resolve().parents[1])  # the interp_lab these tests import
    return {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]),
            "PYTHONUNBUFFERED": "1"}


def _train(store, out: Path, processes: int, wait: bool = True):
    cmd = [*(TORCHRUN if processes == 2 else [sys.executable]), "-m", "interp_lab", "train-sae", "--store",
           str(store.root), "--out", str(out), *ARGS]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if not wait:
        return proc
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    return stdout


@pytest.fixture(scope="module")
def runs(sae_store, tmp_path_factory):
    d = tmp_path_factory.mktemp("ddp")
    return {"one": (d / "one", _train(sae_store, d / "one", 1)), "two": (d / "two", _train(sae_store, d / "two", 2))}


@pytest.mark.slow
def test_two_processes_train_the_single_process_sae(runs):
    (one, _), (two, out) = runs["one"], runs["two"]
    assert out.count("on 2 processes") == 1  # rank 0 reports, rank 1 is silent
    m1, m2 = (json.loads((p / "manifest.json").read_text()) for p in (one, two))
    assert (m1["world_size"], m2["world_size"]) == (1, 2)
    # the same global batches: the same tokens at every step (outliers left out by each process of its share)
    assert [h["tokens"] for h in m1["history"]] == [h["tokens"] for h in m2["history"]]
    for a, b in zip(m1["history"], m2["history"]):
        assert abs(a["fvu"] - b["fvu"]) < FVU_ATOL and a["l0"] == pytest.approx(b["l0"], abs=1e-3), (a, b)
    w1, w2 = (load_file(str(p / "sae_weights.safetensors")) for p in (one, two))
    assert w1.keys() == w2.keys()
    for k in w1:
        scale = float(w1[k].abs().max())
        assert float((w1[k] - w2[k]).abs().max()) <= WEIGHTS_RTOL * scale, k
    h1, h2 = (json.loads((p / "metrics.json").read_text())["heldout"] for p in (one, two))
    assert abs(h1["fvu"] - h2["fvu"]) < FVU_ATOL and abs(h1["l0"] - h2["l0"]) < 1e-2
    assert not (two.parent / ".two.training").exists()  # rank 0 removed the state once it had written


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds torchrun's workers through /proc")
def test_a_worker_killed_mid_run_is_resumed_under_torchrun(sae_store, runs, tmp_path):
    out = tmp_path / "killed"
    state = tmp_path / ".killed.training" / "train_state.safetensors"
    proc = _train(sae_store, out, 2, wait=False)
    deadline = time.time() + 120
    while not state.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    workers = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    assert len(workers) == 2, "training finished before a worker could be killed"
    os.kill(int(workers[-1]), signal.SIGKILL)  # rank 1 (one OOM-killed worker): torchrun stops the other
    proc.communicate(timeout=120)
    assert proc.returncode != 0 and state.exists() and not (out / "sae_weights.safetensors").exists()

    resumed = _train(sae_store, out, 2)
    assert "resumed at" in resumed
    a = load_file(str(out / "sae_weights.safetensors"))
    b = load_file(str(runs["two"][0] / "sae_weights.safetensors"))
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert json.loads((out / "manifest.json").read_text())["resumed_at"] > 0


def test_one_step_on_shares_is_the_step_on_the_whole_batch():
    """Every architecture (and transcoders): loss terms, latents, gradients and batchtopk's threshold."""
    script = Path(__file__).with_name("sae_ddp_step.py")
    got = subprocess.run([*TORCHRUN, str(script)], env=_env(), capture_output=True, text=True, timeout=300)
    assert got.returncode == 0, got.stderr[-3000:]
    assert got.stdout.split() == [w for a in ("topk", "batchtopk", "jumprelu", "relu", "batchtopk-transcoder",
                                              "relu-transcoder") for w in ("ok", a)]
