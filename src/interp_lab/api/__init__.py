"""The Python API: ``inspect()``, ``calibrate_causal()``, ``harvest()``, ``intervene()``, ``contrast()``,
``steer()``, ``train_sae()``, ``eval_sae()``, ``compare()``, ``export_attribution_graph()``, ``transfer()``,
``transfer_table()``, and their result types.

Every CLI command is one call here plus argument parsing and rendering. Nothing here imports torch
until a function that needs a model runs. Each name is also reachable as ``interp_lab.NAME`` (loaded
on first use).
"""

from __future__ import annotations

from interp_lab.api.calibrate import CalibrationResult, calibrate_causal
from interp_lab.api.contrast import ContrastResult, contrast
from interp_lab.api.inspect import InspectResult, harvest, inspect
from interp_lab.api.interventions import InterveneResult, intervene
from interp_lab.api.match import MatchResult, compare, export_attribution_graph
from interp_lab.api.sae import SAETrainResult, eval_sae, train_sae
from interp_lab.api.steer import SteerResult, steer
from interp_lab.api.transfer import transfer, transfer_table
from interp_lab.api.version import VersionResult, version

__all__ = ["CalibrationResult", "ContrastResult", "InspectResult", "InterveneResult", "MatchResult",
           "SAETrainResult", "SteerResult", "calibrate_causal", "compare", "contrast", "eval_sae",
           "export_attribution_graph", "harvest", "inspect", "intervene", "steer", "train_sae", "transfer",
           "transfer_table", "version", "VersionResult"]
