"""The Python API: ``inspect()``, ``harvest()``, ``intervene()``, ``contrast()``, ``steer()`` ``train_sae()``, ``eval_sae()``,
``compare()``.

Every CLI command is one call here plus argument parsing and rendering. Nothing here imports torch
until a function that needs a model runs.
"""

from __future__ import annotations

from interp_lab.api.inspect import InspectResult, harvest, inspect
from interp_lab.api.interventions import contrast, intervene, steer
from interp_lab.api.match import MatchResult, compare
from interp_lab.api.sae import eval_sae, train_sae

__all__ = ["InspectResult", "MatchResult", "compare", "contrast", "eval_sae", "harvest", "inspect", "intervene", "steer", "train_sae"]
