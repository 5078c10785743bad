"""The import contracts of pyproject.toml ([tool.importlinter], docs/ARCHITECTURE.md) hold for the package
the tests import, and each one breaks when a module breaks it (a copy of the package with one planted
import, checked by the same ``lint-imports``)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import interp_lab

ROOT = Path(__file__).resolve().parents[1]
SRC = Path(interp_lab.__file__).resolve().parents[1]  # the tree the other tests import


def lint(src: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` on the ``interp_lab`` under ``src``, with the contracts of this checkout's pyproject.toml
    (read from the working directory)."""
    exe = Path(sys.executable).with_name("lint-imports")
    assert exe.exists(), "lint-imports is missing: pip install -e '.[dev]' (import-linter)"
    path = [str(src), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    return subprocess.run([str(exe), "--no-cache"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_import_contracts_hold():
    got = lint(SRC)
    assert got.returncode == 0, got.stdout + got.stderr
    assert "0 broken" in got.stdout and "Contracts: 4 kept" in got.stdout, got.stdout


@pytest.fixture(scope="module")
def copy(tmp_path_factory) -> Path:
    """A copy of the package the tests import (no caches), planted into by each case and restored after."""
    dst = tmp_path_factory.mktemp("contracts") / "src"
    shutil.copytree(SRC / "interp_lab", dst / "interp_lab", ignore=shutil.ignore_patterns("__pycache__"))
    return dst


BREAKS = {
    # planted module -> its import, the contract it must break, the chain lint-imports must name
    "layers": ("interp_lab/store/_planted.py", "from interp_lab.evidence import stats\n",
               "Layers: a module imports only from the layers below its own",
               "interp_lab.store._planted -> interp_lab.evidence.stats"),
    "core-no-torch": ("interp_lab/evidence/_planted.py", "def f():\n    import torch\n",
                      "never imports torch or", "interp_lab.evidence._planted -> torch"),
    "core-no-torch-indirect": ("interp_lab/report/_planted.py", "def f():\n    from interp_lab.models import hooked\n",
                               "never imports torch or", "interp_lab.report._planted -> interp_lab.models.hooked"),
    "no-cli": ("interp_lab/api/_planted.py", "from interp_lab.cli import render\n", "No layer imports the CLI",
               "interp_lab.api._planted -> interp_lab.cli.render"),
    "runs-receives-steps": ("interp_lab/runs/_planted.py", "from interp_lab.harvest import run\n",
                            "runs/ imports neither api/ nor harvest/", "interp_lab.runs._planted -> interp_lab.harvest.run"),
    "new-package-unplaced": ("interp_lab/server/__init__.py", "", "Layers: a module imports only from the layers",
                             "interp_lab.server"),
}


@pytest.mark.parametrize("case", list(BREAKS))
def test_a_planted_import_breaks_its_contract(copy, case):
    rel, code, contract, chain = BREAKS[case]
    planted = copy / rel
    planted.parent.mkdir(exist_ok=True)
    planted.write_text(code)
    try:
        got = lint(copy)
    finally:
        shutil.rmtree(planted.parent) if planted.name == "__init__.py" else planted.unlink()
    assert got.returncode == 1, got.stdout + got.stderr
    broken = got.stdout[got.stdout.index("Broken contracts"):]
    assert contract in broken and chain in broken, got.stdout
