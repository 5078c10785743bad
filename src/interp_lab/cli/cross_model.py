"""Renderers of the cross-model commands: match, transfer, export-attribution-graph."""

from __future__ import annotations
