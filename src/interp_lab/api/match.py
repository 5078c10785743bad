"""``compare()`` and ``interp-lab match``: the features of two reports (or feature dumps) matched by
their fingerprints (``evidence.match``), written as matches.json, matches.md and matches.html."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interp_lab.errors import InputError, UsageError

FORMATS = ("json", "md", "html")


@dataclass
class Side:
    """One side of a comparison: its features and where they came from."""

    features: Any  # evidence.match.FeatureSet
    info: dict[str, Any]
    notes: list[str] = field(default_factory=list)


@dataclass
class MatchResult:
    matches: dict[str, Any]
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def pairs(self) -> list[dict[str, Any]]:
        return self.matches["matches"]


def load_side(obj: Any, name: str = "left", text_embeddings: bool = False) -> Side:
    """A report (``InspectResult``, report dict, report.json or its directory) or a feature dump (.jsonl,
    .jsonl.gz, .jsonl.zst) as a ``Side``. ``text_embeddings``: features without a text embedding get one
    (MiniLM over their label and top examples; needs the embed extra)."""
    from interp_lab.evidence.match import feature_set

    entries, info = _entries(obj, name)
    notes: list[str] = []
    if info.get("kind") == "report" and info.get("criterion"):
        entries = [_with_causal(e, info["criterion"]) for e in entries]
    if text_embeddings:
        import copy

        from interp_lab.providers.text import add_text_embeddings

        entries = copy.deepcopy(entries)
        n = add_text_embeddings(entries)
        if n:
            notes.append(f"{name}: text embeddings computed here for {n} features (all-MiniLM-L6-v2 over the "
                         "label and top examples)")
    fs, more = feature_set(entries, info.get("path") or f"{name} report")
    info["features"] = len(fs)
    return Side(fs, info, notes + more)


def _with_causal(card: dict[str, Any], criterion: str) -> dict[str, Any]:
    """A card whose fingerprint has no ``causal`` part gets one from its own causal evidence: the
    report's criterion and the signed held-out effect of its strongest intervention kind (one beyond
    its controls first, then the largest |effect|)."""
    fp = card.get("fingerprint") or {}
    kinds = [k for k in (card.get("causal") or {}).values() if isinstance(k, dict) and k.get("mean_effect") is not None]
    if fp.get("causal") or not kinds:
        return card
    best = max(kinds, key=lambda k: (bool(k.get("strong_causal")), abs(float(k["mean_effect"]))))
    return {**card, "fingerprint": {**fp, "causal": {criterion: float(best["mean_effect"])}}}


def _entries(obj: Any, name: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(cards or dump rows as dicts, where they came from)."""
    from interp_lab.io.hashing import sha256_file

    report = getattr(obj, "report", None)
    if isinstance(obj, dict) or isinstance(report, dict):
        rep = report if isinstance(report, dict) else obj
        if "cards" not in rep:
            raise UsageError(f"{name}: a dict that is not a report (no cards)")
        return list(rep["cards"]), {"kind": "report", "model": rep.get("model"), "criterion": rep.get("criterion")}
    path = Path(obj)
    if path.is_dir():
        path = path / "report.json"
    if not path.exists():
        raise InputError(str(path), "file not found")
    info: dict[str, Any] = {"path": str(obj), "sha256": sha256_file(path)}
    suffixes = "".join(path.suffixes[-2:])
    if path.suffix == ".json":
        from interp_lab.schemas.reports import read_report

        rep = read_report(path)  # validates, naming the file and field
        import msgspec

        info.update(kind="report", model=rep.model, criterion=rep.criterion)
        return [msgspec.to_builtins(c) for c in rep.cards], info
    if ".jsonl" in suffixes:
        from interp_lab.providers.features import card_fields, load_dump

        dump = load_dump(path)
        info.update(kind="features", models=dump.models)
        return [{"feature_id": fid, **card_fields(row, "")} for fid, row in dump.rows.items()], info
    raise InputError(str(path), "expected a report (report.json or its directory) or a feature dump (.jsonl)")


def compare(left: Any, right: Any, out: str | os.PathLike | None = None, *, k: int = 10,
            weights: dict[str, float] | None = None, null_pairs: int = 20_000, alpha: float = 0.05, seed: int = 0,
            text_embeddings: bool = False, formats: tuple[str, ...] = FORMATS) -> MatchResult:
    """Match the features of ``left`` against those of ``right`` (each a report, a report.json path or
    directory, or a feature dump): every left feature's ``k`` best right candidates by combined
    fingerprint similarity, with p-values under a permutation null and a one-to-one assignment.
    ``text_embeddings``: embed the labels and top examples of features that have no text embedding.
    With ``out`` (the matches.json path), writes matches.json, matches.md and matches.html beside it,
    all or nothing."""
    from interp_lab.evidence.match import WEIGHTS, MatchSettings, match

    if k < 1:
        raise UsageError("--k must be at least 1")
    if not 0 < alpha < 1:
        raise UsageError("--alpha must be between 0 and 1")
    if null_pairs < 100:
        raise UsageError("--null-pairs must be at least 100")
    a, b = load_side(left, "left", text_embeddings), load_side(right, "right", text_embeddings)
    settings = MatchSettings(k=k, null_pairs=null_pairs, alpha=alpha, seed=seed,
                             weights=tuple((weights or WEIGHTS).items()))
    body = match(a.features, b.features, settings)
    doc = {"schema_version": body["schema_version"], "left": a.info, "right": b.info, "method": body["method"],
           "summary": body["summary"], "notes": a.notes + b.notes, "matches": body["matches"]}
    result = MatchResult(doc)
    if out is not None:
        result.paths = write_matches(doc, out, formats)
    return result


def matches_bytes(doc: dict[str, Any]) -> bytes:
    import msgspec

    return msgspec.json.format(msgspec.json.encode(doc, order="sorted"), indent=2) + b"\n"


def write_matches(doc: dict[str, Any], out: str | os.PathLike, formats: tuple[str, ...] = FORMATS) -> dict[str, Path]:
    """matches.json (at ``out``) and matches.md / matches.html beside it, all renamed into place together."""
    from interp_lab.io.atomic import atomic_dir
    from interp_lab.report.matches import render_html, render_markdown

    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise UsageError(f"unknown formats {sorted(unknown)}")
    target = Path(out)
    if target.suffix != ".json":
        target = target / "matches.json"  # a directory
    stem = target.stem
    files = {}
    if "json" in formats:
        files[target.name] = matches_bytes(doc)
    if "md" in formats:
        files[f"{stem}.md"] = render_markdown(doc).encode("utf-8")
    if "html" in formats:
        files[f"{stem}.html"] = render_html(doc).encode("utf-8")
    with atomic_dir(target.parent) as tmp:
        for fname, data in files.items():
            (tmp / fname).write_bytes(data)
    return {fname.rsplit(".", 1)[1]: target.parent / fname for fname in files}


def export_attribution_graph(report: Any, out: str | os.PathLike, *, similarity: bool = False, k: int = 3,
                             alpha: float = 0.05, seed: int = 0) -> dict[str, Path]:
    """``report`` (a report dict, report.json or its directory) as an attribution graph: ``out`` (JSON) and
    an HTML view beside it, both or neither."""
    import msgspec

    from interp_lab.io.atomic import atomic_dir
    from interp_lab.report.graph import attribution_graph, render_graph_html

    if isinstance(report, dict) or isinstance(getattr(report, "report", None), dict):
        rep = report if isinstance(report, dict) else report.report
    else:
        from interp_lab.schemas.reports import read_report

        path = Path(report)
        rep = msgspec.to_builtins(read_report(path / "report.json" if path.is_dir() else path))
    graph = attribution_graph(rep, similarity=similarity, k=k, alpha=alpha, seed=seed)
    target = Path(out)
    if target.suffix != ".json":
        target = target / "graph.json"
    files = {target.name: msgspec.json.format(msgspec.json.encode(graph, order="sorted"), indent=2) + b"\n",
             f"{target.stem}.html": render_graph_html(graph).encode("utf-8")}
    with atomic_dir(target.parent) as tmp:
        for fname, data in files.items():
            (tmp / fname).write_bytes(data)
    return {fname.rsplit(".", 1)[1]: target.parent / fname for fname in files}
