"""Write a report (json, md, html) plus its manifest into a directory, all or nothing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec

from interp_lab.io.atomic import atomic_dir

FORMATS = ("json", "md", "html")


def report_bytes(report: dict[str, Any]) -> bytes:
    """Canonical report.json bytes: sorted keys, two-space indent, trailing newline."""
    return msgspec.json.format(msgspec.json.encode(report, order="sorted"), indent=2) + b"\n"


def write_report(report: dict[str, Any], out: str | os.PathLike, formats: tuple[str, ...] = FORMATS, *,
                 inputs: list | None = None, timings: dict[str, float] | None = None,
                 manifest: bool = True, extra: dict[str, bytes] | None = None,
                 run_info: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write ``report.{json,md,html}`` (and ``manifest.json``, and ``extra`` files by name) into ``out``;
    returns their paths."""
    from interp_lab.io.manifest import inspect_manifest
    from interp_lab.report.html import render_html
    from interp_lab.report.markdown import render_markdown

    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown report formats {sorted(unknown)}")
    target = Path(out)
    files: dict[str, bytes] = {}
    if "json" in formats:
        files["json"] = report_bytes(report)
    if "md" in formats:
        files["md"] = render_markdown(report).encode("utf-8")
    if "html" in formats:
        files["html"] = render_html(report).encode("utf-8")
    names = {"json": "report.json", "md": "report.md", "html": "report.html"}
    for name, data in (extra or {}).items():
        names[name] = name
        files[name] = data
    with atomic_dir(target) as tmp:
        for key, data in files.items():
            (tmp / names[key]).write_bytes(data)
        if manifest:
            man = inspect_manifest(report, inputs or [], timings or {}, {names[k]: v for k, v in files.items()},
                                   base=target)
            if run_info:
                man["run"] = run_info
            (tmp / "manifest.json").write_bytes(msgspec.json.format(msgspec.json.encode(man), indent=2) + b"\n")
    paths = {key: target / names[key] for key in files}
    if manifest:
        paths["manifest"] = target / "manifest.json"
    return paths
