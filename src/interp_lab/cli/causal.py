"""Renderers of the commands that find and test features on a model: inspect, compile-criterion, intervene,
steer, export-hf-interventions, export-hf-contrast, calibrate-causal."""

from __future__ import annotations
