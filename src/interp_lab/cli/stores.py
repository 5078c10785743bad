"""Renderers of the commands about models and activation stores: models, store, harvest, probes,
export-hf-records, lens, train-lens."""

from __future__ import annotations
