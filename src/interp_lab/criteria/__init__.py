"""Criteria: a criterion spec compiled into a scored, split prompt set (formats.md)."""
