"""A run config of each step kind gives the same bytes as when its hashes were recorded (issue 22, acceptance).

``tests/data/runs/steps.yaml`` chains every step kind that runs without a model: ``inspect`` (activation
records with interventions, a feature dump, the synthetic backend), ``match`` (two reports; a feature dump
with a report), ``transfer`` (measured from the right report's own interventions, so no model is loaded),
``transfer-table`` and ``train-sae`` (on activation records); ``flat.json`` is the 0.2 flat form (one
``inspect``). ``tests/run_snapshot.py`` runs them through ``interp-lab run`` on copies of the example
evidence and hashes every output but the manifests; ``tests/data/runs/sha256.json`` holds the hashes as
committed, with the versions of the packages that write the bytes (a mismatch lists those that differ:
torch, numpy or matplotlib of another version may write other bytes from the same code). In a new
environment, record the hashes on the commit before the change, then check the change against them:

    git stash && PYTHONPATH=src python tests/run_snapshot.py --write && git stash pop   # before
    PYTHONPATH=src python tests/run_snapshot.py                                          # after

A change meant to change an output records the new hashes with ``--write`` and says why in its commit.

Step kinds that need the real model are not run here (MODEL_STEPS): ``harvest`` (test_runs.py::
test_harvest_train_and_match_two_saes_in_one_config runs it in a config with ``train-sae`` on a store and
``match`` of two SAE checkpoints; test_a_killed_run_resumes_after_its_last_finished_step), ``inspect`` on
the model (``--backend hf`` / ``sae``: test_inspect_hf.py), ``transfer`` measuring on the right model
(test_transfer.py::test_transfer_runs_interventions_when_the_right_report_has_none) and ``train-sae`` from
``--model --dataset`` (test_sae_cli.py::test_train_sae_harvests_when_given_a_model_and_dataset). Those
tests check behaviour, not bytes; ``examples/cross-model/study.yaml`` and ``stability.yaml`` rerun with
``--force`` before and after a change compare them byte for byte (their manifests hash every output).
"""

from __future__ import annotations

import copy
import json

import yaml
from run_snapshot import CONFIGS, HASHES, RUNS, compare, environment, run_configs

MODEL_STEPS = {"harvest"}  # a run config's step kinds that always load a model


def test_run_configs_write_the_recorded_bytes(tmp_path):
    recorded = json.loads(HASHES.read_text())
    hashes = run_configs(tmp_path / "work")
    lines = compare(recorded, hashes, environment())
    assert not lines, ("outputs of tests/data/runs/ differ from sha256.json (see tests/test_run_snapshot.py "
                       "before recording them again):\n" + "\n".join(lines))
    assert sum(map(len, hashes.values())) >= 25
    transfer = json.loads((tmp_path / "work" / "out" / "transfer" / "transfer.json").read_text())
    assert transfer["ran_here"] is None and transfer["summary"]["transfer"] >= 1  # a pair transfers, no model


def test_every_step_kind_without_a_model_has_a_config():
    """A new run-config command fails here until a config of tests/data/runs/ runs it (or it loads a model)."""
    from interp_lab.api.registry import registry

    used = {s["command"] for s in yaml.safe_load((RUNS / "steps.yaml").read_text())["steps"]}
    assert used == set(registry().steps()) - MODEL_STEPS
    assert set(CONFIGS) == {p.name for p in RUNS.iterdir() if p.name != HASHES.name}


def test_a_changed_missing_or_new_output_is_reported():
    recorded = json.loads(HASHES.read_text())
    hashes = copy.deepcopy(recorded["outputs"])
    hashes["steps.yaml"]["out/left/report.json"] = "0" * 64
    del hashes["steps.yaml"]["out/left/report.md"]
    hashes["flat.json"]["out/flat/report.html"] = "0" * 64
    env = {**recorded["environment"], "torch": "9.9"}
    assert compare(recorded, hashes, env) == [
        "flat.json: out/flat/report.html: a new output",
        "steps.yaml: out/left/report.json: other bytes",
        "steps.yaml: out/left/report.md: no longer written",
        f"environment: torch {recorded['environment']['torch']} -> 9.9",
    ]
    assert compare(recorded, recorded["outputs"], env) == []
