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
