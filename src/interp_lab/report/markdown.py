"""report.md (placeholder until the renderer lands)."""

from __future__ import annotations

from typing import Any


def render_markdown(report: dict[str, Any]) -> str:
    lines = [f"# {report['criterion']}", ""]
    for c in report["cards"]:
        lines.append(f"- {c['rank']}. {c['feature_id']} {c['evidence_tier']} {c['direction']} {c['importance']}")
    return "\n".join(lines) + "\n"
