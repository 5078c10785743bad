"""Interventions on a model: steering, ablation and projection with generated controls (evidence.md rule 7)."""
