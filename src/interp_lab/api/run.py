"""``interp-lab run``: a run config's steps, each a command of the registry, with resume and a manifest."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from interp_lab.api.registry import REGISTRY, command
from interp_lab.runs.config import RunResult
from interp_lab.runs.config import run_config as _run_config
from interp_lab.schemas.command import Progress, option


@dataclass(kw_only=True)
class RunOptions:
    config: Path = option(help="Run config (JSON, TOML or YAML): steps, or the 0.2 flat form.", argument=True)
    manifest_out: Path | None = option(None, "Where the manifest goes (default: beside the outputs).", flag="--out",
                                       param="out")
    force: bool = option(False, "Rerun steps whose outputs are already up to date.")


@command("run", options=RunOptions, result=RunResult, group="utilities", positional=("config",), log=True,
         help="Run a reproducible workflow from a config file and write its manifest.")
def run_config(o: RunOptions, progress: Progress) -> RunResult:
    """Run every step of the config ``o.config`` (each step a registry command: inspect, harvest, train-sae,
    match, transfer, transfer-table); write the run manifest (``manifest_out``, else the config's ``manifest``,
    else beside the outputs); skip steps whose inputs, options and outputs are unchanged unless ``force``."""
    return _run_config(o.config, REGISTRY, manifest_out=o.manifest_out, force=o.force, progress=progress)
