"""The Python API: ``inspect()``, ``harvest()``, ``intervene()``, ``contrast()``, ``steer()`` (and, as later
issues land, ``compare()``, ``train_sae()`` ...).

Every CLI command is one call here plus argument parsing and rendering. Nothing here imports torch
until a function that needs a model runs.
"""

from __future__ import annotations

from interp_lab.api.inspect import InspectResult, harvest, inspect
from interp_lab.api.interventions import contrast, intervene, steer

__all__ = ["InspectResult", "contrast", "harvest", "inspect", "intervene", "steer"]
