"""report.html (placeholder until the renderer lands)."""

from __future__ import annotations

import html
from typing import Any


def render_html(report: dict[str, Any]) -> str:
    return "<!doctype html><title>report</title><pre>" + html.escape(str(report["criterion"])) + "</pre>"
