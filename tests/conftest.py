"""Shared fixtures: small real files written per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    from interp_lab.cli.main import main

    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def cli(capsys):
    return lambda *args: run_cli(list(args), capsys)


@pytest.fixture(scope="session")
def synthetic_files(tmp_path_factory) -> dict[str, Path]:
    """Synthetic records + interventions written as files (labelled synthetic in every row)."""
    from interp_lab.io.jsonl import write_jsonl
    from interp_lab.io.records import record_rows
    from interp_lab.providers.synthetic import SyntheticSpec, generate

    d = tmp_path_factory.mktemp("synthetic")
    ev = generate(SyntheticSpec(n_prompts=1500, n_features=300, seed=3))
    write_jsonl(d / "records.jsonl", record_rows(ev.records))
    write_jsonl(d / "interventions.jsonl", ev.interventions)
    return {"records": d / "records.jsonl", "interventions": d / "interventions.jsonl", "planted": ev.planted}


@pytest.fixture(scope="session")
def smollm2():
    """The embedded default model, loaded once per test session (converted once per cache)."""
    pytest.importorskip("torch")
    from interp_lab.models.load import load_model

    return load_model("smollm2-135m")


@pytest.fixture(scope="session")
def gemma3():
    """The second model (Gemma-3-270M), loaded once per test session."""
    pytest.importorskip("torch")
    from interp_lab.models.load import load_model

    return load_model("gemma3-270m")


@pytest.fixture(scope="session")
def sae_store(smollm2, tmp_path_factory):
    """30k lee tokens of SmolLM2 layer 15: resid_post (SAEs), resid_mid -> mlp_out (transcoders)."""
    from sae_common import HOOK, TRANSCODER_IN, TRANSCODER_OUT

    from interp_lab.harvest.run import harvest
    from interp_lab.store.reader import Store

    out = tmp_path_factory.mktemp("sae") / "store"
    harvest(smollm2, "lee", [HOOK, TRANSCODER_IN, TRANSCODER_OUT], out, max_tokens=30_000, context_length=128,
            batch_size=16)
    return Store(out)


@pytest.fixture(scope="session")
def trained_archs(sae_store):
    """One short run per architecture (and two transcoders) on ``sae_store``: 40k tokens at 2x width."""
    from sae_common import ARCHS, HOOK, TRANSCODER_IN, arch_id

    from interp_lab.sae.config import TrainConfig
    from interp_lab.sae.train import train_sae

    out = {}
    for arch, hook_out in ARCHS:
        # relu: the default L1 is set for a 200k-token SAE; this short run needs a stronger one, and a
        # transcoder (whose latents are smaller) a weaker one
        l1 = (0.01 if hook_out else 0.15) if arch == "relu" else None
        cfg = TrainConfig(architecture=arch, expansion_factor=2, k=16, tokens=40_000, batch_size=1024, seed=1,
                          l1_coef=l1)
        hook = TRANSCODER_IN if hook_out else HOOK
        out[arch_id((arch, hook_out))] = (train_sae(sae_store, hook, cfg, hook_out=hook_out), hook, hook_out)
    return out
